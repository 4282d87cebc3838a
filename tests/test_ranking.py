"""The lists' order (scoring.ranking.rank_order): tiers as TIERS lists them, then eligible →
eligible once the manual checks hold → not eligible, then probability, points and credit code."""

from __future__ import annotations

import polars as pl

from scoring.ranking import PROBABILITY_DECIMALS, list_columns, rank_order
from scoring.tiers import TIERS


def test_rank_order_follows_the_rank_rule():
    first = next(iter(TIERS))
    second = next(t for t in TIERS if t < first)   # after `first` in TIERS, before it as text
    scored = pl.DataFrame({
        # rows of the second tier come first in the frame: the lists follow TIERS, not the frame
        "uscc": ["B", "A", "C", "D", "E", "F", "G", "H"],
        "tier": [second, second, first, first, first, first, first, first],
        "eligible": [False, True, False, True, False, True, True, False],
        "eligible_if_unknowns_hold": [False, True, True, True, False, True, True, False],
        "points": [10.0, 5.0, 90.0, 40.0, None, 40.0, 70.0, 80.0],
        "probability": [0.9, 0.1, 0.99, 0.5, 0.5, 0.5, 0.2, 0.5],
    })
    order = rank_order(scored)
    got = scored.gather(order.get_column("_row")).with_columns(order.get_column("rank"))
    # first tier: eligible D/F (p 0.5, points tie → credit code) before G (p 0.2);
    # then C (eligible once checked, p 0.99); then H before E (same p, E's points unknown: last)
    assert got.select("uscc", "rank").rows() == [
        ("D", 1), ("F", 2), ("G", 3), ("C", 4), ("H", 5), ("E", 6), ("A", 1), ("B", 2)]
    assert got.get_column("tier").to_list() == [first] * 6 + [second] * 2


def test_probabilities_that_print_alike_are_a_tie_broken_by_points():
    """0.0018865999 and 0.0018865998 both print as 0.001887 in candidates.csv: the firm with more
    points ranks first, as the rank rule says, whatever the tenth decimal."""
    tier = next(iter(TIERS))
    scored = pl.DataFrame({"uscc": ["A", "B", "C"], "tier": [tier] * 3, "eligible": [False] * 3,
                           "eligible_if_unknowns_hold": [False] * 3, "points": [10.0, 65.0, 0.0],
                           "probability": [0.0018865999, 0.0018865998, 0.0018880]})
    order = rank_order(scored)
    assert scored.gather(order.get_column("_row"))["uscc"].to_list() == ["C", "B", "A"]
    assert f"{0.0018865999:.{PROBABILITY_DECIMALS}f}" == f"{0.0018865998:.{PROBABILITY_DECIMALS}f}"


def test_list_columns_give_the_outputs_shape():
    tier = next(iter(TIERS))
    row = pl.DataFrame({"uscc": ["X"], "name": ["企业"], "district": [None], "tier": [tier], "eligible": [True],
                        "points": [1.0], "gaps": [""], "probability": [0.5], "rank": [1], "reasons": ["r"],
                        "eligible_if_unknowns_hold": [True], "needs_review": [""]}, strict=False)
    out = row.select(list_columns())
    assert out.columns[:10] == ["uscc", "name", "district", "tier", "eligible", "points", "gaps",
                                "probability", "rank", "reasons"]
    assert out.row(0, named=True)["tier"] == TIERS[tier] and out.row(0, named=True)["tier_key"] == tier
