"""Key-project features: the quarter's year only, 亿元, completed pro-rated, intensity in 万元."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from data_contracts.periods import Quarter
from features.panel import INPUT_SCHEMAS, PanelConfig, build_panel

PROJECTS = [
    ("J", 2024, 1.5, 0.8), ("J", 2024, 0.5, None), ("J", 2025, 3.0, 1.0),
    ("K", 2024, 1.0, None),
]
QUARTERS = [Quarter(2024, 2), Quarter(2024, 4)]


def tables() -> dict[str, pl.DataFrame]:
    # J: 10,000 万元 revenue each quarter from 2023Q3 → revenue_ttm 40,000 万元 (4 亿元) at 2024Q2
    ytd = {"2023Q3": 30000.0, "2023Q4": 40000.0, "2024Q1": 10000.0, "2024Q2": 20000.0,
           "2023Q2": 20000.0, "2023Q1": 10000.0}
    return {
        "enterprises": pl.DataFrame(
            [{"uscc": u, "founded_on": dt.date(2010, 1, 1)} for u in "JKL"],
            schema=INPUT_SCHEMAS["enterprises"]),
        "filings": pl.DataFrame([{"uscc": "J", "period": p, "revenue_ytd": v}
                                 for p, v in ytd.items()], schema=INPUT_SCHEMAS["filings"]),
        "projects": pl.DataFrame(
            [{"uscc": u, "year": y, "planned_year": p, "completed_year": c}
             for u, y, p, c in PROJECTS], schema=INPUT_SCHEMAS["projects"]),
    }


def at(panel, uscc, quarter):
    return panel.filter((pl.col("uscc") == uscc) & (pl.col("quarter") == quarter)).row(
        0, named=True)


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    return build_panel(tables(), QUARTERS)


def test_plan_counts_in_full_and_completion_by_elapsed_share(panel):
    q2, q4 = at(panel, "J", "2024Q2"), at(panel, "J", "2024Q4")
    assert q2["project_planned_year_yi"] == pytest.approx(2.0)       # 2025 row not read
    assert q2["project_completed_year_yi"] == pytest.approx(0.8 * 2 / 4)
    assert q4["project_completed_year_yi"] == pytest.approx(0.8)
    as_reported = build_panel(tables(), QUARTERS, PanelConfig(prorate_completed_investment=False))
    assert at(as_reported, "J", "2024Q2")["project_completed_year_yi"] == pytest.approx(0.8)


def test_intensity_converts_yi_to_wan(panel):
    r = at(panel, "J", "2024Q2")
    assert r["revenue_ttm"] == 40000.0
    assert r["project_intensity"] == pytest.approx(2.0 * 1e4 / 40000.0)


def test_firms_without_projects_or_without_completion_figures(panel):
    k, lone = at(panel, "K", "2024Q2"), at(panel, "L", "2024Q2")
    assert k["project_planned_year_yi"] == 1.0 and k["project_completed_year_yi"] is None
    assert (lone["project_planned_year_yi"], lone["project_completed_year_yi"]) == (0.0, 0.0)
    assert lone["project_intensity"] is None                        # no revenue_ttm
