"""Benchmark: LightGBM pred_contrib vs shap.TreeExplainer vs scoring.treeshap.tree_shap.

Trains models like tidu's (binary, 300 trees, num_leaves 31 or 15, with and without max_depth) on
synthetic data with 40 features (``mixed``: 5% NaN, a few integer-valued columns; ``tidu-like``:
counts, one-hots, shares and amounts, whose rows share decision patterns), times the three ways to
get SHAP values on the same rows, checks the largest absolute difference, prints a markdown table
and appends it, with date, machine and load, to bench/results/shap.md.

    .venv/bin/python bench/bench_shap.py                       # 20k rows, max_depth 8 and -1
    .venv/bin/python bench/bench_shap.py --rows 200000 --max-depth 8
    .venv/bin/python bench/bench_shap.py --rows 20000 200000 --no-explainer
    .venv/bin/python bench/bench_shap.py --data mixed tidu-like --rows 200000 --max-depth 8 --leaves 15

The numba kernels are compiled (or loaded from numba's cache) in a warm-up call that is not
timed; "prep" is the per-model cost (dump_model parse + per-leaf tables) and is included in the
speed-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scoring.treeshap import compile_model, tree_shap

RESULTS = REPO / "bench" / "results" / "shap.md"
N_FEATURES = 40


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 30:35] = rng.integers(0, 12, size=(n, 5))  # counts
    X[:, 35:40] = np.exp(X[:, 35:40])  # skewed amounts
    X[rng.random(X.shape) < 0.05] = np.nan
    Z = np.nan_to_num(X)
    w = rng.normal(size=N_FEATURES) * 0.3
    logit = Z @ w + np.sin(2 * Z[:, 0]) + Z[:, 1] * Z[:, 2] + 0.4 * (Z[:, 30] > 6) - 0.2
    y = (logit + rng.logistic(size=n) > 0).astype(int)
    return X, y


def make_tidu_like(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """40 columns of the kinds tidu's panel holds, mostly zero as for most firms (no patents, no
    financing, no titles): counts, one-hots, shares in tenths, amounts in a few sizes, years
    rounded to 0.1, 8 % NaN in the amounts and years; rows then share decision patterns."""
    rng = np.random.default_rng(seed)
    some = rng.random((n, 40)) < 0.25  # the firm has any of it
    X = np.column_stack([
        rng.poisson(rng.uniform(0.5, 6, 10), size=(n, 10)),                  # counts
        rng.random((n, 10)) < rng.uniform(0.05, 0.5, 10),                   # one-hots
        np.round(rng.beta(2, 5, size=(n, 8)), 1),                           # shares
        rng.choice([10.0, 50.0, 200.0, 1000.0, 5000.0], size=(n, 6)),       # amounts
        np.round(rng.exponential(3, size=(n, 6)), 1),                       # years since
    ]).astype(np.float64) * some
    X[:, 28:] = np.where(rng.random((n, 12)) < 0.08, np.nan, X[:, 28:])
    Z = np.nan_to_num(X)
    w = rng.normal(size=N_FEATURES) * 0.3
    logit = (Z - Z.mean(axis=0)) / (Z.std(axis=0) + 1e-9) @ w + 0.5 * (Z[:, 0] > 3) * Z[:, 10] - 2.5
    y = (logit + rng.logistic(size=n) > 0).astype(int)
    return X, y


DATA = {"mixed": make_data, "tidu-like": make_tidu_like}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(fn):
    """(result, wall seconds); CPU seconds of this process (all threads) go to timed.cpu."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    timed.cpu = time.process_time() - c0
    return out, time.perf_counter() - t0


def path_depths(booster) -> tuple[float, int]:
    depths = []
    for tree in booster.dump_model(num_iteration=-1)["tree_info"]:
        stack = [(tree["tree_structure"], 0)]
        while stack:
            node, d = stack.pop()
            if "leaf_index" in node:
                depths.append(d)
            else:
                stack += [(node["left_child"], d + 1), (node["right_child"], d + 1)]
    return float(np.mean(depths)), int(np.max(depths))


def run(rows: int, max_depth: int, trees: int, explainer: bool, threads: int, data: str = "mixed",
        leaves: int = 31) -> dict:
    X, y = DATA[data](rows)
    params = {
        "objective": "binary", "num_leaves": leaves, "max_depth": max_depth, "learning_rate": 0.05,
        "min_data_in_leaf": 20, "verbose": -1, "num_threads": threads,
    }  # fmt: skip
    booster, t_train = timed(lambda: lgb.train(params, lgb.Dataset(X, y), num_boost_round=trees))
    mean_d, max_d = path_depths(booster)
    print(f"[{rows} rows, max_depth {max_depth}] trained in {t_train:.1f}s; "
          f"leaf depth mean {mean_d:.1f} max {max_d}", file=sys.stderr, flush=True)  # fmt: skip

    ref, t_ref = timed(lambda: booster.predict(X, pred_contrib=True, num_threads=threads))
    c_ref = timed.cpu
    print(f"  pred_contrib {t_ref:.2f}s (cpu {c_ref:.2f}s)", file=sys.stderr, flush=True)

    t_exp, diff_exp = None, None
    if explainer:
        import shap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expl = shap.TreeExplainer(booster)
            sv, t_exp = timed(lambda: np.asarray(expl.shap_values(X)).reshape(rows, -1))
        print(f"  TreeExplainer {t_exp:.2f}s", file=sys.stderr, flush=True)

    tree_shap(booster, X[:64])  # numba JIT / cache load, not timed; also fills the model cache
    model, t_prep = timed(lambda: compile_model(booster))
    c_prep = timed.cpu
    got, t_fast = timed(lambda: model.shap_values(X, n_jobs=threads))
    c_fast = timed.cpu
    # every row through every leaf (no decision patterns shared): the same values, bit for bit
    by_row, t_rows = timed(lambda: model.shap_values(X, n_jobs=threads, pattern_share=0.0))
    assert np.array_equal(got, by_row)
    print(f"  tree_shap prep {t_prep:.2f}s + {t_fast:.2f}s (every row: {t_rows:.2f}s)  {model.stats}",
          file=sys.stderr)
    # the public entry point must give the same thing
    assert np.array_equal(got[:1000], tree_shap(booster, X[:1000], n_jobs=threads))

    diff = float(np.abs(got - ref).max())
    if explainer:
        diff_exp = float(np.abs(got[:, :-1] - sv).max())
    additivity = float(np.abs(got.sum(axis=1) - booster.predict(X, raw_score=True)).max())
    return {
        "data": data,
        "t_rows": t_rows,
        "rows": rows,
        "trees": booster.num_trees(),
        "max_depth": max_depth,
        "mean_d": mean_d,
        "max_d": max_d,
        "t_ref": t_ref,
        "t_exp": t_exp,
        "t_prep": t_prep,
        "t_fast": t_fast,
        "speedup": t_ref / (t_prep + t_fast),
        "c_ref": c_ref,
        "c_ours": c_prep + c_fast,
        "speedup_cpu": c_ref / (c_prep + c_fast),
        "diff": diff,
        "diff_exp": diff_exp,
        "additivity": additivity,
        "table_mb": model.stats["table_bytes"] / 1e6,
    }


def table(results: list[dict]) -> str:
    head = (
        "| data | rows | trees | max_depth | leaf depth mean/max | pred_contrib s | TreeExplainer s "
        "| tree_shap prep s | tree_shap s | the same, every row through every leaf s "
        "| speed-up vs pred_contrib | CPU s pred_contrib / "
        "tree_shap (speed-up) | max abs diff vs pred_contrib | max abs diff vs TreeExplainer "
        "| additivity err | tables MB |\n"
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in results:
        exp = f"{r['t_exp']:.2f}" if r["t_exp"] is not None else "–"
        dexp = f"{r['diff_exp']:.1e}" if r["diff_exp"] is not None else "–"
        lines.append(
            f"| {r['data']} | {r['rows']:,} | {r['trees']} | {r['max_depth']} "
            f"| {r['mean_d']:.1f}/{r['max_d']} "
            f"| {r['t_ref']:.2f} | {exp} | {r['t_prep']:.2f} | {r['t_fast']:.2f} | {r['t_rows']:.2f} "
            f"| **{r['speedup']:.1f}×** "
            f"| {r['c_ref']:.2f} / {r['c_ours']:.2f} ({r['speedup_cpu']:.0f}×) "
            f"| {r['diff']:.1e} | {dexp} | {r['additivity']:.1e} "
            f"| {r['table_mb']:.0f} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[20_000])
    ap.add_argument("--max-depth", type=int, nargs="+", default=[8, -1])
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--leaves", type=int, default=31, help="num_leaves (tidu's model: 15)")
    ap.add_argument("--data", nargs="+", choices=sorted(DATA), default=["mixed"],
                    help="mixed: 30 continuous columns, counts and skewed amounts; tidu-like: "
                         "counts, one-hots, shares, amounts in a few sizes (shared patterns)")
    ap.add_argument("--no-explainer", action="store_true", help="skip shap.TreeExplainer")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-save", action="store_true", help="print only")
    args = ap.parse_args(argv)

    load0 = os.getloadavg()
    started = dt.datetime.now()
    results = [
        run(rows, md, args.trees, not args.no_explainer, args.threads, data, args.leaves)
        for data in args.data
        for rows in args.rows
        for md in args.max_depth
    ]
    load1 = os.getloadavg()
    md = table(results)
    header = (
        f"## {started:%Y-%m-%d %H:%M} — {platform.node()}\n\n"
        f"nproc {os.cpu_count()}, CPU {cpu_model()}, threads used {args.threads}; "
        f"Python {platform.python_version()}, lightgbm {lgb.__version__}, numpy {np.__version__}; "
        f"load average (1 min) {load0[0]:.1f} before, {load1[0]:.1f} after "
        f"(other jobs share this machine). Binary objective, num_leaves {args.leaves}, 40 features "
        f"(data: see make_data / make_tidu_like). Speed-up = pred_contrib wall / (prep + tree_shap) wall; the CPU column "
        f"compares process CPU seconds (all threads), which other jobs disturb less.\n\n"
    )
    print(header + md)
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        new = not RESULTS.exists()
        with RESULTS.open("a", encoding="utf-8") as fh:
            if new:
                fh.write("# tree_shap benchmark results\n\n")
            fh.write(header + md + "\n")
        print(f"appended to {RESULTS}", file=sys.stderr)
    worst = max(r["diff"] for r in results)
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
