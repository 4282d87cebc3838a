"""SHAP explanations: exact TreeSHAP contributions per scored row, and the reasons text.

Contributions are in log-odds of the uncalibrated model; `reasons` names the three features that
moved a firm's probability most, with their values and direction (`发明专利(有效) 6 件 ↑`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from features.catalog import format_value
from features.catalog import label as catalog_label
from scoring.tiers import TIERS

N_REASONS = 3


def label(name: str) -> str:
    """Chinese label of a model column; one-hot columns read `所属板块: 环科园`."""
    if name.startswith("tier_"):   # the tier the row is scored for (not a title the firm holds)
        return f"所评层级: {TIERS.get(name[5:], name[5:])}"
    if "=" in name:
        base, value = name.split("=", 1)
        return f"{catalog_label(base)}: {value}"
    if name.startswith("rule_"):
        return {"rule_eligible": "符合认定条件", "rule_eligible_if_unknowns_hold": "核实后可符合",
                "rule_points": "规则评分"}.get(name, name)
    return catalog_label(name)


def value_text(name: str, value: float, unknown: frozenset[str] = frozenset()) -> str:
    """A feature's value in words; `unknown`: features whose table the drop lacked, whose missing
    value is 未知, not the catalog's meaning of a null (从未融资 with no 融资 table is not known)."""
    if name.startswith("tier_"):   # the waterfall's one tier bar: its label says it all
        return ""
    if "=" in name or name in ("rule_eligible", "rule_eligible_if_unknowns_hold"):
        return "是" if value == 1 else "否"
    if name == "rule_points":
        return "—" if np.isnan(value) else f"{value:.0f} 分"
    return format_value(name, value, name not in unknown)


def contributions(booster, x: np.ndarray) -> np.ndarray:
    """(n, F+1) SHAP values, last column the base value: exact TreeSHAP in numba (a required
    dependency, as for the model's predictions); tree_shap itself passes the models and inputs
    it does not handle to LightGBM's pred_contrib."""
    from scoring.treeshap import tree_shap

    return tree_shap(booster, x)


def reasons(contrib: np.ndarray, x: np.ndarray, names: list[str], n: int = N_REASONS) -> list[str]:
    """Per row: the n features with the largest |contribution| (tier indicators left out), as
    `label value arrow` joined by `；`. Vectorised: each distinct (feature, value) among the
    chosen cells is put into words once, by `label` and `value_text`."""
    return reasons_series(contrib, x, names, n).to_list()


def reasons_series(contrib: np.ndarray, x: np.ndarray, names: list[str], n: int = N_REASONS,
                   unknown: frozenset[str] = frozenset()) -> pl.Series:
    """`reasons` as a Polars Series of text (no Python string per row)."""
    usable = np.array([not nm.startswith("tier_") for nm in names] + [False])[: contrib.shape[1]]
    top = _largest(contrib, usable, n)
    rows = np.arange(len(top))[:, None]
    chosen = contrib[rows, top]
    magnitude = np.where(usable[top], np.abs(chosen), -1.0)
    # the chosen cells, row by row; the base-value column (last) never passes `shown`
    value = x[rows, np.minimum(top, x.shape[1] - 1)].ravel()
    cells = pl.DataFrame({
        "feature": top.ravel(),
        "bits": value.view(f"i{value.itemsize}"),  # exact key: tells −0.0 from 0.0
        "shown": ~(magnitude <= 0).ravel(),  # a NaN contribution is shown (↓)
        "up": (chosen > 0).ravel(),
    })
    words = _feature_values_in_words(cells.filter("shown"), value.dtype, names, unknown)
    arrow = pl.when("up").then(pl.lit("↑")).otherwise(pl.lit("↓"))
    parts = cells.join(words, on=["feature", "bits"], how="left", maintain_order="left").select(
        pl.when("shown").then(pl.concat_str("words", arrow, separator=" ")).alias("part"))
    width = top.shape[1]
    by_rank = [parts["part"].gather_every(width, offset=k) for k in range(width)]
    return pl.select(pl.concat_str(by_rank, separator="；", ignore_nulls=True)).to_series()


def _largest(contrib: np.ndarray, usable: np.ndarray, n: int, block: int = 1 << 14) -> np.ndarray:
    """Column indices of each row's n largest |contribution| among the usable columns (the
    others rank as −1), largest first: the first n of a stable descending argsort (ties to the
    lower index, NaN after everything), found with n argmax passes instead of sorting every
    row. Rows go `block` at a time through one reused working array."""
    chosen = np.empty((len(contrib), min(n, contrib.shape[1])), dtype=np.int64)
    work = np.empty((min(block, len(contrib)), contrib.shape[1]))
    for start in range(0, len(contrib), block):
        part = contrib[start:start + block]
        key = np.abs(part, out=work[: len(part)])
        key[:, ~usable] = -1.0
        key[np.isnan(key)] = -2.0  # below every magnitude and the −1 of unusable columns
        rows = np.arange(len(key))
        for k in range(chosen.shape[1]):
            chosen[start:start + len(key), k] = best = np.argmax(key, axis=1)
            key[rows, best] = -np.inf
    return chosen


def _feature_values_in_words(cells: pl.DataFrame, dtype: np.dtype, names: list[str],
                             unknown: frozenset[str] = frozenset()) -> pl.DataFrame:
    """`label value` of each distinct (feature, bits) among the cells."""
    distinct = cells.select("feature", "bits").unique()
    values = distinct["bits"].to_numpy().view(dtype)
    labels = {j: label(names[j]) for j in set(distinct["feature"].to_list())}
    words = [f"{labels[j]} {value_text(names[j], v, unknown)}"
             for j, v in zip(distinct["feature"].to_list(), values, strict=True)]
    return distinct.with_columns(pl.Series("words", words, dtype=pl.Utf8))


def global_importance(contrib: np.ndarray, names: list[str]) -> pl.DataFrame:
    """Mean |SHAP| per feature (tier indicators included), largest first."""
    return importance_table(np.abs(contrib[:, : len(names)]).mean(axis=0), names)


class AbsoluteSum:
    """Σ|SHAP| per feature over slices of rows, added row after row in the order NumPy's
    `mean(axis=0)` adds the rows of a C-ordered matrix (what tree_shap and pred_contrib return),
    so that `mean()` over the slices equals `global_importance` of the whole matrix bit for bit
    (checked in tests/test_explain_reasons.py)."""

    def __init__(self, width: int) -> None:
        self.width, self.rows = width, 0
        self.total = np.zeros(width)

    CHUNK = 65_536   # rows added at a time: the same additions in the same order, a small copy

    def add(self, contrib: np.ndarray) -> None:
        for start in range(0, len(contrib), self.CHUNK):
            part = contrib[start:start + self.CHUNK, : self.width]
            work = np.empty((len(part) + 1, self.width))
            work[0] = self.total
            np.abs(part, out=work[1:])
            self.total = work.sum(axis=0)
        self.rows += len(contrib)

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.total / self.rows


def importance_table(mean_abs: np.ndarray, names: list[str]) -> pl.DataFrame:
    """feature, mean_abs_shap, label; largest first."""
    return (pl.DataFrame({"feature": names, "mean_abs_shap": mean_abs})
            .with_columns(pl.col("feature").map_elements(label, return_dtype=pl.Utf8).alias("label"))
            .sort(["mean_abs_shap", "feature"], descending=[True, False]))
