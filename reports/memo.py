"""The funding recommendation memo: Chinese prose drafted by templates from the allocation's numbers.

No external service writes anything here: every sentence is a template filled from the
``AllocationResult`` tables (allocation, baseline, sensitivity, KPIs) and the policy, so the memo
says nothing the saved tables do not. The text is Markdown-ish (``#``/``##`` headings, ``-`` lists,
plain paragraphs) so the typst report and a ``.md`` file can both use it. Sections: 推荐意见,
理由, 风险提示, 预算变化的影响.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:  # reports/ reads results; it does not import scoring at run time
    from scoring.allocation import AllocationResult
    from scoring.policy import Policy

_LIST_MAX = 5
_METHOD = (
    "1. 测算口径。每一项的期望价值 = 四个季度内新获认定概率 × 层级权重 × 产业链优先系数 × 工具效应 × 金额"
    "（效应递减的工具，如先投后股，超过政策文件所定金额的部分按较低的每万元效应计，见附表理由列的算式）。"
    "层级权重、产业链优先系数（基础支撑层、技术产品层、应用示范层及与链主同链）和各工具每万元效应均写在"
    "政策文件中；价值单位：向一家必获认定、层级权重和产业链系数均为 1 的企业发放 1 万元认定奖励，记为 1。"
    "优化模型在预算、单户上限、板块保底与上限、一户一项工具的约束下使期望价值之和最大；期望价值相同时，"
    "认定概率高者优先，再按统一社会信用代码升序。"
)
_MODEL_RISK = (
    "认定概率为模型估计值，工具效应系数为政策设定的假设值，并非实测的政策因果效应；认定概率高的企业即使"
    "不获资助也可能获得认定，本方案因此偏向“支持大概率企业”，审议时可结合企业实际需求调整。"
)


def draft_memo(result: AllocationResult, policy: Policy, quarter: str, city: str,
               unvalidated: dict[str, str] | None = None) -> str:
    """The memo for one quarter's allocation, as Markdown-ish Chinese text. `unvalidated`: the
    tiers (Chinese names) whose probabilities the validation quarter could not test, with why
    (the model's metrics say 正例少于 20 个): the risks name the money that goes to them."""
    parts = [
        f"# {city}{quarter}梯度培育资金分配建议（草稿）",
        _preamble(result, policy),
        "## 推荐意见",
        _recommendation(result, policy),
        "## 理由",
        _reasoning(result, policy),
        "## 风险提示",
        _risks(result, policy, unvalidated or {}),
        "## 预算变化的影响",
        _budget_effects(result, policy),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _preamble(result: AllocationResult, policy: Policy) -> str:
    assumed = policy.assumed_parts()
    caveat = (
        f"政策文件中的{'、'.join(assumed)}为假设值（未见本市公开标准，依据见政策文件各项 source 说明），"
        "不是本市现行规定，下达前应按本市实际政策核定。" if assumed else ""
    )
    return (
        f"本稿依据政策文件 {policy.policy_id}（版本 {policy.version}，{policy.effective_from} 起适用）"
        f"和本季度候选名单评分结果，由 tidu 按模板自动起草；预算期间为{policy.budget.period_label}"
        f"（{policy.budget.period_start} 至 {policy.budget.period_end}）。{caveat}文中数字均取自分配结果表，"
        "逐行计算过程见 allocation.csv 的 rationale（理由）列，供审议时核对和修改。"
    )


# --------------------------------------------------------------------------- 推荐意见


def _recommendation(result: AllocationResult, policy: Policy) -> str:
    budget = _n(result.budget_wan)
    if result.status == "infeasible":
        lines = "\n".join(f"- {s}" for s in result.infeasibility)
        return (
            f"按政策文件，本期预算 {budget} 万元下无法形成满足全部约束的分配方案，原因如下：\n\n{lines}\n\n"
            "建议调整板块保底额度或追加预算后重新测算；在此之前不宜按本稿下达资金。"
        )
    if result.status == "empty" or not result.allocation.height:
        why = (
            "本期预算为 0 万元"
            if result.budget_wan <= 0
            else "本期没有符合政策条件的候选企业（或可用工具均不适用）"
        )
        return f"本期预算 {budget} 万元。{why}，不提出资金分配建议。{_undecided_sentence(result)}"
    a = result.allocation
    used, firms = result.budget_used_wan, a["uscc"].n_unique()
    share = used / result.budget_wan if result.budget_wan else 0.0
    top = a.row(0, named=True)
    mix = "；".join(
        f"{r['instrument']} {r['lines']} 项 {_n(r['amount_wan'])} 万元"
        for r in a.group_by("instrument")
        .agg(pl.len().alias("lines"), pl.col("amount_wan").sum())
        .sort(["amount_wan", "instrument"], descending=[True, False])
        .iter_rows(named=True)
    )
    left = result.budget_wan - used
    unspent = (
        f"其余 {_n(left)} 万元未安排：符合条件企业的可用额度已用满，或余额不足以再安排一项。"
        if left >= 1
        else ""
    )
    assumed = "（假设值）" if "预算总额" in policy.assumed_parts() else ""
    waiting = a.filter(pl.col("rationale").str.contains("待人工核实")).height
    checks = (f"其中 {waiting} 项所涉企业的部分认定条件须人工核实后方可下达（见附表理由列）。"
              if waiting else "")
    checks += _undecided_sentence(result)
    return (
        f"本期可分配预算 {budget} 万元{assumed}，为政策文件中{policy.budget.period_label}的全年额度；本稿未扣除"
        "本年度此前已安排的资金，如已有安排，请在政策文件中调减预算后重新测算。"
        f"建议资助 {firms} 家企业、共 {a.height} 项，占用预算 {_n(used)} 万元"
        f"（{share:.1%}），合计期望价值 {_n(result.expected_value)}。按工具分：{mix}。{unspent}{checks}\n\n"
        f"期望价值最高的一项是{top['name']}（{top['tier']}，{top['instrument']} {_n(top['amount_wan'])} 万元，"
        f"期望价值 {_n(top['expected_value'])}）。建议按附表逐户审核后下达。"
    )


def _undecided_sentence(result: AllocationResult) -> str:
    """The tiers no rulebook judged this quarter, whose candidates could not be funded."""
    if not result.undecided_tiers:
        return ""
    return (f"{'、'.join(result.undecided_tiers)}本季度的认定规则 tidu 未收录（名单中为待核实），"
            "其候选企业未纳入本次分配。")


# --------------------------------------------------------------------------- 理由


def _reasoning(result: AllocationResult, policy: Policy) -> str:
    paras = [_METHOD]
    comparison = _baseline_sentence(result)
    if comparison:
        paras.append(f"2. 与固定奖励普惠方案比较。{comparison}")
    if result.allocation.height:
        rows = result.allocation.head(_LIST_MAX).iter_rows(named=True)
        listing = "；".join(
            f"{r['name']}（{r['tier']}，{r['instrument']} {_n(r['amount_wan'])} 万元，期望价值 {_n(r['expected_value'])}）"
            for r in rows
        )
        paras.append(f"3. 重点企业。期望价值居前的项目为：{listing}。")
    unused = _unused_sentence(result)
    if unused:
        paras.append(f"4. 未获分配的工具。{unused}")
    return "\n\n".join(paras)


def _unused_sentence(result: AllocationResult) -> str:
    """Why an enabled instrument got nothing: no candidate met its conditions; or its best value per
    万元 is below what the budget's last 万元 buys; or, above that, each firm it was open to does
    better with another instrument (one instrument per firm)."""
    if not result.unused_instruments or not result.allocation.height:
        return ""
    marginal = result.marginal_value_per_wan
    parts = []
    for u in result.unused_instruments:
        if not u["firms"]:
            parts.append(f"{u['instrument']}：本期没有候选企业满足政策文件为该工具设定的适用条件")
            continue
        best = (f"{u['instrument']}：可用于 {u['firms']} 家企业，每万元期望价值最高 "
                f"{_n(u['best_value_per_wan'], 3)}（{u['best_name']}）")
        if not math.isnan(marginal) and u["best_value_per_wan"] < marginal:
            parts.append(f"{best}，低于预算最后一万元带来的期望价值 {_n(marginal, 3)}，资金用于其他项目更多")
            continue
        above, funded = u["above_marginal"], u["above_marginal_funded"]
        head = f"{best}；其中 {above} 家每万元期望价值不低于预算最后一万元带来的 {_n(marginal, 3)}"
        if funded == above:
            parts.append(f"{head}，均已安排期望价值更高的其他工具（每家企业只安排一项工具）")
        else:
            parts.append(f"{head}，{funded} 家已安排期望价值更高的其他工具，其余 {above - funded} 家受金额整数步长、"
                         "板块上限或单户上限所限未能安排")
    return ("；".join(parts) + "。各工具的效应系数是政策文件中的假设值；若本市有意使用某项工具，"
            "可在政策文件中调整其系数或为其设定专项额度后重新测算。")


def _baseline_sentence(result: AllocationResult) -> str:
    b = result.baseline
    if b is None or b.height < 2:
        return ""
    ours, fixed = b.row(0, named=True), b.row(1, named=True)
    text = (
        f"若按政策文件的奖励标准对全部 {fixed['firms_funded']} 家可资助企业（符合条件或仅待人工核实）发放认定奖励"
        f"（总额超出预算时按比例缩减），使用预算 {_n(fixed['budget_used_wan'])} 万元，期望价值 {_n(fixed['expected_value'])}；"
        f"本方案资助 {ours['firms_funded']} 家、使用预算 {_n(ours['budget_used_wan'])} 万元，期望价值 {_n(ours['expected_value'])}"
    )
    if fixed["expected_value"] > 0:
        diff = ours["expected_value"] / fixed["expected_value"] - 1
        word = "高" if diff >= 0 else "低"
        text += (
            f"，{word} {abs(diff):.1%}。差距来自把资金集中于认定概率高、层级权重大的企业，以及政策文件"
            "为各工具设定的效应系数；后者是假设值，差距不应读作实测的政策效果。"
        )
    else:
        text += "。"
    if ours["expected_value"] < fixed["expected_value"]:
        text += (
            "普惠方案的期望价值更高，通常是因为板块上限或单户上限限制了集中资助，建议复核这些约束。"
        )
    return text


# --------------------------------------------------------------------------- 风险提示


def _unvalidated_risk(result: AllocationResult, unvalidated: dict[str, str]) -> list[str]:
    """The funded tiers whose probabilities no validation quarter tested, with their money."""
    a = result.allocation
    if not unvalidated or not a.height:
        return []
    money = (a.filter(pl.col("tier").is_in(list(unvalidated))).group_by("tier", maintain_order=True)
             .agg(pl.col("amount_wan").sum()))
    if not money.height:
        return []
    total = float(money["amount_wan"].sum())
    listed = "、".join(f"{t}（{_n(m)} 万元）" for t, m in money.iter_rows())
    return [f"以下层级的认定概率未能在验证季度检验（{'；'.join(sorted(set(unvalidated[t] for t in money['tier'])))}）："
            f"{listed}，合计 {_n(total)} 万元，占建议金额的 {total / float(a['amount_wan'].sum()):.0%}。"
            "这些层级的概率只宜用于排序，下达前应更多依据认定条件的核实结果。"]


def _risks(result: AllocationResult, policy: Policy, unvalidated: dict[str, str] | None = None) -> str:
    items = [_MODEL_RISK]
    items += _unvalidated_risk(result, unvalidated or {})
    items += _reward_risk(result, policy)
    items += _instrument_risks(result, policy)
    review = result.allocation.filter(pl.col("rationale").str.contains("待人工核实")).height
    if review:
        items.append(
            f"有 {review} 项所涉企业的部分认定条件数据无法判定（需人工核实），下达前应先完成核实。"
        )
    items += _kpi_risks(result, policy)
    gap = result.mip_gap
    if gap is not None and gap > 1e-6:
        items.append(f"求解器在相对差距 {gap:.4%} 以内停止，结果与理论最优的差距不超过该比例。")
    items += [n for n in result.notes if "时间上限" in n]
    return "\n".join(f"- {t}" for t in items)


def _reward_risk(result: AllocationResult, policy: Policy) -> list[str]:
    a = result.allocation.filter(
        pl.col("instrument") == policy.instrument_name("recognition_reward")
    )
    if not a.height:
        return []
    face = float(a["amount_wan"].sum())
    inst = policy.instruments.recognition_reward
    expected, sd = _n(result.expected_payout_wan), _n(result.payout_sd_wan)
    if inst is not None and inst.reserve == "expected_cost":
        text = (
            f"认定奖励按期望成本预留 {expected} 万元（奖励面额合计 {_n(face)} 万元），兑付额的标准差约 "
            f"{sd} 万元；若获认定企业多于预期，兑付将超出预留，需另行安排资金。"
        )
    else:
        text = (
            f"认定奖励 {a.height} 项按全额预留 {_n(face)} 万元，只在企业获得认定后兑付；按认定概率估计实际"
            f"兑付约 {expected} 万元（标准差约 {sd} 万元），未兑付部分在期末释放。"
        )
    return [text]


def _instrument_risks(result: AllocationResult, policy: Policy) -> list[str]:
    """What each funded instrument's money depends on, one sentence per instrument used."""
    inst = policy.instruments
    phrases = [   # (instrument, sentence): policy models are not hashable
        (inst.invest_then_equity, lambda i, amount: (
            f"先投后股 {_n(amount)} 万元的转股方式：{i.conversion.rstrip('。')}；企业若未能融资则无法转股，"
            "协议中应约定到期未转股的处置方式。")),
        (inst.risk_compensation_pool, lambda i, amount: (
            f"{i.name_zh} {_n(amount)} 万元按 {_n(i.leverage)} 倍杠杆对应合作银行贷款约 "
            f"{_n(amount * i.leverage)} 万元，对不良贷款的补偿不超过其余额的 "
            f"{_n(i.compensation_share_of_npl * 100)}%；资金池份额全额计入本预算（如与区县、银行共同出资，"
            "市级实际出资相应减少）；实际撬动规模取决于银行放款意愿。")),
        (inst.angel_guidance_fund, lambda i, amount: (
            f"{i.name_zh} {_n(amount)} 万元只在企业新一轮社会资本股权融资到位后跟投，出资不超过同轮社会资本"
            f"出资的 {_n(i.co_invest_ratio * 100)}%；企业本年度未能融资则不拨付，资金留待下期安排。")),
    ]
    out = []
    for i, phrase in phrases:
        if i is None:
            continue
        amount = float(result.allocation.filter(pl.col("instrument") == i.name_zh)["amount_wan"].sum())
        if amount:
            out.append(phrase(i, amount))
    return out


def _kpi_risks(result: AllocationResult, policy: Policy) -> list[str]:
    k = result.kpis
    if k is None or not k.height:
        return []
    out = []
    at_risk = k.filter(pl.col("status") == "存在风险")
    if at_risk.height:
        listing = "；".join(
            f"{r['target']}目标 {_value(r['target_value'], r['unit'])}，现为 {_value(r['current_value'], r['unit'])}，"
            f"预计 {_value(r['projected_value'], r['unit'])}"
            for r in at_risk.iter_rows(named=True)
        )
        out.append(f"行动计划目标存在风险：{listing}。")
    done = k.filter(pl.col("status") != "存在风险")
    if done.height:
        listing = "、".join(f"{r['target']}（{r['status']}）" for r in done.iter_rows(named=True))
        out.append(f"已达标或进度正常的目标：{listing}。")
    if out and "unconfirmed" in policy.kpis.source:   # the targets were not checked against the plan
        out.append(f"以上目标值取自政策文件，尚未与《{policy.kpis.plan}》原文核对，判断仅供参考。")
    return out


# --------------------------------------------------------------------------- 预算变化的影响


def _budget_effects(result: AllocationResult, policy: Policy) -> str:
    s = result.sensitivity
    if s is None or not s.height or result.budget_wan <= 0:
        return "本期预算为 0 万元，未做预算敏感性测算。"
    steps = []
    for r in s.iter_rows(named=True):
        label = f"预算为现额的 {r['budget_share']:.0%}（{_n(r['budget_wan'])} 万元）"
        if r["expected_value"] is None:
            steps.append(f"{label}时无可行方案")
        else:
            steps.append(
                f"{label}时期望价值 {_n(r['expected_value'])}、资助 {r['firms_funded']} 家"
            )
    paras = ["预算敏感性：" + "；".join(steps) + "。"]
    paras.append(_marginal_sentence(result))
    paras.append(_swing_sentence(result, policy))
    return "\n\n".join(p for p in paras if p)


def _marginal_sentence(result: AllocationResult) -> str:
    m = result.marginal_value_per_wan
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "当前预算处的边际价值无法测算（方案不可行或预算过小）。"
    text = f"在现有预算处，最后一万元带来的期望价值约为 {_n(m, 3)}"
    if result.budget_wan - result.budget_used_wan >= 1 and m < 1e-9:
        return text + "；预算尚未用满，追加预算不会增加期望价值。"
    if result.budget_used_wan > 0:
        average = result.expected_value / result.budget_used_wan
        text += f"，而全部资金的平均值为每万元 {_n(average, 3)}"
        if m < 0.5 * average:
            text += "；边际价值已明显低于平均水平，追加预算的收益递减"
        elif m >= 0.9 * average:
            text += "；边际价值接近平均水平，追加预算仍有较好回报"
    return text + "。"


def _swing_sentence(result: AllocationResult, policy: Policy) -> str:
    if result.status != "optimal":
        return ""
    share = f"{policy.sensitivity.swing_share:.0%}"
    up = _names(result.entering)
    down = _names(result.leaving)
    a = f"预算增加 {share} 时将新增资助 {result.entering.height} 家" + (f"：{up}" if up else "")
    b = f"预算减少 {share} 时将有 {result.leaving.height} 家不再获得资助" + (
        f"：{down}" if down else ""
    )
    # the optimum is not nested: with lumpy amounts and district ceilings a larger budget may fund
    # other firms in place of some funded now, and a smaller one firms not funded now
    if result.leaving_up.height:
        a += (f"，同时有 {result.leaving_up.height} 家改为不资助（金额按整额安排、板块有上限，"
              f"预算增加后另有组合期望价值更高）：{_names(result.leaving_up)}")
    if result.entering_down.height:
        b += f"，同时有 {result.entering_down.height} 家改为获得资助：{_names(result.entering_down)}"
    return f"{a}；{b}。"


def _names(frame: pl.DataFrame | None) -> str:
    if frame is None or not frame.height:
        return ""
    names = frame["name"].to_list()
    head = "、".join(str(x) for x in names[:_LIST_MAX])
    return head + (f"等 {len(names)} 家" if len(names) > _LIST_MAX else "")


def _value(x: float | None, unit: str) -> str:
    return "无数据" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{_n(x)}{unit}"


def _n(x: float | None, digits: int = 2) -> str:
    """A number for Chinese text: up to `digits` decimals, no trailing zeros."""
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "—"
    text = f"{x:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
