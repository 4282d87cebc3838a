"""The panel as a whole: its rows, columns and order, identity and chain features, inputs that
are missing or odd, and the configuration."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from data_contracts.periods import Quarter
from features.panel import (
    FINANCIAL_FEATURES,
    INPUT_SCHEMAS,
    KEYS,
    PANEL_FEATURES,
    PanelConfig,
    build_panel,
    financial_panel,
)

D = dt.date
FIRMS = [  # uscc, founded_on, district, chain_layer, chain_leader
    ("L1", D(2010, 1, 1), "环科园", "技术产品层", True),
    ("M1", D(2015, 1, 1), "环科园", "技术产品层", None),
    ("M2", D(2015, 1, 1), "环科园", "应用示范层", False),
    ("M3", D(2015, 1, 1), "经开区", "技术产品层", False),
    ("M4", D(2015, 1, 1), "环科园", None, False),
    ("L2", D(2024, 5, 1), "经开区", "基础支撑层", True),   # a 链主 founded in 2024Q2
    ("M5", D(2000, 1, 1), "经开区", "基础支撑层", False),
    ("L3", D(2012, 1, 1), "宜城街道", None, True),          # a 链主 outside any layer
    ("N0", None, "万石镇", None, None),                      # founding date unknown
]


def tables() -> dict[str, pl.DataFrame]:
    return {"enterprises": pl.DataFrame(
        [{"uscc": u, "name": u, "founded_on": f, "district": d, "chain_layer": c,
          "chain_leader": leader, "status": "存续"} for u, f, d, c, leader in FIRMS],
        schema=INPUT_SCHEMAS["enterprises"])}


def ties(panel: pl.DataFrame, quarter: str) -> dict[str, bool]:
    rows = panel.filter(pl.col("quarter") == quarter)
    return dict(zip(rows["uscc"], rows["chain_leader_tie"], strict=True))


def test_columns_keys_then_the_contract_features_in_order():
    panel = build_panel(tables(), [Quarter(2024, 1)])
    assert panel.columns == [*KEYS, *PANEL_FEATURES]
    assert panel.schema["quarter"] == pl.Utf8 and panel.schema["quarter_end"] == pl.Date


def test_rows_sorted_by_uscc_then_quarter_and_quarters_deduplicated():
    quarters = [Quarter(2024, 2), Quarter(2023, 4), Quarter(2024, 2)]
    panel = build_panel(tables(), quarters)
    keys = panel.select("uscc", "quarter")
    assert keys.equals(keys.sort("uscc", "quarter"))
    assert sorted(set(panel["quarter"])) == ["2023Q4", "2024Q2"]
    assert panel.filter(pl.col("quarter") == "2024Q2")["quarter_end"].to_list()[0] == D(2024, 6, 30)


def test_chain_leader_tie():
    panel = build_panel(tables(), [Quarter(2024, 1), Quarter(2024, 2)])
    q1, q2 = ties(panel, "2024Q1"), ties(panel, "2024Q2")
    assert q1 == {"L1": True, "M1": True, "M2": False, "M3": False, "M4": False, "M5": False,
                  "L3": True, "N0": False}                 # L2 not founded yet
    assert q2["M5"] is True and q2["L2"] is True          # L2 founded 2024-05-01


def test_firm_without_founding_date_is_kept_with_unknown_age():
    panel = build_panel(tables(), [Quarter(2024, 1)])
    n0 = panel.filter(pl.col("uscc") == "N0").row(0, named=True)
    assert n0["age_years"] is None
    m1 = panel.filter(pl.col("uscc") == "M1").row(0, named=True)
    assert m1["age_years"] == pytest.approx((D(2024, 3, 31) - D(2015, 1, 1)).days / 365.25)


def test_absent_tables_give_empty_features_not_errors():
    panel = build_panel(tables(), [Quarter(2024, 1)])
    r = panel.row(0, named=True)
    assert r["revenue_ttm"] is None and r["patents_total"] == 0 and r["financing_rounds"] == 0
    assert r["holds_high_tech_enterprise"] is False and r["project_planned_year_yi"] == 0.0


def test_extra_columns_are_ignored_and_missing_optional_ones_are_null():
    t = tables()
    t["enterprises"] = t["enterprises"].drop("chain_layer", "chain_leader").with_columns(
        pl.lit("x").alias("former_names"))
    panel = build_panel(t, [Quarter(2024, 1)])
    assert panel["chain_layer"].null_count() == panel.height
    assert not panel["chain_leader_tie"].any()


def test_bad_calls_fail_clearly():
    with pytest.raises(ValueError, match="no quarters"):
        build_panel(tables(), [])
    with pytest.raises(KeyError, match="enterprises"):
        build_panel({}, [Quarter(2024, 1)])
    with pytest.raises(ValidationError):
        PanelConfig(lapsed_patents="sometimes")
    with pytest.raises(ValidationError):
        PanelConfig(max_stock_age_quarters=-1)


def test_no_enterprises_gives_an_empty_panel_with_every_column():
    empty = {"enterprises": pl.DataFrame(schema=INPUT_SCHEMAS["enterprises"])}
    panel = build_panel(empty, [Quarter(2024, 1)])
    assert panel.height == 0 and panel.columns == [*KEYS, *PANEL_FEATURES]


# ── the same panel however the inputs come ────────────────────────────────────────────────

@pytest.fixture(scope="module")
def rich():
    """Random tables with every kind of input, and their panel over 16 quarters."""
    from test_features_lookahead import QUARTERS, random_tables

    tables = random_tables(seed=3, n=60)
    return tables, QUARTERS, build_panel(tables, QUARTERS)


def test_lazy_tables_give_the_same_panel(rich):
    tables, quarters, panel = rich
    lazy = {name: frame.lazy() for name, frame in tables.items()}
    assert_frame_equal(build_panel(lazy, quarters), panel, check_exact=True)


def test_the_order_of_the_input_rows_does_not_matter(rich):
    tables, quarters, panel = rich
    shuffled = {name: frame.sample(fraction=1.0, shuffle=True, seed=9)
                for name, frame in tables.items()}
    assert_frame_equal(build_panel(shuffled, quarters), panel, check_exact=True)


VALUATIONS = ("post_money_last_yi", "post_money_last_usd_yi")


def test_a_firms_features_read_only_its_own_rows(rich):
    """Built for one firm alone, its rows are the same as in the whole panel (chain_leader_tie
    aside, which looks at other firms by definition) — also for neighbours in the firm order,
    whose returns sit next to each other in the financial grid. The valuations agree to the
    last bit or one ulp: Polars rounds post_money × rate ÷ 1e4 differently when every event
    in the frame has the same currency."""
    tables, quarters, panel = rich
    for uscc in tables["enterprises"]["uscc"].sort()[20:26]:
        alone = {name: frame.filter(pl.col("uscc") == uscc) if "uscc" in frame.columns else frame
                 for name, frame in tables.items()}
        own = build_panel(alone, quarters).drop("chain_leader_tie")
        mine = panel.filter(pl.col("uscc") == uscc).drop("chain_leader_tie")
        assert_frame_equal(own.drop(VALUATIONS), mine.drop(VALUATIONS), check_exact=True)
        assert_frame_equal(own.select(VALUATIONS), mine.select(VALUATIONS), rel_tol=1e-15)


def test_financial_panel_is_the_panels_financial_columns(rich):
    tables, quarters, panel = rich
    assert_frame_equal(financial_panel(tables, quarters),
                       panel.select("uscc", "quarter", *FINANCIAL_FEATURES), check_exact=True)
