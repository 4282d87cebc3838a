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
    if name.startswith("tier_"):
        return f"层级: {TIERS.get(name[5:], name[5:])}"
    if "=" in name:
        base, value = name.split("=", 1)
        return f"{catalog_label(base)}: {value}"
    if name.startswith("rule_"):
        return {"rule_eligible": "符合认定条件", "rule_eligible_if_unknowns_hold": "核实后可符合",
                "rule_points": "规则评分"}.get(name, name)
    return catalog_label(name)


def value_text(name: str, value: float) -> str:
    if "=" in name or name in ("rule_eligible", "rule_eligible_if_unknowns_hold") or name.startswith("tier_"):
        return "是" if value == 1 else "否"
    if name == "rule_points":
        return "—" if np.isnan(value) else f"{value:.0f} 分"
    return format_value(name, value)


def contributions(booster, x: np.ndarray) -> np.ndarray:
    """(n, F+1) SHAP values, last column the base value; fast TreeSHAP where it applies."""
    try:
        from scoring.treeshap import tree_shap
    except ImportError:  # the numba kernel is optional; LightGBM's own is the reference
        return booster.predict(x, pred_contrib=True)
    return tree_shap(booster, x)


def reasons(contrib: np.ndarray, x: np.ndarray, names: list[str], n: int = N_REASONS) -> list[str]:
    """Per row: the n features with the largest |contribution| (tier indicators left out)."""
    usable = np.array([not nm.startswith("tier_") for nm in names] + [False])
    magnitude = np.where(usable[None, : contrib.shape[1]], np.abs(contrib), -1.0)
    top = np.argsort(-magnitude, axis=1, kind="stable")[:, :n]
    out = []
    for i, idx in enumerate(top):
        parts = []
        for j in idx:
            if magnitude[i, j] <= 0:
                continue
            arrow = "↑" if contrib[i, j] > 0 else "↓"
            parts.append(f"{label(names[j])} {value_text(names[j], x[i, j])} {arrow}")
        out.append("；".join(parts))
    return out


def global_importance(contrib: np.ndarray, names: list[str]) -> pl.DataFrame:
    """Mean |SHAP| per feature (tier indicators included), largest first."""
    mean_abs = np.abs(contrib[:, : len(names)]).mean(axis=0)
    return (pl.DataFrame({"feature": names, "mean_abs_shap": mean_abs})
            .with_columns(pl.col("feature").map_elements(label, return_dtype=pl.Utf8).alias("label"))
            .sort(["mean_abs_shap", "feature"], descending=[True, False]))
