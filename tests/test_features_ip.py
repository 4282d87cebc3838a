"""Patent features: valid grants, recent filings, the 63号 IP classes and their boundaries, and a
check of the quarter-span arithmetic against a plain per-quarter reading of the definitions."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from data_contracts.periods import Quarter, quarter_range
from features.panel import INPUT_SCHEMAS, PanelConfig, build_panel

D = dt.date


def enterprises(*usccs: str) -> pl.DataFrame:
    return pl.DataFrame([{"uscc": u, "founded_on": D(2000, 1, 1)} for u in usccs],
                        schema=INPUT_SCHEMAS["enterprises"])


def patent_tables(patents: list[dict], owners: list[tuple[str, str]],
                  firms: tuple[str, ...] = ("P", "Q")) -> dict[str, pl.DataFrame]:
    return {
        "enterprises": enterprises(*firms),
        "patents": pl.DataFrame(patents, schema=INPUT_SCHEMAS["patents"]),
        "patent_owners": pl.DataFrame([{"application_no": a, "uscc": u} for a, u in owners],
                                      schema=INPUT_SCHEMAS["patent_owners"]),
    }


def pat(no, kind, filed, granted=None, status="有效"):
    return {"application_no": no, "patent_type": kind, "filed_on": filed, "granted_on": granted,
            "legal_status": status}


PATENTS = [
    pat("u_exact", "实用新型", D(2022, 3, 1), D(2022, 9, 30)),   # granted exactly 2 y before 2024Q3 end
    pat("u_before", "实用新型", D(2022, 3, 1), D(2022, 9, 29)),  # one day earlier
    pat("i_late", "发明", D(2023, 1, 10), D(2024, 10, 15)),     # granted after 2024Q3's end
    pat("i_lapsed", "发明", D(2018, 1, 10), D(2020, 5, 6), "失效"),
    pat("d_old", "外观设计", D(2012, 1, 1), D(2012, 6, 1)),       # 10-year term over in 2022
    pat("i_edge", "发明", D(2022, 9, 30), None, "审中"),          # filed exactly 2 y before 2024Q3 end
    pat("i_future", "发明", D(2024, 10, 1), None, "审中"),        # filed after 2024Q3
    pat("i_shared", "发明", D(2019, 4, 1), D(2021, 4, 1)),        # co-owned by P and Q
    pat("u_stranger", "实用新型", D(2019, 4, 1), D(2019, 9, 1)),  # owner not a registered firm
]
OWNERS = [(p["application_no"], "P") for p in PATENTS if p["application_no"] not in
          ("u_stranger",)] + [("i_shared", "Q"), ("u_stranger", "ZZ")]
QUARTERS = [Quarter(2024, 2), Quarter(2024, 3), Quarter(2024, 4)]


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    return build_panel(patent_tables(PATENTS, OWNERS), QUARTERS)


def at(panel, uscc, quarter):
    return panel.filter((pl.col("uscc") == uscc) & (pl.col("quarter") == quarter)).row(
        0, named=True)


def test_class_2_needs_more_than_two_years_since_grant(panel):
    # rule: granted_on < quarter_end − 2 years; granted on exactly that day does not count yet
    assert at(panel, "P", "2024Q3")["utility_valid"] == 2
    assert at(panel, "P", "2024Q3")["ip_class_2"] == 1   # only u_before
    assert at(panel, "P", "2024Q4")["ip_class_2"] == 2   # u_exact from the next quarter
    assert at(panel, "P", "2024Q2")["ip_class_2"] == 0


def test_grant_after_quarter_end_counts_as_application_only(panel):
    q3, q4 = at(panel, "P", "2024Q3"), at(panel, "P", "2024Q4")
    assert q3["invention_granted_valid"] == 1           # only i_shared (i_lapsed is 失效)
    assert q4["invention_granted_valid"] == 2           # i_late granted 2024-10-15
    assert q3["ip_class_1"] == q3["invention_granted_valid"]


def test_lapsed_and_expired_patents_are_not_valid(panel):
    assert at(panel, "P", "2024Q3")["design_valid"] == 0  # d_old: term ended 2022-01-01
    lenient = build_panel(patent_tables(PATENTS, OWNERS), QUARTERS,
                          PanelConfig(lapsed_patents="valid_until_term"))
    assert at(lenient, "P", "2024Q3")["invention_granted_valid"] == 2  # i_lapsed counted


def test_filing_windows_and_totals(panel):
    q2, q3 = at(panel, "P", "2024Q2"), at(panel, "P", "2024Q3")
    # window (quarter_end − 2 y, quarter_end]: i_edge (filed 2022-09-30) is in for 2024Q2 only
    assert q2["invention_filed_2y"] == 2 and q2["patents_filed_2y"] == 2   # i_late, i_edge
    assert q3["invention_filed_2y"] == 1 and q3["patents_filed_2y"] == 1   # i_late
    assert q3["patents_total"] == 7                      # i_future (filed 2024-10-01) not yet
    assert at(panel, "P", "2024Q4")["patents_total"] == 8


def test_co_owned_patents_count_for_each_owner_and_strangers_for_none(panel):
    q = at(panel, "Q", "2024Q3")
    assert (q["invention_granted_valid"], q["patents_total"]) == (1, 1)
    assert panel.filter(pl.col("uscc") == "ZZ").height == 0


def test_firm_without_patents_has_zero_counts(panel):
    t = patent_tables(PATENTS, OWNERS, firms=("P", "Q", "R"))
    r = at(build_panel(t, QUARTERS), "R", "2024Q3")
    assert r["patents_total"] == 0 and r["ip_class_2"] == 0


# ── the span arithmetic against the definitions read literally, quarter by quarter ─────────

def _plus_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 Feb
        return day.replace(year=day.year + years, day=28)


def _term(p: dict) -> int:
    if p["patent_type"] == "发明":
        return 20
    if p["patent_type"] == "外观设计" and p["filed_on"] >= D(2021, 6, 1):
        return 15
    return 10


def expected_counts(p: dict, q: Quarter) -> dict[str, int]:
    end = q.end
    two_years_before = end.replace(year=end.year - 2)
    filed, granted = p["filed_on"], p["granted_on"]
    if filed > end:
        return {}
    valid = (granted is not None and granted <= end < _plus_years(filed, _term(p))
             and p["legal_status"] != "失效")
    kind = p["patent_type"]
    return {
        "patents_total": 1,
        "patents_filed_2y": int(filed > two_years_before),
        "invention_filed_2y": int(filed > two_years_before and kind == "发明"),
        "invention_granted_valid": int(valid and kind == "发明"),
        "utility_valid": int(valid and kind == "实用新型"),
        "design_valid": int(valid and kind == "外观设计"),
        "ip_class_1": int(valid and kind == "发明"),
        "ip_class_2": int(valid and kind != "发明" and granted < two_years_before),
    }


@pytest.mark.parametrize("cells_at_once", [None, 3 * 241, 1],
                         ids=["all features in one pass", "three per pass", "one per pass"])
def test_spans_agree_with_a_literal_per_quarter_count(cells_at_once, monkeypatch):
    """12 firms × 20 quarters = 240 cells per feature; a smaller budget of cells counted at once
    splits the eight features over several passes, which must not change a count."""
    if cells_at_once is not None:
        monkeypatch.setattr("features.ip.COUNT_CELLS_AT_ONCE", cells_at_once)
    rng = random.Random(3)
    quarters = quarter_range(Quarter(2020, 1), Quarter(2024, 4))
    edges = [d for q in quarter_range(Quarter(2008, 1), Quarter(2025, 1))
             for d in (q.end, q.end - dt.timedelta(days=1), q.end + dt.timedelta(days=1))]
    edges += [D(2012, 2, 29), D(2016, 2, 29), D(2020, 2, 29), D(2021, 5, 31), D(2021, 6, 1)]
    firms = [f"F{i:02d}" for i in range(12)]
    patents, owners = [], []
    for i in range(400):
        filed = rng.choice(edges)
        granted = (None if rng.random() < 0.25
                   else filed + dt.timedelta(days=rng.choice([0, 1, 90, 365, 730, 731])))
        kind = rng.choice(["发明", "实用新型", "外观设计"])
        patents.append(pat(f"N{i}", kind, filed, granted, rng.choice(["有效", "有效", "失效", "审中"])))
        owners += [(f"N{i}", f) for f in rng.sample(firms, rng.choice([1, 1, 2]))]
    panel = build_panel(patent_tables(patents, owners, tuple(firms)), quarters)

    by_no = {p["application_no"]: p for p in patents}
    expected: dict[tuple[str, str], dict[str, int]] = {}
    for no, firm in owners:
        for q in quarters:
            cell = expected.setdefault((firm, str(q)), {})
            for name, n in expected_counts(by_no[no], q).items():
                cell[name] = cell.get(name, 0) + n
    names = list(expected_counts(patents[0], Quarter(2030, 1)))
    assert panel.height == len(firms) * len(quarters)
    for r in panel.iter_rows(named=True):
        want = expected[(r["uscc"], r["quarter"])]
        assert {n: r[n] for n in names} == {n: want.get(n, 0) for n in names}, (
            r["uscc"], r["quarter"])


def test_expiry_quarter_is_the_quarter_of_the_statutory_end_date():
    """The term ends on the same month and day 10, 15 or 20 years on, so its quarter is the
    filing quarter + 4 per year — for every filing date, 29 February included."""
    from features.ip import (
        DESIGN,
        INVENTION,
        UTILITY,
        patent_quarters,
        quarter_of,
        statutory_expiry_quarter,
    )

    days = pl.date_range(D(2000, 1, 1), D(2024, 12, 31), eager=True)
    patents = pl.DataFrame({"filed_on": pl.concat([days] * 3),
                            "patent_type": [INVENTION] * len(days) + [UTILITY] * len(days)
                            + [DESIGN] * len(days), "granted_on": None}).with_columns(
        pl.col("granted_on").cast(pl.Date))
    years = (pl.when(pl.col("patent_type") == INVENTION).then(pl.lit("20y"))
             .when((pl.col("patent_type") == DESIGN) & (pl.col("filed_on") >= D(2021, 6, 1)))
             .then(pl.lit("15y")).otherwise(pl.lit("10y")))
    check = patents.with_columns(patent_quarters()).with_columns(
        statutory_expiry_quarter(),
        quarter_of(pl.col("filed_on").dt.offset_by(years)).alias("expected"))
    assert (check["expiry_q"] == check["expected"]).all()
