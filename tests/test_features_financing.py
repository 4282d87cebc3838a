"""Financing features: windows, currency, undisclosed amounts, the last valuation, rounds."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from data_contracts.periods import Quarter
from features.panel import INPUT_SCHEMAS, PanelConfig, build_panel

D = dt.date
EVENTS = [
    # 2024Q3 ends 2024-09-30: the 2-year window is (2022-09-30, 2024-09-30], 3-year (2021-09-30, …]
    ("P", D(2021, 9, 30), 1000.0, "人民币", None),    # exactly 3 years back: outside both
    ("P", D(2021, 10, 1), 100.0, "美元", 1000.0),     # 100 万美元, post-money 1000 万美元
    ("P", D(2022, 9, 30), None, "人民币", None),      # undisclosed, exactly 2 years back
    ("P", D(2023, 5, 20), 500.0, None, None),          # currency missing = 人民币
    ("P", D(2024, 3, 1), None, "人民币", 30000.0),    # undisclosed amount, 3 亿元 valuation
    ("P", D(2024, 10, 1), 9999.0, "人民币", None),    # after 2024Q3
    ("Q", D(2023, 1, 1), 10.0, "人民币", 20000.0),    # two events the same day
    ("Q", D(2023, 1, 1), 10.0, "人民币", 50000.0),
    ("Q", D(2023, 6, 1), 10.0, "人民币", None),        # later, no valuation
    (None, D(2023, 6, 1), 10.0, "人民币", None),       # unmatched event
]
QUARTERS = [Quarter(2024, 2), Quarter(2024, 3), Quarter(2024, 4)]


def tables() -> dict[str, pl.DataFrame]:
    return {
        "enterprises": pl.DataFrame(
            [{"uscc": u, "founded_on": D(2015, 1, 1)} for u in ("P", "Q", "R")],
            schema=INPUT_SCHEMAS["enterprises"]),
        "financing": pl.DataFrame(
            [{"uscc": u, "financed_on": d, "amount": a, "currency": c, "post_money": pm}
             for u, d, a, c, pm in EVENTS], schema=INPUT_SCHEMAS["financing"]),
    }


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    return build_panel(tables(), QUARTERS)


def at(panel, uscc, quarter):
    return panel.filter((pl.col("uscc") == uscc) & (pl.col("quarter") == quarter)).row(
        0, named=True)


def test_windows_sum_rmb_with_usd_converted(panel):
    r = at(panel, "P", "2024Q3")
    assert r["equity_raised_2y"] == pytest.approx(500.0)
    assert r["equity_raised_3y"] == pytest.approx(100 * 7.1 + 500)
    assert r["financing_undisclosed_2y"] == 1
    assert r["financing_rounds"] == 5


def test_window_moves_with_the_quarter(panel):
    q2, q4 = at(panel, "P", "2024Q2"), at(panel, "P", "2024Q4")
    assert q2["financing_undisclosed_2y"] == 2           # 2022-09-30 is inside (2022-06-30, …]
    assert q4["equity_raised_2y"] == pytest.approx(500.0 + 9999.0)
    assert q4["financing_rounds"] == 6


def test_last_valuation_and_months_since(panel):
    r = at(panel, "P", "2024Q3")
    assert r["post_money_last_yi"] == pytest.approx(3.0)
    assert r["post_money_last_usd_yi"] == pytest.approx(3.0 / 7.1)
    assert r["months_since_last_round"] == 6             # March → September
    early = build_panel(tables(), [Quarter(2022, 4)])
    e = at(early, "P", "2022Q4")
    assert e["post_money_last_yi"] == pytest.approx(1000 * 7.1 / 1e4)
    assert e["post_money_last_usd_yi"] == pytest.approx(0.1)
    assert at(panel, "P", "2024Q4")["months_since_last_round"] == 2


def test_same_day_valuations_take_the_higher_and_later_events_without_one_keep_it(panel):
    assert at(panel, "Q", "2024Q3")["post_money_last_yi"] == pytest.approx(5.0)


def test_exchange_rate_is_configurable():
    r = at(build_panel(tables(), QUARTERS, PanelConfig(usd_cny=7.0)), "P", "2024Q3")
    assert r["equity_raised_3y"] == pytest.approx(700 + 500)
    with pytest.raises(ValueError):
        PanelConfig(usd_cny=0)


def test_firm_without_financing(panel):
    r = at(panel, "R", "2024Q3")
    assert (r["equity_raised_2y"], r["financing_rounds"], r["financing_undisclosed_2y"]) == (0, 0, 0)
    assert r["post_money_last_yi"] is None and r["months_since_last_round"] is None
