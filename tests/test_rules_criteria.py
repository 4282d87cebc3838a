"""Every criterion in every rulebook: pass, fail, exact boundary and missing value.

Cases are generated from the YAML: each threshold is tried at its value, a step either side and
null; each points band at its own boundary. One-criterion rulebooks wrap the node under test.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from scoring.rulebook import (
    Bands,
    Dimension,
    Flag,
    Manual,
    Matches,
    Points,
    Rulebook,
    Source,
    Switch,
    Threshold,
    walk,
)
from scoring.rules import DERIVED, evaluate_rulebook, example_panel, load_rulebooks

ALL = load_rulebooks(include_alternatives=True)
DAY = dt.date(2025, 12, 31)


def wrap(*criteria) -> Rulebook:
    return Rulebook(
        id="t",
        version="t",
        tier="eaglet",
        name_zh="测试",
        source=Source(document="t"),
        effective_from=dt.date(2000, 1, 1),
        effective_to=None,
        jurisdiction="t",
        criteria=list(criteria),
    )


def wrap_item(item) -> Rulebook:
    dim = Dimension(id="d", label="维度", items=[item])
    return wrap(
        Points(
            kind="points",
            id="p",
            label="评分",
            min_total=0,
            max_total=dim.max_points,
            dimensions=[dim],
        )
    )


def results(out: pl.DataFrame, node_id: str) -> list[dict]:
    return [next(c for c in json.loads(j) if c["id"] == node_id) for j in out["criteria"]]


def _leaves(kind):
    seen, out = set(), []
    for b in ALL:
        for n in walk(b.tree):
            conds = [n] + ([c.when for c in n.cases] if isinstance(n, Switch) else [])
            for c in conds:
                if isinstance(c, kind):
                    key = c.model_dump_json(exclude={"id", "label", "note", "presume"})
                    if key not in seen:
                        seen.add(key)
                        out.append(pytest.param(c, id=f"{b.id}:{c.id}"))
    return out


def _input_feature(feature: str) -> str:
    """A derived feature is fed through one panel column whose value it passes on unchanged."""
    return {
        "rd_expense_2y_total": "rd_expense_py",
        "rd_expense_2y_avg": "rd_expense_py",
        "rd_expense_3y_avg": "rd_expense_py",
        "ip_valid_total": "invention_granted_valid",
        "ip_class_2_tsme": "utility_valid",
    }.get(feature, feature)


def _rows_for(feature: str, values: list[float | None]) -> list[dict]:
    """Panel rows giving `feature` each value (derived features through their inputs)."""
    rows = []
    for v in values:
        if feature not in DERIVED:
            rows.append({feature: v})
        elif feature == "rd_expense_2y_total":
            rows.append({"rd_expense_py": v, "rd_expense_py2": None if v is None else 0.0})
        elif feature == "rd_expense_2y_avg":
            rows.append({"rd_expense_py": v, "rd_expense_py2": v})
        elif feature == "rd_expense_3y_avg":
            rows.append({"rd_expense_py": v, "rd_expense_py2": v, "rd_expense_py3": v})
        elif feature == "ip_valid_total":
            zero = None if v is None else 0.0
            rows.append({"invention_granted_valid": v, "utility_valid": zero, "design_valid": zero})
        elif feature == "ip_class_2_tsme":
            rows.append({"utility_valid": v, "design_valid": None if v is None else 0.0})
        elif feature == "revenue_cagr_2y":
            rows.append(
                {"revenue_py3": 100.0, "revenue_py": None if v is None else 100 * (1 + v) ** 2}
            )
        elif feature == "founded_year":
            rows.append({"age_years": None if v is None else (DAY.year - v) + 0.5})
        else:  # pragma: no cover
            raise AssertionError(feature)
    return rows


@pytest.mark.parametrize("leaf", _leaves(Threshold))
def test_threshold_pass_fail_boundary_and_null(leaf: Threshold):
    v = leaf.value
    step = 1 if leaf.feature == "founded_year" else max(abs(v), 1) * 1e-3
    values = [v, v + step, v - step, None]
    expected = {
        ">=": ["pass", "pass", "fail", "unknown"],
        ">": ["fail", "pass", "fail", "unknown"],
        "<=": ["pass", "fail", "pass", "unknown"],
        "<": ["fail", "fail", "pass", "unknown"],
    }[leaf.op]
    out = evaluate_rulebook(example_panel(_rows_for(leaf.feature, values), DAY), wrap(leaf))
    assert [r["result"] for r in results(out, leaf.id)] == expected
    # a null feature is never a pass: not eligible, though it may hold after review
    assert out["eligible"].to_list()[3] is False
    assert out["eligible_if_unknowns_hold"].to_list()[3] is (leaf.presume == "pass")


@pytest.mark.parametrize("leaf", _leaves(Flag))
def test_flag_true_false_null(leaf: Flag):
    rows = [{leaf.feature: leaf.expect}, {leaf.feature: not leaf.expect}, {leaf.feature: None}]
    out = evaluate_rulebook(example_panel(rows, DAY), wrap(leaf))
    assert [r["result"] for r in results(out, leaf.id)] == ["pass", "fail", "unknown"]
    assert out["gaps"].to_list()[1] == (leaf.fail_text or f"不满足：{leaf.label}")


# GB/T 4754-2017 codes and the 300号 sector each belongs to (None: a sector 300号 does not cover, or
# a code that cannot tell), typed from the standard's division names, not read from the rulebooks.
SECTOR_OF = {
    "C3963": "industry", "B0610": "industry", "D4411": "industry", "3411": "industry", "C": "industry",
    "A0111": "farming", "A": "farming", "E4711": "construction", "4711": "construction",
    "F5179": "wholesale", "F5211": "retail", "G5430": "transport", "G5920": "warehousing",
    "G6010": "postal", "H6110": "lodging_catering", "H6210": "lodging_catering", "H": "lodging_catering",
    "I6421": "telecom", "I6513": "software", "6513": "software", "K7010": "property_development",
    "K7020": "property_management", "L7212": "leasing_business", "K7030": "other_listed",
    "K7090": "other_listed", "M7320": "other_listed", "N7721": "other_listed", "O8011": "other_listed",
    "Q8510": "other_listed", "R8610": "other_listed",
    "G5310": None,  # 铁路运输业, outside 交通运输业
    "K70": None,    # 房地产业 without its 中类
    "K7040": None,  # 自有房地产经营活动
    "J6620": None, "P8331": None, "Q8411": None, "S9121": None, "I": None,
    "C6513": None,  # letter and 大类 disagree
}


@pytest.mark.parametrize("leaf", _leaves(Matches))
def test_industry_match(leaf: Matches):
    """Each sector case of the SME switch takes exactly its own codes; a null code is unknown."""
    sector = leaf.id.removeprefix("sector_")
    codes = [*SECTOR_OF, None]
    out = evaluate_rulebook(example_panel([{leaf.feature: c} for c in codes], DAY), wrap(leaf))
    expected = ["pass" if SECTOR_OF[c] == sector else "fail" for c in SECTOR_OF] + ["unknown"]
    assert [r["result"] for r in results(out, leaf.id)] == expected


def test_every_sector_of_the_table_has_its_case():
    cases = {leaf.values[0].id.removeprefix("sector_") for leaf in _leaves(Matches)}
    assert cases == {s for s in SECTOR_OF.values() if s is not None}


def test_manual_is_always_unknown_and_listed():
    leaf = Manual(kind="manual", id="m", label="从事细分市场年限")
    out = evaluate_rulebook(example_panel([{}, {"revenue_py": 1e6}], DAY), wrap(leaf))
    assert [r["result"] for r in results(out, "m")] == ["unknown", "unknown"]
    assert out["eligible"].to_list() == [False, False]
    assert out["eligible_if_unknowns_hold"].to_list() == [True, True]
    assert out["needs_review"].to_list() == ["从事细分市场年限(需人工核实)"] * 2
    fail = Manual(kind="manual", id="m", label="科技奖励", presume="fail")
    out = evaluate_rulebook(example_panel([{}], DAY), wrap(fail))
    assert out["eligible_if_unknowns_hold"].to_list() == [False]


def _band_cases():
    cases = []
    for b in ALL:
        for n in walk(b.tree):
            if (
                isinstance(n, Bands)
                and n.feature not in DERIVED
                and all(band.feature is None for band in n.bands)
            ):
                cases.append(pytest.param(n, id=f"{b.id}:{n.id}"))
    return cases


def _expected_points(item: Bands, x: float) -> float:
    ops = {">=": x.__ge__, ">": x.__gt__, "<=": x.__le__, "<": x.__lt__}
    for band in item.bands:
        if band.value is None or ops[item.band_op(band)](band.value):
            return band.points
    raise AssertionError


@pytest.mark.parametrize("item", _band_cases())
def test_each_band_at_its_boundary_and_between(item: Bands):
    values = [b.value for b in item.bands[:-1]]
    probes = sorted({*values, *(v + 1e-4 for v in values), *(v - 1e-4 for v in values)})
    out = evaluate_rulebook(
        example_panel([{item.feature: x} for x in probes] + [{item.feature: None}], DAY),
        wrap_item(item),
    )
    got = results(out, item.id)
    for x, r in zip(probes, got, strict=False):
        assert r["points"] == _expected_points(item, x), (item.id, x)
    # missing value: no points counted, the item stays open up to its maximum
    assert got[-1]["points"] == item.bands[-1].points
    assert got[-1]["result"] == "unknown"
    assert got[-1]["max_points"] == item.max_points


def test_63_boundaries_score_in_the_higher_band():
    """criteria.md §1.2: boundary values score in the higher band (R&D 3 % → 15, not 10)."""
    rb = next(b for b in ALL if b.id == "miit-2022-innovative_sme")
    rows = [
        {
            "rd_intensity_py": 0.03,
            "main_revenue_growth_py": 0.0,
            "debt_ratio_py": 0.55,
            "main_business_share_py": 0.70,
        },
        {
            "rd_intensity_py": 0.05,
            "main_revenue_growth_py": 0.15,
            "debt_ratio_py": 0.75,
            "main_business_share_py": 0.50,
        },
    ]
    out = evaluate_rulebook(example_panel(rows, DAY), rb)
    pts = {
        i: [r["points"] for r in results(out, i)]
        for i in ("rd_intensity", "main_revenue_growth", "debt_ratio", "main_business_share")
    }
    assert pts == {
        "rd_intensity": [15, 20],
        "main_revenue_growth": [5, 20],  # 0 % growth is in the 0–5 % band
        "debt_ratio": [10, 5],  # "≤ 55 %" → 10; 75 % is the top of 55–75 % → 5
        "main_business_share": [20, 5],
    }


def test_debt_ratio_in_annex_2_puts_50_percent_in_the_lower_band():
    """附件2 writes "< 50 % → 5; 50–60 → 3": 50 % scores 3."""
    rb = next(b for b in ALL if b.id == "miit-2022-specialised_sme")
    out = evaluate_rulebook(
        example_panel([{"debt_ratio_py": x} for x in (0.4999, 0.5, 0.7)], DAY), rb
    )
    assert [r["points"] for r in results(out, "debt_ratio")] == [5, 3, 0]


def test_boundary_survives_floating_point_arithmetic():
    leaf = Threshold(
        kind="threshold",
        id="r",
        label="研发费用占比",
        feature="rd_intensity_py",
        op=">=",
        value=0.3,
        unit="pct",
    )
    values = [0.7 - 0.4, 0.1 * 3, 0.2999]  # 0.29999999999999993, 0.30000000000000004, below
    out = evaluate_rulebook(
        example_panel([{"rd_intensity_py": v} for v in values], DAY), wrap(leaf)
    )
    assert [r["result"] for r in results(out, "r")] == ["pass", "pass", "fail"]


def test_ip_item_floor_with_review_ceiling():
    """Ⅰ类 scores 10 from the data; 高价值 or 自主研发 (20 / 15) needs review. Ⅱ类 patents (5) and
    no patents (0) are floors too: non-patent IP the drop cannot see may score up to 20."""
    rb = next(b for b in ALL if b.id == "miit-2022-innovative_sme")
    item = rb.node("ip")
    rows = [
        {"ip_class_1": 2, "ip_class_2": 0},
        {"ip_class_1": 0, "ip_class_2": 3},
        {"ip_class_1": 0, "ip_class_2": 0},
        {"ip_class_1": None, "ip_class_2": 1},
    ]
    out = evaluate_rulebook(example_panel(rows, DAY), wrap_item(item))
    got = [(r["result"], r["points"], r["max_points"]) for r in results(out, "ip")]
    assert got == [("unknown", 10, 20), ("unknown", 5, 20), ("unknown", 0, 20), ("unknown", 5, 20)]


def test_best_of_takes_the_better_basis():
    rb = next(b for b in ALL if b.id == "miit-2022-specialised_sme")
    item = rb.node("rd_input")
    rows = [
        {"rd_expense_py": 450, "rd_intensity_py": 0.035},  # 8 by amount, 2 by share
        {"rd_expense_py": 120, "rd_intensity_py": 0.11},  # 2 by amount, 10 by share
        {"rd_expense_py": 80, "rd_intensity_py": None},
    ]  # 0 by amount, share unknown
    out = evaluate_rulebook(example_panel(rows, DAY), wrap_item(item))
    got = [(r["result"], r["points"], r["max_points"]) for r in results(out, "rd_input")]
    assert got == [("pass", 8, 8), ("pass", 10, 10), ("unknown", 0, 10)]


def test_switch_with_unknown_selector_is_unknown():
    rb = next(b for b in ALL if b.id == "most-high_tech_enterprise")
    node = rb.node("rd_by_size")
    rows = [
        {"revenue_py": None, "rd_intensity_3y": 0.06},  # passes every band: still unknown?
        {"revenue_py": None, "rd_intensity_3y": 0.02},  # fails every band
        {"revenue_py": None, "rd_intensity_3y": 0.045},
    ]
    out = evaluate_rulebook(example_panel(rows, DAY), wrap(node))
    # 6 % meets every band, so the size does not matter; 2 % meets none; 4.5 % depends on size
    assert [r["result"] for r in results(out, "rd_by_size")] == ["pass", "fail", "unknown"]
    assert out["needs_review"].to_list()[2] == "上年营业收入(数据缺失，需人工核实)"
