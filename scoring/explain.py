"""SHAP explanations: exact TreeSHAP contributions per scored row, and the reasons text.

Contributions are in log-odds of the uncalibrated model; `reasons` names the three features that
moved a firm's probability most, with their values and direction (`发明专利(有效) 6 件 ↑`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from features.catalog import format_value, label

N_REASONS = 3


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
            parts.append(f"{label(names[j])} {format_value(names[j], x[i, j])} {arrow}")
        out.append("；".join(parts))
    return out


def global_importance(contrib: np.ndarray, names: list[str]) -> pl.DataFrame:
    """Mean |SHAP| per feature (tier indicators included), largest first."""
    mean_abs = np.abs(contrib[:, : len(names)]).mean(axis=0)
    return (pl.DataFrame({"feature": names, "mean_abs_shap": mean_abs})
            .with_columns(pl.col("feature").map_elements(label, return_dtype=pl.Utf8).alias("label"))
            .sort(["mean_abs_shap", "feature"], descending=[True, False]))
