"""The memo: Chinese prose from the allocation's numbers, for an optimal, an infeasible and an empty run."""

from __future__ import annotations

import copy

import polars as pl
import yaml

from reports.memo import draft_memo
from scoring.allocation import allocate
from scoring.policy import DEFAULT_POLICY, load_policy, parse_policy
from scoring.tiers import TIERS

HEADINGS = ["## 推荐意见", "## 理由", "## 风险提示", "## 预算变化的影响"]


def _city() -> tuple[pl.DataFrame, pl.DataFrame]:
    firms = pl.DataFrame(
        {
            "uscc": ["91320282MA0000001A", "91320282MA0000002B", "91320282MA0000003C"],
            "name": ["宜兴智芯科技有限公司", "宜兴视觉算法有限公司", "丁蜀陶瓷智造有限公司"],
            "district": ["宜城街道", "环科园", "丁蜀镇"],
            "chain_layer": ["基础支撑层", "技术产品层", None],
            "chain_leader_tie": [True, False, False],
            "rd_expense_py": [900.0, 300.0, 50.0],
            "revenue_ttm": [30000.0, 8000.0, 3000.0],
            "age_years": [6.0, 3.0, 12.0],
            "employees": [200, 60, 150],
            "holds_high_tech_enterprise": [True, True, False],
            "holds_specialised_sme": [True, False, False],
            "quarter": ["2025Q4"] * 3,
        }
    )
    rows = [
        ("91320282MA0000001A", "little_giant", 0.62),
        ("91320282MA0000002B", "specialised_sme", 0.45),
        ("91320282MA0000002B", "gazelle", 0.30),
        ("91320282MA0000003C", "innovative_sme", 0.55),
    ]
    names = dict(zip(firms["uscc"], firms["name"]))
    districts = dict(zip(firms["uscc"], firms["district"]))
    candidates = pl.DataFrame(
        [
            {
                "uscc": u,
                "name": names[u],
                "district": districts[u],
                "tier": TIERS[k],
                "tier_key": k,
                "eligible": True,
                "eligible_if_unknowns_hold": True,
                "points": None,
                "probability": p,
                "rank": 1,
            }
            for u, k, p in rows
        ]
    )
    return candidates, firms


def test_memo_has_the_four_sections_the_budget_and_the_top_firm():
    candidates, firms = _city()
    policy = load_policy().with_budget(800)
    result = allocate(candidates, firms, policy)
    memo = draft_memo(result, policy, "2025Q4", "宜兴市")
    assert memo.startswith("# 宜兴市2025Q4梯度培育资金分配建议")
    positions = [memo.index(h) for h in HEADINGS]
    assert positions == sorted(positions)
    assert "800 万元" in memo
    assert result.allocation["name"][0] in memo
    assert "固定奖励" in memo and "最后一万元" in memo and "20%" in memo
    assert "nan" not in memo.lower() and "None" not in memo


def test_memo_is_the_same_twice():
    candidates, firms = _city()
    policy = load_policy().with_budget(500)
    result = allocate(candidates, firms, policy)
    assert draft_memo(result, policy, "2025Q4", "宜兴市") == draft_memo(
        result, policy, "2025Q4", "宜兴市"
    )


def test_memo_of_an_infeasible_policy_quotes_the_shortfall():
    candidates, firms = _city()
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8")))
    data["budget"]["total_wan"] = 300
    data["districts"]["limits"] = {"宜城街道": {"floor_wan": 200}, "丁蜀镇": {"floor_wan": 200}}
    policy = parse_policy(data)
    result = allocate(candidates, firms, policy)
    memo = draft_memo(result, policy, "2025Q4", "宜兴市")
    assert result.status == "infeasible"
    assert "无法形成满足全部约束的分配方案" in memo and "缺口 100 万元" in memo
    assert all(h in memo for h in HEADINGS)


def test_memo_of_a_zero_budget_says_there_is_nothing_to_split():
    candidates, firms = _city()
    policy = load_policy().with_budget(0)
    memo = draft_memo(allocate(candidates, firms, policy), policy, "2025Q4", "宜兴市")
    assert "本期预算为 0 万元" in memo and all(h in memo for h in HEADINGS)


def test_the_memo_says_which_parts_of_the_policy_are_assumptions():
    """The built-in policy's budget, weights, rewards and instrument effects are marked 假设: the
    memo must not read as the city's rules (an analysts' audit found it did: \"2026-01-01 起执行\",
    \"本期可分配预算 3000 万元\", \"按现行奖励标准\"), and the KPI targets are not yet checked."""
    from scoring.policy import load_policy

    candidates, firms = _city()
    policy = load_policy()
    assert policy.assumed_parts()[:3] == ["预算总额", "层级权重", "认定奖励标准"]
    result = allocate(candidates, firms, policy)
    memo = draft_memo(result, policy, "2025Q4", "宜兴市")
    assert "为假设值（未见本市公开标准，依据见政策文件各项 source 说明），不是本市现行规定" in memo
    assert f"本期可分配预算 {policy.budget.total_wan:g} 万元（假设值），为政策文件中2026年度的全年额度" in memo
    assert "本稿未扣除本年度此前已安排的资金" in memo   # a quarterly run of an annual budget says so
    assert "现行奖励" not in memo and "起执行" not in memo
    if "先投后股" in set(result.allocation["instrument"]):
        assert policy.instruments.invest_then_equity.conversion.rstrip("。") in memo
    confirmed = parse_policy({**load_policy().model_dump(mode="json"),
                              "budget": {**load_policy().model_dump(mode="json")["budget"], "source": "财政局 2026 年预算批复"}})
    memo = draft_memo(allocate(candidates, firms, confirmed), confirmed, "2025Q4", "宜兴市")
    assert "预算总额" not in confirmed.assumed_parts() and "（假设值）" not in memo


def test_the_recommendation_says_how_many_items_wait_on_a_check():
    """Firms funded while some of their conditions wait on a person: said in the recommendation
    itself, not only among the risks (every funded firm of the demo is such a firm)."""
    candidates, firms = _city()
    candidates = candidates.with_columns(pl.lit(False).alias("eligible"))   # unknowns presumed to hold
    policy = load_policy().with_budget(800)
    result = allocate(candidates, firms, policy)
    waiting = result.allocation.filter(pl.col("rationale").str.contains("待人工核实")).height
    assert waiting == result.allocation.height > 0
    memo = draft_memo(result, policy, "2025Q4", "宜兴市")
    recommendation = memo.split("## 推荐意见")[1].split("## 理由")[0]
    assert f"其中 {waiting} 项所涉企业的部分认定条件须人工核实后方可下达" in recommendation


def test_the_angel_fund_is_paid_only_alongside_a_private_round():
    """The policy's co-investment rule (co_invest_ratio) is a condition of payment the data cannot
    check at allocation time: the rationale and the risks say the fund follows the firm's next
    private round and pays at most that round's share (an audit found "1:1 跟投" written for firms
    that never raised a round)."""
    candidates, firms = _city()
    firms = firms.with_columns(pl.lit(2.0).alias("age_years"), pl.lit(40).alias("employees"),
                               pl.lit(800.0).alias("revenue_ttm"), pl.lit(400.0).alias("total_assets"),
                               pl.lit(0.3).alias("debt_ratio"), pl.lit(0.08).alias("rd_intensity_py"),
                               pl.lit(0).alias("financing_rounds"))
    data = load_policy().model_dump(mode="json")
    data["instruments"] = {"angel_guidance_fund": data["instruments"]["angel_guidance_fund"]}
    policy = parse_policy(data)
    result = allocate(candidates, firms, policy)
    assert set(result.allocation["instrument"]) == {"天使投资引导基金"}
    assert all("待企业新一轮社会资本股权融资到位后跟投拨付，出资不超过同轮社会资本出资的 100%" in r
               for r in result.allocation["rationale"])
    risks = draft_memo(result, policy, "2025Q4", "宜兴市").split("## 风险提示")[1]
    total = result.allocation["amount_wan"].sum()
    assert f"天使投资引导基金 {total:g} 万元只在企业新一轮社会资本股权融资到位后跟投" in risks


def test_a_tier_no_rulebook_judged_is_said_to_be_left_out_of_the_funding():
    """瞪羚 has no rulebook in force after its 2024 revision: its verdicts are null, none of its
    rows can be funded, and the recommendation says so (an audit found it silent)."""
    candidates, firms = _city()
    candidates = candidates.with_columns(
        pl.when(pl.col("tier_key") == "gazelle").then(None).otherwise(pl.col(c)).alias(c)
        for c in ("eligible", "eligible_if_unknowns_hold"))
    policy = load_policy()
    result = allocate(candidates, firms, policy)
    assert result.undecided_tiers == ["瞪羚企业"] and result.summary()["undecided_tiers"] == ["瞪羚企业"]
    assert "瞪羚企业" not in set(result.allocation["tier"])
    recommendation = draft_memo(result, policy, "2025Q4", "宜兴市").split("## 理由")[0]
    assert "瞪羚企业本季度的认定规则 tidu 未收录（名单中为待核实），其候选企业未纳入本次分配。" in recommendation
    # decided tiers are not named
    assert allocate(_city()[0], firms, policy).undecided_tiers == []


def test_with_no_tier_judged_the_memo_still_says_why_nothing_is_funded():
    """A city config naming no rulebooks: every verdict is null, nothing is fundable, and the memo
    names the tiers left out rather than only 'no candidates' (found by a code review)."""
    candidates, firms = _city()
    candidates = candidates.with_columns(pl.lit(None, pl.Boolean).alias(c)
                                         for c in ("eligible", "eligible_if_unknowns_hold"))
    policy = load_policy()
    result = allocate(candidates, firms, policy)
    assert result.allocation.height == 0
    recommendation = draft_memo(result, policy, "2025Q4", "宜兴市").split("## 理由")[0]
    assert "不提出资金分配建议" in recommendation
    assert "本季度的认定规则 tidu 未收录（名单中为待核实），其候选企业未纳入本次分配。" in recommendation


def test_the_memo_says_why_an_instrument_got_nothing():
    """Three reasons, from the allocation's facts: no candidate met the instrument's conditions; its
    best value per 万元 is below what the budget's last 万元 buys; or the firms where it beats that
    were funded with a better instrument (one per firm), the rest held back by steps and caps."""
    import dataclasses

    candidates, firms = _city()
    policy = load_policy()
    result = allocate(candidates, firms, policy)
    assert result.allocation.height and result.marginal_value_per_wan == result.marginal_value_per_wan

    def reasoning(unused: list[dict], marginal: float) -> str:
        changed = dataclasses.replace(result, unused_instruments=unused, marginal_value_per_wan=marginal)
        return draft_memo(changed, policy, "2025Q4", "宜兴市").split("## 理由")[1].split("## 风险提示")[0]

    def entry(key, name, firms, best=None, who=None, above=0, funded=0):
        return {"instrument_key": key, "instrument": name, "firms": firms, "best_value_per_wan": best,
                "best_name": who, "above_marginal": above, "above_marginal_funded": funded}

    text = reasoning([entry("angel_guidance_fund", "天使投资引导基金", 0),
                      entry("rd_subsidy", "研发费用补助", 3, 0.4567, "丁蜀陶瓷智造有限公司"),
                      entry("recognition_reward", "认定奖励", 12, 1.25, "宜兴智芯科技有限公司", 4, 4)], 0.8731)
    assert "4. 未获分配的工具。天使投资引导基金：本期没有候选企业满足政策文件为该工具设定的适用条件；" in text
    assert ("研发费用补助：可用于 3 家企业，每万元期望价值最高 0.457（丁蜀陶瓷智造有限公司），"
            "低于预算最后一万元带来的期望价值 0.873，资金用于其他项目更多；") in text
    assert ("认定奖励：可用于 12 家企业，每万元期望价值最高 1.25（宜兴智芯科技有限公司）；其中 4 家每万元期望价值"
            "不低于预算最后一万元带来的 0.873，均已安排期望价值更高的其他工具（每家企业只安排一项工具）。") in text
    held = reasoning([entry("recognition_reward", "认定奖励", 12, 1.25, "宜兴智芯科技有限公司", 4, 1)], 0.8731)
    assert "1 家已安排期望价值更高的其他工具，其余 3 家受金额整数步长、板块上限或单户上限所限未能安排" in held
    assert "未获分配的工具" not in reasoning([], 0.8731)


def test_the_risks_name_the_money_going_to_tiers_no_validation_quarter_tested():
    """An audit found 2,900 of the demo's 3,000 万元 going to tiers whose probabilities had too few
    later recognitions to be tested, and the memo silent on it. The risks now name those tiers,
    their money and its share; a tier that was tested, or gets nothing, is not named."""
    candidates, firms = _city()
    policy = load_policy()
    result = allocate(candidates, firms, policy)
    funded = result.allocation.group_by("tier").agg(pl.col("amount_wan").sum())
    tier, money = funded.sort("tier").row(0)
    untested = {tier: "验证季度后续新认定过少, 不报告指标", "准独角兽企业": "验证季度后续新认定过少, 不报告指标"}
    risks = draft_memo(result, policy, "2025Q4", "宜兴市", untested).split("## 风险提示")[1].split("## ")[0]
    share = money / result.allocation["amount_wan"].sum()
    assert (f"以下层级的认定概率未能在验证季度检验（验证季度后续新认定过少, 不报告指标）：{tier}（{money:g} 万元），"
            f"合计 {money:g} 万元，占建议金额的 {share:.0%}。") in risks
    assert "准独角兽企业" not in risks
    assert "未能在验证季度检验" not in draft_memo(result, policy, "2025Q4", "宜兴市")
