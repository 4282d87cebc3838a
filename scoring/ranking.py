"""Ranked candidate lists: one row per enterprise and tier considered.

The rank within a tier is stated in one sentence (RANK_RULE) so the report can print it: firms that
meet the rulebook come first, then those that would meet it once the manual checks hold, then the
rest; within each group, by calibrated probability, then rule points, then credit code.

Probabilities are compared as candidates.csv prints them (PROBABILITY_DECIMALS): two firms shown
at 0.001887 are a tie, broken by points then credit code, as the sentence says — not by a
difference in the tenth decimal nobody can see, which made the published order look wrong and
could not be redone from the CSV.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from scoring.tiers import TIERS

PROBABILITY_DECIMALS = 6   # candidates.csv's float_precision (reports.tables.write_csv)

RANK_RULE = ("排名规则: 先按是否符合认定条件分组(符合 → 待人工核实后可符合 → 暂不符合), "
             "组内按模型预测的认定概率从高到低, 概率 (保留 6 位小数, 即 candidates.csv 所列) 相同时按评分高低, "
             "再按统一社会信用代码排序。")


def rank_order(scored: pl.DataFrame) -> pl.DataFrame:
    """The lists' order of `scored` (uscc, tier key, eligible, eligible_if_unknowns_hold, points,
    probability): `_row`, each row's position in scored, and its `rank` in its tier, tier by tier
    as TIERS lists them and by rank within. Only these sort keys are sorted; the caller gathers
    its wide columns once in this order (a province's 7M rows with their texts, sorted whole,
    doubled the run's memory)."""
    group = (pl.when(pl.col("eligible")).then(0)
             .when(pl.col("eligible_if_unknowns_hold")).then(1).otherwise(2))
    position = {t: i for i, t in enumerate(TIERS)}
    shown = pl.col("probability").round(PROBABILITY_DECIMALS)
    return (scored.select(pl.col("tier").replace_strict(position, return_dtype=pl.UInt8).alias("_tier"),
                          group.alias("_group"), shown, "points", "uscc")
            .with_row_index("_row")
            .sort(["_tier", "_group", "probability", "points", "uscc"],
                  descending=[False, False, True, True, False], nulls_last=True, maintain_order=True)
            .select("_row", pl.int_range(1, pl.len() + 1).over("_tier").alias("rank")))


def list_columns(keep: Sequence[str] = ()) -> list[str | pl.Expr]:
    """candidates in outputs.md's shape (tier as its Chinese name), then tier_key, the columns
    the report reads beside them and `keep`, from rows that carry the tier key as `tier`."""
    return ["uscc", "name", "district", pl.col("tier").replace_strict(TIERS).alias("tier"),
            "eligible", "points", "gaps", "probability", "rank", "reasons",
            pl.col("tier").alias("tier_key"), "eligible_if_unknowns_hold", "needs_review", *keep]
