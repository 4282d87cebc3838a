"""The tables of the quarterly drop: file stems, headers, value kinds — input-format.md as data."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# Value kinds the parser knows (data_contracts.parsing). USCC and CODE are read alike (half-width,
# upper case, no spaces: a clerk's `ｃ 3963` is C3963); only the credit code has a check digit.
# ROUND is a financing round as ROUNDS writes it: `A轮`, `天使轮`, `pre-a`, `战略投资` read as A, 天使,
# Pre-A, 战略 (parsing.parse_round).
TEXT, NUMBER, INTEGER, DATE, PERIOD, BOOL, USCC, CODE, NUMBER_OR_TEXT, ROUND = (
    "text", "number", "integer", "date", "period", "bool", "uscc", "code", "number_or_text", "round")


@dataclass(frozen=True)
class Column:
    name: str                      # canonical English name
    header_zh: str                 # Chinese header without unit
    kind: str
    required: bool = True          # must the column be present?
    nullable: bool = False         # may a value be missing?
    unit: str | None = None        # default unit for money: 万元 or 亿元
    aliases: tuple[str, ...] = ()  # other headers a clerk may write
    # An unreadable cell quarantines its row, unless the column says what the null it becomes
    # means: then the row is accepted, the cell read as null and the clerk told so (a warn).
    unreadable_as_null: str | None = None

    @property
    def label(self) -> str:
        """The header as the spec prints it, e.g. 营业收入(万元)."""
        return f"{self.header_zh}({self.unit})" if self.unit else self.header_zh


@dataclass(frozen=True)
class Table:
    name: str
    stem_zh: str
    key: tuple[str, ...]
    columns: tuple[Column, ...] = field(default_factory=tuple)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def required(self) -> list[Column]:
        return [c for c in self.columns if c.required]


def _c(name, header, kind, required=True, nullable=False, unit=None, aliases=(),
       unreadable_as_null=None):
    return Column(name, header, kind, required, nullable, unit, tuple(aliases), unreadable_as_null)


ENTERPRISES = Table("enterprises", "企业登记", ("uscc",), (
    _c("uscc", "统一社会信用代码", USCC, aliases=("信用代码", "社会信用代码")),
    _c("name", "企业名称", TEXT),
    # an unreadable day (`2016.09`, `2011年`) is not worth the whole firm: its age is then unknown,
    # and every age condition goes to manual review (scoring.rules: a missing value)
    _c("founded_on", "成立日期", DATE, nullable=True, aliases=("注册日期",),
       unreadable_as_null="记为空值, 成立年限相关条件转人工核实"),
    _c("registered_capital", "注册资本", NUMBER, nullable=True, unit="万元", aliases=("注册资金",)),
    _c("industry_code", "行业代码", CODE, nullable=True, aliases=("国民经济行业代码",)),
    _c("district", "所属板块", TEXT, nullable=True, aliases=("板块", "所属园区", "镇街")),
    _c("status", "登记状态", TEXT, nullable=True, aliases=("经营状态",)),
    _c("chain_layer", "产业链环节", TEXT, required=False, nullable=True),
    # optional, and the registry row carries the whole firm: a `也许` is not worth losing it for
    # (an unreadable cell quarantines its row only where the value matters for the row as a whole)
    _c("chain_leader", "链主企业", BOOL, required=False, nullable=True,
       unreadable_as_null="记为空值, 按未标注链主处理"),
    _c("former_names", "曾用名", TEXT, required=False, nullable=True),
    _c("legal_rep_id", "法定代表人证件号", TEXT, required=False, nullable=True),
))

_MONEY = dict(kind=NUMBER, unit="万元")
FILINGS = Table("filings", "财务快报", ("uscc", "period"), (
    _c("uscc", "统一社会信用代码", USCC, aliases=("信用代码",)),
    _c("period", "报告期", PERIOD),
    _c("revenue_ytd", "营业收入", nullable=True, **_MONEY),
    _c("main_revenue_ytd", "主营业务收入", nullable=True, **_MONEY),
    _c("profit_ytd", "利润总额", nullable=True, **_MONEY),
    _c("net_profit_ytd", "净利润", nullable=True, **_MONEY),
    _c("rd_expense_ytd", "研发费用", nullable=True, **_MONEY),
    _c("total_assets", "资产总计", nullable=True, **_MONEY),
    _c("total_liabilities", "负债合计", nullable=True, **_MONEY),
    _c("employees", "从业人员期末人数", INTEGER, nullable=True, aliases=("从业人员",)),
    _c("rd_staff", "研发人员数", INTEGER, nullable=True, aliases=("研发人员",)),
    _c("export_ytd", "出口额", required=False, nullable=True,
       unreadable_as_null="记为空值 (出口额不参与认定条件)", **_MONEY),
))

PATENTS = Table("patents", "专利", ("application_no",), (
    _c("application_no", "申请号", TEXT, aliases=("专利申请号",)),
    _c("title", "专利名称", TEXT, nullable=True),
    _c("patent_type", "专利类型", TEXT),
    _c("filed_on", "申请日", DATE),
    _c("granted_on", "授权公告日", DATE, required=False, nullable=True, aliases=("授权日", "授权日期", "授权公告日期")),
    _c("legal_status", "法律状态", TEXT, nullable=True),
    _c("applicants", "申请人", TEXT, aliases=("专利权人", "申请(专利权)人")),
    _c("ipc", "主分类号", TEXT, required=False, nullable=True),
))

PROJECTS = Table("projects", "重点项目", ("project_name", "year"), (
    _c("project_name", "项目名称", TEXT),
    _c("company_name", "项目单位", TEXT),
    _c("span", "起止年限", TEXT, nullable=True),
    _c("planned_total", "计划总投资", NUMBER, nullable=True, unit="亿元"),
    _c("year", "年度", INTEGER),
    _c("planned_year", "年度计划投资", NUMBER, nullable=True, unit="亿元"),
    _c("completed_year", "年度完成投资", NUMBER, required=False, nullable=True, unit="亿元"),
    _c("district", "所属板块", TEXT, nullable=True),   # required by input-format.md (cells may be empty)
))

FINANCING = Table("financing", "融资", ("uscc", "company_name", "financed_on", "round"), (
    _c("uscc", "统一社会信用代码", USCC, required=False, nullable=True),
    _c("company_name", "企业名称", TEXT, required=False, nullable=True),
    _c("financed_on", "融资日期", DATE),
    _c("round", "轮次", ROUND, nullable=True),
    _c("amount", "融资金额", NUMBER_OR_TEXT, nullable=True, unit="万元"),
    _c("currency", "币种", TEXT, required=False, nullable=True),
    _c("post_money", "投后估值", NUMBER, required=False, nullable=True, unit="万元"),
    _c("investors", "投资方", TEXT, required=False, nullable=True),
))

HONORS = Table("honors", "资质荣誉", ("uscc", "honor", "recognized_on"), (
    _c("uscc", "统一社会信用代码", USCC),
    _c("honor", "资质名称", TEXT),
    _c("level", "级别", TEXT, nullable=True),
    _c("recognized_on", "认定日期", DATE),
    _c("valid_until", "有效期至", DATE, required=False, nullable=True,
       aliases=("有效期截止日期", "有效期截止", "有效期截至", "有效期截止日", "到期日期")),
))

TABLES: dict[str, Table] = {t.name: t for t in (
    ENTERPRISES, FILINGS, PATENTS, PROJECTS, FINANCING, HONORS)}

STATUSES = ("存续", "在业", "迁出", "注销", "吊销")
CHAIN_LAYERS = ("基础支撑层", "技术产品层", "应用示范层")
PATENT_TYPES = ("发明", "实用新型", "外观设计")
LEGAL_STATUSES = ("有效", "失效", "审中")
ROUNDS = ("天使", "Pre-A", "A", "A+", "B", "B+", "C", "C+", "D", "E", "Pre-IPO", "战略", "其他")
CURRENCIES = ("人民币", "美元")
LEVELS = ("国家级", "省级", "市级", "县级")

# Personal data: read so that its presence is known, never stored or shown.
PERSONAL_COLUMNS = ("legal_rep_id",)

_UNIT = re.compile(r"[(（\[【]\s*([^()（）\[\]【】]*)\s*[)）\]】]\s*$")
# Words a clerk writes in a header's unit besides the unit (`（单位：人民币万元）`, `(本年累计)`), and
# the short forms of units (`(万)`); a unit written after a separator (`营业收入/万元`).
_UNIT_NOTES = re.compile(r"单位[:：]?|人民币|本年累计|累计|本期|期末|年末|[,，;；]")
_UNIT_SHORT = {"万": "万元", "亿": "亿元", "千": "千元"}
_SEPARATED_UNIT = re.compile(r"[/_\-](千元|万元|亿元|元|万|亿)$")


def _unit(written: str) -> str | None:
    """The unit of a header's unit text: `单位:万元`, `人民币万元`, `万元人民币`, `万` → 万元;
    an annotation without a unit (`本年累计`) → None (the column's own unit)."""
    unit = _UNIT_NOTES.sub("", written)
    return _UNIT_SHORT.get(unit, unit) or None


def normalize_header(header: str) -> tuple[str, str | None]:
    """(header without unit, unit) — NFKC, spaces removed; `（万元）`, `(万元)`, `（单位：人民币万元）`,
    `(万)` and `/万元` alike; `(本年累计)` is no unit."""
    text = unicodedata.normalize("NFKC", str(header)).strip().replace(" ", "").replace("\u3000", "")
    m = _UNIT.search(text) or _SEPARATED_UNIT.search(text)
    unit = None
    if m:
        unit = _unit(m.group(1).strip())
        text = text[: m.start()]
    for suffix in ("万元", "亿元"):  # 营业收入万元
        if unit is None and text.endswith(suffix) and len(text) > len(suffix) + 1:
            text, unit = text[: -len(suffix)], suffix
    return text, unit


def header_index(table: Table) -> dict[str, Column]:
    """Every accepted header spelling (Chinese, aliases, English) → column."""
    index: dict[str, Column] = {}
    for col in table.columns:
        for spelling in (col.header_zh, col.name, *col.aliases):
            index[normalize_header(spelling)[0].lower()] = col
    return index


def table_for_stem(stem: str) -> Table | None:
    """The table a file stem names: `filings`, `财务快报`, `2024Q3_财务快报`, `财务快报(三季度)`."""
    text = normalize_header(stem)[0].lower()
    for table in TABLES.values():
        if text in (table.name, table.stem_zh):
            return table
    for table in TABLES.values():
        if table.stem_zh in text or re.search(rf"(^|[^a-z]){table.name}([^a-z]|$)", text):
            return table
    return None
