"""One Great Expectations suite per table, built in code, each expectation with a severity.

`error` rows are quarantined, `warn` rows are accepted and flagged. Checks GX cannot express
directly (a credit code's check character, a name matched to the registry, a value entered in 元)
are computed first as derived columns (`_p_*` problem texts, `_f_*` flags) and then judged by
ordinary expectations, so every verdict — and the Data Docs — come from the GX run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from data_contracts.derive import YTD_NONDECREASING
from data_contracts.schema import (
    CHAIN_LAYERS,
    CURRENCIES,
    LEGAL_STATUSES,
    LEVELS,
    PATENT_TYPES,
    ROUNDS,
    STATUSES,
)


@dataclass(frozen=True)
class Check:
    """One expectation with what a clerk is told when a row fails it."""

    id: str
    severity: str               # "error" → quarantined; "warn" → accepted and flagged
    column: str                 # canonical column shown to the clerk
    message: str                # Chinese; {value} is the cell, {detail} a derived problem text,
                                # {as_of} the day the drop is checked against
    kind: str                   # not_null | unique | between | in_set | null | false | a_ge_b
    args: dict = field(default_factory=dict)  # `value`: the column whose text the finding shows
                                              # (default `column`; its typed value may be null)

    def expectation(self):
        import great_expectations.expectations as gxe  # GX takes seconds to import: only when run

        meta = {"severity": self.severity, "check": self.id}
        a = self.args
        if self.kind == "not_null":
            return gxe.ExpectColumnValuesToNotBeNull(column=self.column, meta=meta)
        if self.kind == "unique":
            return gxe.ExpectColumnValuesToBeUnique(column=a.get("on", self.column), meta=meta)
        if self.kind == "between":
            return gxe.ExpectColumnValuesToBeBetween(column=self.column, min_value=a.get("min"),
                                                     max_value=a.get("max"), meta=meta)
        if self.kind == "in_set":
            return gxe.ExpectColumnValuesToBeInSet(column=self.column, value_set=list(a["values"]),
                                                   meta=meta)
        if self.kind == "null":  # a derived problem column must be empty
            return gxe.ExpectColumnValuesToBeNull(column=a["derived"], meta=meta)
        if self.kind == "false":  # a derived flag must not be set
            return gxe.ExpectColumnValuesToBeInSet(column=a["derived"], value_set=[False], meta=meta)
        if self.kind == "a_ge_b":
            return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=a["a"], column_B=a["b"], or_equal=a.get("or_equal", True),
                ignore_row_if="either_value_is_missing", meta=meta)
        raise ValueError(self.kind)

    @property
    def columns(self) -> set[str]:
        """The columns the expectation reads."""
        a = self.args
        if self.kind in ("null", "false"):
            return {a["derived"]}
        if self.kind == "a_ge_b":
            return {a["a"], a["b"]}
        return {a.get("on", self.column)}

    @property
    def other_column(self) -> str:
        """The column a pair check compares the clerk's column with (its message's {other}):
        the pair's column that is not `column`; "" for other kinds."""
        if self.kind != "a_ge_b":
            return ""
        return self.args["b"] if self.args["a"] == self.column else self.args["a"]

    @property
    def gx_column(self) -> str:
        """The column whose value GX reports for a failing row."""
        return self.args.get("derived") or self.args.get("a") or self.args.get("on") or self.column


def _e(*args, **kw) -> Check:
    return Check(*args, **kw)


_DUP_ROW = _e("duplicate_row", "warn", "_row", "与第 {detail} 行内容相同 (按读取后的值比较, 如申请号的 CN 前缀、数字的千分位、资质名称的不同写法不计), 只保留第一行", "false",
              {"derived": "_f_duplicate_row"})
_DUP_KEY = _e("duplicate_key_conflict", "error", "_row", "同一主键出现多行且数值不同 ({detail}), 无法判断哪一行正确",
              "null", {"derived": "_p_duplicate_key"})

SUITES: dict[str, list[Check]] = {
    "enterprises": [
        _e("uscc_present", "error", "uscc", "统一社会信用代码为空", "not_null"),
        _e("uscc_valid", "error", "uscc", "{detail}", "null", {"derived": "_p_uscc"}),
        _e("name_present", "error", "name", "企业名称为空", "not_null"),
        _e("founded_not_future", "error", "founded_on", "成立日期 {value} 晚于核验日 {as_of}", "false",
           {"derived": "_f_founded_on_future"}),
        _e("capital_nonnegative", "error", "registered_capital", "注册资本 {value} 为负数", "between",
           {"min": 0}),
        _e("capital_readable", "warn", "registered_capital", "{detail}", "null",
           {"derived": "_p_capital_unreadable", "value": "_p_capital_as_written"}),
        _e("capital_in_yuan", "warn", "registered_capital", "{detail}", "null",
           {"derived": "_p_capital_currency", "value": "_p_capital_as_written"}),
        _e("industry_code_valid", "warn", "industry_code", "{detail}", "null",
           {"derived": "_p_industry_code"}),
        _e("status_known", "warn", "status", "登记状态 \"{value}\" 不在 存续/在业/迁出/注销/吊销 之中",
           "in_set", {"values": STATUSES}),
        _e("chain_layer_known", "warn", "chain_layer", "产业链环节 \"{value}\" 不是 基础支撑层/技术产品层/应用示范层",
           "in_set", {"values": CHAIN_LAYERS}),
        _DUP_ROW, _DUP_KEY,
    ],
    "filings": [
        _e("uscc_present", "error", "uscc", "统一社会信用代码为空", "not_null"),
        _e("uscc_valid", "error", "uscc", "{detail}", "null", {"derived": "_p_uscc"}),
        _e("enterprise_registered", "error", "uscc", "{detail}", "null",
           {"derived": "_p_unregistered"}),
        _e("period_present", "error", "period", "报告期为空", "not_null"),
        _e("period_not_future", "error", "period", "报告期 {value} 在核验日 {as_of} 时尚未结束, 不可能已报送 (年份是否写错?)",
           "false", {"derived": "_f_period_future"}),
        *[_e(f"{c}_nonnegative", "error", c, "{label} {value} 为负数", "between", {"min": 0})
          for c in ("revenue_ytd", "main_revenue_ytd", "rd_expense_ytd", "total_assets",
                    "total_liabilities", "employees", "rd_staff", "export_ytd")],
        _e("main_revenue_within_revenue", "error", "main_revenue_ytd",
           "主营业务收入 {value} 大于营业收入 {other}", "a_ge_b",
           {"a": "revenue_ytd", "b": "main_revenue_ytd"}),
        _e("rd_staff_within_employees", "error", "rd_staff", "研发人员数 {value} 大于从业人员期末人数 {other}",
           "a_ge_b", {"a": "employees", "b": "rd_staff"}),
        _e("unit_yuan", "warn", "revenue_ytd", "{detail}", "null",
           {"derived": "_p_unit_yuan", "value": "_p_unit_yuan_typed"}),
        _e("amount_scale", "warn", "revenue_ytd", "{detail}", "null", {"derived": "_p_amount_scale"}),
        _e("ytd_decreasing", "warn", "revenue_ytd", "{detail}", "null", {"derived": "_p_ytd_decrease"}),
        *[_e(f"{c}_decreasing", "warn", c, "{detail}", "null", {"derived": derived})
          for c, (_, derived) in YTD_NONDECREASING.items() if c != "revenue_ytd"],
        _e("revision", "warn", "period", "{detail}", "null", {"derived": "_p_revision"}),
        _e("superseded_by_revision", "warn", "period", "{detail}", "null", {"derived": "_p_superseded"}),
        _DUP_ROW, _DUP_KEY,
    ],
    "patents": [
        _e("application_no_present", "error", "application_no", "申请号为空", "not_null"),
        _e("application_no_valid", "error", "application_no", "{detail}", "null",
           {"derived": "_p_application_no"}),
        _e("patent_type_known", "error", "patent_type", "专利类型 \"{value}\" 不是 发明/实用新型/外观设计",
           "in_set", {"values": PATENT_TYPES}),
        _e("filed_present", "error", "filed_on", "申请日为空", "not_null"),
        _e("filed_not_future", "error", "filed_on", "申请日 {value} 晚于核验日 {as_of}", "false",
           {"derived": "_f_filed_on_future"}),
        _e("granted_after_filed", "error", "granted_on", "授权公告日 {value} 早于申请日 {other}", "a_ge_b",
           {"a": "granted_on", "b": "filed_on"}),
        _e("legal_status_known", "warn", "legal_status", "法律状态 \"{value}\" 不是 有效/失效/审中",
           "in_set", {"values": LEGAL_STATUSES}),
        _e("patent_type_present", "warn", "patent_type",
           "专利类型为空: 只计入专利总数和近两年申请数, 不计入发明、实用新型、外观设计各类的件数", "not_null"),
        _e("applicants_present", "error", "applicants", "申请人为空, 无法关联到企业", "not_null"),
        _e("applicant_matched", "error", "applicants", "{detail}", "null", {"derived": "_p_unmatched"}),
        _DUP_ROW, _DUP_KEY,
    ],
    "projects": [
        _e("project_name_present", "error", "project_name", "项目名称为空", "not_null"),
        _e("year_present", "error", "year", "年度为空", "not_null"),
        _e("company_present", "error", "company_name", "项目单位为空, 无法关联到企业", "not_null"),
        _e("company_matched", "error", "company_name", "{detail}", "null", {"derived": "_p_unmatched"}),
        _e("planned_total_nonnegative", "error", "planned_total", "计划总投资 {value} 为负数", "between",
           {"min": 0}),
        _e("planned_year_nonnegative", "error", "planned_year", "年度计划投资 {value} 为负数", "between",
           {"min": 0}),
        _e("completed_year_nonnegative", "error", "completed_year", "年度完成投资 {value} 为负数", "between",
           {"min": 0}),
        _e("planned_year_within_total", "error", "planned_year", "年度计划投资 {value} 亿元大于计划总投资 {other} 亿元",
           "a_ge_b", {"a": "planned_total", "b": "planned_year"}),
        _e("span_format", "error", "span", "{detail}", "null", {"derived": "_p_span_format"}),
        _e("year_in_span", "error", "year", "{detail}", "null", {"derived": "_p_year_span"}),
        _DUP_ROW, _DUP_KEY,
    ],
    "financing": [
        _e("company_given", "error", "company_name", "统一社会信用代码和企业名称都为空", "false",
           {"derived": "_f_no_company"}),
        _e("company_matched", "error", "company_name", "{detail}", "null", {"derived": "_p_unmatched"}),
        _e("financed_present", "error", "financed_on", "融资日期为空", "not_null"),
        _e("financed_not_future", "error", "financed_on", "融资日期 {value} 晚于核验日 {as_of}", "false",
           {"derived": "_f_financed_on_future"}),
        _e("round_known", "warn", "round", "轮次 \"{value}\" 不在常见轮次中", "in_set", {"values": ROUNDS}),
        _e("currency_known", "warn", "currency", "币种 \"{value}\" 不是 人民币/美元", "in_set",
           {"values": CURRENCIES}),
        _e("amount_nonnegative", "error", "amount", "融资金额 {value} 为负数", "between", {"min": 0}),
        _e("company_matches_code", "warn", "company_name", "{detail}", "null", {"derived": "_p_match_note"}),
        _DUP_ROW, _DUP_KEY,
    ],
    "honors": [
        _e("uscc_present", "error", "uscc", "统一社会信用代码为空", "not_null"),
        _e("enterprise_registered", "error", "uscc", "{detail}", "null",
           {"derived": "_p_unregistered"}),
        _e("honor_present", "error", "honor", "资质名称为空", "not_null"),
        _e("honor_known", "warn", "honor", "资质名称 \"{value}\" 不在 tidu 认识的资质列表中, 不参与评分", "false",
           {"derived": "_f_unknown_honor"}),
        _e("level_known", "warn", "level", "级别 \"{value}\" 不是 国家级/省级/市级/县级", "in_set",
           {"values": LEVELS}),
        _e("level_matches_title", "warn", "level", "{detail}", "null", {"derived": "_p_level_mismatch"}),
        _e("recognized_present", "error", "recognized_on", "认定日期为空", "not_null"),
        _e("recognized_not_future", "error", "recognized_on", "认定日期 {value} 晚于核验日 {as_of}", "false",
           {"derived": "_f_recognized_on_future"}),
        _e("valid_after_recognized", "error", "valid_until", "有效期至 {value} 不晚于认定日期 {other}", "a_ge_b",
           {"a": "valid_until", "b": "recognized_on", "or_equal": False}),
        _DUP_ROW, _DUP_KEY,
    ],
}

# Checks whose failing rows are not accepted even though the check is only a warning:
# the first copy of a duplicated row is kept, the copies are set aside.
QUARANTINE_ON_WARN = {"duplicate_row", "superseded_by_revision"}
