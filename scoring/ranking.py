"""Ranked candidate lists: one row per enterprise and tier considered.

The rank within a tier is stated in one sentence (RANK_RULE) so the report can print it: firms that
meet the rulebook come first, then those that would meet it once the manual checks hold, then the
rest; within each group, by calibrated probability, then rule points, then credit code.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from scoring.tiers import TIERS

RANK_RULE = ("排名规则: 先按是否符合认定条件分组(符合 → 待人工核实后可符合 → 暂不符合), "
             "组内按模型预测的认定概率从高到低, 概率相同时按评分高低, 再按统一社会信用代码排序。")


def rank_candidates(scored: pl.DataFrame, keep: Sequence[str] = ()) -> pl.DataFrame:
    """scored: uscc, name, district, tier (key), eligible, eligible_if_unknowns_hold, points,
    gaps, needs_review, probability, reasons → candidates in outputs.md's shape, plus tier_key
    and the `keep` columns of scored, last (e.g. a row number to find each candidate's row)."""
    group = (pl.when(pl.col("eligible")).then(0)
             .when(pl.col("eligible_if_unknowns_hold")).then(1).otherwise(2))
    ranked = (scored.with_columns(group.alias("_group"))
              .sort(["tier", "_group", "probability", "points", "uscc"],
                    descending=[False, False, True, True, False], nulls_last=True)
              .with_columns(pl.int_range(1, pl.len() + 1).over("tier").alias("rank")))
    return ranked.select(
        "uscc", "name", "district",
        pl.col("tier").replace_strict(TIERS).alias("tier"),
        "eligible", "points", "gaps", "probability", "rank", "reasons",
        pl.col("tier").alias("tier_key"), "eligible_if_unknowns_hold", "needs_review", *keep,
    ).sort(pl.col("tier_key").replace_strict({t: i for i, t in enumerate(TIERS)}), "rank")
