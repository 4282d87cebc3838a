"""Fast exact TreeSHAP for LightGBM boosters.

``tree_shap(booster, X)`` returns the same matrix as ``booster.predict(X, pred_contrib=True)``
(shape ``(n, F+1)``; multiclass ``(n, K*(F+1))``; the last column of each block is the expected
value): path-dependent ("tree_path_dependent") SHAP values, equal to LightGBM's to ~1e-14,
20-60x faster on 2 cores for tidu's model (binary, 300 trees, num_leaves 31, max_depth 6-8).
See bench/bench_shap.py and bench/results/shap.md.

Algorithm
---------
For one leaf with value ``v`` let ``P`` be the set of *distinct* features on its root path (a
feature that repeats on the path is one element, as in Lundberg's TreeSHAP, which "unwinds" a
repeated feature), ``d = |P|``. For ``j`` in ``P`` let ``z_j`` be the product of the cover ratios
``count(child) / count(parent)`` over the path's edges on ``j``, and ``o_j(x) = 1`` if ``x``
follows every one of those edges, else 0. The leaf's share of the path-dependent value function
is ``v * prod_j (o_j if j in S else z_j)``; with ``O = {j : o_j = 1}`` and the Shapley weights
``w(k, d) = k! (d-k-1)! / d!`` its Shapley values are::

    phi_i = -v * Z(P\\O) * W(O)                        for i not in O
    phi_i =  v * (1 - z_i) * Z(P\\O) * W(O \\ {i})     for i in O

with ``Z(A) = prod_{j in A} z_j`` and ``W(R) = sum_k w(k, d) [t^k] prod_{j in R} (z_j + t)``.
They depend only on the leaf and the bitmask ``O``, so every leaf gets, once per model, a
table indexed by ``O`` (a Fast TreeSHAP v2-style precomputation, Yang 2021, built here with a
subset DP over products of numbers in [0, 1]: no division, no cancellation). Per block of rows
and tree, the numba kernel then

1. evaluates every split once for all rows of the block (vectorised over rows; NaN,
   zero-as-missing, default-left and categorical bitsets exactly as LightGBM's
   ``Tree::Decision``) and pushes "failed" bits down the tree, so each leaf gets ``O``;
2. per leaf, adds ``d`` table entries to each row. Two sibling leaves share one table (indexed
   by the first leaf's ``O`` plus one bit of the second's), halving their look-ups.

So O(T * L * D) per row with a small constant, against LightGBM's O(T * L * D^2) recursion.
Rows are processed in blocks (<= 4096 rows) by a thread pool; the kernel releases the GIL.

Rows that go the same way at every split of a tree get the same values from it. Counts, one-hots,
capped and rounded features make such patterns common: tidu's pooled model sees ~90 distinct
ones per tree in a block of 4,096 scored rows. So step 2 runs once per distinct pattern (found by
hashing each row's decisions, one bit per split, for trees of <= 63 leaves), and each row then
adds its pattern's values for the tree's own features: ~2x faster for tidu's models, no slower
for continuous features (where a block's patterns are mostly distinct and step 2 runs per row).
Both ways sum a tree's leaves before adding the tree to the row's total, in the same order, so
the result does not depend on how rows fall into blocks or threads.

Tiers, constraints, fallbacks
-----------------------------
* Per leaf with ``d`` distinct path features: a full table (``d * 2^d`` doubles, one gather per
  row) if ``d <= 10``; a compact table (``2 * 2^d`` doubles: ``v*Z(P\\O)`` and ``W(O)``) if
  ``d <= 16``; otherwise exact on-the-fly O(d^2) polynomial arithmetic per row (the same
  arithmetic as LightGBM's unwinding). Limits are lowered until the tables fit 256 MB. So the
  result is exact at any depth; the speed needs bounded depth: **train tidu with max_depth 6-8**
  (all leaves then use full tables; 17 MB / 48 MB of tables for 300 trees). Unlimited depth
  with num_leaves 31 still works and is ~2x slower than max_depth 8.
* Falls back to ``booster.predict(..., pred_contrib=True)`` (logging why; see
  :func:`fallback_reason`) for: ``average_output`` (random forest) models, linear trees (for
  which LightGBM itself raises), a path with more than 62 distinct features (needs
  num_leaves > 63), scipy sparse input, and pandas input to a model with
  ``pandas_categorical`` mappings.
* Categorical splits are handled natively (NaN and negative values go right, other values are
  truncated to int and looked up in the split's category bitset, as LightGBM does).
* Values with ``|x| <= 1e-35`` are read as 0, as LightGBM's dense-matrix reader does.

Raw-score prediction
--------------------
``tree_predict(booster, X)`` returns, bit for bit, ``booster.predict(X, raw_score=True)``
(``(n,)``; multiclass ``(n, K)``), with ~13x less CPU time for a model like tidu's (binary, 480
trees, num_leaves 15, max_depth 8, 108 features, 1M rows on 2 busy cores: 1.8 s against 25 s;
about 4 ns per row and tree). It uses the same parsed arrays and split semantics, no SHAP
tables, and the vectorised leaf search of QuickScorer (Lucchese et al., SIGIR 2015) rather than
a walk down each tree, whose data-dependent branches make a per-row walk no faster than
LightGBM's: leaves are numbered left to right, each row of a block keeps the set of leaves it
can still reach (32 or 64 bits), every split of the tree is evaluated for all rows at once
(vectorised over rows, as in the SHAP kernel) and a row that goes right removes the split's left
subtree from its set; the row's leaf is then the lowest remaining bit. Each row's output starts
at 0.0 and gets the trees' leaf values added in tree order, one addition per tree (a single-leaf
tree adds its value), as LightGBM's ``GBDT::PredictRaw`` does, hence identical sums. Arrays of
other dtypes than float32/float64 are read as float32, as LightGBM's predict does. Models with a
tree of more than 64 leaves, and the models and inputs that ``tree_shap`` passes on (not the
62-path-feature limit, which does not apply), fall back to ``booster.predict(...,
raw_score=True)`` (see ``fallback_reason(booster, X, predict=True)``).

The model is parsed from ``booster.dump_model()`` once into flat numpy arrays and cached per
booster (``compile_model`` does it explicitly; ``shap_tables=False`` parses without building
the SHAP tables, all that ``tree_predict`` needs). Numba's on-disk cache (``cache=True``) is used
when numba finds a writable place (``NUMBA_CACHE_DIR``, ``__pycache__`` next to this file, or the
user cache dir); otherwise the kernels are compiled in memory (read-only site-packages is fine).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np

__all__ = [
    "DEFAULT_COMPACT_TABLE_DEPTH",
    "DEFAULT_FULL_TABLE_DEPTH",
    "TreeShapModel",
    "compile_model",
    "fallback_reason",
    "tree_predict",
    "tree_shap",
]

log = logging.getLogger(__name__)

#: LightGBM's kZeroThreshold (a float literal 1e-35f promoted to double).
K_ZERO_THRESHOLD = float(np.float32(1e-35))
#: Leaves with at most this many distinct path features get a full table (d * 2^d doubles).
DEFAULT_FULL_TABLE_DEPTH = 10
#: ... and up to this many a compact table (2 * 2^d doubles); deeper leaves: on the fly.
DEFAULT_COMPACT_TABLE_DEPTH = 16
#: Upper bound on the total size of the precomputed tables (bytes).
DEFAULT_TABLE_BUDGET_BYTES = 256 * 1024 * 1024
#: Masks are int64 bitsets: at most 62 distinct features on any root-to-leaf path.
MAX_PATH_FEATURES = 62
#: Rows per parallel work item (at most).
DEFAULT_BLOCK_ROWS = 4096
#: Trees of at most this many internal nodes (num_leaves <= 63) may share decision patterns
#: between rows (``_shap_kernel``): a row's decisions at every split are the bits of one int64.
MAX_PATTERN_NODES = 62
#: ... which computes a tree's leaves once per distinct pattern of decisions when at most this
#: share of a block's rows have patterns of their own, else once per row (the same values).
#: tidu's pooled model: ~2 % (90 patterns in 4,096 rows); continuous features: ~100 %.
DEFAULT_PATTERN_SHARE = 0.25
#: tree_predict: rows per block (its feature-major copy, 108 features: 221 KB, stays in L2) ...
DEFAULT_PREDICT_BLOCK_ROWS = 256
#: ... and at most this many blocks per parallel work item.
PREDICT_BLOCKS_PER_ITEM = 64
#: tree_predict keeps each row's reachable leaves in a w-bit set: w = 32 when every tree has at
#: most 32 leaves (twice the rows per SIMD instruction: ~25% faster), else 64.
MAX_PREDICT_LEAVES = 64
#: w -> (de Bruijn constant, shift): ``((b * constant) mod 2^w) >> shift`` is distinct for the w
#: powers of two ``b``, so the lowest set bit of a leaf set is found by one multiplication and a
#: table of w entries.
DEBRUIJN = {32: (0x077CB531, 27), 64: (0x022FDD63CC95386D, 58)}


def _debruijn_slots(w: int) -> np.ndarray:
    """Where leaf position i (bit 2^i) falls in a tree's w-entry table of leaf values."""
    c, shift = DEBRUIJN[w]
    return np.array([((c << i) & ((1 << w) - 1)) >> shift for i in range(w)], np.int64)


# ---------------------------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------------------------


def _njit(**kwargs):
    """``numba.njit(cache=True)`` if numba finds a writable cache location, else no disk cache."""

    def deco(fn):
        try:
            return numba.njit(cache=True, **kwargs)(fn)
        except (RuntimeError, OSError):  # numba: "cannot cache function ...: no locator"
            return numba.njit(cache=False, **kwargs)(fn)

    return deco


@_njit(error_model="numpy")
def _shapley_weights(max_d):
    """w[d, k] = k! (d-k-1)! / d!  for 1 <= d <= max_d, 0 <= k < d (0 elsewhere)."""
    w = np.zeros((max_d + 1, max_d + 1))
    for d in range(1, max_d + 1):
        w[d, 0] = 1.0 / d
        for k in range(d - 1):
            w[d, k + 1] = w[d, k] * (k + 1) / (d - k - 1)
    return w


TIER_FULL, TIER_COMPACT, TIER_ON_THE_FLY = 0, 1, 2


@_njit(nogil=True, error_model="numpy")
def _fill_leaf_table(out, off, tier, d, po, v, lp_z, lp_omz, wtab):
    """One leaf's table, from vz[O] = v * Z(P\\O) and W(O) (see the module docstring).

    full tier:    out[off + O*d + k] = contribution of path feature k when the satisfied set is O
    compact tier: out[off + 2*O] = vz[O],  out[off + 2*O + 1] = W(O)
    """
    size = np.int64(1) << d
    full = size - 1
    # zc[O] = prod_{k not in O} z_k   (subset DP, products of numbers in [0, 1])
    zc = np.empty(size)
    zc[full] = 1.0
    for o in range(full - 1, -1, -1):
        k = 0
        while (o >> k) & 1:
            k += 1
        zc[o] = zc[o | (1 << k)] * lp_z[po + k]
    # poly[O] = prod_{k in O} (z_k + t), from O minus its lowest bit; W(O) = sum_j w_j poly_j
    poly = np.zeros((size, d + 1))
    poly[0, 0] = 1.0
    cnt = np.zeros(size, np.int64)
    wsum = np.zeros(size)
    for o in range(size):
        if o > 0:
            k = 0
            while not ((o >> k) & 1):
                k += 1
            prev = o ^ (1 << k)
            m = cnt[prev]
            cnt[o] = m + 1
            z = lp_z[po + k]
            poly[o, m + 1] = poly[prev, m]
            for j in range(m, 0, -1):
                poly[o, j] = z * poly[prev, j] + poly[prev, j - 1]
            poly[o, 0] = z * poly[prev, 0]
        if o != full:  # W(P) is never needed (w(d, d) is undefined)
            acc = 0.0
            for j in range(cnt[o] + 1):
                acc += wtab[d, j] * poly[o, j]
            wsum[o] = acc
    if tier == 1:
        for o in range(size):
            out[off + 2 * o] = v * zc[o]
            out[off + 2 * o + 1] = wsum[o]
    else:
        for o in range(size):
            vz = v * zc[o]
            a = vz * wsum[o]
            for k in range(d):
                if (o >> k) & 1:
                    out[off + o * d + k] = vz * lp_omz[po + k] * wsum[o ^ (1 << k)]
                else:
                    out[off + o * d + k] = -a


@_njit(nogil=True, error_model="numpy")
def _build_tables(
    g_lo, g_hi, g_leaf, g_leaf2, g_slot, g_tab_off,
    l_d, l_path_off, l_tier, l_tab_off, l_value, lp_z, lp_omz, wtab, tab,
):  # fmt: skip
    """Tables of work items [g_lo, g_hi) into ``tab`` (releases the GIL; threads split items).

    A pair of sibling leaves (same distinct path features; their parent splits on slot ``sl``)
    gets one full table indexed by ``O1 + (bit sl of O2) << d``, holding the sum of both leaves'
    rows: O1 and O2 agree on every bit but ``sl``, and at most one of them has it.
    """
    for G in range(g_lo, g_hi):
        l1 = g_leaf[G]
        l2 = g_leaf2[G]
        d = l_d[l1]
        if l2 < 0:
            if l_tier[l1] <= 1:
                _fill_leaf_table(
                    tab, l_tab_off[l1], l_tier[l1], d, l_path_off[l1], l_value[l1], lp_z, lp_omz,
                    wtab,
                )  # fmt: skip
            continue
        size = np.int64(1) << d
        t1 = np.empty(size * d)
        t2 = np.empty(size * d)
        _fill_leaf_table(t1, 0, 0, d, l_path_off[l1], l_value[l1], lp_z, lp_omz, wtab)
        _fill_leaf_table(t2, 0, 0, d, l_path_off[l2], l_value[l2], lp_z, lp_omz, wtab)
        sl = g_slot[G]
        bs = np.int64(1) << sl
        off = g_tab_off[G]
        for o1 in range(size):
            for b2 in range(2):
                idx = off + (o1 + (b2 << d)) * d
                if b2 == 1 and (o1 & bs) != 0:  # impossible state
                    for k in range(d):
                        tab[idx + k] = 0.0
                    continue
                o2 = (o1 & ~bs) | (b2 << sl)
                for k in range(d):
                    tab[idx + k] = t1[o1 * d + k] + t2[o2 * d + k]


@_njit(error_model="numpy")
def _leaf_on_the_fly(Ot, s, col0, O, d, po, v, lp_feat, lp_z, lp_omz, wtab, c, q):
    """Exact contribution of one leaf for one row without a table: O(d^2)."""
    full = (np.int64(1) << d) - 1
    deg = 0
    zp = 1.0
    c[0] = 1.0
    for k in range(d):
        z = lp_z[po + k]
        if (O >> k) & 1:
            c[deg + 1] = c[deg]
            for j in range(deg, 0, -1):
                c[j] = z * c[j] + c[j - 1]
            c[0] = z * c[0]
            deg += 1
        else:
            zp *= z
    a = 0.0
    if O != full:
        acc = 0.0
        for j in range(deg + 1):
            acc += wtab[d, j] * c[j]
        a = v * zp * acc
    for k in range(d):
        f = col0 + lp_feat[po + k]
        if (O >> k) & 1:
            z = lp_z[po + k]
            # divide c by (z + t), backwards (stable: errors are damped by z <= 1)
            q[deg - 1] = c[deg]
            for j in range(deg - 1, 0, -1):
                q[j - 1] = c[j] - z * q[j]
            acc = 0.0
            for j in range(deg):
                acc += wtab[d, j] * q[j]
            Ot[f, s] += v * zp * lp_omz[po + k] * acc
        else:
            Ot[f, s] -= a


@_njit(nogil=True, error_model="numpy")
def _feature_major(X, s0, s1, kzero, zero_tiny):
    """Rows s0..s1 of X as a feature-major block (the kernels' inner loops then run over rows,
    SIMD); with ``zero_tiny``, values with ``|x| <= kzero`` become 0.0 (LightGBM's reader)."""
    F = X.shape[1]
    Xt = np.empty((F, s1 - s0))
    for s in range(s1 - s0):
        for f in range(F):
            x = np.float64(X[s0 + s, f])
            Xt[f, s] = 0.0 if zero_tiny and abs(x) <= kzero else x
    return Xt


@_njit(nogil=True, error_model="numpy")
def _or_goes_left(Xt, B, g, n_feat, n_thr, n_nan_left, n_zero_left, n_cat_off, n_cat_len,
                  cat_bits, kzero, out, j):
    """Bit j of ``out[s]`` set when row s of the feature-major block goes left at node g:
    LightGBM's numerical decision (NaN and ``|x| <= kzero`` go the side the split sends them,
    the rest left when ``x <= thr``; branch-free, so the loop over rows vectorises) or its
    categorical one."""
    xr = Xt[n_feat[g]]
    co = n_cat_off[g]
    if co < 0:
        thr = n_thr[g]
        nan_l = n_nan_left[g] != 0
        zero_l = n_zero_left[g] != 0
        for s in range(B):
            x = xr[s]
            isn = np.isnan(x)
            isz = abs(x) <= kzero
            gl = ((x <= thr) & (not isz)) | (isn & nan_l) | (isz & zero_l)
            out[s] |= np.int64(gl) << j
    else:
        nw = n_cat_len[g]
        for s in range(B):
            out[s] |= np.int64(_category_goes_left(xr[s], cat_bits, co, nw)) << j


@_njit(nogil=True, error_model="numpy")
def _category_goes_left(x, cat_bits, co, nw):
    """LightGBM's categorical decision: NaN and negative values go right; others are truncated to
    int and go left when in the split's bitset (``nw`` 32-bit words from ``cat_bits[co]``)."""
    if x > -1.0 and x < 2147483648.0:  # False for NaN
        iv = np.int64(x)
        wi = iv >> 5
        if wi < nw:
            return ((cat_bits[co + wi] >> (iv & 31)) & 1) != 0
    return False


@_njit(nogil=True, error_model="numpy")
def _add_leaves(
    T, n_cols, fail, ni, t, col0, t_leaf_off, t_grp_off, t_n_grp,
    l_d, l_path_off, l_tier, l_tab_off, l_value, lp_feat, lp_z, lp_omz,
    g_leaf, g_leaf2, g_slot, g_tab_off, tab, wtab, Ob, vzb, ab, c, q,
):  # fmt: skip
    """Tree t's leaves into columns [0, n_cols) of ``T`` (feature-major), from the failed bits of
    each column at every leaf (``fail`` rows ni + leaf): per leaf (or pair of sibling leaves) the
    satisfied set O, then d table look-ups per column. A column is a row of X, or one pattern of
    decisions shared by many rows (see ``_shap_kernel``)."""
    lo = t_leaf_off[t]
    go = t_grp_off[t]
    for gi in range(t_n_grp[t]):
        G = go + gi
        L = g_leaf[G]
        d = l_d[L]
        po = l_path_off[L]
        fm = (np.int64(1) << d) - 1
        flr = fail[ni + L - lo]
        L2 = g_leaf2[G]
        if L2 >= 0:
            to = g_tab_off[G]
            fl2 = fail[ni + L2 - lo]
            sl = g_slot[G]
            for s in range(n_cols):
                b2 = ((fm & ~fl2[s]) >> sl) & 1
                Ob[s] = to + ((fm & ~flr[s]) + (b2 << d)) * d
            for k in range(d):
                orow = T[col0 + lp_feat[po + k]]
                for s in range(n_cols):
                    orow[s] += tab[Ob[s] + k]
            continue
        to = l_tab_off[L]
        tier = l_tier[L]
        if tier == 0:
            for s in range(n_cols):
                Ob[s] = to + (fm & ~flr[s]) * d
            for k in range(d):
                orow = T[col0 + lp_feat[po + k]]
                for s in range(n_cols):
                    orow[s] += tab[Ob[s] + k]
        elif tier == 1:
            for s in range(n_cols):
                O = fm & ~flr[s]
                Ob[s] = O
                vz = tab[to + 2 * O]
                vzb[s] = vz
                ab[s] = vz * tab[to + 2 * O + 1]
            for k in range(d):
                orow = T[col0 + lp_feat[po + k]]
                omz = lp_omz[po + k]
                bk = np.int64(1) << k
                for s in range(n_cols):
                    O = Ob[s]
                    pos = vzb[s] * omz * tab[to + 2 * (O ^ bk) + 1]
                    orow[s] += pos if (O & bk) else -ab[s]
        else:
            v = l_value[L]
            for s in range(n_cols):
                _leaf_on_the_fly(
                    T, s, col0, fm & ~flr[s], d, po, v, lp_feat, lp_z, lp_omz, wtab, c, q
                )


@_njit(nogil=True, error_model="numpy")
def _shap_kernel(
    X, out, b_lo, b_hi, F1, K, t_lo, t_hi,
    t_node_off, t_n_int, t_leaf_off, t_n_leaves, t_grp_off, t_n_grp, t_feat_off, t_n_feat, t_feat,
    n_feat, n_thr, n_nan_left, n_zero_left, n_cat_off, n_cat_len, n_left, n_right, n_slot,
    l_d, l_path_off, l_tier, l_tab_off, l_value, lp_feat, lp_z, lp_omz,
    g_leaf, g_leaf2, g_slot, g_tab_off, tab, cat_bits, wtab,
    max_int, max_leaves, max_d, block, kzero, pattern_share, max_pattern_nodes, hint,
):  # fmt: skip
    """Rows of blocks [b_lo, b_hi) (``block`` rows each). Releases the GIL: callers run several
    of these in threads on disjoint blocks.

    A row's SHAP values in a tree depend only on which way it goes at every split (its failed
    bits at each leaf follow from them), and rows of integer-valued, one-hot and capped features
    share few such patterns: ~90 in a block of 4,096 rows for tidu's pooled model. So per block
    and tree (of at most ``max_pattern_nodes`` internal nodes) the kernel

    1. evaluates every split for all rows into one integer per row (bit j: goes left at node j);
    2. numbers the distinct integers (open addressing), giving up once there are more than
       ``pattern_share`` of the block's rows;
    3. pushes the failed bits down the tree once per pattern, and per leaf (or pair of sibling
       leaves) makes d table look-ups per pattern (``_add_leaves``) into a pattern-major buffer;
    4. adds each pattern's values to its rows, for the tree's own features only.

    Otherwise (more patterns, or larger trees) steps 3–4 run once per row: every split is
    evaluated with its failed bits pushed down to both subtrees, and a row's values are added
    from its own column. Either way a tree's values are summed over its leaves before they are
    added to the row's running total, by the same additions in the same order: a row's result
    depends neither on the rows it shares a block with nor on the way taken. ``hint[t]`` (shared
    by the threads; a stale value costs time, never changes a result): 0 when tree t's patterns
    were too many in the last block looked at, then steps 1–2 are tried again only every 8th
    block."""
    n = X.shape[0]
    n_out = out.shape[1]
    hbits = 1
    while (np.int64(1) << hbits) < 2 * block:
        hbits += 1
    H = np.int64(1) << hbits
    hmask = H - 1
    shift = np.uint64(64 - hbits)
    mult = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing
    hkey = np.full(H, -1, np.int64)  # patterns are >= 0 (bits 0..max_pattern_nodes-1 < 63)
    hval = np.zeros(H, np.int64)
    for b in range(b_lo, b_hi):
        s0 = b * block
        s1 = min(n, s0 + block)
        B = s1 - s0
        Xt = _feature_major(X, s0, s1, kzero, False)
        Ot = np.zeros((n_out, B))
        P = np.zeros((n_out, B))  # a tree's values per column; rows of its features zeroed after
        fail = np.zeros((max_int + max_leaves, B), np.int64)  # rows: internal nodes, then leaves
        code = np.empty(B, np.int64)
        left = np.empty(B, np.int64)
        rep = np.empty(B, np.int64)
        row_u = np.empty(B, np.int64)
        hpos = np.empty(B, np.int64)
        Ob = np.empty(B, np.int64)
        vzb = np.empty(B)
        ab = np.empty(B)
        c = np.zeros(max_d + 2)
        q = np.zeros(max_d + 2)
        most = pattern_share * B
        for t in range(t_lo, t_hi):
            nl = t_n_leaves[t]
            if nl <= 1:
                continue
            col0 = (t % K) * F1
            no = t_node_off[t]
            ni = t_n_int[t]
            shared = False
            nu = 0
            if ni <= max_pattern_nodes and (hint[t] != 0 or b % 8 == 0):
                # 1) every split once, as one bit per node of the row's pattern
                for s in range(B):
                    code[s] = 0
                for j in range(ni):
                    _or_goes_left(Xt, B, no + j, n_feat, n_thr, n_nan_left, n_zero_left,
                                  n_cat_off, n_cat_len, cat_bits, kzero, code, j)
                # 2) the distinct patterns, numbered in order of first appearance
                for s in range(B):
                    if nu > most:
                        break
                    key = code[s]
                    h = np.int64((np.uint64(key) * mult) >> shift)
                    while True:
                        k = hkey[h]
                        if k == key:
                            row_u[s] = hval[h]
                            break
                        if k < 0:
                            hkey[h] = key
                            hval[h] = nu
                            hpos[nu] = h
                            rep[nu] = key
                            row_u[s] = nu
                            nu += 1
                            break
                        h = (h + 1) & hmask
                for u in range(nu):
                    hkey[hpos[u]] = -1
                shared = nu <= most
                hint[t] = 1 if shared else 0
            fr0 = fail[0]
            if shared:
                # 3) the failed bits of each pattern at every node and leaf
                n_cols = nu
                for u in range(nu):
                    fr0[u] = 0
                for j in range(ni):
                    g = no + j
                    bit = np.int64(1) << n_slot[g]
                    fr = fail[j]
                    fl = fail[n_left[g]]
                    frr = fail[n_right[g]]
                    for u in range(nu):
                        gb = (rep[u] >> j) & 1
                        m = fr[u]
                        fl[u] = m | ((1 - gb) * bit)
                        frr[u] = m | (gb * bit)
            else:
                # 3) every split once per row; push the bit of a failed split down to both subtrees
                n_cols = B
                for s in range(B):
                    fr0[s] = 0
                for j in range(ni):
                    g = no + j
                    for s in range(B):
                        left[s] = 0
                    _or_goes_left(Xt, B, g, n_feat, n_thr, n_nan_left, n_zero_left,
                                  n_cat_off, n_cat_len, cat_bits, kzero, left, 0)
                    bit = np.int64(1) << n_slot[g]
                    fr = fail[j]
                    fl = fail[n_left[g]]
                    frr = fail[n_right[g]]
                    for s in range(B):
                        gb = left[s]
                        m = fr[s]
                        fl[s] = m | ((1 - gb) * bit)
                        frr[s] = m | (gb * bit)
            _add_leaves(
                P, n_cols, fail, ni, t, col0, t_leaf_off, t_grp_off, t_n_grp,
                l_d, l_path_off, l_tier, l_tab_off, l_value, lp_feat, lp_z, lp_omz,
                g_leaf, g_leaf2, g_slot, g_tab_off, tab, wtab, Ob, vzb, ab, c, q,
            )  # fmt: skip
            # 4) each row gets its pattern's (or its own) values, the tree's features only
            fo = t_feat_off[t]
            for k in range(t_n_feat[t]):
                f = col0 + t_feat[fo + k]
                prow = P[f]
                orow = Ot[f]
                if shared:
                    for s in range(B):
                        orow[s] += prow[row_u[s]]
                else:
                    for s in range(B):
                        orow[s] += prow[s]
                for u in range(n_cols):
                    prow[u] = 0.0
        for s in range(B):
            for f in range(n_out):
                out[s0 + s, f] = Ot[f, s]


@_njit(nogil=True, error_model="numpy")
def _predict_kernel(
    X, out, b_lo, b_hi, K, t_lo, t_hi, t_node_off, t_n_int,
    n_feat, n_thr, n_nan_left, n_zero_left, n_cat_off, n_cat_len, n_rmask, t_slot_value,
    cat_bits, all_leaves, debruijn, shift, block, kzero,
):  # fmt: skip
    """Raw scores of the rows of blocks [b_lo, b_hi) (``block`` rows each) into ``out`` (n, K).
    Releases the GIL: callers run several of these in threads on disjoint blocks.

    Per tree, ``reach[s]`` is the set of leaves (bit = left-to-right position) row ``s`` may
    still reach; a row going right at a split loses the split's left subtree (``n_rmask`` is the
    complement of its leaves). The lowest remaining bit is the row's leaf; ``t_slot_value``
    (trees x w) holds each tree's leaf values at the de Bruijn slots of their positions. The
    sets have the integer type of ``n_rmask`` and ``all_leaves`` (uint32 or uint64: w bits);
    ``debruijn`` and ``shift`` are ``DEBRUIJN[w]`` as uint64.

    Values with ``|x| <= kzero`` are set to 0.0 in the block copy (LightGBM's reader drops
    them), after which a numerical split whose zero goes where ``0.0 <= threshold`` sends it
    (missing type NaN or None, or Zero with that default side) needs one comparison per row:
    ``x <= thr`` (NaN goes right) or ``not x > thr`` (NaN goes left). Only zero-as-missing
    splits with the other default side test for 0 and NaN.
    """
    n = X.shape[0]
    for b in range(b_lo, b_hi):
        s0 = b * block
        s1 = min(n, s0 + block)
        B = s1 - s0
        Xt = _feature_major(X, s0, s1, kzero, True)
        acc = np.zeros((K, B))  # LightGBM's PredictRaw also starts every output at 0.0
        reach = np.empty(B, n_rmask.dtype)
        for t in range(t_lo, t_hi):
            a = acc[t % K]
            no = t_node_off[t]
            for s in range(B):
                reach[s] = all_leaves
            for j in range(t_n_int[t]):
                g = no + j
                xr = Xt[n_feat[g]]
                rm = n_rmask[g]
                co = n_cat_off[g]
                thr = n_thr[g]
                nan_l = n_nan_left[g] != 0
                zero_l = n_zero_left[g] != 0
                if co < 0 and zero_l == (0.0 <= thr):
                    if nan_l:
                        for s in range(B):
                            reach[s] &= rm if xr[s] > thr else all_leaves
                    else:
                        for s in range(B):
                            reach[s] &= all_leaves if xr[s] <= thr else rm
                elif co < 0:
                    for s in range(B):
                        x = xr[s]
                        if x == 0.0 or np.isnan(x):
                            gl = zero_l
                        else:
                            gl = x <= thr
                        reach[s] &= all_leaves if gl else rm
                else:
                    nw = n_cat_len[g]
                    for s in range(B):
                        if not _category_goes_left(xr[s], cat_bits, co, nw):
                            reach[s] &= rm
            # one addition per row and tree, in tree order (a single-leaf tree: position 0)
            tv = t_slot_value[t]
            for s in range(B):
                r = np.uint64(reach[s])
                low = r & (np.uint64(0) - r)
                a[s] += tv[np.int64(((low * debruijn) & all_leaves) >> shift)]
        for s in range(B):
            for k in range(K):
                out[s0 + s, k] = acc[k, s]


# ---------------------------------------------------------------------------------------------
# model parsing
# ---------------------------------------------------------------------------------------------


class _Unsupported(Exception):
    pass


@dataclass
class TreeShapModel:
    """A LightGBM model flattened into numpy arrays plus the per-leaf SHAP tables."""

    n_features: int
    n_classes: int  # trees per iteration (K)
    n_trees: int
    fallback: str | None = None  # why tree_shap must use pred_contrib (None: it need not)
    predict_fallback: str | None = None  # why tree_predict must use LightGBM's predict
    pandas_categorical: bool = False
    arrays: dict = field(default_factory=dict, repr=False)
    expected: np.ndarray | None = field(default=None, repr=False)  # per tree
    max_int: int = 0
    max_leaves: int = 0
    max_d: int = 0
    stats: dict = field(default_factory=dict)

    @property
    def n_iterations(self) -> int:
        return self.n_trees // max(self.n_classes, 1)

    def iteration_range(self, num_iteration: int | None, start_iteration: int) -> tuple[int, int]:
        """Trees [lo, hi) that LightGBM's predictor uses (``GBDT::InitPredict`` semantics)."""
        total = self.n_iterations
        start = min(max(int(start_iteration), 0), total)
        if num_iteration is not None and num_iteration > 0:
            count = min(int(num_iteration), total - start)
        else:
            count = total - start
        return start * self.n_classes, (start + count) * self.n_classes

    def shap_values(
        self,
        X: np.ndarray,
        num_iteration: int | None = -1,
        start_iteration: int = 0,
        block_rows: int | None = None,
        n_jobs: int | None = None,
        pattern_share: float = DEFAULT_PATTERN_SHARE,
    ) -> np.ndarray:
        """SHAP matrix for a 2-D float array (no fallback handling; see :func:`tree_shap`).

        ``num_iteration`` here is taken literally (``None``/``<= 0``: all iterations).
        ``pattern_share``: see ``DEFAULT_PATTERN_SHARE`` (0 computes every row through every
        leaf, 1 always shares the patterns; both give the same values to ~1e-15).
        """
        if self.fallback is not None:
            raise RuntimeError(f"model not supported by the fast path: {self.fallback}")
        X = self._rows(np.ascontiguousarray(X, dtype=np.float64))
        n = X.shape[0]
        F1 = self.n_features + 1
        K = self.n_classes
        lo, hi = self.iteration_range(num_iteration, start_iteration)
        out = np.zeros((n, K * F1), dtype=np.float64)
        if n == 0:
            return out
        a = self.arrays
        if hi > lo and a["l_d"].size:
            threads = _threads(n_jobs)
            if block_rows is None:
                # >= 4 blocks per thread (load balance on a shared machine), <= 4096 rows each
                block_rows = min(DEFAULT_BLOCK_ROWS, max(16, -(-n // (4 * threads))))
            block_rows = int(block_rows)
            n_blocks = -(-n // block_rows)
            hint = np.ones(max(self.n_trees, 1), np.int8)  # see _shap_kernel
            args = (
                F1, K, lo, hi,
                a["t_node_off"], a["t_n_int"], a["t_leaf_off"], a["t_n_leaves"],
                a["t_grp_off"], a["t_n_grp"], a["t_feat_off"], a["t_n_feat"], a["t_feat"],
                a["n_feat"], a["n_thr"], a["n_nan_left"], a["n_zero_left"], a["n_cat_off"],
                a["n_cat_len"], a["n_left"], a["n_right"], a["n_slot"],
                a["l_d"], a["l_path_off"], a["l_tier"], a["l_tab_off"], a["l_value"],
                a["lp_feat"], a["lp_z"], a["lp_omz"],
                a["g_leaf"], a["g_leaf2"], a["g_slot"], a["g_tab_off"],
                a["tab"], a["cat_bits"], a["wtab"],
                self.max_int, self.max_leaves, self.max_d, block_rows, K_ZERO_THRESHOLD,
                float(pattern_share), MAX_PATTERN_NODES, hint,
            )  # fmt: skip
            _run_blocks(_shap_kernel, X, out, n_blocks, 1, threads, args)  # blocks one at a time
        # bias column(s): sum of the trees' expected values, per class
        for k in range(K):
            out[:, k * F1 + self.n_features] += self.expected[lo + k : hi : K].sum()
        return out

    def _rows(self, X: np.ndarray) -> np.ndarray:
        """X as a 2-D array of rows (a 1-D array is one row), checked against the model's features."""
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}")
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"The number of features in data ({X.shape[1]}) is not the same as it was in "
                f"training data ({self.n_features})."
            )
        return X

    def raw_scores(
        self,
        X: np.ndarray,
        num_iteration: int | None = -1,
        start_iteration: int = 0,
        block_rows: int | None = None,
        n_jobs: int | None = None,
    ) -> np.ndarray:
        """Raw scores of a 2-D array, bit for bit LightGBM's (no fallback handling; see
        :func:`tree_predict`). ``(n,)``, multiclass ``(n, K)``.

        ``num_iteration`` here is taken literally (``None``/``<= 0``: all iterations). As in
        LightGBM's predict, arrays neither float32 nor float64 are read as float32 (int64
        values above 2^24 round); float32 rows are not copied to float64 (the kernel reads
        them exactly).
        """
        if self.predict_fallback is not None:
            raise RuntimeError(f"model not supported by the fast path: {self.predict_fallback}")
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32)
        X = self._rows(np.ascontiguousarray(X))
        n = X.shape[0]
        K = self.n_classes
        lo, hi = self.iteration_range(num_iteration, start_iteration)
        out = np.zeros((n, K), dtype=np.float64)
        if n and hi > lo:
            a = self.arrays
            threads = _threads(n_jobs)
            block_rows = int(block_rows or DEFAULT_PREDICT_BLOCK_ROWS)
            n_blocks = -(-n // block_rows)
            # >= 4 work items per thread (load balance on a shared machine)
            per_item = max(1, min(PREDICT_BLOCKS_PER_ITEM, n_blocks // (4 * threads)))
            itype = a["n_rmask"].dtype.type
            all_leaves = itype(np.iinfo(itype).max)
            debruijn, shift = DEBRUIJN[np.iinfo(itype).bits]
            args = (
                K, lo, hi, a["t_node_off"], a["t_n_int"],
                a["n_feat"], a["n_thr"], a["n_nan_left"], a["n_zero_left"], a["n_cat_off"],
                a["n_cat_len"], a["n_rmask"], a["t_slot_value"], a["cat_bits"],
                all_leaves, np.uint64(debruijn), np.uint64(shift), block_rows, K_ZERO_THRESHOLD,
            )  # fmt: skip
            _run_blocks(_predict_kernel, X, out, n_blocks, per_item, threads, args)
        return out[:, 0] if K == 1 else out


def _run_blocks(kernel, X, out, n_blocks: int, per_item: int, threads: int, args: tuple) -> None:
    """``kernel(X, out, b_lo, b_hi, *args)`` over the row blocks [0, n_blocks), ``per_item``
    blocks per work item, on up to ``threads`` threads (the kernels release the GIL and write
    disjoint rows of ``out``)."""
    starts = range(0, n_blocks, per_item)
    threads = min(threads, len(starts))
    if threads <= 1:
        kernel(X, out, 0, n_blocks, *args)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        jobs = [pool.submit(kernel, X, out, b, min(b + per_item, n_blocks), *args) for b in starts]
        for job in jobs:
            job.result()


def _threads(n_jobs: int | None) -> int:
    """Threads for a kernel: n_jobs when positive, else every core this process may use."""
    return _default_threads() if not n_jobs or n_jobs <= 0 else int(n_jobs)


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _parse_tree(tree: dict, out: dict, cat_words: list) -> None:
    """Append one dumped tree (``dump_model()["tree_info"][i]``) to the flat lists in ``out``.

    Internal nodes get local ids 0..n_int-1 with every child's id larger than its parent's; a
    child reference is its row in the kernel's "failed bits" buffer: the child's id if internal,
    ``n_int + leaf_index`` if a leaf. ``slot`` of a node is the position of its feature among the
    distinct features of the root path (first occurrence), identical for all leaves below it.
    For tree_predict, ``l_pos`` is a leaf's position counted from the left and ``n_rmask`` the
    leaves (bit = position) not below a node's left child (0 for trees of more than 64 leaves).
    """
    root = tree["tree_structure"]
    out["t_node_off"].append(len(out["n_feat"]))
    out["t_leaf_off"].append(len(out["l_d"]))
    if "leaf_index" in root or "split_feature" not in root:  # a constant (single-leaf) tree
        value = float(root.get("leaf_value", 0.0))
        out["t_n_leaves"].append(1)
        out["t_n_int"].append(0)
        out["expected"].append(value)
        out["l_d"].append(0)
        out["l_path_off"].append(len(out["lp_feat"]))
        out["l_value"].append(value)
        out["l_pos"].append(0)
        return

    nl = int(tree["num_leaves"])
    n_int = nl - 1
    feat = [0] * n_int
    thr = [0.0] * n_int
    nan_left = [0] * n_int
    zero_left = [0] * n_int
    cat_off = [-1] * n_int
    cat_len = [0] * n_int
    left = [0] * n_int
    right = [0] * n_int
    slot = [0] * n_int
    leaf_value = [0.0] * nl
    leaf_paths: list = [None] * nl
    leaf_pos = [0] * nl
    n_seen = 0  # the stack visits leaves from left to right
    root_count = float(root["internal_count"])
    expected = 0.0
    next_id = 0
    cherries = []

    stack = [(root, 0, (), ())]  # (node, id or ~leaf_index, distinct path features, merged z's)
    while stack:
        node, nid, pfeat, pz = stack.pop()
        if nid < 0:
            li = ~nid
            v = float(node["leaf_value"])
            leaf_value[li] = v
            leaf_paths[li] = (pfeat, pz)
            leaf_pos[li] = n_seen
            n_seen += 1
            expected += float(node["leaf_count"]) / root_count * v
            continue
        f = int(node["split_feature"])
        feat[nid] = f
        dtype = node["decision_type"]
        if dtype == "==":  # categorical: categories listed go left
            cats = [int(c) for c in str(node["threshold"]).split("||") if c.strip() != ""]
            cats = [c for c in cats if c >= 0]
            nwords = (max(cats) // 32 + 1) if cats else 0
            words = [0] * nwords
            for c in cats:
                words[c >> 5] |= 1 << (c & 31)
            cat_off[nid] = len(cat_words)
            cat_len[nid] = nwords
            cat_words.extend(words)
        elif dtype == "<=":
            t = float(node["threshold"])
            thr[nid] = t
            dl = int(bool(node["default_left"]))
            mt = node["missing_type"]
            zero_goes_left = int(0.0 <= t)
            if mt == "NaN":  # NaN -> default side; 0 compared normally
                nan_left[nid], zero_left[nid] = dl, zero_goes_left
            elif mt == "Zero":  # NaN is read as 0, 0 -> default side
                nan_left[nid], zero_left[nid] = dl, dl
            elif mt == "None":  # NaN is read as 0
                nan_left[nid], zero_left[nid] = zero_goes_left, zero_goes_left
            else:
                raise _Unsupported(f"missing_type {mt!r}")
        else:
            raise _Unsupported(f"decision_type {dtype!r}")

        k = pfeat.index(f) if f in pfeat else len(pfeat)
        slot[nid] = k
        count = float(node["internal_count"])
        kids = []
        for ch in (node["left_child"], node["right_child"]):
            if "leaf_index" in ch:
                ref = ~int(ch["leaf_index"])
                ccount = float(ch["leaf_count"])
            else:
                next_id += 1
                ref = next_id
                ccount = float(ch["internal_count"])
            frac = ccount / count  # LightGBM: data_count(child) / data_count(node)
            if k < len(pfeat):  # repeated feature: merge into its first occurrence
                kids.append((ch, ref, pfeat, pz[:k] + (frac * pz[k],) + pz[k + 1 :]))
            else:
                kids.append((ch, ref, pfeat + (f,), pz + (frac,)))
        left[nid] = kids[0][1] if kids[0][1] >= 0 else n_int + ~kids[0][1]
        right[nid] = kids[1][1] if kids[1][1] >= 0 else n_int + ~kids[1][1]
        if kids[0][1] < 0 and kids[1][1] < 0:  # two sibling leaves ("cherry")
            cherries.append((~kids[0][1], ~kids[1][1], k))
        stack.append(kids[1])
        stack.append(kids[0])

    if next_id != n_int - 1 or any(p is None for p in leaf_paths):
        raise _Unsupported("inconsistent tree structure in the model dump")

    # the leaves below each node (bit = position), children (larger ids) before parents
    below = [0] * n_int + [1 << p for p in leaf_pos]  # indexed like left/right
    for j in range(n_int - 1, -1, -1):
        below[j] = below[left[j]] | below[right[j]]
    full = (1 << MAX_PREDICT_LEAVES) - 1
    rmask = [full ^ below[left[j]] if nl <= MAX_PREDICT_LEAVES else 0 for j in range(n_int)]
    leaf0 = out["t_leaf_off"][-1]
    out["cherries"].extend((leaf0 + a, leaf0 + b, k) for a, b, k in cherries)
    out["t_n_leaves"].append(nl)
    out["t_n_int"].append(n_int)
    out["expected"].append(expected)
    out["n_feat"].extend(feat)
    out["n_thr"].extend(thr)
    out["n_nan_left"].extend(nan_left)
    out["n_zero_left"].extend(zero_left)
    out["n_cat_off"].extend(cat_off)
    out["n_cat_len"].extend(cat_len)
    out["n_left"].extend(left)
    out["n_right"].extend(right)
    out["n_slot"].extend(slot)
    out["n_rmask"].extend(rmask)
    out["l_pos"].extend(leaf_pos)
    for li in range(nl):
        pfeat, pz = leaf_paths[li]
        out["l_d"].append(len(pfeat))
        out["l_path_off"].append(len(out["lp_feat"]))
        out["l_value"].append(leaf_value[li])
        out["lp_feat"].extend(pfeat)
        out["lp_z"].extend(pz)


def _is_linear(trees) -> bool:
    """Linear-tree leaves carry ``leaf_coeff``/``leaf_const`` in the dump (first leaf suffices)."""
    for t in trees:
        nd = t.get("tree_structure", {})
        while "leaf_index" not in nd and "left_child" in nd:
            nd = nd["left_child"]
        if "leaf_coeff" in nd or "leaf_const" in nd:
            return True
    return False


def _assign_tiers(l_d: np.ndarray, full_depth: int, compact_depth: int, budget: int):
    """Pick each leaf's method (full table / compact table / on the fly) within a memory budget."""
    d = np.minimum(l_d, 62).astype(np.int64)
    full_size = d * (np.int64(1) << d)
    compact_size = 2 * (np.int64(1) << d)
    while True:
        tier = np.full(d.shape, TIER_ON_THE_FLY, np.int64)
        tier[d <= compact_depth] = TIER_COMPACT
        tier[d <= full_depth] = TIER_FULL
        size = np.where(
            tier == TIER_FULL, full_size, np.where(tier == TIER_COMPACT, compact_size, 0)
        )
        if int(size.sum()) * 8 <= budget or (full_depth < 0 and compact_depth < 0):
            break
        if full_depth >= compact_depth - 2 and full_depth >= 0:
            full_depth -= 1
        else:
            compact_depth -= 1
    return tier, size, full_depth, compact_depth


def _exclusive_cumsum(x: np.ndarray) -> np.ndarray:
    out = np.zeros(x.shape, np.int64)
    if x.size:
        out[1:] = np.cumsum(x)[:-1]
    return out


def compile_model(
    booster,
    full_table_depth: int = DEFAULT_FULL_TABLE_DEPTH,
    compact_table_depth: int = DEFAULT_COMPACT_TABLE_DEPTH,
    table_budget_bytes: int = DEFAULT_TABLE_BUDGET_BYTES,
    merge_siblings: bool = True,
    shap_tables: bool = True,
) -> TreeShapModel:
    """Parse ``booster.dump_model()`` once into flat arrays and build the per-leaf tables.

    Leaves with ``d`` distinct path features get a full table (``d * 2^d`` doubles) when
    ``d <= full_table_depth``, a compact one (``2 * 2^d``) when ``d <= compact_table_depth``,
    otherwise they are computed on the fly; depths are lowered until the tables fit the budget.
    ``merge_siblings``: two sibling leaves with full tables share one pair table (half the
    look-ups for them; same memory). ``shap_tables=False``: parse only (enough for
    :meth:`TreeShapModel.raw_scores`; ``shap_values`` then refuses).
    """
    dump = booster.dump_model(num_iteration=-1)
    n_features = int(dump["max_feature_idx"]) + 1
    K = int(dump.get("num_tree_per_iteration", 1) or 1)
    trees = dump["tree_info"]
    model = TreeShapModel(
        n_features=n_features,
        n_classes=K,
        n_trees=len(trees),
        pandas_categorical=bool(dump.get("pandas_categorical")),
    )
    if dump.get("average_output"):
        model.fallback = model.predict_fallback = "average_output (random forest) model"
        return model
    if _is_linear(trees):  # LightGBM's own pred_contrib raises for these
        reason = "linear_tree model (leaves hold linear models)"
        model.fallback = model.predict_fallback = reason
        return model

    keys = [
        "t_node_off", "t_n_int", "t_leaf_off", "t_n_leaves", "expected", "n_feat", "n_thr",
        "n_nan_left", "n_zero_left", "n_cat_off", "n_cat_len", "n_left", "n_right", "n_slot",
        "n_rmask", "l_d", "l_path_off", "l_value", "l_pos", "lp_feat", "lp_z", "cherries",
    ]  # fmt: skip
    lists: dict = {k: [] for k in keys}
    cat_words: list = []
    try:
        for tree in trees:
            _parse_tree(tree, lists, cat_words)
    except (_Unsupported, KeyError, ValueError) as exc:
        model.fallback = model.predict_fallback = f"cannot parse model dump: {exc!r}"
        return model

    def arr(key, dtype):
        x = np.asarray(lists[key], dtype=dtype)
        return x if x.size else np.zeros(1, dtype)  # numba wants non-empty typed buffers

    l_d = np.asarray(lists["l_d"], dtype=np.int64)
    max_d = int(l_d.max()) if l_d.size else 0
    a = {
        "t_node_off": arr("t_node_off", np.int64),
        "t_n_int": arr("t_n_int", np.int64),
        "t_leaf_off": arr("t_leaf_off", np.int64),
        "t_n_leaves": arr("t_n_leaves", np.int64),
        "n_feat": arr("n_feat", np.int64),
        "n_thr": arr("n_thr", np.float64),
        "n_nan_left": arr("n_nan_left", np.uint8),
        "n_zero_left": arr("n_zero_left", np.uint8),
        "n_cat_off": arr("n_cat_off", np.int64),
        "n_cat_len": arr("n_cat_len", np.int64),
        "n_left": arr("n_left", np.int64),
        "n_right": arr("n_right", np.int64),
        "n_slot": arr("n_slot", np.int64),
        "l_d": l_d,
        "l_path_off": np.asarray(lists["l_path_off"], np.int64),
        "l_value": np.asarray(lists["l_value"], np.float64),
        "lp_feat": arr("lp_feat", np.int64),
        "lp_z": arr("lp_z", np.float64),
        "cat_bits": np.asarray(cat_words if cat_words else [0], np.int64),
    }
    # each tree's distinct split features (the SHAP columns it can change)
    t_feats = [np.unique(a["n_feat"][o:o + k]) if k else np.zeros(0, np.int64)
               for o, k in zip(lists["t_node_off"], lists["t_n_int"], strict=True)]
    a["t_n_feat"] = np.asarray([len(f) for f in t_feats] or [0], np.int64)
    a["t_feat_off"] = _exclusive_cumsum(a["t_n_feat"])
    a["t_feat"] = np.concatenate([*t_feats, np.zeros(1, np.int64)]).astype(np.int64)
    model.arrays = a
    model.expected = np.asarray(lists["expected"], np.float64)
    model.max_int = int(a["t_n_int"].max()) if trees else 0
    model.max_leaves = int(a["t_n_leaves"].max()) if trees else 0
    model.max_d = max_d
    model.stats = {
        "trees": len(trees),
        "leaves": int(l_d.size),
        "max_path_features": max_d,
        "mean_path_features": round(float(l_d.mean()), 3) if l_d.size else 0.0,
        "categorical_splits": int(np.sum(a["n_cat_off"][: len(lists["n_cat_off"])] >= 0)),
    }
    # tree_predict: w-bit leaf sets, each tree's leaf values at the de Bruijn slots of their
    # positions
    if model.max_leaves > MAX_PREDICT_LEAVES:
        model.predict_fallback = (
            f"a tree has {model.max_leaves} leaves (> {MAX_PREDICT_LEAVES}; num_leaves too large)"
        )
    else:
        w = 32 if model.max_leaves <= 32 else 64
        rmask = arr("n_rmask", np.uint64) & np.uint64((1 << w) - 1)
        a["n_rmask"] = rmask.astype(np.uint32 if w == 32 else np.uint64)
        leaf_tree = np.repeat(np.arange(len(trees), dtype=np.int64), a["t_n_leaves"][: len(trees)])
        slot_value = np.zeros((max(len(trees), 1), w), np.float64)
        slot_value[leaf_tree, _debruijn_slots(w)[lists["l_pos"]]] = a["l_value"]
        a["t_slot_value"] = slot_value
    if not shap_tables:
        model.fallback = "compiled without SHAP tables (shap_tables=False)"
        return model

    if max_d > MAX_PATH_FEATURES:
        model.fallback = f"a leaf has {max_d} distinct features on its path (> {MAX_PATH_FEATURES})"
        return model
    tier, size, full_depth, compact_depth = _assign_tiers(
        l_d, int(full_table_depth), int(compact_table_depth), int(table_budget_bytes)
    )
    # sibling leaves that both have full tables are merged into one pair table
    cherries = np.asarray(lists["cherries"], np.int64).reshape(-1, 3)
    if merge_siblings and cherries.size:
        both_full = (tier[cherries[:, 0]] == TIER_FULL) & (tier[cherries[:, 1]] == TIER_FULL)
        pairs = cherries[both_full]
    else:
        pairs = np.zeros((0, 3), np.int64)
    in_pair = np.zeros(l_d.shape, bool)
    in_pair[pairs[:, 0]] = True
    in_pair[pairs[:, 1]] = True
    single_size = np.where(in_pair, 0, size)
    offs = np.where(in_pair, -1, _exclusive_cumsum(single_size))
    pair_size = 2 * size[pairs[:, 0]]
    p_off = int(single_size.sum()) + _exclusive_cumsum(pair_size)
    tab_size = int(single_size.sum() + pair_size.sum())

    a["l_tier"] = tier
    a["l_tab_off"] = offs
    a["lp_omz"] = 1.0 - a["lp_z"]
    a["wtab"] = _shapley_weights(max(max_d, 1))
    # kernel work items per tree: pairs of sibling leaves, then the other leaves
    singles = np.flatnonzero(~in_pair)
    g_leaf = np.concatenate([pairs[:, 0], singles]).astype(np.int64)
    g_leaf2 = np.concatenate([pairs[:, 1], np.full(singles.size, -1)]).astype(np.int64)
    g_slot = np.concatenate([pairs[:, 2], np.zeros(singles.size, np.int64)]).astype(np.int64)
    g_tab_off = np.concatenate([p_off, np.zeros(singles.size, np.int64)]).astype(np.int64)
    g_tree = np.searchsorted(a["t_leaf_off"][: len(trees)], g_leaf, side="right") - 1
    order = np.argsort(g_tree, kind="stable")
    a["g_leaf"], a["g_leaf2"] = g_leaf[order], g_leaf2[order]
    a["g_slot"], a["g_tab_off"] = g_slot[order], g_tab_off[order]
    a["t_n_grp"] = np.bincount(g_tree, minlength=max(len(trees), 1)).astype(np.int64)
    a["t_grp_off"] = _exclusive_cumsum(a["t_n_grp"])
    for k in ("g_leaf", "g_leaf2", "g_slot", "g_tab_off"):
        if a[k].size == 0:
            a[k] = np.zeros(1, np.int64)

    a["tab"] = np.empty(max(tab_size, 1), np.float64)
    n_groups = len(g_leaf)
    if n_groups:
        args = (
            a["g_leaf"], a["g_leaf2"], a["g_slot"], a["g_tab_off"], l_d, a["l_path_off"], tier,
            offs, a["l_value"], a["lp_z"], a["lp_omz"], a["wtab"], a["tab"],
        )  # fmt: skip
        threads = min(_default_threads(), max(1, n_groups // 256))
        bounds = np.linspace(0, n_groups, threads + 1).astype(np.int64)
        if threads == 1:
            _build_tables(0, n_groups, *args)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                jobs = [
                    pool.submit(_build_tables, int(bounds[i]), int(bounds[i + 1]), *args)
                    for i in range(threads)
                ]
                for job in jobs:
                    job.result()

    model.stats.update(
        full_table_depth=full_depth,
        compact_table_depth=compact_depth,
        leaves_full_table=int(np.sum(tier == TIER_FULL)),
        leaves_compact_table=int(np.sum(tier == TIER_COMPACT)),
        leaves_on_the_fly=int(np.sum(tier == TIER_ON_THE_FLY)),
        sibling_pairs=len(pairs),
        table_bytes=int(tab_size * 8),
    )
    return model


# ---------------------------------------------------------------------------------------------
# public entry point with a per-booster cache
# ---------------------------------------------------------------------------------------------

_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _fingerprint(booster) -> tuple:
    # cheap and robust against boosters that were trained further / had leaves changed
    return (booster.num_trees(), booster.current_iteration(), hash(booster.model_to_string(-1)))


def _get_model(booster, options: tuple | None) -> TreeShapModel:
    """The cached parse of ``booster`` for tree_shap's table ``options``; ``None`` (prediction):
    any cached parse will do, else one without tables."""
    key = (_fingerprint(booster), options)
    with _cache_lock:
        hit = _cache.get(booster)
    if hit is not None and hit[0][0] == key[0] and (options is None or hit[0] == key):
        return hit[1]
    model = (
        compile_model(booster, shap_tables=False)
        if options is None
        else compile_model(booster, *options)
    )
    with _cache_lock:
        _cache[booster] = (key, model)
    return model


def _input_fallback(model: TreeShapModel, X, predict: bool = False) -> str | None:
    reason = model.predict_fallback if predict else model.fallback
    if reason is not None:
        return reason
    if X is None:
        return None
    mod = type(X).__module__ or ""
    if mod.startswith("scipy.sparse") or hasattr(X, "tocsr"):
        return "sparse input"
    if mod.startswith("pandas") and model.pandas_categorical:
        return "pandas input with pandas_categorical mappings"
    return None


_DEFAULT_OPTIONS = (
    DEFAULT_FULL_TABLE_DEPTH,
    DEFAULT_COMPACT_TABLE_DEPTH,
    DEFAULT_TABLE_BUDGET_BYTES,
)


def fallback_reason(booster, X=None, *, predict: bool = False) -> str | None:
    """Why :func:`tree_shap` would call ``pred_contrib`` for this booster (and input), or None;
    ``predict=True``: why :func:`tree_predict` would call LightGBM's predict."""
    if predict:
        return _input_fallback(_get_model(booster, None), X, predict=True)
    return _input_fallback(_get_model(booster, _DEFAULT_OPTIONS), X)


def tree_shap(
    booster,
    X,
    num_iteration: int | None = None,
    start_iteration: int = 0,
    *,
    n_jobs: int | None = None,
    full_table_depth: int = DEFAULT_FULL_TABLE_DEPTH,
    compact_table_depth: int = DEFAULT_COMPACT_TABLE_DEPTH,
    table_budget_bytes: int = DEFAULT_TABLE_BUDGET_BYTES,
    block_rows: int | None = None,
    pattern_share: float = DEFAULT_PATTERN_SHARE,
) -> np.ndarray:
    """Exact path-dependent SHAP values, equal to ``booster.predict(X, pred_contrib=True)``.

    ``num_iteration``/``start_iteration`` follow ``Booster.predict``: ``num_iteration=None``
    means ``booster.best_iteration`` when it is set and ``start_iteration <= 0``, else all
    iterations. Returns ``(n, F+1)`` (binary/regression) or ``(n, K*(F+1))`` (multiclass),
    float64, the last column of each block being the expected value. The parsed model is cached
    per booster (re-parsed if the booster changes). ``n_jobs``: threads (default: all CPUs
    this process may use); ``pattern_share``: see ``DEFAULT_PATTERN_SHARE``.
    Unsupported models / inputs are passed to ``pred_contrib`` (logged; see
    :func:`fallback_reason`).
    """
    if num_iteration is None:
        num_iteration = booster.best_iteration if start_iteration <= 0 else -1
    options = (int(full_table_depth), int(compact_table_depth), int(table_budget_bytes))
    model = _get_model(booster, options)
    reason = _input_fallback(model, X)
    if reason is not None:
        log.warning("tree_shap: falling back to LightGBM pred_contrib (%s)", reason)
        return booster.predict(
            X, pred_contrib=True, num_iteration=num_iteration, start_iteration=start_iteration
        )
    return model.shap_values(
        np.asarray(X, dtype=np.float64),
        num_iteration=num_iteration,
        start_iteration=start_iteration,
        block_rows=block_rows,
        n_jobs=n_jobs,
        pattern_share=pattern_share,
    )


def tree_predict(
    booster,
    X,
    num_iteration: int | None = None,
    start_iteration: int = 0,
    *,
    n_jobs: int | None = None,
    block_rows: int | None = None,
) -> np.ndarray:
    """Raw scores, bit for bit ``booster.predict(X, raw_score=True, ...)``: ``(n,)`` for binary
    and regression, ``(n, K)`` for multiclass, float64.

    ``num_iteration``/``start_iteration`` follow ``Booster.predict`` (``None``: the best
    iteration when it is set and ``start_iteration <= 0``). The parsed model is cached per
    booster, shared with :func:`tree_shap` (no SHAP tables are built for prediction alone).
    ``n_jobs``: threads (default: all CPUs this process may use); ``block_rows``: rows per block
    of the kernel (default 256). Unsupported models / inputs are passed to LightGBM (logged; see
    ``fallback_reason(booster, X, predict=True)``).
    """
    if num_iteration is None:
        num_iteration = booster.best_iteration if start_iteration <= 0 else -1
    model = _get_model(booster, None)
    reason = _input_fallback(model, X, predict=True)
    if reason is not None:
        log.warning("tree_predict: falling back to LightGBM predict (%s)", reason)
        return booster.predict(
            X, raw_score=True, num_iteration=num_iteration, start_iteration=start_iteration
        )
    if not isinstance(X, (np.ndarray, list)):  # data frames: LightGBM reads them as floats
        X = np.asarray(X, dtype=np.float64)
    return model.raw_scores(
        X,
        num_iteration=num_iteration,
        start_iteration=start_iteration,
        block_rows=block_rows,
        n_jobs=n_jobs,
    )
