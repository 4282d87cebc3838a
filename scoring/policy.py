"""The funding policy: budget, reward schedule, instruments, limits, priorities and KPI targets.

A policy is a versioned YAML file (``scoring/policies/default.yaml`` is 宜兴's default; the CLI
takes ``--policy FILE``) validated by the pydantic models below. Every figure in it carries a
``source`` — a reference (criteria.md §…) or the word 假设 (assumption) — so a quarter's policy can
be diffed and audited. Money is 万元 throughout. ``load_policy`` turns every problem in a file into
one ``PolicyError`` whose message names the file and each bad field in Chinese; the CLI prints it
without a traceback.

The expected-value model the policy feeds is described in ``scoring/allocation.py``; in one line:
value of a line = probability × tier weight × chain priority × instrument effect per 万元 × 万元.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scoring.tiers import TIERS

DEFAULT_POLICY = Path(__file__).resolve().parent / "policies" / "default.yaml"

INSTRUMENT_KEYS = (
    "recognition_reward",
    "rd_subsidy",
    "invest_then_equity",
    "risk_compensation_pool",
    "angel_guidance_fund",
)
# Chinese names as they appear in allocation.csv's instrument column (defaults; the YAML may rename).
INSTRUMENT_NAMES_ZH = {
    "recognition_reward": "认定奖励",
    "rd_subsidy": "研发费用补助",
    "invest_then_equity": "先投后股",
    "risk_compensation_pool": "风险补偿资金池",
    "angel_guidance_fund": "天使投资引导基金",
}


class PolicyError(Exception):
    """A policy file that cannot be used; ``problems`` lists every bad field, in Chinese."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        head = f"政策文件 {self.path} 有 {len(problems)} 处问题：" if len(problems) > 1 else ""
        body = "\n".join(f"政策文件 {self.path}：{p}" for p in problems)
        super().__init__(f"{head}\n{body}" if head else body)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _assumed(source: str) -> bool:
    return "假设" in source


class Budget(_Model):
    """The money to split and the period it covers."""

    total_wan: float = Field(ge=0)
    period_start: dt.date
    period_end: dt.date
    period_label: str = Field(min_length=1)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _period_in_order(self) -> Budget:
        if self.period_end < self.period_start:
            raise ValueError(f"预算期间结束日 {self.period_end} 早于开始日 {self.period_start}")
        return self


class CandidateRules(_Model):
    """Which candidate rows (firm × tier) may be funded at all."""

    include: Literal["eligible", "eligible_if_unknowns_hold"] = "eligible_if_unknowns_hold"
    min_probability: float = Field(default=0.0, ge=0, le=1)
    skip_if_already_held: bool = True  # the tier, or a higher one on its ladder (scoring.tiers.LADDERS)


class TierRule(_Model):
    """A tier's priority weight and the one-off reward on first recognition at it."""

    level: Literal["国家级", "省级", "市级", "县级"]
    weight: float = Field(ge=0)
    weight_source: str = Field(min_length=1)
    reward_wan: float = Field(ge=0)
    reward_source: str = Field(min_length=1)


class Condition(_Model):
    """One test on a firm column; a null or missing value fails the test."""

    column: str = Field(min_length=1)
    op: Literal["<", "<=", ">", ">=", "==", "!=", "is_true"]
    value: float | bool | None = None

    @model_validator(mode="after")
    def _value_given(self) -> Condition:
        if self.op != "is_true" and self.value is None:
            raise ValueError(f"条件 {self.column} {self.op} 缺少比较值 value")
        return self


class _Instrument(_Model):
    name_zh: str = Field(min_length=1)
    enabled: bool = True
    effect_per_wan: float = Field(ge=0)
    eligible_if: list[Condition] = []
    eligible_if_any: list[Condition] = []
    source: str = Field(min_length=1)


class _VariableInstrument(_Instrument):
    """An instrument whose amount the optimiser chooses, between min_wan and a cap."""

    min_wan: float = Field(default=0.0, ge=0)
    cap_wan: float = Field(gt=0)
    diminish_after_wan: float | None = Field(default=None, gt=0)
    effect_per_wan_after: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _effect_concave(self) -> _VariableInstrument:
        after, knee = self.effect_per_wan_after, self.diminish_after_wan
        if (after is None) != (knee is None):
            raise ValueError("diminish_after_wan 与 effect_per_wan_after 须同时给出或同时省略")
        if after is not None and after > self.effect_per_wan:
            raise ValueError(
                f"effect_per_wan_after {after} 大于 effect_per_wan {self.effect_per_wan}："
                "边际效应只能递减"
            )
        if self.min_wan > self.cap_wan:
            raise ValueError(f"min_wan {self.min_wan} 大于 cap_wan {self.cap_wan}")
        return self


class RecognitionReward(_Instrument):
    """The one-off reward on first recognition; amounts come from ``tiers.*.reward_wan``.

    ``reserve``: face_value reserves the full reward against the budget when the firm is put on
    the list (the money must be there if the firm is recognised); expected_cost reserves only
    probability × reward (more firms fit, but the payout can exceed the reserve).
    """

    reserve: Literal["face_value", "expected_cost"] = "face_value"


class RdSubsidy(_VariableInstrument):
    """A subsidy of a share of last year's R&D expense (rd_expense_py), capped."""

    share_of_rd_expense: float = Field(gt=0, le=1)


class InvestThenEquity(_VariableInstrument):
    """先投后股: a grant that converts to equity at the next priced round."""

    conversion: str = Field(min_length=1)


class RiskCompensationPool(_VariableInstrument):
    """Money put into the loan-loss pool for one firm's technology loans.

    ``cap_wan`` is the pool money per firm; it backs leverage × that in loans, and the pool pays at
    most compensation_share_of_npl of a defaulted loan's non-performing balance.
    """

    leverage: float = Field(gt=0)
    compensation_share_of_npl: float = Field(gt=0, le=1)
    max_loan_wan: float = Field(gt=0)


class AngelGuidanceFund(_VariableInstrument):
    """The government angel fund co-investing alongside private investors."""

    co_invest_ratio: float = Field(gt=0)


class Instruments(_Model):
    recognition_reward: RecognitionReward | None = None
    rd_subsidy: RdSubsidy | None = None
    invest_then_equity: InvestThenEquity | None = None
    risk_compensation_pool: RiskCompensationPool | None = None
    angel_guidance_fund: AngelGuidanceFund | None = None

    @model_validator(mode="after")
    def _one_enabled(self) -> Instruments:
        if not self.enabled():
            raise ValueError("至少需要启用一种资助工具")
        return self

    def enabled(self) -> dict[str, _Instrument]:
        """Enabled instruments by key, in the fixed order of INSTRUMENT_KEYS."""
        found = {k: getattr(self, k) for k in INSTRUMENT_KEYS}
        return {k: v for k, v in found.items() if v is not None and v.enabled}


class DistrictLimit(_Model):
    floor_wan: float = Field(default=0.0, ge=0)
    ceiling_wan: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> DistrictLimit:
        if self.ceiling_wan is not None and self.floor_wan > self.ceiling_wan:
            raise ValueError(
                f"保底 floor_wan {self.floor_wan} 高于上限 ceiling_wan {self.ceiling_wan}"
            )
        return self


class Districts(_Model):
    """Per-district floors and ceilings; ``default_ceiling_share`` caps any district's share.

    Floors that together exceed the budget are not rejected here: ``allocate`` reports them as
    infeasible with the shortfall in 万元, the same words whether the file or the data is at fault.
    """

    default_ceiling_share: float | None = Field(default=None, gt=0, le=1)
    limits: dict[str, DistrictLimit] = {}
    source: str = Field(min_length=1)


class ChainPriority(_Model):
    """Multipliers by chain layer, and for firms in the same chain as a 链主 (chain_leader_tie)."""

    layers: dict[str, float] = {}
    unlisted: float = Field(default=1.0, gt=0)
    chain_leader_tie: float = Field(default=1.0, gt=0)
    source: str = Field(min_length=1)

    @field_validator("layers")
    @classmethod
    def _positive(cls, layers: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in layers.items() if v <= 0]
        if bad:
            raise ValueError(f"产业链环节权重须为正数：{', '.join(bad)}")
        return layers


class ExternalFund(_Model):
    """Money from outside the budget that a funded firm may also apply for (not allocated here)."""

    name: str = Field(min_length=1)
    tier: str
    amount_wan: float = Field(ge=0)
    years: int = Field(ge=1)
    terms: str = ""
    source: str = Field(min_length=1)

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, tier: str) -> str:
        if tier not in TIERS:
            raise ValueError(f"未知层级 {tier}（可用：{', '.join(TIERS)}）")
        return tier


class KpiTarget(_Model):
    """One target of the action plan, and how tidu measures it (see allocation.kpi_table)."""

    key: str = Field(min_length=1)
    label: str = Field(min_length=1)
    measure: Literal[
        "chain_revenue_yi",
        "new_revenue_over_threshold",
        "new_recognitions",
        "holders",
        "revenue_growth",
    ]
    comparison: Literal[">=", ">"] = ">="
    target_value: float
    unit: str
    deadline: dt.date
    threshold_wan: float | None = None
    baseline_column: str | None = None
    tiers: list[str] = []
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _measure_parameters(self) -> KpiTarget:
        if self.measure == "new_revenue_over_threshold" and (
            self.threshold_wan is None or self.baseline_column is None
        ):
            raise ValueError("new_revenue_over_threshold 需要 threshold_wan 和 baseline_column")
        if self.measure in ("new_recognitions", "holders") and not self.tiers:
            raise ValueError(f"{self.measure} 需要 tiers（层级列表）")
        return self


class Kpis(_Model):
    plan: str = Field(min_length=1)
    plan_start: dt.date
    scope: Literal["chain", "all"] = "chain"
    source: str = Field(min_length=1)
    targets: list[KpiTarget] = []


class Sensitivity(_Model):
    shares: list[float] = [0.5, 0.75, 0.8, 1.0, 1.2, 1.5, 2.0]
    swing_share: float = Field(default=0.2, gt=0, lt=1)
    marginal_step_share: float = Field(default=0.01, gt=0, lt=1)

    @field_validator("shares")
    @classmethod
    def _shares_positive(cls, shares: list[float]) -> list[float]:
        if not shares or any(s <= 0 for s in shares):
            raise ValueError("shares 须为非空的正数列表")
        return sorted(set(shares))


class Solver(_Model):
    mip_rel_gap: float = Field(default=1e-7, gt=0, lt=0.1)
    time_limit_s: float = Field(default=600, gt=0)
    presolve: bool = False
    tie_break_epsilon: float = Field(default=1e-6, ge=0, lt=1e-3)
    amount_step_wan: float = Field(default=1.0, gt=0)
    decompose_above_options: int = Field(default=5000, ge=0)
    decomposition_gap: float = Field(default=1e-3, ge=0, lt=0.1)


class Policy(_Model):
    """A whole policy file."""

    format_version: Literal[1] = 1
    policy_id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    effective_from: dt.date
    city: str = Field(min_length=1)
    description: str = ""
    budget: Budget
    candidates: CandidateRules = CandidateRules()
    tiers: dict[str, TierRule]
    instruments: Instruments
    per_firm_cap_wan: float = Field(gt=0)
    per_firm_cap_source: str = Field(min_length=1)
    districts: Districts
    chain_priority: ChainPriority
    external_funds: list[ExternalFund] = []
    kpis: Kpis
    sensitivity: Sensitivity = Sensitivity()
    solver: Solver = Solver()

    def assumed_parts(self) -> list[str]:
        """The parts of the policy whose `source` says 假设 (an assumption, not a published
        figure), in Chinese, for the memo to say so: the memo must not read as the city's rules."""
        parts = []
        if _assumed(self.budget.source):
            parts.append("预算总额")
        if any(_assumed(t.weight_source) for t in self.tiers.values()):
            parts.append("层级权重")
        if any(_assumed(t.reward_source) for t in self.tiers.values()):
            parts.append("认定奖励标准")
        tools = [inst.name_zh for inst in self.instruments.enabled().values() if _assumed(inst.source)]
        if tools:
            parts.append(f"资助工具（{'、'.join(tools)}）的效应系数等参数")
        if _assumed(self.per_firm_cap_source):
            parts.append("单户上限")
        if _assumed(self.districts.source):
            parts.append("板块保底与上限")
        if _assumed(self.chain_priority.source):
            parts.append("产业链优先系数")
        return parts

    @field_validator("tiers")
    @classmethod
    def _known_tiers(cls, tiers: dict[str, TierRule]) -> dict[str, TierRule]:
        unknown = [k for k in tiers if k not in TIERS]
        if unknown:
            raise ValueError(f"未知层级 {', '.join(unknown)}（可用：{', '.join(TIERS)}）")
        return tiers

    def tier_weight(self, tier_key: str) -> float:
        rule = self.tiers.get(tier_key)
        return rule.weight if rule else 0.0

    def instrument_name(self, key: str) -> str:
        inst = getattr(self.instruments, key, None)
        return inst.name_zh if inst is not None else INSTRUMENT_NAMES_ZH[key]

    def with_budget(self, total_wan: float) -> Policy:
        """The same policy with another budget (for sensitivity runs and tests)."""
        return self.model_copy(
            update={"budget": self.budget.model_copy(update={"total_wan": total_wan})}
        )


_MESSAGES = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不是可识别的字段（拼写错误？）",
    "greater_than_equal": "应 ≥ {ge}，实际为 {input}",
    "greater_than": "应 > {gt}，实际为 {input}",
    "less_than_equal": "应 ≤ {le}，实际为 {input}",
    "less_than": "应 < {lt}，实际为 {input}",
    "float_parsing": "应为数字，实际为 {input!r}",
    "float_type": "应为数字，实际为 {input!r}",
    "int_parsing": "应为整数，实际为 {input!r}",
    "int_from_float": "应为整数，实际为 {input!r}",
    "bool_parsing": "应为 true 或 false，实际为 {input!r}",
    "bool_type": "应为 true 或 false，实际为 {input!r}",
    "date_parsing": "应为日期（YYYY-MM-DD），实际为 {input!r}",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD），实际为 {input!r}",
    "date_type": "应为日期（YYYY-MM-DD），实际为 {input!r}",
    "string_type": "应为文字，实际为 {input!r}",
    "string_too_short": "不能为空",
    "literal_error": "应为 {expected} 之一，实际为 {input!r}",
    "dict_type": "应为键值映射，实际为 {input!r}",
    "list_type": "应为列表，实际为 {input!r}",
    "model_type": "应为键值映射，实际为 {input!r}",
    "too_short": "不能为空列表",
}


def _problem(error: dict) -> str:
    """One pydantic error as a Chinese phrase naming the field."""
    loc = ".".join(str(p) for p in error["loc"]) or "（文件整体）"
    kind = error["type"]
    if kind == "value_error":
        text = str(error.get("ctx", {}).get("error", error["msg"]))
    elif kind in _MESSAGES:
        try:
            text = _MESSAGES[kind].format(input=error.get("input"), **error.get("ctx", {}))
        except (KeyError, IndexError):
            text = error["msg"]
    else:
        text = error["msg"]
    return f"字段 {loc}：{text}"


def parse_policy(data: object, path: Path | str = "<内存>") -> Policy:
    """Validate an already-read mapping as a policy; raises PolicyError."""
    if not isinstance(data, dict):
        raise PolicyError(path, ["文件内容应为键值映射（YAML 顶层须为 key: value）"])
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(path, [_problem(e) for e in exc.errors()]) from exc


def load_policy(path: Path | None = None) -> Policy:
    """The policy in ``path``, or the packaged 宜兴 default when ``path`` is None."""
    path = Path(path) if path is not None else DEFAULT_POLICY
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise PolicyError(path, ["文件不存在"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(
            path, [f"无法读取（{exc.__class__.__name__}）；请确认是 UTF-8 编码的 YAML 文件"]
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark is not None else ""
        raise PolicyError(
            path, [f"不是有效的 YAML{where}：{getattr(exc, 'problem', exc)}"]
        ) from exc
    return parse_policy(data, path)
