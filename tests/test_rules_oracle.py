"""The vectorised evaluator against a plain row-by-row reading of the same rulebooks.

The reference below is written from the rulebook semantics (three-valued logic, presumptions,
points floors and ceilings), not from scoring.rules, and runs on random firms with missing values.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import numpy as np
import pytest

from scoring.rulebook import (
    AllOf,
    AnyOf,
    Bands,
    BestOf,
    Flag,
    Manual,
    ManualItem,
    Matches,
    Points,
    Switch,
    Threshold,
)
from scoring.rules import DERIVED, evaluate_rulebook, example_panel, load_rulebooks

EPS = 1e-9


def _cmp(x: float, op: str, v: float) -> bool:
    e = EPS * max(1.0, abs(v))
    return {">=": x >= v - e, ">": x > v + e, "<=": x <= v + e, "<": x < v - e}[op]


def _derived(row: dict) -> dict:
    def f(k):
        v = row.get(k)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    def add(*ks):
        vals = [f(k) for k in ks]
        return None if None in vals else sum(vals)

    out = dict(row)
    out["rd_expense_2y_total"] = add("rd_expense_py", "rd_expense_py2")
    s2 = out["rd_expense_2y_total"]
    out["rd_expense_2y_avg"] = None if s2 is None else s2 / 2
    s3 = add("rd_expense_py", "rd_expense_py2", "rd_expense_py3")
    out["rd_expense_3y_avg"] = None if s3 is None else s3 / 3
    r1, r3 = f("revenue_py"), f("revenue_py3")
    out["revenue_cagr_2y"] = None if r1 is None or r3 is None or r3 <= 0 else math.sqrt(r1 / r3) - 1
    rd, pr = f("rd_expense_py"), f("profit_py")
    costs = None if r1 is None or pr is None else r1 - pr
    out["rd_cost_share_py"] = None if costs is None or rd is None or costs <= 0 else rd / costs
    out["ip_valid_total"] = add("invention_granted_valid", "utility_valid", "design_valid")
    out["ip_class_2_tsme"] = add("utility_valid", "design_valid")
    age = f("age_years")
    qe = row["quarter_end"]
    out["founded_year"] = (
        None if age is None else float((qe - dt.timedelta(days=round(age * 365.25))).year)
    )
    return out


def _value(row: dict, feature: str):
    v = row.get(feature)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _cond(leaf, row):
    """True / False / None (unknown)."""
    v = _value(row, leaf.feature)
    if v is None:
        return None
    if isinstance(leaf, Threshold):
        return _cmp(float(v), leaf.op, leaf.value)
    if isinstance(leaf, Flag):
        return bool(v) == leaf.expect
    return re.search(leaf.pattern, str(v)) is not None


def _band_points(item: Bands, row) -> tuple[float, float, float]:
    """(floor, ceiling, the score under the bands' review_presume)."""
    possible = []
    blocked = False
    for band in item.bands:
        if band.value is None:
            c = True
        else:
            v = _value(row, item.band_feature(band))
            c = None if v is None else _cmp(float(v), item.band_op(band), band.value)
        if c is not False:
            raised = band.review_max or band.points
            possible.append((band.points, raised,
                             raised if band.review_presume == "pass" else band.points))
        if c is True:
            blocked = True
            break
    assert blocked
    return (min(p[0] for p in possible), max(p[1] for p in possible),
            max(p[2] for p in possible))


def _item(item, row, out):
    if isinstance(item, ManualItem):
        lo, hi, hp = item.min_points, item.max_points, item.max_points
    elif isinstance(item, BestOf):
        kids = [_item(i, row, out) for i in item.items]
        lo, hi, hp = (max(k[j] for k in kids) for j in range(3))
    else:
        lo, hi, hp = _band_points(item, row)
    out[item.id] = ("unknown" if lo != hi else "pass" if lo > 0 else "fail", lo)
    return lo, hi, hp


def reference(node, row, out) -> tuple[bool, bool, bool]:
    """(certainly passes, passes if unknowns pass, passes under presumptions); fills out[id]."""
    if isinstance(node, (Threshold, Flag, Matches)):
        c = _cond(node, row)
        lo, hi = c is True, c is not False
        hp = hi if node.presume == "pass" else lo
    elif isinstance(node, Manual):
        lo, hi, hp = False, True, node.presume == "pass"
    elif isinstance(node, (AllOf, AnyOf)):
        kids = [reference(c, row, out) for c in node.criteria]
        agg = all if isinstance(node, AllOf) else any
        lo, hi, hp = (agg(k[i] for k in kids) for i in range(3))
        if node.presume == "fail":
            hp = lo
    elif isinstance(node, Switch):
        branches = [c.then for c in node.cases] + [node.otherwise]
        conds = [_cond(c.when, row) for c in node.cases] + [True]
        results = []
        for i, branch in enumerate(branches):
            may = all(c is not True for c in conds[:i]) and conds[i] is not False
            sub: dict = {}
            r = reference(branch, row, sub)
            if may:
                out.update(sub)
                results.append(r)
        lo = all(r[0] for r in results)
        hi = any(r[1] for r in results)
        hp = lo if node.presume == "fail" else any(r[2] for r in results)
    elif isinstance(node, Points):
        tot_lo = tot_hi = tot_hp = 0.0
        lo = hi = hp = True
        for dim in node.dimensions:
            triples = [_item(i, row, out) for i in dim.items]
            dlo, dhi, dhp = (sum(t[j] for t in triples) for j in range(3))
            res = "pass" if dlo >= dim.min - EPS else "fail" if dhi < dim.min - EPS else "unknown"
            out[dim.id] = (res, dlo)
            tot_lo, tot_hi, tot_hp = tot_lo + dlo, tot_hi + dhi, tot_hp + dhp
            lo &= dlo >= dim.min - EPS
            hi &= dhi >= dim.min - EPS
            hp &= dhp >= dim.min - EPS
        lo &= tot_lo >= node.min_total - EPS
        hi &= tot_hi >= node.min_total - EPS
        hp &= tot_hp >= node.min_total - EPS
        out[node.id + "__total"] = tot_lo
    else:  # pragma: no cover
        raise TypeError(node)
    if not isinstance(node, Points):
        out[node.id] = ("pass" if lo else "fail" if not hi else "unknown", None)
    else:
        out[node.id] = ("pass" if lo else "fail" if not hi else "unknown", out[node.id + "__total"])
    return lo, hi, hp


def random_firms(n: int, seed: int) -> list[dict]:
    """Firms scattered around the rule thresholds, with a fifth of the values missing."""
    rng = np.random.default_rng(seed)
    codes = ["C3963", "I6513", "3411", "F5123", None]

    def num(scale: float, spread: float = 1.0):
        if rng.random() < 0.2:
            return None
        return float(round(scale * rng.lognormal(0, spread), 4))

    firms = []
    for _ in range(n):
        firm = {
            "industry_code": codes[rng.integers(len(codes))],
            "employees": num(300),
            "age_years": num(5, 0.6),
            "total_assets": num(10000),
            **{k: num(3000) for k in ["revenue_py", "revenue_py3", "profit_py"]},
            **{k: num(150) for k in ["rd_expense_py", "rd_expense_py2", "rd_expense_py3"]},
            **{
                k: num(0.04, 0.7)
                for k in ["rd_intensity_py", "rd_intensity_py2", "rd_intensity_3y"]
            },
            **{k: num(0.5, 0.4) for k in ["debt_ratio_py", "main_business_share_py"]},
            "rd_staff_share": num(0.15, 0.7),
            "net_margin_py": num(0.05, 0.8),
            **{
                k: (None if rng.random() < 0.2 else float(rng.normal(0.08, 0.12)))
                for k in [
                    "main_revenue_growth_py",
                    "main_revenue_growth_2y_avg",
                    "net_profit_growth_py",
                ]
            },
            **{
                k: (None if rng.random() < 0.2 else float(rng.poisson(1.5)))
                for k in [
                    "ip_class_1",
                    "ip_class_2",
                    "invention_granted_valid",
                    "utility_valid",
                    "design_valid",
                    "patents_total",
                ]
            },
            **{k: num(800, 1.5) for k in ["equity_raised_2y", "equity_raised_3y"]},
            "post_money_last_usd_yi": num(0.8),
            "post_money_last_yi": num(5),
        }
        for key in [
            "high_tech_enterprise",
            "innovative_sme",
            "tech_innovative_sme",
            "specialised_sme",
            "rd_institution_provincial",
        ]:
            firm[f"holds_{key}"] = None if rng.random() < 0.1 else bool(rng.random() < 0.3)
        firms.append(firm)
    return firms


@pytest.fixture(scope="module")
def firms() -> list[dict]:
    return random_firms(400, seed=7)


@pytest.mark.parametrize("rulebook", load_rulebooks(include_alternatives=True), ids=lambda b: b.id)
def test_vectorised_matches_reference(rulebook, firms):
    day = max(rulebook.effective_from, dt.date(2025, 12, 31))
    panel = example_panel(firms, day)
    out = evaluate_rulebook(panel, rulebook)
    assert out.height == len(firms)
    rows = panel.to_dicts()
    for got, row in zip(out.iter_rows(named=True), rows, strict=True):
        ref: dict = {}
        lo, _, hp = reference(rulebook.tree, _derived(row), ref)
        assert got["eligible"] == lo, row
        assert got["eligible_if_unknowns_hold"] == hp, row
        entries = {c["id"]: c for c in json.loads(got["criteria"])}
        for cid, entry in ref.items():
            if cid.endswith("__total"):
                continue
            result, points = entry
            assert cid in entries, (cid, row)
            assert entries[cid]["result"] == result, (cid, row)
            if points is not None:
                assert entries[cid]["points"] == pytest.approx(points), (cid, row)
        assert set(entries) == {k for k in ref if not k.endswith("__total")}


def test_derived_features_agree_with_reference(firms):
    panel = example_panel(firms)
    got = panel.select([fn().alias(name) for name, (fn, _) in DERIVED.items()]).to_dicts()
    for row, values in zip(panel.to_dicts(), got, strict=True):
        ref = _derived(row)
        for name, value in values.items():
            if ref[name] is None:
                assert value is None or not math.isfinite(value), name
            else:
                assert value == pytest.approx(ref[name]), name


@pytest.mark.parametrize("rulebook", load_rulebooks(include_alternatives=True), ids=lambda b: b.id)
def test_texts_agree_with_the_outcome(rulebook, firms):
    """Failing firms say why (also those failing only on a presumption: 否 with an empty 差距 left
    1,548 rows of a city's workbook unexplained); eligible firms have no gaps; undecided firms
    have a review list."""
    day = max(rulebook.effective_from, dt.date(2025, 12, 31))
    out = evaluate_rulebook(example_panel(firms, day), rulebook)
    for row in out.iter_rows(named=True):
        root = json.loads(row["criteria"])[0]
        assert root["id"] == "root"
        if root["result"] == "fail":
            assert row["gaps"], row
        if row["eligible"]:
            assert row["gaps"] == "" and root["result"] == "pass", row
        if root["result"] == "unknown":
            assert row["needs_review"], row
        if row["eligible"] is False and not row["eligible_if_unknowns_hold"]:
            # 否 in the workbook and the PDF: what keeps the firm out is said, also when it is a
            # check presumed to fail (a score short unless a review raises it, a value missing)
            assert row["gaps"], row
        assert "；；" not in row["gaps"] and not row["gaps"].startswith("；")
