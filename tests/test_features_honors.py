"""Honor features: held at the quarter's end (recognised by then and still valid) and years
since the latest recognition."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from data_contracts.honors import honor_key
from data_contracts.periods import Quarter
from features.panel import INPUT_SCHEMAS, PanelConfig, build_panel

D = dt.date
HONORS = [
    ("H", "高新技术企业", D(2020, 12, 1), D(2023, 11, 30)),
    ("H", "高新技术企业", D(2023, 12, 1), D(2026, 11, 30)),   # renewed
    ("H", "专精特新中小企业", D(2022, 6, 15), None),
    ("H", '专精特新"小巨人"', D(2024, 7, 1), D(2027, 6, 30)),  # name variant of little_giant
    ("H", "雏鹰企业", D(2021, 1, 1), D(2023, 12, 31)),          # ends on a quarter end
    ("H", "某某奖", D(2021, 1, 1), None),                        # not a known honor
]
QUARTERS = [Quarter(2023, 3), Quarter(2023, 4), Quarter(2024, 1), Quarter(2024, 3)]


def tables() -> dict[str, pl.DataFrame]:
    return {
        "enterprises": pl.DataFrame([{"uscc": u, "founded_on": D(2015, 1, 1)} for u in "HK"],
                                    schema=INPUT_SCHEMAS["enterprises"]),
        "honors": pl.DataFrame([{"uscc": u, "honor": h, "recognized_on": r, "valid_until": v}
                                for u, h, r, v in HONORS], schema=INPUT_SCHEMAS["honors"]),
    }


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    return build_panel(tables(), QUARTERS)


def at(panel, uscc, quarter):
    return panel.filter((pl.col("uscc") == uscc) & (pl.col("quarter") == quarter)).row(
        0, named=True)


def years(a: dt.date, b: dt.date) -> float:
    return (b - a).days / 365.25


def test_held_across_a_renewal_and_years_since_the_latest(panel):
    q3, q4 = at(panel, "H", "2023Q3"), at(panel, "H", "2023Q4")
    assert q3["holds_high_tech_enterprise"] and q4["holds_high_tech_enterprise"]
    assert q3["years_since_high_tech_enterprise"] == pytest.approx(
        years(D(2020, 12, 1), D(2023, 9, 30)))
    assert q4["years_since_high_tech_enterprise"] == pytest.approx(
        years(D(2023, 12, 1), D(2023, 12, 31)))


def test_valid_until_on_the_quarter_end_is_still_held(panel):
    assert at(panel, "H", "2023Q4")["holds_eaglet"] is True
    after = at(panel, "H", "2024Q1")
    assert after["holds_eaglet"] is False
    assert after["years_since_eaglet"] == pytest.approx(years(D(2021, 1, 1), D(2024, 3, 31)))


def test_recognition_after_the_quarter_end_is_not_seen(panel):
    before = at(panel, "H", "2024Q1")
    assert before["holds_little_giant"] is False and before["years_since_little_giant"] is None
    assert at(panel, "H", "2024Q3")["holds_little_giant"] is True


def _undated(honor: str, quarters: list[Quarter], config: PanelConfig | None = None) -> list[bool]:
    """holds_<its key> at each quarter for one recognition on 2022-06-15 without valid_until."""
    frames = tables()
    frames["honors"] = pl.DataFrame([{"uscc": "H", "honor": honor, "recognized_on": D(2022, 6, 15)}],
                                    schema=INPUT_SCHEMAS["honors"])
    panel = build_panel(frames, quarters, config)
    key = honor_key(honor)
    return panel.filter(pl.col("uscc") == "H").get_column(f"holds_{key}").to_list()


def test_missing_valid_until_of_a_title_with_a_statutory_term_ends_with_the_term():
    """专精特新 and 高企 are valid three years (criteria.md §1.1, §3.1): recognised 2022-06-15
    without 有效期至, held at 2025Q1's end, no longer at 2025Q2's (after 2025-06-15); a default
    term for undated titles does not shorten a statutory one."""
    quarters = [Quarter(2024, 3), Quarter(2025, 1), Quarter(2025, 2)]
    assert _undated("专精特新中小企业", quarters) == [True, True, False]
    assert _undated("高新技术企业", quarters) == [True, True, False]
    assert _undated("专精特新中小企业", quarters, PanelConfig(honor_default_validity_years=2)) == [
        True, True, False]


def test_missing_valid_until_of_another_title_means_held_unless_a_default_term_is_set():
    quarters = [Quarter(2023, 4), Quarter(2024, 3), Quarter(2026, 3)]
    assert _undated("省级研发机构", quarters) == [True, True, True]
    assert _undated("省级研发机构", quarters, PanelConfig(honor_default_validity_years=2)) == [
        True, False, False]


def test_firm_without_honors_and_unknown_names(panel):
    k = at(panel, "K", "2024Q3")
    assert not any(v for n, v in k.items() if n.startswith("holds_"))
    assert all(v is None for n, v in k.items() if n.startswith("years_since_"))
    h = at(panel, "H", "2024Q3")
    held = sorted(n for n, v in h.items() if n.startswith("holds_") and v)
    assert held == ["holds_high_tech_enterprise", "holds_little_giant", "holds_specialised_sme"]
