"""Financial features of the panel: de-cumulation, trailing four quarters, prior years, growth,
ratios and stocks — small inline returns with hand-computed values."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from data_contracts.periods import Quarter
from features.panel import INPUT_SCHEMAS, PanelConfig, build_panel

# Firm A files every quarter 2020Q1–2024Q2. Revenue YTD → quarterly flows:
#   2020: 5 12 20 30  → 5 7 8 10        2021: 10 25 45 70 → 10 15 20 25
#   2022: 20 50 80 110 → 20 30 30 30    2023: 30 60 100 150 → 30 30 40 50
#   2024: 40 90 → 40 50
REVENUE_A = {
    2020: [5, 12, 20, 30], 2021: [10, 25, 45, 70], 2022: [20, 50, 80, 110],
    2023: [30, 60, 100, 150], 2024: [40, 90],
}
MAIN_Q4_A = {2020: 20.0, 2021: 50.0, 2022: 60.0, 2023: 90.0}   # growth 0.2 then 0.5
RD_Q4_A = {2020: 1.0, 2021: 2.1, 2022: 4.4, 2023: 6.0}
NET_Q4_A = {2020: 1.0, 2021: 8.0, 2022: -5.0, 2023: 10.0}


def firm_a_returns() -> list[dict]:
    rows = []
    for year, ytds in REVENUE_A.items():
        for q, revenue in enumerate(ytds, start=1):
            q4 = q == 4
            rows.append({
                "uscc": "A", "period": f"{year}Q{q}", "revenue_ytd": float(revenue),
                "main_revenue_ytd": MAIN_Q4_A[year] if q4 else revenue / 2,
                "profit_ytd": 1.0 * q, "net_profit_ytd": NET_Q4_A[year] if q4 else 0.0,
                "rd_expense_ytd": RD_Q4_A[year] if q4 else 0.1 * q,
                "total_assets": 200.0 if (year, q) == (2023, 4) else 250.0,
                "total_liabilities": 80.0 if (year, q) == (2023, 4) else 150.0,
                "employees": 50, "rd_staff": 10,
            })
    return rows


# Firm B misses 2022Q3: the flows of 2022Q3 and 2022Q4 are unknown (null, not zero).
RETURNS_B = [
    ("2022Q1", 20.0), ("2022Q2", 50.0), ("2022Q4", 110.0),
    ("2023Q1", 30.0), ("2023Q2", 60.0), ("2023Q3", 100.0), ("2023Q4", 150.0),
]


def tables(extra_filings: list[dict] | None = None) -> dict[str, pl.DataFrame]:
    enterprises = pl.DataFrame([
        {"uscc": "A", "name": "甲", "founded_on": dt.date(2015, 1, 1), "status": "存续"},
        {"uscc": "B", "name": "乙", "founded_on": dt.date(2016, 1, 1), "status": "注销"},
        {"uscc": "C", "name": "丙", "founded_on": dt.date(2022, 5, 1), "status": "在业"},
    ], schema=INPUT_SCHEMAS["enterprises"])
    rows = firm_a_returns()
    rows += [{"uscc": "B", "period": p, "revenue_ytd": r, "employees": 7, "total_assets": 10.0,
              "total_liabilities": 1.0} for p, r in RETURNS_B]
    rows += [  # C: founded 2022, so its 3-year R&D intensity counts 2022 and 2023 only
        {"uscc": "C", "period": "2022Q4", "revenue_ytd": 100.0, "rd_expense_ytd": 10.0},
        {"uscc": "C", "period": "2023Q4", "revenue_ytd": 300.0, "rd_expense_ytd": 20.0},
    ]
    rows += extra_filings or []
    return {"enterprises": enterprises,
            "filings": pl.DataFrame(rows, schema=INPUT_SCHEMAS["filings"])}


def row(panel: pl.DataFrame, uscc: str, quarter: str) -> dict:
    found = panel.filter((pl.col("uscc") == uscc) & (pl.col("quarter") == quarter))
    assert found.height == 1, f"{uscc} {quarter}: {found.height} rows"
    return found.row(0, named=True)


QUARTERS = [Quarter.parse(q) for q in ("2022Q1", "2022Q2", "2023Q1", "2023Q3", "2023Q4",
                                       "2024Q1", "2024Q2", "2025Q1")]


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    return build_panel(tables(), QUARTERS)


def test_trailing_four_quarters_from_decumulated_returns(panel):
    assert row(panel, "A", "2022Q2")["revenue_ttm"] == 20 + 25 + 20 + 30
    assert row(panel, "A", "2023Q4")["revenue_ttm"] == 150.0
    assert row(panel, "A", "2024Q1")["revenue_ttm"] == 30 + 40 + 50 + 40
    assert row(panel, "A", "2024Q2")["revenue_ttm"] == 40 + 50 + 40 + 50
    # profit YTD is 1, 2, 3, 4 each year: every quarter's own flow is 1
    assert row(panel, "A", "2024Q2")["profit_ttm"] == 4.0


def test_missing_quarter_makes_dependent_flows_null_not_zero(panel):
    assert row(panel, "B", "2023Q1")["revenue_ttm"] is None  # includes 2022Q3 itself
    assert row(panel, "B", "2023Q3")["revenue_ttm"] is None  # 2022Q4 flow needs 2022Q3 YTD
    assert row(panel, "B", "2023Q4")["revenue_ttm"] == 150.0  # all four 2023 flows known
    assert row(panel, "B", "2024Q1")["revenue_ttm"] is None  # no 2024Q1 return


def test_falling_ytd_gives_a_negative_quarter(panel):
    extra = [{"uscc": "D", "period": p, "revenue_ytd": v}
             for p, v in [("2023Q1", 10.0), ("2023Q2", 8.0), ("2023Q3", 20.0), ("2023Q4", 30.0)]]
    t = tables(extra)
    t["enterprises"] = pl.concat([t["enterprises"], pl.DataFrame(
        [{"uscc": "D", "founded_on": dt.date(2010, 1, 1)}], schema=INPUT_SCHEMAS["enterprises"])])
    p = build_panel(t, [Quarter(2023, 4)])
    assert row(p, "D", "2023Q4")["revenue_ttm"] == 10 - 2 + 12 + 10


def test_prior_year_is_last_full_year_ending_by_the_quarter(panel):
    q3 = row(panel, "A", "2023Q3")          # 2023 not complete: prior year 2022
    assert (q3["revenue_py"], q3["revenue_py2"], q3["revenue_py3"]) == (110.0, 70.0, 30.0)
    q4 = row(panel, "A", "2023Q4")          # Q4 itself completes 2023
    assert (q4["revenue_py"], q4["revenue_py2"], q4["revenue_py3"]) == (150.0, 110.0, 70.0)
    assert row(panel, "A", "2024Q2")["rd_expense_py"] == 6.0
    assert row(panel, "A", "2024Q2")["net_profit_py"] == 10.0
    assert row(panel, "A", "2024Q2")["profit_py"] == 4.0


def test_prior_year_without_its_q4_return_is_null_not_an_older_year():
    extra = [{"uscc": "E", "period": p, "revenue_ytd": v}
             for p, v in [("2022Q4", 100.0), ("2023Q3", 90.0)]]
    t = tables(extra)
    t["enterprises"] = pl.concat([t["enterprises"], pl.DataFrame(
        [{"uscc": "E", "founded_on": dt.date(2010, 1, 1)}], schema=INPUT_SCHEMAS["enterprises"])])
    r = row(build_panel(t, [Quarter(2024, 1)]), "E", "2024Q1")
    assert r["revenue_py"] is None and r["revenue_py2"] == 100.0


def test_growth_and_cagr(panel):
    r = row(panel, "A", "2024Q2")
    assert r["revenue_growth_yoy"] == pytest.approx(180 / 120 - 1)  # ttm 2023Q2 = 30+30+30+30
    assert r["main_revenue_growth_py"] == pytest.approx(0.5)        # 90 / 60
    assert r["main_revenue_growth_2y_avg"] == pytest.approx((0.5 + 0.2) / 2)
    assert r["revenue_cagr_3y"] == pytest.approx(math.sqrt(150 / 70) - 1)
    assert r["net_profit_growth_py"] is None                         # base 2022 is a loss
    assert row(panel, "A", "2023Q3")["net_profit_growth_py"] == pytest.approx(-5 / 8 - 1)


def test_growth_is_null_when_the_base_is_zero():
    extra = [{"uscc": "F", "period": p, "revenue_ytd": v, "main_revenue_ytd": v}
             for p, v in [("2021Q4", 0.0), ("2022Q4", 0.0), ("2023Q4", 50.0)]]
    t = tables(extra)
    t["enterprises"] = pl.concat([t["enterprises"], pl.DataFrame(
        [{"uscc": "F", "founded_on": dt.date(2010, 1, 1)}], schema=INPUT_SCHEMAS["enterprises"])])
    r = row(build_panel(t, [Quarter(2024, 1)]), "F", "2024Q1")
    assert r["main_revenue_growth_py"] is None
    assert r["main_revenue_growth_2y_avg"] is None
    assert r["revenue_cagr_3y"] is None
    assert r["rd_intensity_py2"] is None


def test_ratios(panel):
    r = row(panel, "A", "2024Q2")
    assert r["rd_intensity_py"] == pytest.approx(6.0 / 150)
    assert r["rd_intensity_py2"] == pytest.approx(4.4 / 110)
    assert r["rd_intensity_3y"] == pytest.approx((6.0 + 4.4 + 2.1) / (150 + 110 + 70))
    assert r["debt_ratio_py"] == pytest.approx(80 / 200)   # 2023Q4 balance sheet
    assert r["debt_ratio"] == pytest.approx(150 / 250)     # latest return, 2024Q2
    assert r["net_margin_py"] == pytest.approx(10 / 150)
    assert r["main_business_share_py"] == pytest.approx(90 / 150)
    assert r["rd_staff_share"] == pytest.approx(10 / 50)
    assert (r["employees"], r["total_assets"]) == (50, 250.0)


def test_three_year_rd_intensity_of_a_young_firm_uses_its_actual_years(panel):
    r = row(panel, "C", "2024Q2")   # founded 2022: years 2023 and 2022 only
    assert r["rd_intensity_3y"] == pytest.approx((20 + 10) / (300 + 100))
    assert row(panel, "A", "2022Q1")["rd_intensity_3y"] is None  # founded 2015, 2019Q4 missing
    assert row(panel, "A", "2023Q1")["rd_intensity_3y"] == pytest.approx(
        (4.4 + 2.1 + 1.0) / (110 + 70 + 30))


def test_stocks_come_from_the_latest_return_within_the_age_limit(panel):
    assert row(panel, "B", "2024Q2")["employees"] == 7      # 2023Q4, two quarters old
    assert row(panel, "B", "2025Q1")["employees"] is None   # five quarters old
    strict = build_panel(tables(), [Quarter(2024, 2)], PanelConfig(max_stock_age_quarters=1))
    assert row(strict, "B", "2024Q2")["total_assets"] is None


def test_rows_are_firms_founded_by_the_quarter_end_with_any_status(panel):
    firms_2022q1 = panel.filter(pl.col("quarter") == "2022Q1")["uscc"].to_list()
    assert firms_2022q1 == ["A", "B"]                      # C founded 2022-05-01
    assert row(panel, "B", "2024Q2")["status"] == "注销"
    assert panel.select("uscc", "quarter").equals(panel.select("uscc", "quarter").sort(
        "uscc", "quarter"))
