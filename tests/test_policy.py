"""The policy file: the packaged 宜兴 default, and every way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scoring.policy import DEFAULT_POLICY, PolicyError, load_policy, parse_policy
from scoring.tiers import TIERS


def _default_dict() -> dict:
    return yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "policy.yaml"
    text = (
        data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    )
    path.write_text(text, encoding="utf-8")
    return path


def test_default_policy_loads_with_the_reference_figures():
    policy = load_policy()
    assert policy.policy_id == "yixing-default" and policy.version
    assert set(policy.tiers) == set(TIERS)
    assert (
        policy.tiers["little_giant"].reward_wan == 50
    )  # criteria.md §4, 苏州高新区 national 小巨人
    assert policy.tiers["specialised_sme"].reward_wan == 20
    pool = policy.instruments.risk_compensation_pool
    assert (pool.leverage, pool.compensation_share_of_npl, pool.max_loan_wan) == (10, 0.5, 3000)
    assert set(policy.instruments.enabled()) == {
        "recognition_reward",
        "rd_subsidy",
        "invest_then_equity",
        "risk_compensation_pool",
        "angel_guidance_fund",
    }
    assert set(policy.chain_priority.layers) == {"基础支撑层", "技术产品层", "应用示范层"}
    assert policy.external_funds[0].amount_wan == 600 and policy.external_funds[0].years == 3


def test_default_policy_carries_the_action_plan_targets():
    targets = {t.key: t for t in load_policy().kpis.targets}
    assert (
        targets["ai_industry_scale"].target_value == 40
        and targets["ai_industry_scale"].unit == "亿元"
    )
    assert targets["ai_industry_scale"].comparison == ">"
    assert targets["new_firms_over_100m"].target_value == 2
    assert targets["new_specialised_provincial_plus"].target_value == 6
    assert targets["segment_leaders"].target_value == 5
    assert targets["sales_growth"].target_value == 15


def test_every_figure_in_the_default_names_a_source_or_says_assumption():
    policy = load_policy()
    sources = [
        policy.budget.source,
        policy.per_firm_cap_source,
        policy.districts.source,
        policy.chain_priority.source,
        policy.kpis.source,
    ]
    sources += [t.weight_source for t in policy.tiers.values()] + [
        t.reward_source for t in policy.tiers.values()
    ]
    sources += [i.source for i in policy.instruments.enabled().values()]
    sources += [f.source for f in policy.external_funds] + [t.source for t in policy.kpis.targets]
    for text in sources:
        assert any(mark in text for mark in ("criteria.md", "假设", "行动计划")), text


def test_none_means_the_packaged_default():
    assert load_policy(None) == load_policy(DEFAULT_POLICY)


def test_negative_budget_is_rejected_naming_the_file_and_field(tmp_path):
    data = _default_dict()
    data["budget"]["total_wan"] = -100
    path = _write(tmp_path, data)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    message = str(err.value)
    assert (
        str(path) in message
        and "budget.total_wan" in message
        and "≥ 0" in message
        and "-100" in message
    )


def test_all_problems_are_reported_together(tmp_path):
    data = _default_dict()
    data["budget"]["total_wan"] = -1
    data["per_firm_cap_wan"] = "很多"
    data["instruments"]["rd_subsidy"]["cap_wan"] = 0
    with pytest.raises(PolicyError) as err:
        load_policy(_write(tmp_path, data))
    fields = " ".join(err.value.problems)
    assert (
        "budget.total_wan" in fields
        and "per_firm_cap_wan" in fields
        and "instruments.rd_subsidy.cap_wan" in fields
    )
    assert len(err.value.problems) == 3


def test_misspelt_and_missing_fields_are_named(tmp_path):
    data = _default_dict()
    data["budget"]["totl_wan"] = data["budget"].pop("total_wan")
    with pytest.raises(PolicyError) as err:
        load_policy(_write(tmp_path, data))
    text = str(err.value)
    assert "budget.totl_wan" in text and "不是可识别的字段" in text
    assert "budget.total_wan" in text and "缺少必填字段" in text


def test_missing_file_and_bad_yaml_are_policy_errors(tmp_path):
    with pytest.raises(PolicyError, match="文件不存在"):
        load_policy(tmp_path / "nope.yaml")
    with pytest.raises(PolicyError, match="不是有效的 YAML") as err:
        load_policy(_write(tmp_path, "budget: [1, 2\nversion: x\n"))
    assert "行" in str(err.value)
    with pytest.raises(PolicyError, match="键值映射"):
        load_policy(_write(tmp_path, "- just\n- a list\n"))


def test_district_floor_above_its_ceiling_is_rejected():
    data = _default_dict()
    data["districts"]["limits"] = {"丁蜀镇": {"floor_wan": 500, "ceiling_wan": 100}}
    with pytest.raises(PolicyError) as err:
        parse_policy(data, "p.yaml")
    assert "districts.limits.丁蜀镇" in str(err.value) and "保底" in str(err.value)


def test_effects_may_only_diminish():
    data = _default_dict()
    data["instruments"]["invest_then_equity"]["effect_per_wan_after"] = 3.0
    with pytest.raises(PolicyError, match="边际效应只能递减"):
        parse_policy(data, "p.yaml")


def test_unknown_tier_and_bad_reserve_are_rejected():
    data = _default_dict()
    data["tiers"]["unicorn_plus"] = data["tiers"]["gazelle"]
    data["instruments"]["recognition_reward"]["reserve"] = "half"
    with pytest.raises(PolicyError) as err:
        parse_policy(data, "p.yaml")
    text = str(err.value)
    assert "未知层级 unicorn_plus" in text and "instruments.recognition_reward.reserve" in text


def test_a_policy_needs_one_instrument():
    data = _default_dict()
    for inst in data["instruments"].values():
        inst["enabled"] = False
    with pytest.raises(PolicyError, match="至少需要启用一种资助工具"):
        parse_policy(data, "p.yaml")


def test_with_budget_changes_only_the_budget():
    policy = load_policy()
    other = policy.with_budget(1234)
    assert (
        other.budget.total_wan == 1234
        and other.tiers == policy.tiers
        and policy.budget.total_wan == 3000
    )
