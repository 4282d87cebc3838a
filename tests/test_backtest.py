"""The backtest's lift table against recall and precision counted by hand, row by row."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from scoring.backtest import KS, lift_table
from scoring.tiers import TIERS


def _frame(seed: int) -> pl.DataFrame:
    """Candidates of three tiers with many tied scores (so the credit-code tie-break decides who
    is in a top k), one tier smaller than the longest list and one tier with no positives."""
    rng = np.random.default_rng(seed)
    sizes = {"innovative_sme": 400, "tech_sme": 60, "eaglet": 150}
    parts = []
    for tier, n in sizes.items():
        labels = (rng.random(n) < 0.1).astype(np.int8) if tier != "eaglet" else np.zeros(n, np.int8)
        parts.append(pl.DataFrame({
            "uscc": [f"91320282{rng.integers(10**9):010d}" for _ in range(n)],
            "tier": [tier] * n,
            "label": labels,
            "p": np.round(rng.random(n), 1),                      # 11 distinct values: ties
            "score_rules": rng.integers(0, 2, n) + rng.integers(0, 5, n) * 10 / 100.0,
        }))
    return pl.concat(parts).sample(fraction=1.0, shuffle=True, seed=seed)


def _by_hand(frame: pl.DataFrame, tier: str, score: str, k: int) -> int:
    """Positives among the tier's first k rows, highest score first, then by credit code."""
    rows = [r for r in frame.iter_rows(named=True) if r["tier"] == tier]
    rows.sort(key=lambda r: (-r[score], r["uscc"]))
    return sum(r["label"] for r in rows[:k])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lift_table_counts_the_top_k_as_a_full_sort_would(seed: int):
    frame = _frame(seed)
    table = lift_table(frame)
    present = frame.get_column("tier").unique().to_list()
    assert sorted(table.get_column("tier_key").unique().to_list()) == sorted(present)
    assert table.height == len(present) * len(KS)
    for row in table.iter_rows(named=True):
        tier, k = row["tier_key"], row["k"]
        firms = frame.filter(pl.col("tier") == tier)
        positives = int(firms.get_column("label").sum())
        assert row["tier"] == TIERS[tier]
        assert (row["firms"], row["positives"]) == (firms.height, positives)
        for name, score in (("rules", "score_rules"), ("tidu", "p")):
            hits = _by_hand(frame, tier, score, k)
            assert row[f"precision_{name}"] == pytest.approx(hits / min(k, firms.height))
            if positives:
                assert row[f"recall_{name}"] == pytest.approx(hits / positives)
            else:
                assert row[f"recall_{name}"] is None


def test_lift_table_of_no_candidates_is_empty_with_its_columns():
    empty = pl.DataFrame(schema={"uscc": pl.Utf8, "tier": pl.Utf8, "label": pl.Int8,
                                 "p": pl.Float64, "score_rules": pl.Float64})
    table = lift_table(empty)
    assert table.height == 0
    assert table.columns == ["tier_key", "tier", "k", "firms", "positives", "enough_positives", "recall_rules",
                             "precision_rules", "recall_tidu", "precision_tidu"]


def test_rule_points_that_tie_every_firm_make_no_list():
    """高企, 雏鹰 and 瞪羚 give no points and nobody is eligible at the validation quarter: every
    firm's rule score is the same, and a recall of that "list" is the tie-break's (credit codes).
    The rules' figures are null (the report prints "—"); tidu's stand. An audit found 0 % and
    6.2 % printed for them, and AUC 0.500 in the methods table."""
    from scoring.model import score_metrics

    frame = _frame(4).with_columns(
        pl.when(pl.col("tier") == "tech_sme").then(0.0).otherwise(pl.col("score_rules")).alias("score_rules"))
    table = lift_table(frame)
    tied = table.filter(pl.col("tier_key") == "tech_sme")
    assert tied["recall_rules"].null_count() == tied["precision_rules"].null_count() == tied.height
    assert tied["precision_tidu"].null_count() == 0
    ranked = table.filter(pl.col("tier_key") == "innovative_sme")
    assert ranked["precision_rules"].null_count() == 0
    y = np.array([0, 1] * 50)
    assert "各企业得分相同" in score_metrics(y, np.zeros(100), probabilistic=False)["note"]
    assert "auc" in score_metrics(y, np.arange(100.0), probabilistic=False)


def test_tidu_list_in_the_backtest_is_the_published_order():
    """The eligibility group first (是 → 待核实 → 否), then probability as printed: a firm at 否 with
    a high probability comes after one at 待核实 with a low one, as in candidates.csv."""
    from scoring.backtest import list_score

    rows = pl.DataFrame({"uscc": ["a", "b", "c", "d"], "rule_eligible": [0.0, 0.0, 1.0, None],
                         "rule_eligible_if_unknowns_hold": [0.0, 1.0, 1.0, None],
                         "p": [0.9, 0.1, 0.05, 0.95]})
    order = rows.with_columns(list_score().alias("s")).sort("s", descending=True)["uscc"].to_list()
    assert order == ["c", "b", "d", "a"]
