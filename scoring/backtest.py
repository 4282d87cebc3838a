"""Backtest: the lists tidu would have produced at a quarter against who was recognised later.

For each tier and list length k: recall@k (share of the firms later recognised that the top k
held) and precision@k (share of the top k later recognised), for the rule points alone and for
tidu's lists as published (eligibility group, then probability), ties broken by credit code.
The rules' figures are null for a tier whose rule points tie every firm (no points, nobody
eligible: 高企, 雏鹰, 瞪羚). `enough_positives` is false for a tier with fewer later
recognitions than the model's metrics need (MIN_POSITIVES): one firm more or less moves its
recall from 0 to 100 %, and the report prints no figure for it, as the manifest reports no metric.
"""

from __future__ import annotations

import polars as pl

from scoring.ranking import PROBABILITY_DECIMALS
from scoring.tiers import TIERS

KS = (10, 25, 50, 100)
# The fewest positives (firms later recognised) a figure is reported for: in the model's
# validation metrics (scoring.model) and in the backtest, its table and the report.
MIN_POSITIVES = 20


def rule_score() -> pl.Expr:
    """The rule-points baseline: eligible firms first, then by points."""
    return pl.col("rule_eligible").fill_null(0) + pl.col("rule_points").fill_null(0) / 100.0


def list_score() -> pl.Expr:
    """tidu's lists as published (scoring.ranking): firms that meet the rulebook first, then those
    that would once the manual checks hold, then the rest, each group by probability (as printed);
    for rows with the rulebook's verdict and the model's `p`."""
    group = (pl.when(pl.col("rule_eligible") == 1).then(2)
             .when(pl.col("rule_eligible_if_unknowns_hold") == 1).then(1).otherwise(0))
    return group * 2 + pl.col("p").round(PROBABILITY_DECIMALS)


def lift_table(frame: pl.DataFrame, ks: tuple[int, ...] = KS) -> pl.DataFrame:
    """frame: uscc, tier, label (0/1), p (tidu's list order, higher first: `list_score`, or minus the
    published rank), score_rules → one row per tier and k."""
    rows = []
    for tier, zh in TIERS.items():
        part = frame.filter(pl.col("tier") == tier)
        if part.height == 0:
            continue
        positives = int(part.get_column("label").sum() or 0)
        # rule points that rank nobody above anybody (no points, nobody eligible) make no list:
        # their recall would be set by the tie-break alone
        rules_rank = part.get_column("score_rules").n_unique() > 1
        # each score's longest list once (top_k, then its few rows sorted), not a full sort per k
        tops = {col: part.top_k(max(ks), by=[col, "uscc"], reverse=[False, True])
                .sort([col, "uscc"], descending=[True, False]).get_column("label")
                for col in ("score_rules", "p")}
        for k in ks:
            row = {"tier_key": tier, "tier": zh, "k": k, "firms": part.height, "positives": positives,
                   "enough_positives": positives >= MIN_POSITIVES}
            for name, col in (("rules", "score_rules"), ("tidu", "p")):
                hits = int(tops[col].head(k).sum() or 0)
                ranked = rules_rank or name == "tidu"
                row[f"recall_{name}"] = hits / positives if positives and ranked else None
                row[f"precision_{name}"] = hits / min(k, part.height) if ranked else None
            rows.append(row)
    schema = {"tier_key": pl.Utf8, "tier": pl.Utf8, "k": pl.Int64, "firms": pl.Int64, "positives": pl.Int64,
              "enough_positives": pl.Boolean, "recall_rules": pl.Float64, "precision_rules": pl.Float64, "recall_tidu": pl.Float64,
              "precision_tidu": pl.Float64}
    return pl.DataFrame(rows, schema=schema)
