"""Who will be recognised next: LightGBM, pooled over all tiers and per tier, calibrated out of time.

A row is (enterprise, quarter, tier) for a tier the firm does not hold at the quarter's end; the
label is 1 when the firm is newly recognised at that tier within the next four quarters. One model
is trained on all tiers together (tier as one-hot features) so that rare tiers borrow strength;
every tier with enough positives also gets its own model, and a row's score is the mean of the two
log-odds (the pooled model alone for rare tiers; the manifest says which). On synthetic cities with
known probabilities the blend closes about a third of the pooled model's gap to the truth (see
docs/model.md). Validation is strictly out of time: a training row's outcome window must have closed
before the tuning quarter begins (q + 4 ≤ v), never a random split.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from data_contracts.periods import Quarter
from scoring.backtest import MIN_POSITIVES  # fewer positives in the validation window: no metrics
from scoring.errors import HistoryTooShort
from scoring.tiers import TIERS

HORIZON = 4
# Small trees and a slow learning rate: a few thousand firms give a few hundred positives per tier,
# and the labels are noisy (a recognition is a draw from a hazard); measured in docs/model.md.
DEFAULT_PARAMS = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "max_depth": 8,
    "min_data_in_leaf": 100, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
    "lambda_l2": 1.0, "verbose": -1, "num_threads": 2, "seed": 7, "deterministic": True,
    "force_row_wise": True,
    # `basic` (not `intermediate`): the same out-of-time AUC on the known-truth city (every main tier
    # within 0.004) and training 1.7× faster (docs/model.md)
    "monotone_constraints_method": "basic",
}
MAX_ROUNDS = 1000
EARLY_STOPPING = 40
MIN_TIER_POSITIVES = 50     # a tier needs this many training positives for a model of its own
MIN_QUARTERS = 2 * HORIZON + 2  # train ≥ 1 quarter, a 4-quarter gap, tuning, validation, outcome window
MAX_TRAIN_ROWS = 1_000_000  # negatives are subsampled (and re-weighted) above this
MAX_TUNE_ROWS = 1_000_000   # the same for the tuning quarter (early stopping and calibration)
PREDICT_CHUNK = 500_000     # rows per design matrix when predicting
# The pooled booster learns at 0.1 instead of 0.05 when its training sample has this many rows (a
# province's: the 1M-row cap). It then stops at about half the trees (100k firms: 582 → 259 and
# 505 → 322 rounds for two seeds), which halves the trees every scored row is explained through,
# for the same out-of-time AUC (0.9149 / 0.9148 → 0.9146 / 0.9150) and a PR-AUC 0.0025 lower
# (docs/model.md, "A province's sample"). The tiers' own boosters (a tenth of the rows each) keep 0.05.
LARGE_SAMPLE_ROWS = 500_000
LARGE_SAMPLE_POOLED_RATE = 0.1
MARGIN_DECIMALS = 9         # log-odds are rounded to this many decimals before calibration
# A tier scored by the pooled model alone gets its own level (an offset on its log-odds, fitted
# after the calibration on every labelled quarter, under a normal prior of this sd) once it has
# this many recognitions there: the one calibration, fitted mostly on the other tiers' blended
# scores, left 小巨人 at about twice its realised rate (docs/model.md, "A pooled-only tier's level").
LEVEL_PRIOR_SD = 0.5
MIN_LEVEL_POSITIVES = 10


def make_labels(panel: pl.DataFrame, honors: pl.DataFrame, last_quarter: Quarter,
                horizon: int = HORIZON) -> pl.DataFrame:
    """(uscc, quarter, tier, label): label null when the outcome window is not complete."""
    keys = recognitions(honors)
    rows = candidate_keys(panel)
    hits = (rows.join(keys, on=["uscc", "tier"], how="inner")
            .filter((pl.col("rq") > pl.col("_qi")) & (pl.col("rq") <= pl.col("_qi") + horizon))
            .select("uscc", "quarter", "tier").unique().with_columns(pl.lit(1).alias("hit")))
    complete = pl.col("_qi") + horizon <= last_quarter.index
    return (rows.join(hits, on=["uscc", "quarter", "tier"], how="left", maintain_order="left")
            .with_columns(pl.when(complete).then(pl.col("hit").fill_null(0)).cast(pl.Int8).alias("label"))
            .select("uscc", "quarter", "tier", "label"))


def candidate_keys(panel: pl.DataFrame) -> pl.DataFrame:
    """Every (uscc, quarter, tier, _qi) where the firm does not already hold the tier: keys only,
    so that a province's firms × quarters × tiers fit in memory; features are joined later, to
    the rows that are used (`with_features`)."""
    base = panel.select("uscc", "quarter", *[c for c in (f"holds_{t}" for t in TIERS) if c in panel.columns])
    base = base.with_columns(_quarter_index().alias("_qi"))
    parts = []
    for tier in TIERS:
        held = f"holds_{tier}"
        cond = ~pl.col(held).fill_null(False) if held in base.columns else pl.lit(True)
        parts.append(base.filter(cond).select("uscc", "quarter", pl.lit(tier).alias("tier"), "_qi"))
    return pl.concat(parts)


def with_features(rows: pl.DataFrame, panel: pl.DataFrame | None) -> pl.DataFrame:
    """rows with the panel's columns they lack, joined on (uscc, quarter).

    The panel is first cut down to the rows' own (uscc, quarter) pairs: joined whole, a
    province's panel (7.7M rows × 84 columns) took 4.2 GB beyond the result for a 1M-row training
    frame and 7 s; cut first, 0.1 GB and 2 s, the same frame."""
    if panel is None:
        return rows
    missing = [c for c in panel.columns if c not in rows.columns]
    needed = panel.select("uscc", "quarter", *missing).join(
        rows.select("uscc", "quarter").unique(), on=["uscc", "quarter"], how="semi")
    return rows.join(needed, on=["uscc", "quarter"], how="left", maintain_order="left")


def with_features_at(rows: pl.DataFrame, panel: pl.DataFrame, at: pl.Series,
                     columns: list[str] | None = None) -> pl.DataFrame:
    """rows with the panel's columns they lack, taken at the panel row numbers `at` (one per row,
    null: no panel row): the frame with_features joins, for rows whose panel rows are known, so
    that a quarter's panel is not probed again for every slice of its rows. `columns`: only
    those (a model's features: not the names and other texts the model does not read)."""
    wanted = [c for c in panel.columns if c not in rows.columns and (columns is None or c in columns)]
    return rows.hstack(panel.select(wanted).gather(at))


def quarter_text(qi: pl.Series) -> pl.Series:
    """Quarter indices (year · 4 + quarter − 1) as text, '2025Q4' (the inverse of _quarter_index).
    Each quarter of the span is written once and looked up (a province's 49M keys hold ~16)."""
    if qi.len() == qi.null_count():
        return pl.Series(qi.name, [None] * qi.len(), dtype=pl.Utf8)
    first, last = int(qi.min()), int(qi.max())
    span = pl.Series(range(first, last + 1))
    text = pl.select(pl.concat_str((span // 4).cast(pl.Utf8), pl.lit("Q"), (span % 4 + 1).cast(pl.Utf8))).to_series()
    return text.gather(qi.cast(pl.Int64) - first).alias(qi.name)


def _quarter_index() -> pl.Expr:
    return pl.col("quarter").str.slice(0, 4).cast(pl.Int64) * 4 + pl.col("quarter").str.slice(5, 1).cast(pl.Int64) - 1


def recognitions(honors: pl.DataFrame) -> pl.DataFrame:
    """(uscc, tier, rq): every recognition at a scored tier with the index of its quarter."""
    from data_contracts.honors import TIER_TITLES, honor_key_expr

    counts_as = {title: tier for tier, titles in TIER_TITLES.items() for title in titles}
    keys = honors.with_columns(honor_key_expr(pl.col("honor")).replace(counts_as).alias("tier"))
    return keys.filter(pl.col("tier").is_in(list(TIERS))).with_columns(
        (pl.col("recognized_on").dt.year() * 4 + (pl.col("recognized_on").dt.month() - 1) // 3)
        .alias("rq")).select("uscc", "tier", "rq")


VERDICT_COLUMNS = ("rule_eligible", "rule_eligible_if_unknowns_hold", "rule_points")
KEY_COLUMNS = ("_f", "_qi", "_t", "label", "_row")   # a ModelKeys.frame row (_row: keys from text rows)


def rule_verdict(rules: pl.DataFrame) -> pl.DataFrame:
    """The rulebooks' verdict as the model rows carry it: (uscc, quarter, tier, rule_eligible,
    rule_eligible_if_unknowns_hold, rule_points), eligibility as 1.0/0.0 (null: undecided)."""
    return rules.select("uscc", "quarter", "tier",
                        pl.col("eligible").cast(pl.Float64).alias("rule_eligible"),
                        pl.col("eligible_if_unknowns_hold").cast(pl.Float64).alias("rule_eligible_if_unknowns_hold"),
                        pl.col("points").alias("rule_points"))


TIER_KEYS = list(TIERS)
# a tier code's rank among the tier keys sorted as text (the data hash sorts the keys as text)
_TEXT_RANK = np.argsort(np.argsort(TIER_KEYS)).tolist()


@dataclass
class ModelKeys:
    """Model rows (firm, quarter, tier, label) as integers, for a province's ~60M of them: `frame`
    holds _f (the firm's number in `firms`, the sorted credit codes), _qi (the quarter's index),
    _t (the tier's position in TIERS) and label (Int8; null while the outcome window is open) —
    about 10 bytes a row, where the same keys as text were ~60 and their joins several times that.
    `rows(part, panel)` gives a slice back as text keys with the columns the model reads.

    Keys given as text rows (`from_rows`: tests, backtests) keep those rows as `source` and point
    into them with _row, so whatever columns they carry come back unchanged."""

    frame: pl.DataFrame
    firms: pl.Series
    source: pl.DataFrame | None = None
    verdict: pl.DataFrame | None = None   # the rules (uscc, quarter, tier, eligible, …), for `verdict_of`

    @classmethod
    def from_rows(cls, rows: pl.DataFrame) -> ModelKeys:
        number = firm_numbers(rows.get_column("uscc").unique().sort())
        frame = (rows.select("uscc", "quarter", "tier", "label").with_row_index("_row")
                 .join(number, on="uscc", how="left", maintain_order="left")
                 .select("_f", _quarter_index().cast(pl.Int32).alias("_qi"), tier_code("tier"),
                         pl.col("label").cast(pl.Int8), "_row"))
        return cls(frame, number.get_column("uscc"), source=rows)

    def columns(self) -> list[str]:
        return self.source.columns if self.source is not None else ["uscc", "quarter", "tier", "label"]

    def text(self, part: pl.DataFrame) -> pl.DataFrame:
        """uscc, quarter, tier and label of `part` (rows of `frame`), as text keys."""
        if self.source is not None:
            return self.source.select("uscc", "quarter", "tier", pl.col("label").cast(pl.Int8)).gather(part["_row"])
        return self._numbered_text(part)

    def _numbered_text(self, part: pl.DataFrame) -> pl.DataFrame:
        """`text` from the numbers alone (_f, _qi, _t, label): the same for keys from rows."""
        return pl.DataFrame({
            "uscc": self.firms.gather(part.get_column("_f")),
            "quarter": quarter_text(part.get_column("_qi")),
            "tier": pl.Series(TIER_KEYS).gather(part.get_column("_t")),
            "label": part.get_column("label"),
        })

    def rows(self, part: pl.DataFrame, panel: pl.DataFrame | None) -> pl.DataFrame:
        """`part` as the model's rows: text keys, label, the source's columns, the columns `part`
        carries besides its keys (the rule verdict of verdict_of, the subsample weight _w), then
        the panel's columns."""
        out = self.source.gather(part["_row"]) if self.source is not None else self.text(part)
        carried = [c for c in part.columns if c not in (*KEY_COLUMNS, "_u")]
        if carried:
            out = out.with_columns(part.select(carried))
        return with_features(out, panel)

    def without_rows(self) -> ModelKeys:
        """These keys' way back to text (the firms, or the source rows) without the rows themselves:
        what a TrainingPlan keeps, so that a province's ~60M keys can go once it is made."""
        return ModelKeys(self.frame.clear(), self.firms, self.source)

    def verdict_of(self, quarter: int) -> pl.DataFrame | None:
        """The rule verdict (rule_verdict) of one quarter on integer keys (_f, _qi, _t), for keys
        that carry none of their own. (With text keys, 7.2M rows of a province's quarter were
        0.4 GB, joined again to every slice of the validation rows.)"""
        if self.source is not None or self.verdict is None:
            return None
        verdict = rule_verdict(self.verdict.filter(pl.col("quarter") == str(Quarter.from_index(quarter))))
        return verdict.join(firm_numbers(self.firms), on="uscc", how="inner").select(
            "_f", pl.lit(quarter, pl.Int32).alias("_qi"), tier_code("tier"), *VERDICT_COLUMNS)

    def draws(self, part: pl.DataFrame, seed: int, chunk: int = 2_000_000) -> pl.Series:
        """Each row's subsampling draw in [0, 10⁶): a hash of its text keys and the seed, so which
        rows a subsample keeps depends on nothing else. Made `chunk` rows at a time, two chunks at
        once: Polars joins and hashes one column on one thread, and a row's draw is its own
        (a province's ~48M labelled keys: 6.0–7.4 s on one core, 2.9–3.2 s on two)."""
        def draw(start: int) -> pl.Series:
            return self.text(part.slice(start, chunk)).select(
                (pl.concat_str("uscc", "quarter", "tier").hash(seed) % 1_000_000).cast(pl.UInt32)).to_series()

        with ThreadPoolExecutor(max_workers=2) as pool:
            out = list(pool.map(draw, range(0, max(part.height, 1), chunk)))
        return pl.concat(out).alias("_u")

    def data_hash(self, part: pl.DataFrame, chunk: int = 1_000_000) -> str:
        """sha256 of the CSV of (uscc, quarter, tier, label) sorted by every column — the firms are
        numbered in text order, quarters and the tiers' text ranks sort as their text — written a
        slice at a time (the same digest as one CSV of the whole frame)."""
        # A labelled key is one number that sorts as its text, label included: firm (32 bits),
        # quarter (16), the tier's text rank (8), label (1). The numbers are sorted in place and
        # the rows read back from them: no index array and no gather of the keys (for 47.6M keys
        # Polars' arg_sort took +2.2 GB; NumPy's stable argsort +1.1 GB and 2× the time).
        if part.get_column("label").null_count():
            raise ValueError("data_hash: the keys must all be labelled")
        qi = part.get_column("_qi").to_numpy()
        first = int(qi.min()) if len(qi) else 0
        key = part.get_column("_f").to_numpy().astype(np.uint64)
        key <<= np.uint64(16)
        key |= (qi - first).astype(np.uint64)
        del qi
        key <<= np.uint64(8)
        key |= np.asarray(_TEXT_RANK, dtype=np.uint64)[part.get_column("_t").to_numpy()]
        key <<= np.uint64(1)
        key |= part.get_column("label").to_numpy().astype(np.uint64)
        key.sort()  # the keys are unique, so any sort gives the one order
        code_of_rank = np.argsort(_TEXT_RANK).astype(np.uint8)
        digest = hashlib.sha256()
        # sha256 (which releases the GIL) hashes one slice while Polars writes the next
        with ThreadPoolExecutor(max_workers=1) as hasher:
            hashing = None
            for start in range(0, max(part.height, 1), chunk):
                k = key[start:start + chunk]
                rows = self._numbered_text(pl.DataFrame({
                    "_f": (k >> np.uint64(25)).astype(np.uint32),
                    "_qi": ((k >> np.uint64(9)) & np.uint64(0xFFFF)).astype(np.int32) + first,
                    "_t": code_of_rank[(k >> np.uint64(1)) & np.uint64(0xFF)],
                    "label": (k & np.uint64(1)).astype(np.int8),
                }))
                text = io.BytesIO()
                rows.write_csv(text, include_header=start == 0)
                if hashing is not None:
                    hashing.result()
                hashing = hasher.submit(digest.update, text.getbuffer())
            if hashing is not None:
                hashing.result()
        return digest.hexdigest()[:16]


@dataclass
class TrainingPlan:
    """The rows PromotionModel.fit reads (PromotionModel.plan), as keys (ModelKeys.frame rows):
    the subsampled training and tuning rows, the refit rows (None: no refit), every row of the
    validation quarter with the quarter's rule verdict (VERDICT_COLUMNS, when the keys have the
    rules); and what the model records of all the
    labelled rows: the span of their quarters, positives per tier, and the keys themselves for
    the data hash."""

    keys: ModelKeys
    train: pl.DataFrame
    tune: pl.DataFrame
    valid: pl.DataFrame
    full: pl.DataFrame | None
    first_labeled: int
    last_labeled: int
    positives_by_tier: dict[str, int]
    labeled: pl.DataFrame | None    # every labelled key, for the data hash (fit_plan hashes it, then lets it go)
    # the panel's rows at `pairs()`, when the caller attaches them (the run: ~1.5 GB at a
    # province's size); fit_plan reads the features from them and lets them go, as `labeled`
    panel: pl.DataFrame | None = None

    def pairs(self) -> pl.DataFrame:
        """(uscc, quarter) of every row the plan reads, each once: the panel rows fit needs."""
        parts = [p.select("_f", "_qi") for p in (self.train, self.tune, self.valid, self.full) if p is not None]
        pairs = pl.concat(parts).unique()
        return pl.DataFrame({
            "uscc": self.keys.firms.gather(pairs.get_column("_f")),
            "quarter": quarter_text(pairs.get_column("_qi")),
        })


def firm_numbers(firms: pl.Series) -> pl.DataFrame:
    """(uscc, _f): each credit code of `firms` (in the order given) with its number."""
    return pl.DataFrame({"uscc": firms, "_f": pl.int_range(firms.len(), dtype=pl.UInt32, eager=True)})


def tier_code(column: str) -> pl.Expr:
    """A tier key's position in TIERS (UInt8)."""
    return pl.col(column).replace_strict(TIER_KEYS, list(range(len(TIER_KEYS))), return_dtype=pl.UInt8).alias("_t")


MAX_CATEGORIES = 30


def learn_categories(rows: pl.DataFrame, features: list[str]) -> dict[str, list[str]]:
    """For each text feature, its most frequent values (ties by name): the one-hot columns."""
    out = {}
    for f in features:
        if f in rows.columns and rows.schema[f] == pl.Utf8:
            counts = rows.get_column(f).drop_nulls().value_counts(sort=False, name="n")
            top = counts.sort(["n", f], descending=[True, False]).head(MAX_CATEGORIES)
            out[f] = sorted(top.get_column(f).to_list())
    return out


def feature_names(features: list[str], categories: dict[str, list[str]]) -> list[str]:
    names = []
    for f in features:
        names += [f"{f}={v}" for v in categories[f]] if f in categories else [f]
    return names + [f"tier_{t}" for t in TIERS]


def design_matrix(rows: pl.DataFrame, features: list[str],
                  categories: dict[str, list[str]] | None = None) -> tuple[np.ndarray, list[str]]:
    """Numeric matrix: numbers as floats (booleans 0/1, null NaN), text one-hot, tier one-hots.

    Written a column at a time into one row-major array: the layout LightGBM (training and
    prediction) and TreeSHAP read without a copy. Through a Polars frame and its column-major
    NumPy copy, a 1M-row training matrix (~0.9 GB) was held three times over."""
    categories = categories or {}
    names = feature_names(features, categories)
    x = np.empty((rows.height, len(names)), dtype=np.float64)
    j = 0
    for f in features:
        if f in categories:
            column = rows.get_column(f)
            for v in categories[f]:
                x[:, j] = (column == v).fill_null(False).cast(pl.Float64).to_numpy()
                j += 1
        elif f in rows.columns and rows.schema[f] != pl.Utf8:
            x[:, j] = rows.get_column(f).cast(pl.Float64).to_numpy()   # null → NaN
            j += 1
        else:
            x[:, j] = np.nan
            j += 1
    tier = rows.get_column("tier")
    for t in TIERS:
        x[:, j] = (tier == t).cast(pl.Float64).to_numpy()
        j += 1
    return x, names


@dataclass
class PromotionModel:
    features: list[str]
    monotone: dict[str, int] = field(default_factory=dict)
    params: dict = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    # pooled-only tiers' offsets on their log-odds (`_level_offsets`); set by fit and load
    level_offsets_: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def fit(self, rows: pl.DataFrame | ModelKeys, last_quarter: Quarter, refit: bool = True,
            panel: pl.DataFrame | None = None) -> PromotionModel:
        """Train on rows with labels; validate and calibrate on the latest complete quarters.
        Then refit on every complete quarter, unless `refit` is False (a backtest or a study of
        the validation model needs only that). `rows` may be keys with labels only (as text, or
        as ModelKeys), the features then come from `panel`, joined after negatives are subsampled.
        The same as `plan` then `fit_plan` (the run cuts its panel to the plan's rows between)."""
        keys = rows if isinstance(rows, ModelKeys) else ModelKeys.from_rows(rows)
        return self.fit_plan(self.plan(keys, last_quarter, refit), panel)

    def plan(self, keys: ModelKeys, last_quarter: Quarter, refit: bool = True) -> TrainingPlan:
        """The rows fit reads, chosen from the keys alone: the subsampled training, tuning and refit
        rows, the validation quarter's rows and its rule verdict, and what the model records of
        all labelled rows (positives per tier; the keys, for the data hash). The panel is needed
        after this only at the plan's (firm, quarter) pairs (`pairs`)."""
        labeled = keys.frame.filter(pl.col("label").is_not_null())
        have = keys.frame.get_column("_qi").n_unique()
        need_text = (f"评分季度 {last_quarter} 及以前至少需要 {MIN_QUARTERS + 1} 个季度的数据 "
                     f"(现有 {have} 个): 训练、4 个季度的间隔、调参季度、验证季度和 4 个季度的观察期")
        if labeled.height == 0:
            raise HistoryTooShort(f"数据包历史太短, 无法训练预测模型。{need_text}")
        last_labeled = int(labeled.get_column("_qi").max())
        # Three disjoint windows: train ≤ v−4, early stopping and calibration on v = last−1,
        # metrics on the last complete quarter (so calibration error is measured out of sample).
        tune_q, test_q = last_labeled - 1, last_labeled
        in_train = pl.col("_qi") <= tune_q - HORIZON
        if labeled.select(in_train.any()).item() is not True:
            raise HistoryTooShort(f"数据包历史太短, 无法按时间外推验证模型。{need_text}")
        if labeled.select((in_train & (pl.col("label") == 1)).any()).item() is not True:
            raise HistoryTooShort("训练窗口中没有任何新获认定的企业 (资质荣誉表中没有认定日期落在训练期内的记录), 无法训练模型。"
                                  "可用 --model 指定已保存的模型评分")
        seed = self.params.get("seed", 7)
        hashed = labeled
        labeled = labeled.with_columns(keys.draws(labeled, seed))
        # Keys only; features are joined to the subsampled rows. The validation quarter (every
        # row of one quarter: 8M at a province's size) gets its features PREDICT_CHUNK rows at a
        # time when it is predicted.
        train, tune = (_subsample(labeled, cap, window) for window, cap in (
            (in_train, MAX_TRAIN_ROWS), (pl.col("_qi") == tune_q, MAX_TUNE_ROWS)))
        positives = labeled.group_by("_t").agg(pl.col("label").sum())
        return TrainingPlan(
            keys=keys.without_rows(), train=train, tune=tune,
            valid=_with_verdict(labeled.filter(pl.col("_qi") == test_q).drop("_u"), keys.verdict_of(test_q)),
            full=_subsample(labeled, MAX_TRAIN_ROWS) if refit else None,
            first_labeled=int(labeled.get_column("_qi").min()), last_labeled=last_labeled,
            positives_by_tier={TIER_KEYS[t]: int(n) for t, n in sorted(positives.iter_rows(),
                                                                      key=lambda r: TIER_KEYS[r[0]])},
            labeled=hashed)

    def fit_plan(self, plan: TrainingPlan, panel: pl.DataFrame | None = None) -> PromotionModel:
        """`fit` on the rows of a plan; `panel` needs to hold only the plan's pairs (or be None when
        the keys carry their features, or the plan has its panel rows attached). A plan is fitted
        once: its labelled keys and attached panel rows are let go, the rows as soon as the
        validation quarter is cut out of them (before its rows are predicted)."""
        if plan.labeled is None:
            raise ValueError("this training plan has already been fitted (its labelled keys are gone)")
        if panel is None:
            panel, plan.panel = plan.panel, None
        keys, test_q = plan.keys, plan.last_labeled
        absent = [f for f in self.features if f not in keys.columns() and (panel is None or f not in panel.columns)]
        if absent:
            raise ValueError(f"model features missing from rows and panel: {absent}")
        # The labelled keys are hashed here, after the run has let the whole panel go (at 1M firms
        # the hash's sort of 48M keys beside the panel was the run's peak), and then let go.
        self.data_hash_ = keys.data_hash(plan.labeled)
        plan.labeled = None
        train, tune = keys.rows(plan.train, panel), keys.rows(plan.tune, panel)
        self.categories_ = learn_categories(train, self.features)
        positives = dict(train.group_by("tier").agg(pl.col("label").sum()).iter_rows())
        tuned = set(tune.get_column("tier").unique().to_list())
        own = [t for t in TIERS if positives.get(t, 0) >= MIN_TIER_POSITIVES and t in tuned]
        rate = {None: LARGE_SAMPLE_POOLED_RATE} if train.height >= LARGE_SAMPLE_ROWS else {}
        learning_rate = {tier: rate.get(tier, self.params.get("learning_rate", 0.1)) for tier in [None, *own]}

        self.level_offsets_ = {}   # margins below are the boosters' alone until the levels are fitted
        # Validation model: each booster stops early on the tuning quarter (a tier's rows are
        # taken out of the pooled frames when its turn comes, not all tiers' at once).
        self.boosters_, self.rounds_ = {}, {}
        for tier in [None, *own]:
            booster = (self._train(train, MAX_ROUNDS, learning_rate[tier], tune) if tier is None
                       else self._train(_of_tier(train, tier), MAX_ROUNDS, learning_rate[tier], _of_tier(tune, tier)))
            self.boosters_[tier] = booster
            self.rounds_[tier] = booster.best_iteration or MAX_ROUNDS
        self.calibrator_ = PlattCalibrator().fit(self.margin(tune), tune.get_column("label").to_numpy(),
                                                 tune.get_column("_w").to_numpy())
        self.level_offsets_ = self._level_offsets([t for t in TIERS if t not in own], train, tune)
        tune_span, tune_rows = _quarter_span(tune), tune.height
        train_span, train_rows = _quarter_span(train), train.height
        # The tuning frame, and the training frame when refitting (at a province's size 1M rows
        # with every panel column each), are not read from here on.
        del tune
        # Refit every booster on every complete quarter with its validated number of rounds. The
        # refit boosters take the validation model's place only after it has predicted the
        # validation quarter: so the refit's frame (1M rows at a province's size) is let go before
        # the quarter's rows (6.6M, ~0.5 GB kept for the metrics and the backtest) are made.
        refit, rows_refit, refit_b = None, train.height, None
        if plan.full is not None:
            del train
            full = keys.rows(plan.full, panel)
            rows_refit = full.height
            refit = {tier: self._train(full if tier is None else _of_tier(full, tier), self.rounds_[tier],
                                       learning_rate[tier])
                     for tier in self.rounds_}
            refit_b = self._refit_intercept(refit, full)
            del full
        # Out-of-time predictions of the validation model, kept for the metrics and the backtest;
        # the quarter's rows are made PREDICT_CHUNK at a time, their features taken and let go.
        # The panel is cut to the quarter once and each row's panel row found once (a join per
        # slice probed the quarter's 1M panel rows again, 14 times at a province's size).
        valid, kept, margins = plan.valid, [], []
        quarter_panel, at = None, None
        if panel is not None:
            quarter_panel = panel.filter(pl.col("quarter") == str(Quarter.from_index(test_q)))
            at = valid.select("_f").join(
                quarter_panel.select("uscc").with_row_index("_p").join(firm_numbers(keys.firms), on="uscc"),
                on="_f", how="left", maintain_order="left").get_column("_p")
        # Not read from here on: rows attached to the plan go here (a caller's own panel stays).
        del panel
        for i in range(0, max(valid.height, 1), PREDICT_CHUNK):
            part = keys.rows(valid.slice(i, PREDICT_CHUNK), None)
            margins.append(self.margin(part if quarter_panel is None
                                       else with_features_at(part, quarter_panel, at.slice(i, PREDICT_CHUNK),
                                                             self.features)))
            kept.append(part.select("uscc", "quarter", "tier", "label",
                                    *[c for c in VERDICT_COLUMNS if c in part.columns]))
        del quarter_panel
        self.validation_ = pl.concat(kept).with_columns(
            pl.Series("p", self.calibrate(np.concatenate(margins)))).select(
            "uscc", "quarter", "tier", "label", "p", pl.exclude("uscc", "quarter", "tier", "label", "p"))
        self.metrics_ = tier_metrics(self.validation_)
        calibration = {"a": self.calibrator_.a_, "b_tuning": self.calibrator_.b_}
        if refit is not None:
            self.boosters_ = refit
            self.calibrator_ = PlattCalibrator(self.calibrator_.a_, refit_b)
            calibration["b_refit"] = refit_b
        self.window_ = {
            "train_quarters": train_span, "tuning_quarters": tune_span,
            "validation_quarters": _quarter_span(self.validation_),
            "refit_quarters": [str(Quarter.from_index(plan.first_labeled)), str(Quarter.from_index(test_q))],
            "rows_train": train_rows, "rows_tuning": tune_rows, "rows_validation": valid.height,
            "rows_refit": rows_refit,
            "positives_by_tier": plan.positives_by_tier,
            "tiers_with_own_model": own,
            "tiers_pooled_only": {t: f"训练期正例 {positives.get(t, 0)} 个 < {MIN_TIER_POSITIVES}, 只用合并模型"
                                  for t in TIERS if t not in own},
            "level_offsets": {t: round(c, 6) for t, c in self.level_offsets_.items()},
            "calibration": {k: round(v, 6) for k, v in calibration.items()},
            "best_iteration": {_tier_name(t): int(n) for t, n in self.rounds_.items()},
            "learning_rate": {_tier_name(t): learning_rate[t] for t in self.rounds_},
        }
        return self

    def _refit_intercept(self, refit: dict, full: pl.DataFrame) -> float:
        """The calibration's intercept for the refit boosters: b such that σ(a·margin + b), with the
        slope a fitted out of time, adds up to the recognitions of the quarters they were trained
        on. The tuning quarter's b also carries how far the rates moved after the validation
        boosters' training quarters; the refit boosters have learned those quarters themselves,
        and with that b counted the move twice (demo: 2,079 expected recognitions over the refit
        quarters against 1,466; docs/model.md, "The refit model's intercept")."""
        validation = self.boosters_
        self.boosters_ = refit
        try:
            margin = np.concatenate([self.margin(full.slice(i, PREDICT_CHUNK))
                                     for i in range(0, max(full.height, 1), PREDICT_CHUNK)])
        finally:
            self.boosters_ = validation
        y, w = full.get_column("label").to_numpy().astype(np.float64), full.get_column("_w").to_numpy()
        a, b = self.calibrator_.a_, self.calibrator_.b_
        return b + a * _logistic_shift(margin, y, w, a, b)

    def _level_offsets(self, tiers: list[str], train: pl.DataFrame, tune: pl.DataFrame) -> dict[str, float]:
        """Each pooled-only tier's offset c on its log-odds, so that over the training and tuning
        quarters its calibrated probabilities add up to its recognitions: the maximum of the
        weighted log-likelihood of σ(a·(margin + c) + b) plus a normal prior on c (sd
        LEVEL_PRIOR_SD), by Newton's method. Only for a tier with MIN_LEVEL_POSITIVES
        recognitions there; with fewer the offset would be mostly noise (docs/model.md)."""
        a, b = self.calibrator_.a_, self.calibrator_.b_
        offsets = {}
        for tier in tiers:
            rows = pl.concat([_of_tier(train, tier), _of_tier(tune, tier)])
            y = rows.get_column("label").to_numpy().astype(np.float64)
            if y.sum() < MIN_LEVEL_POSITIVES:
                continue
            offsets[tier] = _logistic_shift(self.margin(rows), y, rows.get_column("_w").to_numpy(), a, b,
                                            prior_sd=LEVEL_PRIOR_SD)
        return offsets

    def _train(self, rows: pl.DataFrame, rounds: int, learning_rate: float,
               tune: pl.DataFrame | None = None) -> lgb.Booster:
        names = self._names()
        params = {**self.params, "learning_rate": learning_rate,
                  "monotone_constraints": [self.monotone.get(n, 0) for n in names]}
        # The matrices are handed over, not kept: LightGBM bins them and lets the floats go
        # (free_raw_data), ~0.9 GB each for 1M rows. The training matrix is binned (with the
        # training's own parameters, so the same bins) before the tuning matrix is made: both
        # floats were held at once when lgb.train binned them, at 1M firms the run's top.
        data = lgb.Dataset(self.design(rows)[0], rows.get_column("label").to_numpy(), feature_name=names,
                           weight=rows.get_column("_w").to_numpy(), params=params).construct()
        if tune is None:
            return lgb.train(params, data, rounds)
        return lgb.train(params, data, rounds,
                         valid_sets=[lgb.Dataset(self.design(tune)[0], tune.get_column("label").to_numpy(),
                                                 reference=data, weight=tune.get_column("_w").to_numpy())],
                         callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)])

    def _names(self) -> list[str]:
        return feature_names(self.features, self.categories_)

    def design(self, rows: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
        """The model's matrix for these rows and the column names (one-hots expanded)."""
        return design_matrix(rows, self.features, self.categories_)

    def _blend(self, rows: pl.DataFrame, per_booster, x: np.ndarray | None = None) -> np.ndarray:
        """Mean over the pooled and the row's own tier booster of per_booster(booster, rounds, x),
        in slices of PREDICT_CHUNK rows (one design matrix of a province would not fit). `x`: the
        rows' design matrix when the caller has made it already."""
        if rows.height > PREDICT_CHUNK:
            return np.concatenate([
                self._blend(rows.slice(i, PREDICT_CHUNK), per_booster,
                            None if x is None else x[i:i + PREDICT_CHUNK])
                for i in range(0, rows.height, PREDICT_CHUNK)])
        if x is None:
            x, _ = self.design(rows)
        out = per_booster(self.boosters_[None], self.rounds_[None], x)
        tiers = rows.get_column("tier")
        for tier, offset in self.level_offsets_.items():
            # a pooled-only tier's level: the same for each of its rows, so it goes to the base
            # value of its SHAP values (the last column), and the values still add up to the margin
            idx = np.flatnonzero((tiers == tier).to_numpy())
            if out.ndim == 2:
                out[idx, -1] += offset
            else:
                out[idx] += offset
        for tier, booster in self.boosters_.items():
            idx = np.flatnonzero((tiers == tier).to_numpy()) if tier is not None else []
            if len(idx):
                # Rows come tier by tier (model_rows), so a tier's rows are mostly one run: then
                # its part of x and out are views, not copies (at a province's 7.4M rows the
                # copies of x and of the SHAP values were ~18 GB of memory written).
                part = slice(idx[0], idx[-1] + 1) if idx[-1] - idx[0] + 1 == len(idx) else idx
                # 0.5·pooled + 0.5·own, the same two products and one sum as written out, in place:
                # for SHAP values (F+1 columns) each temporary was a quarter of a slice's matrix
                own = per_booster(booster, self.rounds_[tier], x[part])
                own *= 0.5
                mixed = out[part]
                mixed *= 0.5
                mixed += own
                if not isinstance(part, slice):
                    out[part] = mixed
        return out

    def margin(self, rows: pl.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of each row (the blend of the pooled and the tier's own model).
        Each booster's are LightGBM's raw scores bit for bit, by tree_predict (~13× less CPU)."""
        from scoring.treeshap import tree_predict

        return self._blend(rows, lambda b, n, x: tree_predict(b, x, num_iteration=n))

    def predict_proba(self, rows: pl.DataFrame) -> np.ndarray:
        return self.calibrate(self.margin(rows))

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        """Probabilities from log-odds: the blend's margin, or its SHAP values' row sums, which
        equal it to ~1e-15 but not bit for bit. Rounded to MARGIN_DECIMALS first, so that rows
        with the same prediction tie exactly however the sum was added up (ties are then broken
        by points and credit code, never by the order of additions)."""
        return self.calibrator_.predict(np.round(margin, MARGIN_DECIMALS))

    def contributions(self, rows: pl.DataFrame, explain=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Exact SHAP values of the blended log-odds, (n, F+1) with the base value last, plus the
        design matrix and its column names. SHAP values are additive over models, so the blend's
        values are the same mean of each booster's values. `explain(booster, x)` gives one
        booster's values; tidu's TreeSHAP unless given (bench/bench_pipeline.py passes
        shap.TreeExplainer's, to time and check it on the run's own model and rows)."""
        from scoring.explain import contributions

        explain = explain or contributions

        def per_booster(booster, rounds, x):
            if booster.current_iteration() != rounds:  # a validation booster: explain what predicts
                booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))
            return explain(booster, x)

        x, names = self.design(rows)
        return self._blend(rows, per_booster, x), x, names

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("booster*.txt"):
            old.unlink()
        for tier, booster in self.boosters_.items():
            booster.save_model(str(folder / _booster_file(tier)))
        meta = {"features": self.features, "monotone": self.monotone, "params": self.params,
                "categories": self.categories_,
                "window": self.window_, "metrics": self.metrics_, "data_hash": self.data_hash_,
                "boosters": {_tier_name(t): {"file": _booster_file(t), "rounds": self.rounds_[t]}
                             for t in self.boosters_},
                "calibrator": {"method": "platt", "a": self.calibrator_.a_, "b": self.calibrator_.b_},
                "level_offsets": self.level_offsets_}
        (folder / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> PromotionModel:
        meta = json.loads((folder / "model.json").read_text())
        model = cls(meta["features"], meta["monotone"], meta["params"])
        model.boosters_, model.rounds_ = {}, {}
        for name, spec in meta["boosters"].items():
            tier = None if name == POOLED else name
            model.boosters_[tier] = lgb.Booster(model_file=str(folder / spec["file"]))
            model.rounds_[tier] = int(spec["rounds"])
        model.categories_ = meta.get("categories", {})
        cal = meta["calibrator"]
        model.calibrator_ = PlattCalibrator(cal["a"], cal["b"])
        model.level_offsets_ = {t: float(c) for t, c in meta.get("level_offsets", {}).items()}
        model.window_, model.metrics_, model.data_hash_ = meta["window"], meta["metrics"], meta["data_hash"]
        return model

    @property
    def model_id(self) -> str:
        digest = hashlib.sha256()
        for tier in sorted(self.boosters_, key=_tier_name):
            digest.update(self.boosters_[tier].model_to_string().encode())
        return digest.hexdigest()[:12]


POOLED = "pooled"


def _tier_name(tier: str | None) -> str:
    return POOLED if tier is None else tier


def _booster_file(tier: str | None) -> str:
    return "booster.txt" if tier is None else f"booster_{tier}.txt"


def _of_tier(rows: pl.DataFrame, tier: str) -> pl.DataFrame:
    return rows.filter(pl.col("tier") == tier)


def _logistic_shift(margin: np.ndarray, y: np.ndarray, w: np.ndarray, a: float, b: float,
                    prior_sd: float | None = None) -> float:
    """The c that maximises Σ w·log-likelihood of y under σ(a·(margin + c) + b), plus a normal prior
    c ~ N(0, prior_sd²) when given (Newton's method on a concave function of one variable). Without
    the prior, σ(a·(margin + c) + b) then adds up to Σ w·y: what the refit intercept and the
    pooled-only tiers' levels both ask of the calibrated probabilities."""
    penalty = 0.0 if prior_sd is None else 1.0 / prior_sd**2
    c = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(a * (margin + c) + b)))
        slope = a * np.sum(w * (y - p)) - c * penalty
        curve = a * a * np.sum(w * p * (1 - p)) + penalty
        step = slope / curve
        c += step
        if abs(step) < 1e-12:
            break
    return float(c)


class PlattCalibrator:
    """p = 1 / (1 + exp(−(a·margin + b))), fitted out of time on the tuning quarter.

    Platt rather than isotonic: with tens of positives per quarter an isotonic step function
    hands out probabilities of exactly 0 % and 100 %, which no bureau should read.
    """

    def __init__(self, a: float = 1.0, b: float = 0.0) -> None:
        self.a_, self.b_ = float(a), float(b)

    def fit(self, margin: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000).fit(margin.reshape(-1, 1), y,
                                                                           sample_weight=weight)
        self.a_, self.b_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a_ * margin + self.b_)))


def _subsample(rows: pl.DataFrame, cap: int, window: pl.Expr | None = None) -> pl.DataFrame:
    """The rows in `window` (all when None): all positives, negatives thinned to fit `cap` rows,
    weighted back up by the thinning share. A row stays when its draw _u (ModelKeys.draws: its
    keys and the seed) falls below the share. One filter of `rows`, counted first: the window is
    not copied out before it is thinned (at a province's size 40M keys, +0.7 GB each time)."""
    inside = pl.col("label").is_not_null() if window is None else window   # (the rows are labelled)
    n, n_neg = rows.select(inside.sum().alias("n"), (inside & (pl.col("label") == 0)).sum().alias("neg")).row(0)
    keep = max(cap - (n - n_neg), 1)
    if n_neg <= keep:
        return rows.filter(inside).with_columns(pl.lit(1.0).alias("_w"))
    share = keep / n_neg
    kept = rows.filter(inside & ((pl.col("label") == 1) | (pl.col("_u") < _draws_below(share))))
    return kept.with_columns(pl.when(pl.col("label") == 1).then(1.0).otherwise(1.0 / share).alias("_w"))


def _with_verdict(keys: pl.DataFrame, verdict: pl.DataFrame | None) -> pl.DataFrame:
    """Keys (rows of ModelKeys.frame) with their rule verdict (verdict_of), joined once."""
    if verdict is None:
        return keys
    return keys.join(verdict, on=["_f", "_qi", "_t"], how="left", maintain_order="left")


def _draws_below(share: float) -> int:
    """How many draws d in [0, 10⁶) have d / 10⁶ < share: the rows a share keeps are those with
    _u below it (an integer comparison, where _u / 10⁶ made a float column of every row)."""
    n = min(max(math.ceil(share * 1_000_000), 0), 1_000_000)
    while n > 0 and (n - 1) / 1_000_000 >= share:
        n -= 1
    while n < 1_000_000 and n / 1_000_000 < share:
        n += 1
    return n


def _quarter_span(rows: pl.DataFrame) -> list[str]:
    qs = rows.get_column("quarter")
    return [qs.min(), qs.max()] if rows.height else []


def tier_metrics(valid: pl.DataFrame, score: str = "p", probabilistic: bool = True) -> dict:
    """score_metrics of the `score` column over all rows ("overall") and per tier, two groups at
    once (the sorts and sums release the GIL; 6.6M validation rows at a province's size)."""
    def metrics(tier: str | None) -> dict:
        part = valid if tier is None else valid.filter(pl.col("tier") == tier)
        return score_metrics(part.get_column("label").to_numpy(), part.get_column(score).to_numpy(), probabilistic)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(metrics, [None, *TIERS]))
    return dict(zip(["overall", *TIERS], results, strict=True))


def score_metrics(y: np.ndarray, p: np.ndarray, probabilistic: bool = True) -> dict:
    """AUC, PR-AUC, recall in the top 10 %, and for probabilities Brier and expected calibration
    error; only a note when there are too few positives to say anything."""
    positives = int(y.sum())
    result = {"rows": int(len(y)), "positives": positives}
    if positives < MIN_POSITIVES or positives == len(y):
        return {**result, "note": f"正例少于 {MIN_POSITIVES} 个, 不报告指标"}
    if not probabilistic and len(p) and np.ptp(p) == 0:
        # a score that ranks nobody above anybody (no points, nobody eligible, no rulebook in
        # force: 高企, 雏鹰, 瞪羚's rule points) would get AUC 0.5 and a recall set by row order
        return {**result, "note": "各企业得分相同 (该层级规则不评分), 不报告指标"}
    # highest score first, ties in row order (Polars' stable sort: NumPy's order, in half the time)
    order = pl.DataFrame({"p": p}).select(pl.arg_sort_by("p", descending=True, maintain_order=True)
                                           ).to_series().to_numpy()
    top = order[: max(1, int(round(0.1 * len(y))))]
    # AUC and PR-AUC depend only on the (score, label) pairs, not their order, and sklearn's
    # curves begin with a stable sort of the scores: handed them already in ascending order, that
    # sort is one pass over them (6.6M rows at a province's size: 2.3 s → 0.7 s, the same values).
    ascending = order[::-1]
    y_up, p_up = y[ascending], p[ascending]
    result.update(auc=float(roc_auc_score(y_up, p_up)), pr_auc=float(average_precision_score(y_up, p_up)),
                  recall_top10=float(y[top].sum() / positives))
    if probabilistic:
        result.update(brier=float(brier_score_loss(y, p)), ece=_ece(y, p))
    return result


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    err = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            err += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(err)
