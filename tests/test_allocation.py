"""The allocation MILP: brute-force checks on tiny cities, the constraints, infeasibility, ties,
determinism, the baseline, the KPI tracker and the rationale lines."""

from __future__ import annotations

import copy
import json
import math
import os
import re

import numpy as np
import polars as pl
import pytest
import yaml

from scoring.allocation import allocate, kpi_table
from scoring.policy import DEFAULT_POLICY, parse_policy
from scoring.tiers import TIERS

DEFAULT = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))


def make_policy(
    budget: float,
    *,
    instruments: dict | None = None,
    tiers: dict | None = None,
    per_firm_cap: float = 5,
    districts: dict | None = None,
    layers: dict | None = None,
    shares: list[float] | None = None,
    **solver,
) -> object:
    """A small policy: rewards 3/5 万元 for 专精特新/小巨人, an R&D subsidy and 先投后股 in 万元 units."""
    data = copy.deepcopy(DEFAULT)
    data["budget"]["total_wan"] = budget
    data["tiers"] = tiers or {
        "specialised_sme": {**DEFAULT["tiers"]["specialised_sme"], "weight": 3.0, "reward_wan": 3},
        "little_giant": {**DEFAULT["tiers"]["little_giant"], "weight": 6.0, "reward_wan": 5},
    }
    data["instruments"] = instruments or {
        "recognition_reward": {"name_zh": "认定奖励", "effect_per_wan": 1.0, "source": "假设"},
        "rd_subsidy": {
            "name_zh": "研发费用补助",
            "share_of_rd_expense": 0.1,
            "cap_wan": 4,
            "effect_per_wan": 1.2,
            "eligible_if": [{"column": "rd_expense_py", "op": ">", "value": 0}],
            "source": "假设",
        },
        "invest_then_equity": {
            "name_zh": "先投后股",
            "min_wan": 2,
            "cap_wan": 5,
            "effect_per_wan": 1.5,
            "diminish_after_wan": 3,
            "effect_per_wan_after": 0.5,
            "conversion": "下一轮转股",
            "eligible_if": [{"column": "age_years", "op": "<=", "value": 10}],
            "source": "假设",
        },
    }
    data["per_firm_cap_wan"] = per_firm_cap
    data["districts"] = districts or {"default_ceiling_share": None, "limits": {}, "source": "假设"}
    if layers is not None:
        data["chain_priority"]["layers"] = layers
    data["external_funds"] = []
    data["sensitivity"] = {
        "shares": shares or [0.5, 1.0, 2.0],
        "swing_share": 0.2,
        "marginal_step_share": 0.01,
    }
    data["solver"] = {**DEFAULT["solver"], **solver}
    return parse_policy(data, "test-policy.yaml")


def make_city(n: int, seed: int, districts=("甲镇", "乙街道")) -> tuple[pl.DataFrame, pl.DataFrame]:
    """n firms, two candidate tiers each, probabilities on a 0.05 grid (so ties happen)."""
    rng = np.random.default_rng(seed)
    uscc = [f"91320282MA{seed:03d}{i:05d}" for i in range(n)]
    firms = pl.DataFrame(
        {
            "uscc": uscc,
            "name": [f"企业{seed}-{i}" for i in range(n)],
            "district": [districts[i % len(districts)] for i in range(n)],
            "chain_layer": rng.choice(
                np.array(["基础支撑层", "技术产品层", "应用示范层", None], dtype=object), n
            ).tolist(),
            "chain_leader_tie": (rng.random(n) < 0.3).tolist(),
            "rd_expense_py": np.round(rng.uniform(0, 60, n)).tolist(),
            "age_years": rng.uniform(1, 15, n).round(1).tolist(),
            "revenue_ttm": rng.uniform(500, 5000, n).tolist(),
            "holds_specialised_sme": (rng.random(n) < 0.2).tolist(),
            "holds_little_giant": [False] * n,
        }
    )
    rows = []
    for i in range(n):
        for key in ("specialised_sme", "little_giant"):
            eligible = bool(rng.random() < 0.6)
            rows.append(
                {
                    "uscc": uscc[i],
                    "name": f"企业{seed}-{i}",
                    "district": districts[i % len(districts)],
                    "tier": TIERS[key],
                    "tier_key": key,
                    "eligible": eligible,
                    "eligible_if_unknowns_hold": eligible or bool(rng.random() < 0.5),
                    "points": None,
                    "probability": float(rng.integers(1, 20)) * 0.05,
                    "rank": 1,
                }
            )
    return pl.DataFrame(rows), firms


# --------------------------------------------------------------------------- brute force


def _choices(firm: dict, cands: list[dict], policy) -> list[tuple[float, float]]:
    """(value, charge) of every way to fund one firm, computed from the policy's plain words."""
    layer = policy.chain_priority.layers.get(firm["chain_layer"], policy.chain_priority.unlisted)
    mult = layer * (policy.chain_priority.chain_leader_tie if firm["chain_leader_tie"] else 1.0)
    ok = [
        c
        for c in cands
        if (c["eligible"] or c["eligible_if_unknowns_hold"])
        and not firm.get(f"holds_{c['tier_key']}")
        and c["probability"] > 0
    ]
    out = [(0.0, 0.0)]
    cap = policy.per_firm_cap_wan
    for c in ok:
        reward = policy.tiers[c["tier_key"]].reward_wan
        if 0 < reward <= cap:
            out.append(
                (c["probability"] * policy.tiers[c["tier_key"]].weight * mult * reward, reward)
            )
    if not ok:
        return out
    order = list(TIERS)
    best = max(
        ok,
        key=lambda c: (
            c["probability"] * policy.tiers[c["tier_key"]].weight,
            -order.index(c["tier_key"]),
        ),
    )
    pw = best["probability"] * policy.tiers[best["tier_key"]].weight * mult
    rd = policy.instruments.rd_subsidy
    if firm["rd_expense_py"] > 0:
        top = math.floor(
            min(rd.cap_wan, rd.share_of_rd_expense * firm["rd_expense_py"], cap) + 1e-9
        )
        out += [(pw * rd.effect_per_wan * a, a) for a in range(1, top + 1)]
    ite = policy.instruments.invest_then_equity
    if firm["age_years"] <= 10:
        for a in range(int(ite.min_wan), int(min(ite.cap_wan, cap)) + 1):
            knee = ite.diminish_after_wan
            out.append(
                (
                    pw
                    * (
                        ite.effect_per_wan * min(a, knee)
                        + ite.effect_per_wan_after * max(a - knee, 0)
                    ),
                    a,
                )
            )
    return out


def brute_force(candidates: pl.DataFrame, firms: pl.DataFrame, policy) -> float:
    """The best total expected value over every combination of per-firm choices."""
    budget = policy.budget.total_wan
    limits = policy.districts.limits
    names = sorted(set(firms["district"]))
    value, charge = np.zeros(1), np.zeros(1)
    by_district = np.zeros((1, len(names)))
    for firm in firms.iter_rows(named=True):
        cands = candidates.filter(pl.col("uscc") == firm["uscc"]).to_dicts()
        ch = _choices(firm, cands, policy)
        v = np.array([c[0] for c in ch])
        w = np.array([c[1] for c in ch])
        d = names.index(firm["district"])
        value = (value[:, None] + v[None, :]).ravel()
        charge = (charge[:, None] + w[None, :]).ravel()
        add = np.zeros((len(ch), len(names)))
        add[:, d] = w
        by_district = (by_district[:, None, :] + add[None, :, :]).reshape(-1, len(names))
        keep = charge <= budget + 1e-9
        for j, name in enumerate(names):
            if name in limits and limits[name].ceiling_wan is not None:
                keep &= by_district[:, j] <= limits[name].ceiling_wan + 1e-9
        value, charge, by_district = value[keep], charge[keep], by_district[keep]
    feasible = np.ones(len(value), dtype=bool)
    for j, name in enumerate(names):
        if name in limits:
            feasible &= by_district[:, j] >= limits[name].floor_wan - 1e-9
    return float(value[feasible].max())


@pytest.mark.parametrize(
    "seed,n,budget", [(1, 6, 12), (2, 6, 9), (3, 5, 20), (4, 6, 14), (5, 4, 7)]
)
def test_optimum_equals_exhaustive_search(seed, n, budget):
    candidates, firms = make_city(n, seed)
    policy = make_policy(budget)
    result = allocate(candidates, firms, policy)
    assert result.status == "optimal"
    assert result.expected_value == pytest.approx(brute_force(candidates, firms, policy), rel=1e-5)
    _assert_feasible(result, policy)


def test_optimum_equals_exhaustive_search_with_district_limits():
    candidates, firms = make_city(6, 11)
    districts = {
        "default_ceiling_share": None,
        "source": "假设",
        "limits": {"甲镇": {"floor_wan": 0, "ceiling_wan": 4}, "乙街道": {"floor_wan": 6}},
    }
    policy = make_policy(14, districts=districts)
    result = allocate(candidates, firms, policy)
    assert result.status == "optimal"
    assert result.expected_value == pytest.approx(brute_force(candidates, firms, policy), rel=1e-5)
    _assert_feasible(result, policy)


def _assert_feasible(result, policy):
    a = result.allocation
    assert a["amount_wan"].sum() <= policy.budget.total_wan + 1e-9
    assert a["uscc"].is_unique().all()
    assert (a["amount_wan"] <= policy.per_firm_cap_wan + 1e-9).all()
    assert (a["amount_wan"] > 0).all()


# --------------------------------------------------------------------------- constraints


def test_budget_is_used_up_when_amounts_can_fill_it():
    candidates, firms = make_city(6, 1)
    result = allocate(candidates, firms, make_policy(12))
    assert result.allocation["amount_wan"].sum() == pytest.approx(12)
    assert result.budget_used_wan == pytest.approx(12)


def test_per_firm_cap_binds_and_drops_rewards_above_it():
    candidates, firms = make_city(6, 3)
    policy = make_policy(30, per_firm_cap=4)
    result = allocate(candidates, firms, policy)
    assert (result.allocation["amount_wan"] <= 4).all()
    assert (
        "专精特新小巨人"
        not in result.allocation.filter(pl.col("instrument") == "认定奖励")["tier"].to_list()
    )
    assert result.allocation.filter(pl.col("amount_wan") == 4).height >= 1


def test_district_floor_and_ceiling_hold():
    candidates, firms = make_city(8, 4)
    districts = {
        "default_ceiling_share": None,
        "source": "假设",
        "limits": {"甲镇": {"ceiling_wan": 6}, "乙街道": {"floor_wan": 9}},
    }
    result = allocate(candidates, firms, make_policy(20, districts=districts))
    assert result.status == "optimal"
    spent = _spent_by_district(result, firms)
    assert spent.get("甲镇", 0) <= 6 + 1e-9 and spent.get("乙街道", 0) >= 9 - 1e-9


def test_default_ceiling_share_caps_each_district():
    candidates, firms = make_city(8, 4)
    districts = {"default_ceiling_share": 0.4, "limits": {}, "source": "假设"}
    result = allocate(candidates, firms, make_policy(20, districts=districts))
    assert all(v <= 8 + 1e-9 for v in _spent_by_district(result, firms).values())


def _spent_by_district(result, firms) -> dict[str, float]:
    joined = result.allocation.join(firms.select("uscc", "district"), on="uscc")
    return dict(joined.group_by("district").agg(pl.col("amount_wan").sum()).iter_rows())


def test_instrument_conditions_are_respected():
    candidates, firms = make_city(8, 6)
    result = allocate(candidates, firms, make_policy(40))
    ite = result.allocation.filter(pl.col("instrument") == "先投后股").join(firms, on="uscc")
    assert (ite["age_years"] <= 10).all()
    rd = result.allocation.filter(pl.col("instrument") == "研发费用补助").join(firms, on="uscc")
    assert (rd["amount_wan"] <= rd["rd_expense_py"] * 0.1 + 1e-9).all()


def test_already_held_tiers_get_no_first_recognition_reward():
    candidates, firms = make_city(8, 7)
    firms = firms.with_columns(pl.lit(True).alias("holds_specialised_sme"))
    result = allocate(candidates, firms, make_policy(40))
    rewards = result.allocation.filter(pl.col("instrument") == "认定奖励")
    assert "专精特新中小企业" not in rewards["tier"].to_list()


def test_a_lapsed_title_gets_no_second_first_recognition_reward():
    """A firm recognised as 专精特新 (or 小巨人) before, its title lapsed since, is a candidate for
    renewal: other instruments may fund it, the first-recognition reward is not paid again."""
    candidates, firms = make_city(8, 7)
    rewards_only = {"recognition_reward": {"name_zh": "认定奖励", "effect_per_wan": 1.0, "source": "假设"}}

    def rewarded(firms: pl.DataFrame, instruments=rewards_only) -> set[str]:
        result = allocate(candidates, firms, make_policy(400, instruments=instruments))
        return set(result.allocation.filter(pl.col("instrument") == "认定奖励")
                   .filter(pl.col("tier") == "专精特新中小企业")["uscc"])
    never = rewarded(firms)
    assert never                                     # the case is exercised
    lapsed = sorted(never)[:2]
    since = pl.when(pl.col("uscc").is_in(lapsed)).then(3.5).otherwise(None)
    assert not rewarded(firms.with_columns(since.alias("years_since_specialised_sme"))) & set(lapsed)
    assert not rewarded(firms.with_columns(since.alias("years_since_little_giant"))) & set(lapsed)
    # held nothing ever: still paid
    assert rewarded(firms.with_columns(pl.lit(None, dtype=pl.Float64).alias("years_since_specialised_sme"))) == never
    # the same firms stay fundable by the other instruments
    result = allocate(candidates, firms.with_columns(since.alias("years_since_specialised_sme")),
                      make_policy(400))
    assert set(result.allocation["uscc"]) & set(lapsed)


def test_a_firm_holding_a_higher_tier_gets_no_reward_for_a_lower_one():
    """A 小巨人 has passed 专精特新: nothing is paid on its 专精特新 row (the reward for a first
    recognition, nor an instrument tied to the tier), while firms without the title are funded."""
    candidates, firms = make_city(8, 7)
    firms = firms.with_columns(pl.lit(False).alias("holds_specialised_sme"))
    before = allocate(candidates, firms, make_policy(400))

    def funded_as_specialised(result) -> set[str]:
        return set(result.allocation.filter(pl.col("tier").eq("专精特新中小企业"))["uscc"])
    giants = sorted(funded_as_specialised(before))
    assert giants                                    # the case is exercised
    after = allocate(candidates, firms.with_columns(pl.col("uscc").is_in(giants).alias("holds_little_giant")),
                     make_policy(400))
    assert not funded_as_specialised(after) & set(giants)
    assert set(after.allocation["uscc"]) - set(giants)   # firms without the title are still funded


def test_include_eligible_only_drops_rows_with_unknowns():
    candidates, firms = make_city(6, 8)
    candidates = candidates.with_columns(
        pl.lit(False).alias("eligible"), pl.lit(True).alias("eligible_if_unknowns_hold")
    )
    data = make_policy(20).model_dump(mode="json")
    loose = allocate(candidates, firms, parse_policy(data))
    assert loose.allocation.height and all("待人工核实" in r for r in loose.allocation["rationale"])
    data["candidates"]["include"] = "eligible"
    strict = allocate(candidates, firms, parse_policy(data))
    assert strict.status == "empty" and strict.allocation.height == 0


# --------------------------------------------------------------------------- infeasible, empty


def test_floors_above_the_budget_are_infeasible_with_the_shortfall():
    candidates, firms = make_city(6, 1)
    districts = {
        "default_ceiling_share": None,
        "source": "假设",
        "limits": {"甲镇": {"floor_wan": 8}, "乙街道": {"floor_wan": 7}},
    }
    result = allocate(candidates, firms, make_policy(10, districts=districts))
    assert result.status == "infeasible" and result.allocation.height == 0
    assert any(
        "保底" in s and "合计 15 万元" in s and "总预算 10 万元" in s and "缺口 5 万元" in s
        for s in result.infeasibility
    )
    assert math.isnan(result.marginal_value_per_wan)
    assert json.dumps(result.summary(), ensure_ascii=False)


def test_floor_beyond_what_a_district_can_absorb_names_the_district():
    candidates, firms = make_city(6, 2)
    candidates = candidates.with_columns(pl.lit("乙街道").alias("district"))
    firms = firms.with_columns(pl.lit("乙街道").alias("district"))
    districts = {
        "default_ceiling_share": None,
        "source": "假设",
        "limits": {"丙园区": {"floor_wan": 3}},
    }
    result = allocate(candidates, firms, make_policy(20, districts=districts))
    assert result.status == "infeasible"
    assert any(
        s.startswith("丙园区 保底 3 万元无法满足") and "缺口 3 万元" in s
        for s in result.infeasibility
    )


def test_floor_that_fixed_amounts_cannot_hit_is_explained_by_the_elastic_program():
    # One firm in 丙园区, only a 5 万元 reward possible; floor 2 and ceiling 4 cannot both hold.
    firms = pl.DataFrame(
        {
            "uscc": ["91320282MA0000001X"],
            "name": ["丙园区企业"],
            "district": ["丙园区"],
            "chain_layer": [None],
            "chain_leader_tie": [False],
            "rd_expense_py": [0.0],
            "age_years": [20.0],
        },
        schema_overrides={"chain_layer": pl.Utf8},
    )
    candidates = pl.DataFrame(
        {
            "uscc": ["91320282MA0000001X"],
            "name": ["丙园区企业"],
            "district": ["丙园区"],
            "tier": ["专精特新小巨人"],
            "tier_key": ["little_giant"],
            "eligible": [True],
            "eligible_if_unknowns_hold": [True],
            "probability": [0.5],
            "rank": [1],
        }
    )
    districts = {
        "default_ceiling_share": None,
        "source": "假设",
        "limits": {"丙园区": {"floor_wan": 2, "ceiling_wan": 4}},
    }
    result = allocate(candidates, firms, make_policy(10, districts=districts))
    assert result.status == "infeasible"
    assert result.infeasibility == [
        "丙园区 保底 2 万元无法满足：在预算、板块上限、单户上限和一户一项工具的共同约束下最多只能安排 0 万元，缺口 2 万元。"
    ]


def test_zero_budget_gives_an_empty_allocation():
    candidates, firms = make_city(6, 1)
    result = allocate(candidates, firms, make_policy(0))
    assert result.status == "empty"
    assert result.allocation.height == 0 and result.allocation.columns == [
        "uscc",
        "name",
        "tier",
        "instrument",
        "amount_wan",
        "expected_value",
        "rationale",
    ]
    assert result.sensitivity["expected_value"].to_list() == [0.0, 0.0, 0.0]
    assert result.expected_value == 0


def test_no_fundable_candidate_gives_an_empty_allocation():
    candidates, firms = make_city(4, 1)
    candidates = candidates.with_columns(
        pl.lit(False).alias("eligible"), pl.lit(False).alias("eligible_if_unknowns_hold")
    )
    result = allocate(candidates, firms, make_policy(10))
    assert result.status == "empty" and result.allocation.height == 0


# --------------------------------------------------------------------------- ties, determinism


def test_same_input_gives_identical_output_whatever_the_row_order():
    candidates, firms = make_city(8, 9)
    policy = make_policy(25)
    first, second = allocate(candidates, firms, policy), allocate(candidates, firms, policy)
    shuffled = allocate(
        candidates.sample(fraction=1.0, shuffle=True, seed=3),
        firms.sample(fraction=1.0, shuffle=True, seed=4),
        policy,
    )
    for other in (second, shuffled):
        assert first.allocation.equals(other.allocation)
        assert first.sensitivity.equals(other.sensitivity)
        assert first.entering.equals(other.entering) and first.leaving.equals(other.leaving)
        assert first.baseline.equals(other.baseline) and first.kpis.equals(other.kpis)


def _twins(p_a: float, p_b: float, layer_b: str | None = None):
    firms = pl.DataFrame(
        {
            "uscc": ["91320282MA0000002B", "91320282MA0000001A"],
            "name": ["乙企业", "甲企业"],
            "district": ["甲镇", "甲镇"],
            "chain_layer": [None, layer_b],
            "chain_leader_tie": [False, False],
            "rd_expense_py": [0.0, 0.0],
            "age_years": [20.0, 20.0],
        },
        schema_overrides={"chain_layer": pl.Utf8},
    )
    candidates = pl.DataFrame(
        {
            "uscc": firms["uscc"],
            "name": firms["name"],
            "district": ["甲镇", "甲镇"],
            "tier": ["专精特新中小企业"] * 2,
            "tier_key": ["specialised_sme"] * 2,
            "eligible": [True, True],
            "eligible_if_unknowns_hold": [True, True],
            "probability": [p_a, p_b],
            "rank": [1, 2],
        }
    )
    return candidates, firms


def test_exact_tie_goes_to_the_smaller_uscc():
    candidates, firms = _twins(0.4, 0.4)
    result = allocate(candidates, firms, make_policy(3))
    assert result.allocation["uscc"].to_list() == ["91320282MA0000001A"]


def test_exact_tie_goes_to_the_higher_probability_first():
    # 甲 (smaller uscc) has half the probability but a 2× chain priority: the same expected value.
    candidates, firms = _twins(0.4, 0.2, layer_b="基础支撑层")
    policy = make_policy(3, layers={"基础支撑层": 2.0, "技术产品层": 1.0, "应用示范层": 1.0})
    result = allocate(candidates, firms, policy)
    assert result.allocation["uscc"].to_list() == ["91320282MA0000002B"]


# --------------------------------------------------------------------------- beyond the allocation


def test_baseline_is_the_fixed_reward_to_every_fundable_firm_scaled_to_the_budget():
    candidates, firms = _twins(0.4, 0.2)
    full = allocate(candidates, firms, make_policy(6))
    by_hand = 0.4 * 3 * 1.0 * 3 + 0.2 * 3 * 1.0 * 3  # p × weight × priority × reward, both firms
    fixed = full.baseline.row(1, named=True)
    assert fixed["expected_value"] == pytest.approx(by_hand) and fixed[
        "budget_used_wan"
    ] == pytest.approx(6)
    half = allocate(candidates, firms, make_policy(3)).baseline.row(1, named=True)
    assert half["expected_value"] == pytest.approx(by_hand / 2) and half[
        "budget_used_wan"
    ] == pytest.approx(3)


def test_optimised_beats_the_fixed_reward_baseline():
    candidates, firms = make_city(8, 12)
    result = allocate(candidates, firms, make_policy(15))
    ours, fixed = result.baseline["expected_value"].to_list()
    assert ours >= fixed and ours == pytest.approx(result.expected_value)
    assert result.baseline["budget_used_wan"][1] == pytest.approx(15)


def test_sensitivity_marginal_value_and_swing():
    candidates, firms = make_city(8, 13)
    result = allocate(candidates, firms, make_policy(15, shares=[0.5, 0.8, 1.0, 1.2, 2.0]))
    s = result.sensitivity
    assert s["budget_wan"].to_list() == [7.5, 12, 15, 18, 30]
    ev = s["expected_value"].to_list()
    assert ev == sorted(ev) and ev[2] == pytest.approx(result.expected_value)
    assert result.marginal_value_per_wan >= 0 and math.isfinite(result.marginal_value_per_wan)
    funded = set(result.allocation["uscc"])
    assert not set(result.entering["uscc"]) & funded and set(result.leaving["uscc"]) <= funded


def test_a_larger_budget_may_fund_another_firm_in_place_of_one_funded_now():
    """Rewards only: A's 专精特新 reward is 3 万元 (value 0.5 × 3 × 3), B's 小巨人 reward 5 万元
    (0.5 × 6 × 5). At 4.5 万元 only A fits; at +20 % (5.4) B is worth more and both do not fit,
    so A is dropped; at −20 % (3.6) A again. The memo says so instead of "0 家不再获得资助"."""
    from reports.memo import _swing_sentence

    firms = pl.DataFrame({"uscc": ["91320282MA0000000A", "91320282MA0000000B"], "name": ["甲", "乙"],
                          "district": ["甲镇", "甲镇"], "chain_layer": pl.Series([None, None], dtype=pl.Utf8),
                          "chain_leader_tie": [False, False], "rd_expense_py": [0.0, 0.0],
                          "age_years": [3.0, 3.0], "revenue_ttm": [900.0, 900.0]})
    candidates = pl.DataFrame([
        {"uscc": u, "name": n, "district": "甲镇", "tier": TIERS[k], "tier_key": k, "eligible": True,
         "eligible_if_unknowns_hold": True, "points": None, "probability": 0.5, "rank": 1}
        for u, n, k in (("91320282MA0000000A", "甲", "specialised_sme"),
                        ("91320282MA0000000B", "乙", "little_giant"))])
    rewards_only = {"recognition_reward": {"name_zh": "认定奖励", "effect_per_wan": 1.0, "source": "假设"}}
    policy = make_policy(4.5, instruments=rewards_only, shares=[0.8, 1.0, 1.2])
    result = allocate(candidates, firms, policy)
    assert result.allocation["name"].to_list() == ["甲"]
    assert result.entering["name"].to_list() == ["乙"] and result.leaving_up["name"].to_list() == ["甲"]
    assert result.leaving.height == 0 and result.entering_down.height == 0
    sentence = _swing_sentence(result, policy)
    assert "预算增加 20% 时将新增资助 1 家：乙，同时有 1 家改为不资助" in sentence and sentence.count("甲") == 1


def test_expected_cost_reserve_charges_probability_times_reward():
    candidates, firms = _twins(0.4, 0.2)
    data = make_policy(10).model_dump(mode="json")
    data["instruments"]["recognition_reward"]["reserve"] = "expected_cost"
    result = allocate(candidates, firms, parse_policy(data))
    assert result.allocation["amount_wan"].to_list() == [3.0, 3.0]
    assert result.budget_used_wan == pytest.approx(0.4 * 3 + 0.2 * 3)
    assert result.expected_payout_wan == pytest.approx(0.4 * 3 + 0.2 * 3)


def test_rationale_lines_let_an_auditor_recompute_the_value():
    candidates, firms = make_city(8, 14)
    policy = make_policy(25)
    result = allocate(candidates, firms, policy)
    for line in result.allocation.iter_rows(named=True):
        text = line["rationale"]
        assert "入选" in text and "工具" in text and "金额" in text and "\n" not in text
        formula = re.search(r"期望价值 = ([0-9.]+)×([0-9.]+)×([0-9.]+)×(.+) = ([0-9.]+)$", text)
        p, w, m = (float(formula.group(i)) for i in (1, 2, 3))
        effect = eval(formula.group(4).replace("×", "*"))
        assert p * w * m * effect == pytest.approx(line["expected_value"], rel=1e-3)
        assert float(formula.group(5)) == pytest.approx(line["expected_value"], abs=0.006)


def test_summary_is_json_ready():
    candidates, firms = make_city(6, 15)
    result = allocate(candidates, firms, make_policy(12))
    summary = json.loads(json.dumps(result.summary(), ensure_ascii=False))
    assert summary["status"] == "optimal" and summary["budget_wan"] == 12
    assert summary["lines"] == result.allocation.height > 0
    assert summary["expected_value"] == pytest.approx(result.expected_value)
    assert sum(r["amount_wan"] for r in summary["by_instrument"]) == pytest.approx(
        result.allocation["amount_wan"].sum()
    )


def test_decomposition_matches_the_full_program():
    candidates, firms = make_city(60, 16, districts=("甲镇", "乙街道", "丙园区"))
    districts = {
        "default_ceiling_share": 0.5,
        "source": "假设",
        "limits": {"丙园区": {"floor_wan": 10}},
    }
    full = allocate(
        candidates, firms, make_policy(60, districts=districts, decompose_above_options=10**9)
    )
    split = allocate(
        candidates, firms, make_policy(60, districts=districts, decompose_above_options=0)
    )
    assert split.expected_value == pytest.approx(full.expected_value, rel=1e-6)
    assert split.allocation.select("uscc", "instrument", "amount_wan").equals(
        full.allocation.select("uscc", "instrument", "amount_wan")
    )


def test_decomposition_stops_within_its_gap_rather_than_solve_the_whole_program():
    """Equal candidates and a budget that is no multiple of the 3 万元 reward: the LP bound sits
    a third of a reward above every integer solution, so an exact proof would take in every firm
    (at 100,000 firms such a proof cost HiGHS 305 s). Within decomposition_gap the restricted
    optimum is returned with the gap the bound proves; at 0 the proof goes on, as before."""
    reward_only = {"recognition_reward": {"name_zh": "认定奖励", "effect_per_wan": 1.0, "source": "假设"}}
    candidates, firms = make_city(300, 16)
    candidates = candidates.with_columns(pl.lit(0.5).alias("probability"))

    def run(**solver):
        return allocate(candidates, firms, make_policy(31, instruments=reward_only, **solver))

    full = run(decompose_above_options=10**9)
    split = run(decompose_above_options=0, decomposition_gap=0.09)
    exact = run(decompose_above_options=0, decomposition_gap=0)
    gap = split.summary()["mip_gap"]
    assert 0.01 < gap <= 0.09                       # (U − z) ÷ U: a third of 3 万元 in 31
    assert split.expected_value >= full.expected_value * (1 - gap)
    assert split.expected_value == pytest.approx(full.expected_value, rel=1e-6)
    assert any("相对差距不超过 3.2" in n for n in split.notes), split.notes
    assert exact.summary()["mip_gap"] == 0 and not any("相对差距" in n for n in exact.notes)
    assert exact.expected_value == pytest.approx(full.expected_value, rel=1e-6)


# --------------------------------------------------------------------------- KPIs


def test_kpi_statuses():
    # Scored at 2024Q4: one year to the 2025 deadline.
    firms = pl.DataFrame(
        {
            "uscc": [f"91320282MA000{i:05d}" for i in range(4)],
            "chain_layer": ["基础支撑层", "技术产品层", "应用示范层", None],
            "revenue_ttm": [150_000.0, 120_000.0, 20_000.0, 900_000.0],
            "revenue_growth_yoy": [0.5, 0.5, 0.2, 0.0],
            "revenue_py3": [8_000.0, 5_000.0, 20_000.0, 1.0],
            "holds_specialised_sme": [True, False, False, False],
            "years_since_specialised_sme": [0.5, None, None, None],
            "holds_little_giant": [False, False, False, True],
            "quarter_end": [__import__("datetime").date(2024, 12, 31)] * 4,
        }
    )
    candidates = pl.DataFrame(
        {
            "uscc": firms["uscc"][1:3],
            "tier_key": ["specialised_sme"] * 2,
            "probability": [0.5, 0.25],
        }
    )
    kpis = kpi_table(candidates, firms, make_policy(10)).rows_by_key(
        "target", named=True, unique=True
    )
    scale = kpis["人工智能产业规模"]  # 29亿 now; ×1.5, ×1.5, ×1.2 in a year → 42.9 > 40
    assert scale["current_value"] == pytest.approx(29.0)
    assert (
        scale["projected_value"] == pytest.approx(42.9, abs=0.05) and scale["status"] == "进度正常"
    )
    assert (
        kpis["新增营业收入超 1 亿元企业"]["current_value"] == 2
        and kpis["新增营业收入超 1 亿元企业"]["status"] == "达标"
    )
    new = kpis["新增省级及以上专精特新企业"]  # one new holder; +0.75 expected within the year
    assert new["current_value"] == 1 and new["projected_value"] == pytest.approx(1.75, abs=0.01)
    assert new["status"] == "存在风险"
    assert (
        kpis["细分领域龙头企业"]["current_value"] == 0
    )  # the only 小巨人 holder is outside the AI chain
    growth = kpis["销售收入年均增长"]  # (150k+120k+20k) ÷ (100k+80k+16.67k) − 1
    assert growth["current_value"] == pytest.approx(
        (290_000 / (100_000 + 80_000 + 20_000 / 1.2) - 1) * 100
    )
    assert growth["status"] == "达标"


def test_angel_fund_admits_only_firms_within_every_one_of_its_conditions():
    """The default policy's 天使基金 admission (criteria.md §4, 天津): founded ≤ 5 years, ≤ 100
    staff, sales ≤ 1000 万元, net assets ≤ 500 万元 (assets × (1 − debt ratio)), R&D ≥ 5 %."""
    candidates, firms = make_city(16, 11)
    net_assets = [200.0, 600.0, 200.0, 600.0] * 4      # assets 400 / 1200 at a debt ratio of 0.5
    rd = [0.06, 0.06, 0.04, 0.04] * 4
    firms = firms.with_columns(
        age_years=pl.lit(2.0), employees=pl.lit(50), revenue_ttm=pl.lit(800.0),
        total_assets=pl.Series([2 * a for a in net_assets]), debt_ratio=pl.lit(0.5),
        rd_intensity_py=pl.Series(rd))
    angel = DEFAULT["instruments"]["angel_guidance_fund"]
    policy = make_policy(5000, per_firm_cap=300, instruments={
        "recognition_reward": {"name_zh": "认定奖励", "effect_per_wan": 1.0, "source": "假设"},
        "angel_guidance_fund": angel})
    funded = allocate(candidates, firms, policy).allocation.filter(
        pl.col("instrument") == angel["name_zh"])
    admissible = {u for u, a, r in zip(firms["uscc"], net_assets, rd, strict=True)
                  if a <= 500 and r >= 0.05}
    assert len(admissible) == 4
    assert set(funded["uscc"]) == admissible     # the budget reaches every admissible firm


def test_a_condition_on_a_column_the_panel_lacks_is_named_in_the_notes():
    candidates, firms = make_city(6, 12)
    result = allocate(candidates, firms.drop("age_years"), make_policy(40))
    assert "政策条件所用的列 age_years 不在企业面板中，该条件按不满足处理" in result.notes
    assert result.allocation.filter(pl.col("instrument") == "先投后股").height == 0


def test_the_instrument_comparison_counts_instruments_and_names_a_capped_rivals_amount():
    """"同样 5 万元用于其他 K 种可用工具": K counts instruments, not (tier, instrument) options (a firm
    with two tiers has two reward options, one instrument), and a rival that could take only part
    of the money says how much (研发费用补助 至多 4 万元)."""
    candidates, firms = make_city(8, 7)
    policy = make_policy(40)
    result = allocate(candidates, firms, policy)
    enabled = sum(1 for name in type(policy.instruments).model_fields
                  if (inst := getattr(policy.instruments, name)) is not None and inst.enabled)
    seen_capped = False
    for text in result.allocation["rationale"]:
        match = re.search(r"同样 ([\d.]+) 万元用于其他 (\d+) 种可用工具，期望价值最高为([^（的]+)(?:（至多 ([\d.]+) 万元）)?的", text)
        assert match, text
        money, kinds, capped = float(match[1]), int(match[2]), match[4]
        assert 1 <= kinds <= enabled - 1
        if capped is not None:
            seen_capped = True
            assert match[3] == "研发费用补助" and float(capped) < money
    assert seen_capped


def test_the_solvers_own_lines_stay_off_the_console(monkeypatch, capfd):
    """HiGHS writes a debug line straight to file descriptor 1 when it repairs a solution
    (`reserve: expected_cost` on the demo city: 22 lines). The wrapper mutes the descriptor for
    the call only: what is printed before and after it still shows, and the solver's result is
    handed back."""
    from scoring import allocation as allocation_module

    def noisy_solver(*args, **kwargs):
        os.write(1, b"HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();\n")
        return ("result", args, kwargs)

    monkeypatch.setattr(allocation_module, "_scipy_milp", noisy_solver)
    print("before")
    assert allocation_module.milp(1, presolve=True) == ("result", (1,), {"presolve": True})
    print("after")
    out = capfd.readouterr().out
    assert out == "before\nafter\n"


def test_an_instrument_no_firm_could_take_is_reported_unused_with_no_firms():
    """The twins have no R&D expense and are 20 years old: only the reward is open to them, and the
    R&D subsidy and 先投后股 are listed as unused with no firm they were open to."""
    candidates, firms = _twins(0.4, 0.2)
    result = allocate(candidates, firms, make_policy(3))
    assert set(result.allocation["instrument"]) == {"认定奖励"}
    assert [(u["instrument_key"], u["firms"], u["best_value_per_wan"]) for u in result.unused_instruments] == [
        ("rd_subsidy", 0, None), ("invest_then_equity", 0, None)]
    assert result.summary()["unused_instruments"] == result.unused_instruments


def test_an_unused_instrument_reports_its_best_value_per_wan_and_the_firms_taken_by_another():
    """With 先投后股 open to both twins but the reward worth three times more per 万元, every line is
    a reward; 先投后股's best value per 万元 is p × weight × its effect, 0.4 × 3 × 1.5, at the firm
    with p = 0.4, and both firms above the budget's marginal value were funded with the reward."""
    candidates, firms = _twins(0.4, 0.2)
    firms = firms.with_columns(pl.lit(5.0).alias("age_years"))
    data = make_policy(100).model_dump(mode="json")
    data["instruments"]["recognition_reward"]["effect_per_wan"] = 3.0
    result = allocate(candidates, firms, parse_policy(data))
    assert set(result.allocation["instrument"]) == {"认定奖励"} and result.allocation.height == 2
    unused = {u["instrument_key"]: u for u in result.unused_instruments}
    assert set(unused) == {"rd_subsidy", "invest_then_equity"}
    ite = unused["invest_then_equity"]
    assert ite["firms"] == 2 and ite["best_value_per_wan"] == pytest.approx(0.4 * 3 * 1.5)
    assert ite["best_name"] == "乙企业"
    assert result.marginal_value_per_wan < 0.2 * 3 * 1.5
    assert ite["above_marginal"] == ite["above_marginal_funded"] == 2
