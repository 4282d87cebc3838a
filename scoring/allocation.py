"""Split a fixed budget among firms and instruments: a mixed-integer program solved by HiGHS.

**What is decided.** For each firm, at most one line: an instrument (认定奖励, 研发费用补助,
先投后股, 风险补偿资金池, 天使投资引导基金) and an amount in 万元. A recognition reward is tied to one
tier and its amount is fixed by the policy's schedule; the other instruments' amounts are chosen
in steps of ``solver.amount_step_wan`` between the instrument's minimum and a cap (the instrument's
cap, the policy's per-firm cap, and a data-driven cap: share_of_rd_expense × rd_expense_py for the subsidy,
max loan ÷ leverage for the loan pool), and they are tied to the firm's best tier (highest
probability × tier weight; ties by the order of ``scoring.tiers.TIERS``).

**Expected value** of one line, so an auditor can recompute it by hand::

    expected_value = probability × tier weight × chain priority × Σ effect per 万元 × 万元

- probability: the calibrated chance of new recognition at the tier within four quarters;
- tier weight: ``policy.tiers[tier].weight``;
- chain priority: ``policy.chain_priority.layers[chain_layer]`` (``unlisted`` when absent), times
  ``chain_leader_tie`` when the firm shares a chain with a local 链主;
- effect: ``effect_per_wan`` for every 万元, or for a diminishing instrument ``effect_per_wan`` up
  to ``diminish_after_wan`` and ``effect_per_wan_after`` beyond it.
The effects are declared weights, not estimated causal effects: the model backs likely winners, and
a firm with a high probability may be recognised without any money. The memo says so.

**Recognition rewards** are paid only if the firm is recognised. With ``reserve: face_value`` (the
default) the full reward is charged to the budget — the money must be there if the firm is
recognised — and what is not paid out is released at the period's end (the memo gives the expected
payout Σ probability × reward). With ``reserve: expected_cost`` only probability × reward is charged;
more firms fit but the payout can overrun (the memo gives its standard deviation).

**Constraints.** Total charge ≤ budget; per district floor ≤ charge ≤ ceiling (the ceiling is the
smaller of the district's ``ceiling_wan`` and ``default_ceiling_share`` × budget); one line per
firm; each amount within its instrument's minimum and cap (a reward larger than the per-firm cap
is not offered). Only district floors can make the program infeasible; then ``infeasibility`` says
in words which floor cannot be met and by how much (the sum of floors against the budget, a floor
against its district's ceiling or reach, else an elastic program with a slack on each floor).

**Determinism and ties.** Inputs are sorted canonically (uscc, then tier order) before the program
is built, and HiGHS is deterministic, so the same input gives the same output whatever the row
order. The tie rule: among lines of equal expected value, the firm with the higher probability
wins, then the smaller uscc, then the earlier instrument (policy order) and tier (``TIERS`` order).
Each option's value is multiplied by 1 + ε·(M − position)/M in that order (ε =
``solver.tie_break_epsilon``, 1e-6) to steer the solver, and because HiGHS may stop within its gap
before resolving so small a difference, exact ties left in the solution are then swapped to the
rule's choice (same money, same district, at least the same value). Reported values are unperturbed.

**Scale.** Options are one per fundable (firm, tier) for rewards plus one per firm and variable
instrument. Up to ``solver.decompose_above_options`` (5,000) options the whole MILP goes to HiGHS.
Above that, HiGHS's root heuristics on the whole program take minutes (141 s at 100,000
candidates in the benchmark) although only a few hundred firms can be funded, so the program is
solved by Lagrangian column generation instead, with no loss of optimality: only the budget and
district rows couple firms; the duals of a restricted LP price every option of every firm in one
numpy pass; firms with positive reduced profit join until none is left, which makes the restricted
LP bound U valid for the whole program; the MILP is solved on the restricted firms, and every
outside firm whose best reduced profit is ≥ −(U − z) joins (no solution using any other firm can
beat z) until none does. The result is the whole program's optimum within the restricted MILP's
``mip_rel_gap``, and is the same as the full MILP's on every instance compared (tests, benchmark).
One exception keeps a run in minutes: when the firms to add would make the restricted program
larger than ``decompose_above_options`` and U already lies within ``solver.decomposition_gap``
(0.1 %) of z, z is returned with the gap (U − z) ÷ U, as a proof of "at most that far from the
optimum" rather than of exactness. (At 100,000 firms one budget of the sensitivity analysis had
U − z = 5.0 on z = 16,940: 21,610 firms within 5 of zero profit, a 113,397-option MILP that took
HiGHS 305 s, with or without presolve, to return the same z.)
The LP is tight because amounts are linked to their choice variable segment by segment
(x₁ ≤ knee·y, x₂ ≤ (cap − knee)·y), the convex hull of each firm's choices.
``bench/bench_allocation.py`` measures the times.

**Beyond the allocation**: budget sensitivity (``sensitivity.shares`` of the budget, each a full
re-solve), the marginal value of the last 万元 ([EV(B) − EV(B − Δ)] ÷ Δ with Δ = 1 % of B), firms
entering / leaving at ±20 %, a baseline (the schedule's fixed reward to every fundable (firm, tier)
row, scaled down pro rata when it exceeds the budget; it ignores district limits and the per-firm
cap, as the status-quo rule does), and the action plan's KPIs (see ``kpi_table``).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog
from scipy.optimize import milp as _scipy_milp

from data_contracts.periods import Quarter
from scoring.policy import Policy
from scoring.tiers import LADDERS, TIERS

TIER_ORDER = {k: i for i, k in enumerate(TIERS)}
ALLOCATION_SCHEMA = {
    "uscc": pl.Utf8,
    "name": pl.Utf8,
    "tier": pl.Utf8,
    "instrument": pl.Utf8,
    "amount_wan": pl.Float64,
    "expected_value": pl.Float64,
    "rationale": pl.Utf8,
}
FIRM_LIST_SCHEMA = {"uscc": pl.Utf8, "name": pl.Utf8}

STATUS_MET, STATUS_ON_TRACK, STATUS_AT_RISK = "达标", "进度正常", "存在风险"
_TOL = 1e-6


def milp(*args, **kwargs):
    """scipy's milp with the solver's own stray lines kept off the console: HiGHS prints
    `HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();` straight to the
    process's standard output when it repairs a solution, whatever `disp` says (ERGO-Code/HiGHS
    issue 2783; 22 lines in a demo run with `reserve: expected_cost`). The file descriptor is
    pointed at /dev/null for the call; Python's own output is flushed before and goes on after."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        return _scipy_milp(*args, **kwargs)
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass
class AllocationResult:
    """The recommended allocation and everything the memo and the report pack say about it."""

    allocation: pl.DataFrame
    status: str  # "optimal" | "infeasible" | "empty"
    infeasibility: list[str]
    sensitivity: pl.DataFrame
    marginal_value_per_wan: float
    entering: pl.DataFrame    # funded at +swing, not now
    leaving: pl.DataFrame     # funded now, not at −swing
    baseline: pl.DataFrame
    kpis: pl.DataFrame
    solver_seconds: float
    budget_wan: float = 0.0
    budget_used_wan: float = 0.0
    expected_value: float = 0.0
    expected_payout_wan: float = 0.0
    payout_sd_wan: float = 0.0
    mip_gap: float | None = None
    candidates_considered: int = 0
    options_considered: int = 0
    notes: list[str] = field(default_factory=list)
    # tiers of the policy whose candidates no rulebook judged this quarter (verdicts all null):
    # none of their rows can be funded, and the memo says so
    undecided_tiers: list[str] = field(default_factory=list)
    # lumpy amounts and district ceilings make the optimum move both ways: firms funded now but
    # not at +swing, and firms funded at −swing but not now
    leaving_up: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FIRM_LIST_SCHEMA))
    entering_down: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FIRM_LIST_SCHEMA))
    # enabled instruments no line uses, with what they could have bought (`_unused_instruments`)
    unused_instruments: list[dict] = field(default_factory=list)
    policy_id: str = ""
    policy_version: str = ""

    def summary(self) -> dict:
        """JSON-ready facts for the run manifest."""
        by_instrument = (
            self.allocation.group_by("instrument")
            .agg(pl.len().alias("lines"), pl.col("amount_wan").sum())
            .sort("instrument")
            .to_dicts()
            if self.allocation.height
            else []
        )
        baseline_ev = _baseline_ev(self.baseline)
        return {
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "status": self.status,
            "infeasibility": list(self.infeasibility),
            "budget_wan": self.budget_wan,
            "budget_used_wan": round(self.budget_used_wan, 4),
            "amount_committed_wan": round(float(self.allocation["amount_wan"].sum()), 4),
            "expected_value": round(self.expected_value, 6),
            "baseline_expected_value": None if baseline_ev is None else round(baseline_ev, 6),
            "firms_funded": int(self.allocation["uscc"].n_unique()),
            "lines": self.allocation.height,
            "by_instrument": by_instrument,
            "marginal_value_per_wan": _json_float(self.marginal_value_per_wan),
            "unused_instruments": self.unused_instruments,
            "expected_payout_wan": round(self.expected_payout_wan, 4),
            "candidates_considered": self.candidates_considered,
            "options_considered": self.options_considered,
            "solver_seconds": round(self.solver_seconds, 3),
            "mip_gap": _json_float(self.mip_gap),
            "notes": list(self.notes),
            "undecided_tiers": list(self.undecided_tiers),
        }


def allocate(candidates: pl.DataFrame, firms: pl.DataFrame, policy: Policy) -> AllocationResult:
    """Pick an instrument and an amount per firm to maximise expected value within the policy."""
    started = time.perf_counter()
    notes: list[str] = []
    firms_ = _prepare_firms(firms, policy, notes)
    rows = _fundable_rows(candidates, firms_, policy)
    options = _build_options(rows, firms_, policy)
    problem = _Problem(options, policy)
    budget = float(policy.budget.total_wan)
    solves = _SolveCache(problem)
    main = solves.get(budget)

    status = main.status
    infeasible: list[str] = []
    if status == "infeasible":
        infeasible = _explain_infeasibility(problem, budget)
    elif status == "optimal" and main.time_limited:
        notes.append(
            f"求解达到时间上限 {policy.solver.time_limit_s:g} 秒，结果与最优解的相对差距不超过 {main.gap:.2%}"
        )
    elif status == "optimal" and main.gap and main.gap > policy.solver.mip_rel_gap:
        notes.append(f"结果与最优解的相对差距不超过 {main.gap:.3%} (拉格朗日上界证明; 逐一排除其余企业需求解整个问题)")

    sensitivity = _sensitivity(solves, policy, budget)
    marginal = _marginal_value(solves, policy, budget) if status == "optimal" else math.nan
    entering, leaving, leaving_up, entering_down = _swing(solves, problem, policy, budget, status)
    chosen = main.chosen_frame(options) if status == "optimal" else options.clear()
    allocation = _allocation_frame(chosen, problem, main, policy, budget, marginal)
    payout, payout_sd = _reward_payout(chosen)
    return AllocationResult(
        allocation=allocation,
        status=status,
        infeasibility=infeasible,
        sensitivity=sensitivity,
        marginal_value_per_wan=marginal,
        entering=entering,
        leaving=leaving,
        leaving_up=leaving_up,
        entering_down=entering_down,
        undecided_tiers=_undecided_tiers(candidates, policy),
        unused_instruments=_unused_instruments(options, chosen, policy, marginal) if status == "optimal" else [],
        baseline=_baseline(rows, problem, main, policy, budget, status),
        kpis=kpi_table(candidates, firms_, policy),
        solver_seconds=main.seconds,
        budget_wan=budget,
        budget_used_wan=main.charge if status == "optimal" else 0.0,
        expected_value=main.value if status == "optimal" else 0.0,
        expected_payout_wan=payout,
        payout_sd_wan=payout_sd,
        mip_gap=main.gap,
        candidates_considered=rows.height,
        options_considered=options.height,
        notes=notes
        + [
            f"分配全流程耗时 {time.perf_counter() - started:.2f} 秒（含敏感性分析的 {solves.count} 次求解）"
        ],
        policy_id=policy.policy_id,
        policy_version=policy.version,
    )


# --------------------------------------------------------------------------- inputs → options


def _unused_instruments(options: pl.DataFrame, chosen: pl.DataFrame, policy: Policy,
                        marginal: float) -> list[dict]:
    """Each enabled instrument the recommendation gives nothing: how many firms it was open to and
    its best expected value per 万元 (at its first 万元; a reward: its value over what it charges),
    with that firm's name; `firms` 0 when no candidate met its conditions. Of the firms where it
    beats the budget's marginal value per 万元, `above_marginal` counts them and
    `above_marginal_funded` those funded with another instrument. The memo says from these why
    the instrument got nothing."""
    used = set(chosen.get_column("instrument_key").to_list()) if chosen.height else set()
    per_wan = (pl.when(~pl.col("fixed")).then(pl.col("coef") * pl.col("e1"))
               .when(pl.col("fixed_charge") > 0)   # (a reward reserved at p × amount, p = 0: no value)
               .then(pl.col("coef") * pl.col("e1") * pl.col("fixed_amount") / pl.col("fixed_charge")))
    out = []
    for key, inst in policy.instruments.enabled().items():
        if key in used:
            continue
        mine = options.filter(pl.col("instrument_key") == key).with_columns(per_wan.alias("_per_wan"))
        entry = {"instrument_key": key, "instrument": inst.name_zh, "firms": mine.get_column("uscc").n_unique(),
                 "best_value_per_wan": None, "best_name": None, "above_marginal": 0, "above_marginal_funded": 0}
        if mine.height:
            best = mine.sort(["_per_wan", "uscc"], descending=[True, False], nulls_last=True).row(0, named=True)
            above = (mine.filter(pl.col("_per_wan") >= marginal).get_column("uscc").unique()
                     if not math.isnan(marginal) else pl.Series([], dtype=pl.Utf8))
            entry |= {"best_value_per_wan": round(float(best["_per_wan"]), 6), "best_name": best["name"],
                      "above_marginal": above.len(),
                      "above_marginal_funded": int(above.is_in(chosen.get_column("uscc").implode()).sum())
                      if chosen.height else 0}
        out.append(entry)
    return out


def _prepare_firms(firms: pl.DataFrame, policy: Policy, notes: list[str]) -> pl.DataFrame:
    """One row per uscc, sorted, with the chain-priority multiplier and missing columns as nulls."""
    wanted = {
        "name": pl.Utf8,
        "district": pl.Utf8,
        "chain_layer": pl.Utf8,
        "chain_leader_tie": pl.Boolean,
        "rd_expense_py": pl.Float64,
        "revenue_ttm": pl.Float64,
        "revenue_growth_yoy": pl.Float64,
    }
    missing = [c for c in wanted if c not in firms.columns]
    if "uscc" not in firms.columns:
        raise ValueError("firms 缺少 uscc 列")
    if missing:
        notes.append(f"企业面板缺少列 {', '.join(missing)}，按空值处理")
    out = firms.with_columns([pl.lit(None, dtype=wanted[c]).alias(c) for c in missing])
    if "net_assets" not in out.columns and {"total_assets", "debt_ratio"} <= set(out.columns):
        # 净资产 (万元) of the latest return, for the policy's conditions (天使基金: ≤ 500 万元)
        out = out.with_columns((pl.col("total_assets") * (1 - pl.col("debt_ratio"))).alias("net_assets"))
    tested = {c.column for inst in policy.instruments.enabled().values()
              for c in [*inst.eligible_if, *inst.eligible_if_any]}
    for column in sorted(tested - set(out.columns)):
        notes.append(f"政策条件所用的列 {column} 不在企业面板中，该条件按不满足处理")
    out = out.unique(subset="uscc", keep="last", maintain_order=True).sort("uscc")
    cp = policy.chain_priority
    layer_weight = pl.col("chain_layer").replace_strict(
        cp.layers, default=cp.unlisted, return_dtype=pl.Float64
    )
    tie = (
        pl.when(pl.col("chain_leader_tie").fill_null(False))
        .then(cp.chain_leader_tie)
        .otherwise(1.0)
    )
    return out.with_columns(
        pl.col("chain_leader_tie").fill_null(False),
        layer_weight.alias("_layer_weight"),
        (layer_weight * tie).alias("_priority"),
    )


def _undecided_tiers(candidates: pl.DataFrame, policy: Policy) -> list[str]:
    """The policy's tiers (Chinese names) with candidate rows none of which has a verdict: no
    rulebook was in force at the quarter (瞪羚 after its 2024 revision), so none is fundable."""
    if "eligible" not in candidates.columns or not candidates.height:
        return []
    decided = (candidates.filter(pl.col("tier_key").is_in(list(policy.tiers)))
               .group_by("tier_key").agg(pl.col("eligible").is_not_null().any().alias("decided")))
    keys = set(decided.filter(~pl.col("decided"))["tier_key"])
    return [TIERS[k] for k in TIERS if k in keys]


def _above(tier: str) -> list[str]:
    """The titles above a tier on its ladder (小巨人 above 专精特新中小企业): a firm that holds one
    has passed the tier, and a first-recognition reward for it would pay the firm for a step it
    climbed before."""
    for ladder in LADDERS.values():
        if tier in ladder:
            return ladder[ladder.index(tier) + 1:]
    return []


def _at_or_above(columns: list[str], prefix: str, test) -> pl.Expr:
    """Rows whose tier, or a title above it on its ladder, passes `test` on its column
    `<prefix>_<title>` (holds_…: holds it now; years_since_…: was ever recognised)."""
    found = pl.lit(False)
    for key in TIERS:
        for title in [key, *_above(key)]:
            if f"{prefix}_{title}" in columns:
                found = found | ((pl.col("tier_key") == key) & test(pl.col(f"{prefix}_{title}")))
    return found


def _fundable_rows(candidates: pl.DataFrame, firms: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Candidate rows (firm × tier) the policy allows to fund, with weight and priority."""
    need = {"uscc", "tier_key", "probability"}
    if need - set(candidates.columns):
        raise ValueError(f"candidates 缺少列：{', '.join(sorted(need - set(candidates.columns)))}")
    rule = policy.candidates
    c = candidates.with_columns(
        [
            pl.lit(None, dtype=t).alias(n)
            for n, t in {
                "name": pl.Utf8,
                "district": pl.Utf8,
                "tier": pl.Utf8,
                "rank": pl.Int64,
                "eligible": pl.Boolean,
                "eligible_if_unknowns_hold": pl.Boolean,
            }.items()
            if n not in candidates.columns
        ]
    )
    ok = pl.col("eligible").fill_null(False)
    if rule.include == "eligible_if_unknowns_hold":
        ok = ok | pl.col("eligible_if_unknowns_hold").fill_null(False)
    weights = {k: r.weight for k, r in policy.tiers.items()}
    rewards = {k: r.reward_wan for k, r in policy.tiers.items()}
    c = c.filter(
        ok & pl.col("tier_key").is_in(list(weights)) & (pl.col("probability").fill_null(0) > 0)
    )
    c = c.filter(pl.col("probability") >= rule.min_probability)
    firm_cols = ["uscc", "_priority", "_layer_weight", "chain_layer", "chain_leader_tie"]
    firm_cols += [f"{prefix}_{k}" for prefix in ("holds", "years_since") for k in TIERS
                  if f"{prefix}_{k}" in firms.columns]
    c = c.join(firms.select(firm_cols), on="uscc", how="left")
    c = c.join(
        firms.select(
            "uscc", pl.col("name").alias("_fname"), pl.col("district").alias("_fdistrict")
        ),
        on="uscc",
        how="left",
    ).with_columns(
        pl.coalesce("name", "_fname").alias("name"),
        pl.coalesce("district", "_fdistrict").alias("district"),
        pl.col("_priority").fill_null(policy.chain_priority.unlisted),
        pl.col("_layer_weight").fill_null(policy.chain_priority.unlisted),
        pl.col("chain_leader_tie").fill_null(False),
        pl.col("tier_key").replace_strict(weights, return_dtype=pl.Float64).alias("_weight"),
        pl.col("tier_key").replace_strict(rewards, return_dtype=pl.Float64).alias("_reward"),
        pl.col("tier_key").replace_strict(TIER_ORDER, return_dtype=pl.Int64).alias("_tier_order"),
        pl.col("tier_key").replace_strict(TIERS, return_dtype=pl.Utf8).alias("_tier_zh"),
        ok.alias("_ok"),
        pl.col("eligible").fill_null(False).alias("_eligible"),
    )
    if rule.skip_if_already_held:
        c = c.filter(~_at_or_above(c.columns, "holds", lambda held: held.fill_null(False)))
    # the reward is for a first recognition: a firm recognised at the tier or above it before, its
    # title lapsed since (up for renewal), is not paid again (就高不重复); other instruments stay open
    before = _at_or_above(c.columns, "years_since", lambda since: since.is_not_null())
    c = c.with_columns(pl.when(before).then(0.0).otherwise(pl.col("_reward")).alias("_reward"),
                       pl.coalesce("tier", "_tier_zh").alias("tier"))
    # A duplicated (uscc, tier) row keeps its highest probability, whatever the input order.
    c = c.sort(["uscc", "_tier_order", "probability"], descending=[False, False, True])
    return c.unique(subset=["uscc", "tier_key"], keep="first", maintain_order=True)


def _condition_expr(cond, firms: pl.DataFrame) -> pl.Expr:
    """A policy condition as a boolean expression; null or a missing column fails."""
    if cond.column not in firms.columns:
        return pl.lit(False)
    col, v = pl.col(cond.column), cond.value
    ops = {
        "<": lambda: col < v,
        "<=": lambda: col <= v,
        ">": lambda: col > v,
        ">=": lambda: col >= v,
        "==": lambda: col == v,
        "!=": lambda: col != v,
        "is_true": lambda: col.cast(pl.Boolean, strict=False),
    }
    return ops[cond.op]().fill_null(False)


def _eligible_firms(firms: pl.DataFrame, inst) -> pl.Expr:
    expr = pl.lit(True)
    for cond in inst.eligible_if:
        expr = expr & _condition_expr(cond, firms)
    if inst.eligible_if_any:
        anyx = pl.lit(False)
        for cond in inst.eligible_if_any:
            anyx = anyx | _condition_expr(cond, firms)
        expr = expr & anyx
    return expr


def _variable_cap(key: str, inst, policy: Policy) -> tuple[pl.Expr, pl.Expr]:
    """The cap in 万元 of a variable instrument for each firm, and the phrase saying which cap binds."""
    firm_cap = policy.per_firm_cap_wan
    caps = [(pl.lit(float(inst.cap_wan)), f"达到{inst.name_zh}单户上限 {_n(inst.cap_wan)} 万元")]
    if key == "rd_subsidy":
        share = inst.share_of_rd_expense
        caps.append(
            (
                pl.col("rd_expense_py") * share,
                None,  # phrase built per row (needs the firm's R&D figure)
            )
        )
    if key == "risk_compensation_pool":
        pool = inst.max_loan_wan / inst.leverage
        caps.append(
            (
                pl.lit(pool),
                f"达到单户贷款上限 {_n(inst.max_loan_wan)} 万元 ÷ {_n(inst.leverage)} 倍杠杆对应的资金池份额 {_n(pool)} 万元",
            )
        )
    caps.append((pl.lit(float(firm_cap)), f"达到单户资助上限 {_n(firm_cap)} 万元"))
    cap = pl.min_horizontal([c for c, _ in caps])
    reason = pl.lit(None, dtype=pl.Utf8)
    for value, phrase in reversed(caps):  # the first listed binding cap wins
        if phrase is None:
            phrase_expr = pl.format(
                "达到上年研发费用 {} 万元 × {}% 的补助额",
                pl.col("rd_expense_py").round(1),
                pl.lit(_n(inst.share_of_rd_expense * 100)),
            )
        else:
            phrase_expr = pl.lit(phrase)
        reason = pl.when(value <= cap + _TOL).then(phrase_expr).otherwise(reason)
    return cap, reason


def _build_options(rows: pl.DataFrame, firms: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Every (firm, instrument[, tier]) the program may pick, sorted in the tie-break order."""
    step = policy.solver.amount_step_wan
    parts = []
    enabled = policy.instruments.enabled()
    inst_order = {k: i for i, k in enumerate(enabled)}
    base_cols = [
        "uscc",
        "name",
        "district",
        "tier_key",
        "tier",
        "rank",
        "probability",
        "_eligible",
        "_weight",
        "_priority",
        "_layer_weight",
        "chain_layer",
        "chain_leader_tie",
        "_tier_order",
    ]
    if "recognition_reward" in enabled:
        inst = enabled["recognition_reward"]
        rew = rows.filter(
            (pl.col("_reward") > 0) & (pl.col("_reward") <= policy.per_firm_cap_wan + _TOL)
        )
        if inst.eligible_if or inst.eligible_if_any:
            allowed = firms.filter(_eligible_firms(firms, inst)).select("uscc")
            rew = rew.join(allowed, on="uscc", how="semi")
        charge = pl.col("_reward") * (
            pl.col("probability") if inst.reserve == "expected_cost" else 1.0
        )
        parts.append(
            rew.select(base_cols + ["_reward"]).with_columns(
                pl.lit("recognition_reward").alias("instrument_key"),
                pl.lit(True).alias("fixed"),
                pl.col("_reward").alias("fixed_amount"),
                charge.alias("fixed_charge"),
                pl.lit(0, dtype=pl.Int64).alias("cap_u"),
                pl.lit(0, dtype=pl.Int64).alias("min_u"),
                pl.lit(0, dtype=pl.Int64).alias("knee_u"),
                pl.lit(inst.effect_per_wan).alias("e1"),
                pl.lit(inst.effect_per_wan).alias("e2"),
                pl.lit(None, dtype=pl.Utf8).alias("cap_reason"),
                pl.lit(None, dtype=pl.Float64).alias("rd_expense_py"),
            )
        )
    best = (
        rows.with_columns((pl.col("probability") * pl.col("_weight")).alias("_pw"))
        .sort(["uscc", "_pw", "_tier_order"], descending=[False, True, False])
        .unique(subset="uscc", keep="first", maintain_order=True)
    )
    for key, inst in enabled.items():
        if key == "recognition_reward":
            continue
        cap, reason = _variable_cap(key, inst, policy)
        fx = firms.filter(_eligible_firms(firms, inst)).select(
            "uscc", "rd_expense_py", cap.alias("_cap"), reason.alias("cap_reason")
        )
        o = best.select(base_cols).join(fx, on="uscc", how="inner")
        knee = inst.diminish_after_wan if inst.diminish_after_wan is not None else 1e18
        o = (
            o.with_columns(
                (pl.col("_cap").fill_null(0) / step + 1e-9).floor().cast(pl.Int64).alias("cap_u"),
                pl.lit(math.ceil(inst.min_wan / step - 1e-9), dtype=pl.Int64).alias("min_u"),
            )
            .with_columns(
                pl.min_horizontal(
                    pl.col("cap_u"), pl.lit(int(min(knee / step + 1e-9, 2**62)))
                ).alias("knee_u"),
            )
            .filter((pl.col("cap_u") >= pl.col("min_u")) & (pl.col("cap_u") > 0))
        )
        e2 = (
            inst.effect_per_wan_after
            if inst.effect_per_wan_after is not None
            else inst.effect_per_wan
        )
        parts.append(
            o.select(
                base_cols + ["cap_u", "min_u", "knee_u", "cap_reason", "rd_expense_py"]
            ).with_columns(
                pl.lit(key).alias("instrument_key"),
                pl.lit(False).alias("fixed"),
                pl.lit(0.0).alias("fixed_amount"),
                pl.lit(0.0).alias("fixed_charge"),
                pl.lit(inst.effect_per_wan).alias("e1"),
                pl.lit(e2).alias("e2"),
            )
        )
    cols = base_cols + [
        "instrument_key",
        "fixed",
        "fixed_amount",
        "fixed_charge",
        "cap_u",
        "min_u",
        "knee_u",
        "e1",
        "e2",
        "cap_reason",
        "rd_expense_py",
    ]
    if not parts:
        return _empty_options(cols, rows)
    options = pl.concat([p.select(cols) for p in parts], how="vertical_relaxed")
    top = options.group_by("uscc").agg(pl.col("probability").max().alias("_top_p"))
    options = options.join(top, on="uscc", how="left").with_columns(
        pl.col("instrument_key")
        .replace_strict(inst_order, return_dtype=pl.Int64)
        .alias("_inst_order"),
        (pl.col("probability") * pl.col("_weight") * pl.col("_priority")).alias("coef"),
    )
    return options.sort(
        ["_top_p", "uscc", "_inst_order", "_tier_order"], descending=[True, False, False, False]
    ).with_row_index("opt")


def _empty_options(cols: list[str], rows: pl.DataFrame) -> pl.DataFrame:
    schema = {c: rows.schema.get(c, pl.Float64) for c in cols}
    schema.update(
        {
            "instrument_key": pl.Utf8,
            "fixed": pl.Boolean,
            "cap_u": pl.Int64,
            "min_u": pl.Int64,
            "knee_u": pl.Int64,
            "cap_reason": pl.Utf8,
        }
    )
    schema.update({"_top_p": pl.Float64, "_inst_order": pl.Int64, "coef": pl.Float64})
    return pl.DataFrame(schema=schema).with_row_index("opt")


# --------------------------------------------------------------------------- the program


@dataclass
class _Solution:
    status: str
    take: np.ndarray  # bool per option
    amount: np.ndarray  # 万元 per option (reward: face amount)
    charge_each: np.ndarray  # budget charge per option
    value_each: np.ndarray  # unperturbed expected value per option
    seconds: float
    gap: float | None
    time_limited: bool = False

    @property
    def value(self) -> float:
        return float(self.value_each.sum())

    @property
    def charge(self) -> float:
        return float(self.charge_each.sum())

    def funded(self, options: pl.DataFrame) -> set[str]:
        return (
            set(options.filter(pl.Series(self.take))["uscc"].to_list()) if len(self.take) else set()
        )

    def chosen_frame(self, options: pl.DataFrame) -> pl.DataFrame:
        return options.with_columns(
            pl.Series("amount_wan", self.amount),
            pl.Series("charge_wan", self.charge_each),
            pl.Series("expected_value", self.value_each),
        ).filter(pl.Series(self.take))


class _Problem:
    """The MILP's fixed part (matrix, bounds, objective); only right-hand sides move with the budget.

    Columns: one binary y per option (taken or not), then for each variable option an integer x1
    (steps up to the knee) and, when the effect diminishes, an integer x2 (steps beyond it).
    """

    def __init__(self, options: pl.DataFrame, policy: Policy) -> None:
        self.options = options
        self.policy = policy
        self.step = policy.solver.amount_step_wan
        m = options.height
        self.m = m
        o = {
            c: options[c].to_numpy()
            for c in [
                "fixed",
                "fixed_amount",
                "fixed_charge",
                "cap_u",
                "min_u",
                "knee_u",
                "e1",
                "e2",
                "coef",
            ]
        }
        self.o = o
        fixed = o["fixed"].astype(bool)
        var = np.flatnonzero(~fixed)
        has2 = var[o["cap_u"][var] > o["knee_u"][var]]
        self.var, self.has2 = var, has2
        self.x1 = m + np.arange(len(var))
        self.x2 = m + len(var) + np.arange(len(has2))
        self.n = m + len(var) + len(has2)
        self._objective(policy.solver.tie_break_epsilon)
        self._bounds()
        self._rows()

    def _objective(self, eps: float) -> None:
        o, m, step = self.o, self.m, self.step
        factor = 1.0 + eps * (m - np.arange(m)) / max(m, 1)
        c = np.zeros(self.n)
        fixed = o["fixed"].astype(bool)
        c[:m][fixed] = (o["coef"] * o["e1"] * o["fixed_amount"])[fixed]
        c[self.x1] = (o["coef"] * o["e1"] * step)[self.var]
        c[self.x2] = (o["coef"] * o["e2"] * step)[self.has2]
        c[:m] *= factor
        c[self.x1] *= factor[self.var]
        c[self.x2] *= factor[self.has2]
        self.c = -c

    def _bounds(self) -> None:
        o = self.o
        ub = np.ones(self.n)
        ub[self.x1] = o["knee_u"][self.var]
        ub[self.x2] = (o["cap_u"] - o["knee_u"])[self.has2]
        self.lb, self.ub = np.zeros(self.n), ub.astype(float)
        self.integrality = np.ones(self.n)

    def _charge_triplets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(option index, column, charge coefficient) of every column that spends budget."""
        o, step = self.o, self.step
        fixed = np.flatnonzero(o["fixed"].astype(bool))
        opt = np.concatenate([fixed, self.var, self.has2])
        col = np.concatenate([fixed, self.x1, self.x2])
        val = np.concatenate(
            [o["fixed_charge"][fixed], np.full(len(self.var) + len(self.has2), step)]
        )
        return opt, col, val

    def _rows(self) -> None:
        opts, o, m = self.options, self.o, self.m
        opt, col, val = self._charge_triplets()
        self.budget_row = sp.csr_array((val, (np.zeros(len(col), int), col)), shape=(1, self.n))
        # District rows: every district once any floor, ceiling or ceiling share is set.
        limits = self.policy.districts.limits
        share = self.policy.districts.default_ceiling_share
        district = (
            opts["district"].fill_null("（未填板块）").to_numpy()
            if m
            else np.array([], dtype=object)
        )
        names = sorted(set(district.tolist()) | set(limits)) if (share or limits) else []
        self.districts = names
        idx = {d: i for i, d in enumerate(names)}
        drow = (
            np.array([idx.get(d, -1) for d in district[opt]], dtype=int)
            if names
            else np.array([], int)
        )
        keep = drow >= 0
        self.district_rows = sp.csr_array(
            (val[keep], (drow[keep], col[keep])), shape=(len(names), self.n)
        )
        self.floors = np.array([limits[d].floor_wan if d in limits else 0.0 for d in names])
        self.fixed_ceilings = np.array(
            [
                limits[d].ceiling_wan
                if d in limits and limits[d].ceiling_wan is not None
                else np.inf
                for d in names
            ]
        )
        # One line per firm (only firms with more than one option need a row).
        firm = opts["uscc"].to_numpy() if m else np.array([], dtype=object)
        _, firm_idx, counts = np.unique(firm, return_inverse=True, return_counts=True)
        multi = np.flatnonzero(counts[firm_idx] > 1)
        _, frow = np.unique(firm_idx[multi], return_inverse=True)
        self.firm_rows = sp.csr_array(
            (np.ones(len(multi)), (frow, multi)),
            shape=(int(frow.max()) + 1 if len(multi) else 0, self.n),
        )
        # Link each variable option's steps to its y, segment by segment (x1 ≤ knee·y, x2 ≤ (cap − knee)·y):
        # the perspective form, whose LP relaxation is the convex hull of each firm's choices, so a
        # firm cannot mix the cheap first segment of one instrument with another in the relaxation.
        k, k2 = len(self.var), len(self.has2)
        seg_rows = np.arange(k + k2)
        seg_y = np.concatenate([self.var, self.has2])
        seg_ub = np.concatenate([o["knee_u"][self.var], (o["cap_u"] - o["knee_u"])[self.has2]])
        self.link_cap = sp.csr_array(
            (
                np.concatenate([np.ones(k + k2), -seg_ub]),
                (np.concatenate([seg_rows, seg_rows]), np.concatenate([self.x1, self.x2, seg_y])),
            ),
            shape=(k + k2, self.n),
        )
        # min·y ≤ x1 + x2, only for instruments with a minimum ticket.
        needs_min = np.flatnonzero(o["min_u"][self.var] > 0)
        r = np.arange(len(needs_min))
        pos = np.full(m, -1)
        pos[self.var[needs_min]] = r
        x2_of_min = pos[self.has2]
        has_min2 = x2_of_min >= 0
        self.link_min = sp.csr_array(
            (
                np.concatenate(
                    [np.ones(len(r) + has_min2.sum()), -o["min_u"][self.var[needs_min]]]
                ),
                (
                    np.concatenate([r, x2_of_min[has_min2], r]),
                    np.concatenate([self.x1[needs_min], self.x2[has_min2], self.var[needs_min]]),
                ),
            ),
            shape=(len(r), self.n),
        )
        self.district_of_option = (
            np.array([idx.get(d, -1) for d in district], dtype=int)
            if names
            else np.zeros(m, dtype=int)
        )
        # Firms in tie order (options are sorted so each firm's options are one contiguous block).
        self.block = (
            np.cumsum(np.r_[True, firm[1:] != firm[:-1]]) - 1 if m else np.zeros(0, dtype=int)
        )
        self.starts = (
            np.flatnonzero(np.r_[True, self.block[1:] != self.block[:-1]])
            if m
            else np.zeros(0, int)
        )
        self.col_option = np.concatenate([np.arange(m), self.var, self.has2]).astype(int)
        self._csc = {
            "budget": self.budget_row.tocsc(),
            "district": self.district_rows.tocsc(),
            "firm": self.firm_rows.tocsc(),
            "link_cap": self.link_cap.tocsc(),
            "link_min": self.link_min.tocsc(),
        }

    def ceilings(self, budget: float) -> np.ndarray:
        share = self.policy.districts.default_ceiling_share
        by_share = np.full(len(self.districts), share * budget if share else np.inf)
        return np.minimum(self.fixed_ceilings, by_share)

    def blocks(
        self, budget: float, cols: np.ndarray | None = None
    ) -> list[tuple[str, sp.csr_array, np.ndarray, np.ndarray]]:
        """(name, matrix, lower, upper) of each block of rows at this budget, optionally on some columns only."""
        out = [("budget", self.budget_row, np.array([-np.inf]), np.array([budget]))]
        if len(self.districts):
            out.append(("district", self.district_rows, self.floors, self.ceilings(budget)))
        for name, a, lo, hi in (
            ("firm", self.firm_rows, -np.inf, 1.0),
            ("link_cap", self.link_cap, -np.inf, 0.0),
            ("link_min", self.link_min, 0.0, np.inf),
        ):
            if a.shape[0]:
                out.append((name, a, np.full(a.shape[0], lo), np.full(a.shape[0], hi)))
        if cols is None:
            return out
        sliced = []
        for name, a, lo, hi in out:
            a = self._csc[name][:, cols].tocsr()
            if name in (
                "firm",
                "link_cap",
                "link_min",
            ):  # rows of options left out are empty: drop them
                keep = np.flatnonzero(np.diff(a.indptr) > 0)
                a, lo, hi = a[keep], lo[keep], hi[keep]
            sliced.append((name, a, lo, hi))
        return sliced

    def solve(self, budget: float) -> _Solution:
        """Maximise expected value at this budget."""
        empty = np.zeros(self.m)
        if self.m == 0 or budget <= _TOL:
            status = "infeasible" if self.floors.sum() > _TOL else "empty"
            return _Solution(status, empty.astype(bool), empty, empty, empty, 0.0, None)
        started = time.perf_counter()
        if self.m > self.policy.solver.decompose_above_options:
            got = self._solve_decomposed(budget)
            if got is not None:
                x, res, gap = got
                return self._read(x, time.perf_counter() - started, gap, res.status == 1)
        res, x = self._milp(None, budget)
        seconds = time.perf_counter() - started
        if x is None:  # infeasible (status 2), or a time limit hit before any feasible point
            return _Solution("infeasible", empty.astype(bool), empty, empty, empty, seconds, None)
        return self._read(x, seconds, float(getattr(res, "mip_gap", 0.0) or 0.0), res.status == 1)

    def _milp(self, cols: np.ndarray | None, budget: float):
        opts = self.policy.solver
        sel = slice(None) if cols is None else cols
        cons = [
            LinearConstraint(a, lo, hi) for _, a, lo, hi in self.blocks(budget, cols) if a.shape[0]
        ]
        res = milp(
            self.c[sel],
            integrality=self.integrality[sel],
            bounds=Bounds(self.lb[sel], self.ub[sel]),
            constraints=cons,
            options={
                "presolve": opts.presolve,
                "time_limit": opts.time_limit_s,
                "mip_rel_gap": opts.mip_rel_gap,
                "disp": False,
            },
        )
        if res.x is None:
            return res, None
        x = np.zeros(self.n)
        x[sel] = res.x
        return res, x

    # Large instances: Lagrangian column generation with a certificate.
    # Only the budget and district rows couple firms. Their LP duals (λ for the budget, μ − ν for a
    # district's ceiling and floor) price every option of every firm in one numpy pass: a firm's
    # best "profit" = max over its options and amounts of value − price × charge, and
    #     U = λ·B + Σ μ·ceiling − Σ ν·floor + Σ_firms max(0, best profit)
    # bounds the whole program from above (weak duality). Firms with positive profit join the
    # restricted program until none is left; the MILP is then solved on the restricted firms, and
    # every outside firm whose best profit is ≥ −(U − z) is added (only such a firm can be part of
    # a better solution), until none is. The result is then optimal for the whole program within
    # the restricted MILP's mip_rel_gap, which is what is reported.

    def _solve_decomposed(self, budget: float):
        """(x, the restricted MILP's result, the relative gap proved), or None to fall back to the
        full program."""
        inside = self._initial_firms(budget)
        for _ in range(100):
            duals = self._lp(self._cols(inside), budget)
            if duals is None:
                return None
            best, bound = self._lagrangian(duals, budget)
            add = ~inside & (best > 1e-9 * max(1.0, abs(bound)))
            if not add.any():
                break
            inside |= add
        opts = self.policy.solver
        for _ in range(100):
            res, x = self._milp(self._cols(inside), budget)
            if x is None:
                return None
            slack = max(bound - float(-(self.c @ x)), 0.0)
            add = ~inside & (best >= -slack - 1e-9 * max(1.0, abs(bound)))
            gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
            if not add.any():
                # Every firm left out has best profit < −(U − z), so no solution using one beats z:
                # the restricted optimum is the full optimum, up to the restricted MILP's own gap.
                return x, res, gap
            if (len(self._cols(inside | add)) > opts.decompose_above_options
                    and slack <= opts.decomposition_gap * abs(bound)):
                # too many firms to prove exactness cheaply; U proves z within (U − z) ÷ U
                return x, res, max(gap, slack / abs(bound) if bound else 0.0)
            inside |= add
        return None

    def _cols(self, inside: np.ndarray) -> np.ndarray:
        return np.flatnonzero(inside[self.block][self.col_option])

    def _initial_firms(self, budget: float) -> np.ndarray:
        """Firms by value per 万元 of their best option, enough to spend twice the budget (and floors)."""
        o, step = self.o, self.step
        fixed = o["fixed"].astype(bool)
        density = np.where(fixed, -self.c[: self.m] / np.maximum(o["fixed_charge"], 1e-12), 0.0)
        density[self.var] = -self.c[self.x1] / step
        most = np.where(fixed, o["fixed_charge"], o["cap_u"] * step)
        firm_density = np.maximum.reduceat(density, self.starts)
        firm_most = np.maximum.reduceat(most, self.starts)
        order = np.argsort(-firm_density, kind="stable")
        inside = np.zeros(len(self.starts), dtype=bool)
        enough = np.searchsorted(np.cumsum(firm_most[order]), 2 * budget) + 1
        inside[order[: max(enough, 50)]] = True
        firm_district = self.district_of_option[self.starts]
        for d in np.flatnonzero(self.floors > _TOL):
            mine = order[firm_district[order] == d]
            enough = np.searchsorted(np.cumsum(firm_most[mine]), 2 * self.floors[d]) + 1
            inside[mine[:enough]] = True
        return inside

    def _lp(self, cols: np.ndarray, budget: float) -> tuple[float, np.ndarray, np.ndarray] | None:
        """The restricted LP's duals: (λ budget, μ district ceilings, ν district floors), or None if infeasible."""
        rows, rhs = [], []
        pos = {}
        for name, a, lo, hi in self.blocks(budget, cols):
            up = np.flatnonzero(np.isfinite(hi))
            dn = np.flatnonzero(np.isfinite(lo) & ((lo > _TOL) if name == "district" else True))
            start = sum(r.shape[0] for r in rows)
            pos[(name, "up")] = (up, start)
            rows += [a[up]]
            rhs += [hi[up]]
            pos[(name, "dn")] = (dn, start + len(up))
            rows += [-a[dn]]
            rhs += [-lo[dn]]
        res = linprog(
            self.c[cols],
            A_ub=sp.vstack(rows).tocsr(),
            b_ub=np.concatenate(rhs),
            bounds=np.c_[self.lb[cols], self.ub[cols]],
            method="highs",
        )
        if res.status != 0:
            return None
        marg = -res.ineqlin.marginals
        mu, nu = np.zeros(len(self.districts)), np.zeros(len(self.districts))
        if len(self.districts):
            idx, start = pos[("district", "up")]
            mu[idx] = marg[start : start + len(idx)]
            idx, start = pos[("district", "dn")]
            nu[idx] = marg[start : start + len(idx)]
        return float(marg[0]), mu, nu

    def _lagrangian(self, duals, budget: float) -> tuple[np.ndarray, float]:
        """Each firm's best profit at these prices, and the upper bound U they certify."""
        lam, mu, nu = duals
        o, m, step = self.o, self.m, self.step
        price = lam + ((mu - nu)[self.district_of_option] if len(self.districts) else 0.0)
        fixed = o["fixed"].astype(bool)
        profit = np.where(fixed, -self.c[:m] - price * o["fixed_charge"], -np.inf)
        u1, u2 = np.zeros(m), np.zeros(m)
        u1[self.var] = -self.c[self.x1] / step
        u2[self.has2] = -self.c[self.x2] / step
        knee, cap = o["knee_u"].astype(float), o["cap_u"].astype(float)
        low = np.maximum(o["min_u"], 1).astype(float)

        def at(units: np.ndarray) -> np.ndarray:
            return (
                u1 * np.minimum(units, knee) + u2 * np.maximum(units - knee, 0) - price * units
            ) * step

        var_profit = np.maximum.reduce([at(low), at(np.clip(knee, low, cap)), at(cap)])
        profit = np.where(fixed, profit, np.where(cap >= low, var_profit, -np.inf))
        best = np.maximum.reduceat(profit, self.starts)
        ceilings = self.ceilings(budget)
        finite = np.isfinite(ceilings)
        bound = (
            lam * budget
            + float((mu[finite] * ceilings[finite]).sum())
            - float((nu * self.floors).sum())
            + float(np.maximum(best, 0).sum())
        )
        return best, bound

    def _read(self, x: np.ndarray, seconds: float, gap: float, time_limited: bool) -> _Solution:
        o, m, step = self.o, self.m, self.step
        x = np.round(x)
        steps = np.zeros(m)
        steps[self.var] = x[self.x1]
        steps[self.has2] += x[self.x2]
        fixed = o["fixed"].astype(bool)
        take = np.where(fixed, x[:m] > 0.5, steps > 0)
        amount = np.where(fixed, o["fixed_amount"], steps * step) * take
        charge = np.where(fixed, o["fixed_charge"], steps * step) * take
        knee_wan = o["knee_u"] * step
        effect = np.where(
            fixed,
            o["e1"] * o["fixed_amount"],
            o["e1"] * np.minimum(amount, knee_wan) + o["e2"] * np.maximum(amount - knee_wan, 0),
        )
        value = o["coef"] * effect * take
        self._break_ties(take, amount, charge, value)
        return _Solution(
            "optimal", take, amount, charge, value, seconds, gap, time_limited=time_limited
        )

    def _values_at(self, money: float, idx: np.ndarray) -> np.ndarray:
        """Options idx's expected value when given exactly `money` 万元 of budget (NaN: not possible)."""
        o, step = {k: v[idx] for k, v in self.o.items()}, self.step
        fixed = o["fixed"].astype(bool)
        exact = np.abs(o["fixed_charge"] - money) <= 1e-9 * max(1.0, money)
        fixed_value = np.where(exact, o["coef"] * o["e1"] * o["fixed_amount"], np.nan)
        on_grid = abs(money / step - round(money / step)) < 1e-9
        fits = (
            on_grid
            & (money <= o["cap_u"] * step + _TOL)
            & (money >= np.maximum(o["min_u"], 1) * step - _TOL)
        )
        knee = o["knee_u"] * step
        var_value = o["coef"] * (
            o["e1"] * np.minimum(money, knee) + o["e2"] * np.maximum(money - knee, 0)
        )
        return np.where(fixed, fixed_value, np.where(fits, var_value, np.nan))

    def _break_ties(self, take, amount, charge, value) -> None:
        """Apply the stated tie rule to exact ties the solver left open (it stops within mip_rel_gap).

        A chosen option is replaced by an earlier one in the tie order (higher firm probability,
        then smaller uscc, then instrument and tier order) when that one spends the same money in
        the same district for at least the same value, and its firm is unfunded or the same firm.
        """
        o_ = self.o
        fixed = o_["fixed"].astype(bool)
        # Value per 万元 can only fall with the amount (effects diminish), so this bounds value ÷ money.
        density = np.where(
            fixed,
            o_["coef"] * o_["e1"] * o_["fixed_amount"] / np.maximum(o_["fixed_charge"], 1e-12),
            o_["coef"] * o_["e1"],
        )
        for _ in range(1000):
            changed = False
            funded = np.zeros(self.block.max() + 1 if self.m else 0, dtype=bool)
            funded[self.block[take]] = True
            for o in np.flatnonzero(take)[::-1]:
                money, need = charge[o], value[o] - 1e-9 * max(1.0, abs(value[o]))
                idx = np.flatnonzero(density[:o] * money >= need - 1e-9)
                idx = idx[
                    (self.district_of_option[idx] == self.district_of_option[o])
                    & ((self.block[idx] == self.block[o]) | ~funded[self.block[idx]])
                ]
                if not idx.size:
                    continue
                vals = self._values_at(money, idx)
                ok = np.flatnonzero(~np.isnan(vals) & (vals >= need))
                if ok.size:
                    a = int(idx[ok[0]])
                    take[a], charge[a], value[a] = True, money, vals[ok[0]]
                    amount[a] = o_["fixed_amount"][a] if fixed[a] else money
                    take[o], amount[o], charge[o], value[o] = False, 0.0, 0.0, 0.0
                    funded[self.block[o]] = False
                    funded[self.block[a]] = True
                    changed = True
            if not changed:
                return


class _SolveCache:
    """Solutions by budget, so sensitivity, swing and marginal runs share solves."""

    def __init__(self, problem: _Problem) -> None:
        self.problem = problem
        self.cache: dict[float, _Solution] = {}
        self.count = 0

    def get(self, budget: float) -> _Solution:
        key = round(budget, 6)
        if key not in self.cache:
            self.cache[key] = self.problem.solve(budget)
            self.count += 1
        return self.cache[key]


# --------------------------------------------------------------------------- infeasibility


def _explain_infeasibility(problem: _Problem, budget: float) -> list[str]:
    """Sentences naming each floor that cannot be met and the shortfall in 万元."""
    floors, names = problem.floors, problem.districts
    total = float(floors.sum())
    out = []
    if total > budget + _TOL:
        out.append(
            f"各板块保底资金合计 {_n(total)} 万元，超过总预算 {_n(budget)} 万元，缺口 {_n(total - budget)} 万元。"
        )
    ceilings = problem.ceilings(budget)
    reach = _district_reach(problem)
    for i, d in enumerate(names):
        if floors[i] <= _TOL:
            continue
        limits = [
            (ceilings[i], f"该板块资金上限为 {_n(ceilings[i])} 万元"),
            (budget, f"总预算仅 {_n(budget)} 万元"),
            (reach[i], f"该板块可资助企业在工具额度和单户上限内合计最多可安排 {_n(reach[i])} 万元"),
        ]
        most, why = min(limits, key=lambda t: t[0])
        if floors[i] > most + _TOL:
            out.append(
                f"{d} 保底 {_n(floors[i])} 万元无法满足：{why}，缺口 {_n(floors[i] - most)} 万元。"
            )
    if not out:
        out = _elastic_shortfalls(problem, budget)
    return out or [
        "在现有预算、板块保底与上限、单户上限和一户一项工具的约束下无可行方案（未能定位到单一约束）。"
    ]


def _district_reach(problem: _Problem) -> np.ndarray:
    """Most each district could receive if it had the whole budget: each firm's largest option."""
    if not len(problem.districts) or problem.m == 0:
        return np.zeros(len(problem.districts))
    o = problem.o
    most = np.where(o["fixed"].astype(bool), o["fixed_charge"], o["cap_u"] * problem.step)
    frame = (
        pl.DataFrame(
            {
                "uscc": problem.options["uscc"],
                "d": problem.district_of_option,
                "most": most,
            }
        )
        .group_by("uscc", "d")
        .agg(pl.col("most").max())
        .group_by("d")
        .agg(pl.col("most").sum())
    )
    reach = np.zeros(len(problem.districts))
    for d, v in frame.iter_rows():
        if d >= 0:
            reach[d] = v
    return reach


def _elastic_shortfalls(problem: _Problem, budget: float) -> list[str]:
    """Minimise the total floor shortfall; report each floor left short."""
    floored = np.flatnonzero(problem.floors > _TOL)
    k = len(floored)
    n = problem.n + k

    def pad(a: sp.csr_array) -> sp.csr_array:
        return sp.hstack([a, sp.csr_array((a.shape[0], k))]).tocsr()

    slack = sp.csr_array((np.ones(k), (floored, np.arange(k))), shape=(len(problem.districts), k))
    cons = [
        LinearConstraint(pad(problem.budget_row), -np.inf, budget),
        LinearConstraint(pad(problem.district_rows), -np.inf, problem.ceilings(budget)),
        LinearConstraint(
            sp.hstack([problem.district_rows, slack]).tocsr()[floored],
            problem.floors[floored],
            np.inf,
        ),
    ]
    for a, lo, hi in (
        (problem.firm_rows, -np.inf, 1),
        (problem.link_cap, -np.inf, 0),
        (problem.link_min, 0, np.inf),
    ):
        if a.shape[0]:
            cons.append(LinearConstraint(pad(a), lo, hi))
    c = np.concatenate([np.zeros(problem.n), np.ones(k)])
    res = milp(
        c,
        integrality=np.concatenate([problem.integrality, np.zeros(k)]),
        bounds=Bounds(np.zeros(n), np.concatenate([problem.ub, np.full(k, np.inf)])),
        constraints=cons,
        options={"presolve": True, "time_limit": problem.policy.solver.time_limit_s},
    )
    if res.x is None:
        return []
    out = []
    for j, i in enumerate(floored):
        short = float(res.x[problem.n + j])
        if short > 1e-6:
            floor = problem.floors[i]
            out.append(
                f"{problem.districts[i]} 保底 {_n(floor)} 万元无法满足：在预算、板块上限、单户上限和一户一项工具的"
                f"共同约束下最多只能安排 {_n(floor - short)} 万元，缺口 {_n(short)} 万元。"
            )
    return out


# --------------------------------------------------------------------------- beyond the allocation


def _sensitivity(solves: _SolveCache, policy: Policy, budget: float) -> pl.DataFrame:
    rows = []
    for share in policy.sensitivity.shares:
        s = solves.get(share * budget)
        ok = s.status != "infeasible"
        rows.append(
            {
                "budget_share": share,
                "budget_wan": share * budget,
                "expected_value": s.value if ok else None,
                "firms_funded": len(s.funded(solves.problem.options)) if ok else 0,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "budget_share": pl.Float64,
            "budget_wan": pl.Float64,
            "expected_value": pl.Float64,
            "firms_funded": pl.Int64,
        },
    )


def _marginal_value(solves: _SolveCache, policy: Policy, budget: float) -> float:
    """[EV(B) − EV(B − Δ)] ÷ Δ, Δ = max(amount step, marginal_step_share × B)."""
    delta = max(policy.solver.amount_step_wan, policy.sensitivity.marginal_step_share * budget)
    if budget - delta < 0:
        return math.nan
    lower = solves.get(budget - delta)
    if lower.status == "infeasible":
        return math.nan
    return (solves.get(budget).value - lower.value) / delta


def _swing(solves: _SolveCache, problem: _Problem, policy: Policy, budget: float, status: str):
    """Firms funded at +swing and not now, now and not at −swing, now and not at +swing, and at
    −swing and not now."""
    empty = pl.DataFrame(schema=FIRM_LIST_SCHEMA)
    if status != "optimal":
        return empty, empty, empty, empty
    swing = policy.sensitivity.swing_share
    now = solves.get(budget).funded(problem.options)
    up, down = solves.get(budget * (1 + swing)), solves.get(budget * (1 - swing))
    names = dict(zip(problem.options["uscc"].to_list(), problem.options["name"].to_list()))

    def frame(ids: set[str]) -> pl.DataFrame:
        return pl.DataFrame(
            {"uscc": sorted(ids), "name": [names[u] for u in sorted(ids)]}, schema=FIRM_LIST_SCHEMA
        )

    def moves(other) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(funded there and not now, funded now and not there)."""
        if other.status != "optimal":
            return empty, empty
        there = other.funded(problem.options)
        return frame(there - now), frame(now - there)

    (entering, leaving_up), (entering_down, leaving) = moves(up), moves(down)
    return entering, leaving, leaving_up, entering_down


def _baseline(
    rows: pl.DataFrame,
    problem: _Problem,
    main: _Solution,
    policy: Policy,
    budget: float,
    status: str,
) -> pl.DataFrame:
    """tidu's allocation beside "the schedule's fixed reward to every fundable firm", same budget."""
    inst = policy.instruments.recognition_reward
    effect = inst.effect_per_wan if inst is not None else 1.0
    expected = inst is not None and inst.reserve == "expected_cost"
    r = rows.filter(pl.col("_reward") > 0)
    charge = r["_reward"] * (r["probability"] if expected else 1.0)
    total = float(charge.sum())
    scale = min(1.0, budget / total) if total > 0 else 0.0
    value = (
        float((r["probability"] * r["_weight"] * r["_priority"] * effect * r["_reward"]).sum())
        * scale
    )
    firms = r["uscc"].n_unique() if scale > 0 else 0
    ok = status == "optimal"
    return pl.DataFrame(
        {
            "scheme": ["tidu优化分配", "固定奖励普惠（全部可资助企业）"],
            "expected_value": [main.value if ok else 0.0, value],
            "firms_funded": [len(main.funded(problem.options)) if ok else 0, firms],
            "budget_used_wan": [main.charge if ok else 0.0, total * scale],
        },
        schema={
            "scheme": pl.Utf8,
            "expected_value": pl.Float64,
            "firms_funded": pl.Int64,
            "budget_used_wan": pl.Float64,
        },
    )


def _baseline_ev(baseline: pl.DataFrame) -> float | None:
    row = baseline.filter(pl.col("scheme").str.starts_with("固定奖励"))
    return float(row["expected_value"][0]) if row.height else None


def _reward_payout(chosen: pl.DataFrame) -> tuple[float, float]:
    """Expected payout of the chosen rewards (Σ p·R) and its standard deviation (independent firms)."""
    r = chosen.filter(pl.col("instrument_key") == "recognition_reward") if chosen.height else chosen
    if not r.height:
        return 0.0, 0.0
    p, amount = r["probability"].to_numpy(), r["amount_wan"].to_numpy()
    return float((p * amount).sum()), float(math.sqrt((p * (1 - p) * amount**2).sum()))


# --------------------------------------------------------------------------- KPIs


def _as_of(firms: pl.DataFrame, policy: Policy) -> dt.date:
    """The scored quarter's end: from the panel's quarter_end or quarter, else the day before the budget period."""
    if "quarter_end" in firms.columns and firms["quarter_end"].drop_nulls().len():
        return firms["quarter_end"].max()
    if "quarter" in firms.columns and firms["quarter"].drop_nulls().len():
        return Quarter.parse(str(firms["quarter"].max())).end
    return policy.budget.period_start - dt.timedelta(days=1)


def kpi_table(candidates: pl.DataFrame, firms: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Each action-plan target: current value, projection, and 达标 / 进度正常 / 存在风险.

    Scope: firms with a chain layer (``kpis.scope: chain``) or all firms. Horizon h = years from
    the scored quarter's end to the target's deadline (0 once it has passed). Measures:
    chain_revenue_yi — Σ revenue_ttm in 亿元; projected Σ revenue_ttm × (1 + g)^h with g the firm's
    revenue_growth_yoy clipped to [−50 %, 100 %] (null → 0).
    new_revenue_over_threshold — firms at or above threshold_wan now whose baseline_column was
    below it (null baseline counts as below); projected adds firms that cross it by the deadline at g.
    new_recognitions — firms holding any listed tier whose years_since_<tier> falls inside the plan
    period (years_since counts from the latest recognition, so a renewal inside the period counts); projected adds Σ over non-holders of 1 − Π(1 − p) × min(h, 1) (p: the four-quarter
    probabilities of the candidate list).
    holders — firms holding any listed tier; projected adds the same probability sum.
    revenue_growth — aggregate growth Σ revenue_ttm ÷ Σ revenue_ttm/(1 + g) − 1, in %; projected =
    current (no growth model).
    """
    schema = {
        "target": pl.Utf8,
        "target_value": pl.Float64,
        "current_value": pl.Float64,
        "projected_value": pl.Float64,
        "unit": pl.Utf8,
        "status": pl.Utf8,
    }
    as_of = _as_of(firms, policy)
    scope = (
        firms.filter(pl.col("chain_layer").is_not_null()) if policy.kpis.scope == "chain" else firms
    )
    rows = []
    for t in policy.kpis.targets:
        h = max(0.0, (t.deadline - as_of).days / 365.25)
        current, projected = _measure(t, scope, candidates, policy, as_of, h)
        rows.append(
            {
                "target": t.label,
                "target_value": t.target_value,
                "current_value": current,
                "projected_value": projected,
                "unit": t.unit,
                "status": _kpi_status(t, current, projected),
            }
        )
    return pl.DataFrame(rows, schema=schema)


def _growth(scope: pl.DataFrame) -> pl.Expr:
    return (
        pl.col("revenue_growth_yoy").fill_null(0.0).clip(-0.5, 1.0)
        if "revenue_growth_yoy" in scope.columns
        else pl.lit(0.0)
    )


def _measure(
    t, scope: pl.DataFrame, candidates: pl.DataFrame, policy: Policy, as_of: dt.date, h: float
):
    rev = pl.col("revenue_ttm").fill_null(0.0)
    if t.measure == "chain_revenue_yi":
        cur = float(scope.select(rev.sum()).item() or 0.0) / 1e4
        proj = float(scope.select((rev * (1 + _growth(scope)) ** h).sum()).item() or 0.0) / 1e4
        return cur, proj
    if t.measure == "new_revenue_over_threshold":
        thr = t.threshold_wan
        base = (
            pl.col(t.baseline_column).fill_null(0.0)
            if t.baseline_column in scope.columns
            else pl.lit(0.0)
        )
        cur = scope.filter((rev >= thr) & (base < thr)).height
        later = scope.filter((rev < thr) & (rev * (1 + _growth(scope)) ** h >= thr)).height
        return float(cur), float(cur + later)
    if t.measure in ("new_recognitions", "holders"):
        return _recognition_counts(t, scope, candidates, policy, as_of, h)
    if t.measure == "revenue_growth":
        if "revenue_growth_yoy" not in scope.columns:
            return None, None
        g = scope.filter(
            pl.col("revenue_growth_yoy").is_not_null()
            & pl.col("revenue_ttm").is_not_null()
            & (pl.col("revenue_growth_yoy") > -1)
        )
        prev = float(
            g.select((pl.col("revenue_ttm") / (1 + pl.col("revenue_growth_yoy"))).sum()).item() or 0
        )
        if prev <= 0:
            return None, None
        cur = (float(g["revenue_ttm"].sum()) / prev - 1) * 100
        return cur, cur
    raise ValueError(f"unknown KPI measure {t.measure}")


def _recognition_counts(t, scope, candidates, policy, as_of, h):
    years_in_plan = (as_of - policy.kpis.plan_start).days / 365.25
    holds = pl.lit(False)
    new = pl.lit(False)
    for key in t.tiers:
        if f"holds_{key}" not in scope.columns:
            continue
        held = pl.col(f"holds_{key}").fill_null(False)
        holds = holds | held
        if f"years_since_{key}" in scope.columns:
            new = new | (held & (pl.col(f"years_since_{key}") <= years_in_plan).fill_null(False))
    flagged = scope.with_columns(holds.alias("_holds"), new.alias("_new"))
    cur = float(flagged["_new" if t.measure == "new_recognitions" else "_holds"].sum())
    non_holders = flagged.filter(~pl.col("_holds")).select("uscc")
    p = candidates.filter(pl.col("tier_key").is_in(t.tiers)).join(
        non_holders, on="uscc", how="semi"
    )
    chance = p.group_by("uscc").agg(
        (1 - (1 - pl.col("probability").fill_null(0).clip(0, 1)).product()).alias("q")
    )
    return cur, cur + float(chance["q"].sum()) * min(h, 1.0)


def _kpi_status(t, current: float | None, projected: float | None) -> str:
    def meets(v: float | None) -> bool:
        if v is None:
            return False
        return v > t.target_value if t.comparison == ">" else v >= t.target_value - 1e-9

    if meets(current):
        return STATUS_MET
    return STATUS_ON_TRACK if meets(projected) else STATUS_AT_RISK


# --------------------------------------------------------------------------- the allocation table


def _allocation_frame(chosen, problem, main, policy, budget, marginal) -> pl.DataFrame:
    if not chosen.height:
        return pl.DataFrame(schema=ALLOCATION_SCHEMA)
    alternatives = _alternatives(problem.options, chosen["uscc"])
    district_used = chosen.group_by("district").agg(pl.col("charge_wan").sum())
    used = dict(zip(district_used["district"].to_list(), district_used["charge_wan"].to_list()))
    ceilings = dict(zip(problem.districts, problem.ceilings(budget)))
    ctx = {
        "budget": budget,
        "slack": budget - main.charge,
        "used": used,
        "ceilings": ceilings,
        "alternatives": alternatives,
        "marginal": marginal,
        "step": problem.step,
    }
    lines = [_rationale(r, policy, ctx) for r in chosen.iter_rows(named=True)]
    out = chosen.with_columns(
        pl.Series("rationale", lines, dtype=pl.Utf8),
        pl.col("instrument_key")
        .map_elements(policy.instrument_name, return_dtype=pl.Utf8)
        .alias("instrument"),
    )
    return out.sort(["expected_value", "uscc"], descending=[True, False]).select(
        [pl.col(c).cast(t) for c, t in ALLOCATION_SCHEMA.items()]
    )


def _alternatives(options: pl.DataFrame, firms: pl.Series) -> dict[str, list[dict]]:
    """Every option of the funded firms, to say what the same money would have bought elsewhere."""
    cols = [
        "instrument_key",
        "fixed",
        "fixed_amount",
        "fixed_charge",
        "cap_u",
        "min_u",
        "knee_u",
        "e1",
        "e2",
        "coef",
    ]
    out: dict[str, list[dict]] = {}
    for r in (
        options.filter(pl.col("uscc").is_in(firms.implode()))
        .select(["uscc"] + cols)
        .iter_rows(named=True)
    ):
        out.setdefault(r["uscc"], []).append(r)
    return out


def _amount_at(o: dict, money: float, step: float) -> float:
    """What option o would take of `money` 万元: its fixed charge, or the money up to its cap."""
    return o["fixed_charge"] if o["fixed"] else min(money, o["cap_u"] * step)


def _value_at(o: dict, money: float, step: float) -> float | None:
    """Expected value of option o given at most `money` 万元 of budget; None when it cannot be used."""
    if o["fixed"]:
        return (
            o["coef"] * o["e1"] * o["fixed_amount"] if o["fixed_charge"] <= money + _TOL else None
        )
    amount = min(money, o["cap_u"] * step)
    if amount < max(o["min_u"] * step, step) - _TOL:
        return None
    knee = o["knee_u"] * step
    return o["coef"] * (o["e1"] * min(amount, knee) + o["e2"] * max(amount - knee, 0.0))


def _rationale(r: dict, policy: Policy, ctx: dict) -> str:
    """One line in Chinese: why this firm, why this instrument, why this amount, and the EV sum."""
    return "；".join(
        p
        for p in (
            _why_firm(r, policy),
            _why_instrument(r, policy, ctx),
            _why_amount(r, policy, ctx),
            _ev_formula(r, ctx["step"]),
        )
        if p
    )


def _why_firm(r: dict, policy: Policy) -> str:
    rank = f"候选第 {r['rank']} 名，" if r.get("rank") is not None else ""
    layer = r.get("chain_layer") or "未标注产业链环节"
    tie = (
        f"（含与本地链主同链系数 ×{_n(policy.chain_priority.chain_leader_tie)}）"
        if r.get("chain_leader_tie")
        else ""
    )
    review = "，部分认定条件待人工核实" if not r.get("_eligible") else ""
    return (
        f"入选：{r['tier']}{rank}四个季度内新获认定概率 {r['probability']:.1%}，层级权重 {_n(r['_weight'])}，"
        f"{layer}优先系数 {_n(r['_priority'], 3)}{tie}{review}"
    )


def _why_instrument(r: dict, policy: Policy, ctx: dict) -> str:
    """The instrument, and what the same money would have bought with the firm's other instruments."""
    key = r["instrument_key"]
    inst = getattr(policy.instruments, key)
    money = r["charge_wan"]
    others = [o for o in ctx["alternatives"].get(r["uscc"], []) if o["instrument_key"] != key]
    kinds = len({o["instrument_key"] for o in others})   # instruments, not (tier, instrument) options
    rivals = [
        (v, o["instrument_key"], _amount_at(o, money, ctx["step"]))
        for o in others
        if (v := _value_at(o, money, ctx["step"])) is not None
    ]
    if not others:
        head = f"工具：{inst.name_zh}（该企业唯一可用工具）"
    elif not rivals:
        head = f"工具：{inst.name_zh}（其余 {kinds} 种可用工具在 {_n(money)} 万元内无法安排）"
    else:
        v, k, used = max(rivals, key=lambda t: t[0])
        capped = f"（至多 {_n(used)} 万元）" if used < money - _TOL else ""
        if r["expected_value"] > v + 1e-6:
            verdict = "本工具更高"
        elif r["expected_value"] >= v - 1e-6:
            verdict = "与本工具相同，按既定顺序（工具排列顺序）选用本工具"
        else:
            verdict = "本工具虽低，但整体组合在预算和板块约束下更优"
        head = (
            f"工具：{inst.name_zh}（同样 {_n(money)} 万元用于其他 {kinds} 种可用工具，期望价值最高为"
            f"{policy.instrument_name(k)}{capped}的 {_n(v)}，{verdict}）"
        )
    return head + _terms(key, inst, r, policy)


def _terms(key: str, inst, r: dict, policy: Policy) -> str:
    if key == "recognition_reward":
        basis = (
            "按全额预留，未认定则期末释放"
            if inst.reserve == "face_value"
            else f"按期望成本 {r['probability']:.1%}×{_n(r['fixed_amount'])} = {_n(r['fixed_charge'])} 万元预留"
        )
        extra = "".join(
            f"；另可申报{f.name} {_n(f.amount_wan)} 万元/{f.years} 年（不占本预算）"
            for f in policy.external_funds
            if f.tier == r["tier_key"]
        )
        return f"，{policy.tiers[r['tier_key']].level}首次认定后兑付，{basis}{extra}"
    if key == "risk_compensation_pool":
        return (
            f"，按 {_n(inst.leverage)} 倍杠杆撬动科技贷款，补偿不超过不良贷款余额的 "
            f"{_n(inst.compensation_share_of_npl * 100)}%"
        )
    if key == "invest_then_equity":
        return f"，{inst.conversion}"
    if key == "angel_guidance_fund":
        # the co-investment rule is a condition of payment, not a cap the data can check: the round
        # it follows has not happened yet
        return (f"，待企业新一轮社会资本股权融资到位后跟投拨付，出资不超过同轮社会资本出资的 "
                f"{_n(inst.co_invest_ratio * 100)}%")
    if key == "rd_subsidy":
        return f"，按上年研发费用的 {_n(inst.share_of_rd_expense * 100)}% 补助"
    return ""


def _why_amount(r: dict, policy: Policy, ctx: dict) -> str:
    amt = r["amount_wan"]
    if r["fixed"]:
        return f"金额：按{r['tier']}首次认定奖励标准 {_n(amt)} 万元"
    step = ctx["step"]
    cap, knee, lo = r["cap_u"] * step, r["knee_u"] * step, r["min_u"] * step
    if amt >= cap - _TOL:
        return f"金额：{_n(amt)} 万元，{_cap_phrase(r)}"
    if knee < cap and abs(amt - knee) < _TOL:
        return (
            f"金额：{_n(amt)} 万元，超过 {_n(knee)} 万元后每万元效应由 {_n(r['e1'])} 降至 {_n(r['e2'])}，"
            "按边际效益不再追加"
        )
    if lo > 0 and abs(amt - lo) < _TOL:
        return f"金额：{_n(amt)} 万元，按该工具最低额度安排"
    d = r.get("district")
    ceiling = ctx["ceilings"].get(d if d is not None else "（未填板块）", math.inf)
    if ceiling < math.inf and ctx["used"].get(d, 0.0) >= ceiling - step:
        return f"金额：{_n(amt)} 万元，所在板块{d or ''}资金上限 {_n(ceiling)} 万元已基本用满"
    return f"金额：{_n(amt)} 万元，总预算 {_n(ctx['budget'])} 万元已基本用完，按剩余额度安排"


def _cap_phrase(r: dict) -> str:
    return r.get("cap_reason") or "达到该工具上限"


def _ev_formula(r: dict, step: float) -> str:
    head = f"期望价值 = {r['probability']:.4f}×{_n(r['_weight'])}×{_n(r['_priority'], 3)}×"
    amt = r["amount_wan"]
    knee = r["knee_u"] * step
    if r["fixed"] or amt <= knee + _TOL:
        body = f"{_n(r['e1'])}×{_n(amt)}"
    else:
        body = f"({_n(r['e1'])}×{_n(knee)}+{_n(r['e2'])}×{_n(amt - knee)})"
    return f"{head}{body} = {_n(r['expected_value'], 2)}"


# --------------------------------------------------------------------------- small helpers


def _n(x: float | None, digits: int = 2) -> str:
    """A number for Chinese text: up to `digits` decimals, no trailing zeros."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    text = f"{x:,.{digits}f}".replace(",", "")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _json_float(x: float | None) -> float | None:
    return (
        None
        if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x)))
        else float(x)
    )
