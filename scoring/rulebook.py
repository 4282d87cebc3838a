"""Rulebooks as data: the pydantic models that validate `scoring/rulebooks/*.yaml`, and their loader.

A rulebook is one tier's recognition rules under one document, in force between two dates. Its
criteria form a tree: leaves test one panel feature (`threshold`, `flag`, `matches`) or stand for
something the data cannot decide (`manual`, always *unknown*); groups combine them (`all_of`,
`any_of`, `switch` by a band of another feature); `points` is a scoring table of dimensions and
banded items with a minimum total and per-dimension minimums. The city config
(`rulebooks/config.yaml`) picks which rulebook applies to each tier and when. Evaluation lives in
`scoring.rules`.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scoring.tiers import TIERS

RULEBOOK_DIR = Path(__file__).with_name("rulebooks")
CONFIG_NAME = "config.yaml"

Op = Literal[">=", ">", "<=", "<"]
Presume = Literal["pass", "fail"]
# How a value is shown to people: pct = fraction shown as %, wan = 万元, yi = 亿元,
# usd_yi = 亿美元, count = 件, people = 人, years = 年, points = 分, none = plain number.
Unit = Literal["pct", "wan", "yi", "usd_yi", "count", "people", "years", "points", "none"]

_HONOR_KEYS = [
    "high_tech_enterprise",
    "tech_sme",
    "innovative_sme",
    "tech_innovative_sme",
    "specialised_sme",
    "little_giant",
    "single_champion",
    "eaglet",
    "gazelle",
    "quasi_unicorn",
    "unicorn",
    "rd_institution_provincial",
]

# Panel columns rules may read (docs/architecture.md, "The panel").
PANEL_FEATURES: frozenset[str] = frozenset(
    [
        "district",
        "industry_code",
        "chain_layer",
        "chain_leader",
        "name",
        "status",
        "age_years",
        "revenue_ttm",
        "main_revenue_ttm",
        "rd_expense_ttm",
        "profit_ttm",
        "net_profit_ttm",
        "revenue_py",
        "main_revenue_py",
        "rd_expense_py",
        "net_profit_py",
        "profit_py",
        "revenue_py2",
        "main_revenue_py2",
        "rd_expense_py2",
        "revenue_py3",
        "main_revenue_py3",
        "rd_expense_py3",
        "revenue_growth_yoy",
        "main_revenue_growth_py",
        "main_revenue_growth_2y_avg",
        "revenue_cagr_3y",
        "net_profit_growth_py",
        "rd_intensity_py",
        "rd_intensity_py2",
        "rd_intensity_3y",
        "rd_staff_share",
        "debt_ratio",
        "debt_ratio_py",
        "net_margin_py",
        "main_business_share_py",
        "employees",
        "total_assets",
        "invention_granted_valid",
        "utility_valid",
        "design_valid",
        "patents_filed_2y",
        "invention_filed_2y",
        "patents_total",
        "ip_class_1",
        "ip_class_2",
        "equity_raised_2y",
        "equity_raised_3y",
        "post_money_last_yi",
        "post_money_last_usd_yi",
        "financing_rounds",
        "months_since_last_round",
        "project_planned_year_yi",
        "project_completed_year_yi",
        "project_intensity",
        "chain_leader_tie",
    ]
    + [f"holds_{k}" for k in _HONOR_KEYS]
    + [f"years_since_{k}" for k in _HONOR_KEYS]
)

# Features computed by scoring.rules from panel columns (see rules.DERIVED for definitions).
DERIVED_FEATURES: frozenset[str] = frozenset(
    {
        "rd_expense_2y_total",
        "rd_expense_2y_avg",
        "rd_expense_3y_avg",
        "revenue_cagr_2y",
        "rd_cost_share_py",
        "ip_valid_total",
        "ip_class_2_tsme",
        "founded_year",
    }
)
KNOWN_FEATURES = PANEL_FEATURES | DERIVED_FEATURES

_ID = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Node(_Model):
    id: str = Field(pattern=_ID)
    label: str
    note: str | None = None


# --- leaves ----------------------------------------------------------------------------------


class Threshold(_Node):
    """Feature compared with a constant: `研发费用占比 ≥ 3%`."""

    kind: Literal["threshold"]
    feature: str
    op: Op
    value: float
    unit: Unit
    presume: Presume = "pass"


class Flag(_Node):
    """A Boolean feature, e.g. a prerequisite honor `holds_innovative_sme`."""

    kind: Literal["flag"]
    feature: str
    expect: bool = True
    fail_text: str | None = None
    presume: Presume = "pass"


class Matches(_Node):
    """A text feature matching a regular expression, e.g. an industry code section."""

    kind: Literal["matches"]
    feature: str
    pattern: str
    fail_text: str | None = None
    presume: Presume = "pass"

    @model_validator(mode="after")
    def _compiles(self) -> Matches:
        re.compile(self.pattern)
        return self


class Manual(_Node):
    """A condition the data cannot decide: always *unknown* (需人工核实).

    `presume` says what `eligible_if_unknowns_hold` assumes: `pass` for ordinary conditions most
    applicants meet, `fail` for exceptional routes (awards, titles) that need evidence.
    """

    kind: Literal["manual"]
    presume: Presume = "pass"


Condition = Annotated[Threshold | Flag | Matches, Field(discriminator="kind")]


# --- groups ----------------------------------------------------------------------------------


class AllOf(_Node):
    kind: Literal["all_of"]
    criteria: list[Criterion] = Field(min_length=1)
    presume: Presume = "pass"
    quiet: bool = False  # no gap phrases from this subtree (alternative routes)


class AnyOf(_Node):
    kind: Literal["any_of"]
    criteria: list[Criterion] = Field(min_length=1)
    presume: Presume = "pass"
    quiet: bool = False


class Case(_Model):
    when: Condition
    then: Criterion


class Switch(_Node):
    """The first case whose `when` holds decides; `else` when none does (e.g. R&D by size)."""

    kind: Literal["switch"]
    cases: list[Case] = Field(min_length=1)
    otherwise: Criterion = Field(alias="else")
    presume: Presume = "pass"
    quiet: bool = False


# --- points tables ---------------------------------------------------------------------------


class Band(_Model):
    """One band of a points item; a band without `value` is the catch-all and must come last.

    `review_max`: the data only gives a floor; a manual review may raise the item to this score
    (e.g. a Ⅰ类 patent that may be 高价值). `review_presume` says what `eligible_if_unknowns_hold`
    counts: the raised score (`pass`, e.g. a Ⅰ类 patent's value, which the firm's own patent
    makes likely) or the data's floor (`fail`, e.g. IP the drop does not show at all: a firm
    without patents is not presumed to hold software copyrights). Either way the review is
    listed and the gap gives the highest score possible.
    """

    feature: str | None = None
    op: Op | None = None
    value: float | None = None
    points: float
    review_max: float | None = None
    review_presume: Presume = "pass"


class Bands(_Node):
    """Points by the first band that holds (bands are checked in order)."""

    kind: Literal["bands"]
    feature: str
    op: Op = ">="
    unit: Unit
    bands: list[Band] = Field(min_length=1)
    review_label: str | None = None

    @model_validator(mode="after")
    def _catch_all_last(self) -> Bands:
        *head, last = self.bands
        if last.value is not None or any(b.value is None for b in head):
            raise ValueError(f"{self.id}: only the last band may (and must) have no value")
        for b in self.bands:
            if b.review_max is not None and b.review_max < b.points:
                raise ValueError(f"{self.id}: review_max below points")
        return self

    def band_feature(self, band: Band) -> str:
        return band.feature or self.feature

    def band_op(self, band: Band) -> Op:
        return band.op or self.op

    @property
    def max_points(self) -> float:
        return max(max(b.points, b.review_max or b.points) for b in self.bands)


class ManualItem(_Node):
    """A points item the data cannot score: contributes `min_points`, could reach `max_points`."""

    kind: Literal["manual"]
    max_points: float
    min_points: float = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> ManualItem:
        if not 0 <= self.min_points <= self.max_points:
            raise ValueError(f"{self.id}: needs 0 ≤ min_points ≤ max_points")
        return self


class BestOf(_Node):
    """The firm picks the more favourable basis (e.g. R&D in 万元 or in % of revenue)."""

    kind: Literal["best_of"]
    items: list[Bands] = Field(min_length=2)

    @property
    def max_points(self) -> float:
        return max(i.max_points for i in self.items)


Item = Annotated[Bands | ManualItem | BestOf, Field(discriminator="kind")]


class Dimension(_Node):
    min: float = 0.0
    items: list[Item] = Field(min_length=1)

    @property
    def max_points(self) -> float:
        return sum(item_max(i) for i in self.items)


class Points(_Node):
    """A scoring table: passes when the total ≥ `min_total` and every dimension ≥ its `min`."""

    kind: Literal["points"]
    min_total: float
    max_total: float
    dimensions: list[Dimension] = Field(min_length=1)

    @model_validator(mode="after")
    def _max_adds_up(self) -> Points:
        total = sum(d.max_points for d in self.dimensions)
        if abs(total - self.max_total) > 1e-9:
            raise ValueError(f"{self.id}: items add up to {total}, max_total says {self.max_total}")
        if self.min_total > self.max_total:
            raise ValueError(f"{self.id}: min_total above max_total")
        for d in self.dimensions:
            if d.min > d.max_points:
                raise ValueError(f"{self.id}: {d.id} needs {d.min} of at most {d.max_points}")
        return self


def item_max(item: Bands | ManualItem | BestOf) -> float:
    return item.max_points


Criterion = Annotated[
    Threshold | Flag | Matches | Manual | AllOf | AnyOf | Switch | Points,
    Field(discriminator="kind"),
]
for _cls in (AllOf, AnyOf, Case, Switch):
    _cls.model_rebuild()


# --- the rulebook ----------------------------------------------------------------------------


class Source(_Model):
    document: str  # document number and title
    url: str | None = None
    references: list[str] = []  # secondary sources as cited in criteria.md
    notes: str | None = None


class ExampleExpect(_Model):
    eligible: bool | None = None
    eligible_if_unknowns_hold: bool | None = None
    points: float | None = None
    results: dict[str, Literal["pass", "fail", "unknown"]] = {}
    gaps: list[str] = []  # phrases that must appear in `gaps`
    needs_review: list[str] = []


class Example(_Model):
    """A worked case that ships with the rulebook; tests run every one."""

    name: str
    quarter_end: dt.date | None = None
    given: dict[str, float | int | bool | str | None]
    expect: ExampleExpect


class Rulebook(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    version: str
    tier: str
    name_zh: str
    source: Source
    effective_from: dt.date
    effective_to: dt.date | None
    jurisdiction: str
    alternative_of: str | None = None
    note: str | None = None
    criteria: list[Criterion] = Field(min_length=1)
    examples: list[Example] = []

    @model_validator(mode="after")
    def _consistent(self) -> Rulebook:
        problems = []
        if self.tier not in TIERS:
            problems.append(f"unknown tier {self.tier!r} (known: {', '.join(TIERS)})")
        if self.effective_to is not None and self.effective_to < self.effective_from:
            problems.append("effective_to is before effective_from")
        ids = [n.id for n in walk(self.tree)]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            problems.append(f"criterion ids used twice: {', '.join(dupes)}")
        unknown = sorted(set(features_used(self)) - KNOWN_FEATURES)
        if unknown:
            problems.append(f"features not in the panel: {', '.join(unknown)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def tree(self) -> AllOf:
        """The criteria as one tree: every top-level criterion must hold."""
        return AllOf(kind="all_of", id="root", label=self.name_zh, criteria=self.criteria)

    def in_force(self, on: dt.date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

    def node(self, node_id: str) -> Any:
        for n in walk(self.tree):
            if n.id == node_id:
                return n
        raise KeyError(f"{self.id}: no criterion {node_id!r}")


class CityConfig(_Model):
    """Which rulebooks a city uses, per tier, in date order (alternatives are opt-in here)."""

    id: str
    version: str
    jurisdiction: str
    note: str | None = None
    tiers: dict[str, list[str]]


# --- tree helpers ----------------------------------------------------------------------------


def children(node: Any) -> list[Any]:
    """Direct sub-nodes, in order (switch: each case's `then`, then `else`)."""
    if isinstance(node, (AllOf, AnyOf)):
        return list(node.criteria)
    if isinstance(node, Switch):
        return [c.then for c in node.cases] + [node.otherwise]
    if isinstance(node, Points):
        return list(node.dimensions)
    if isinstance(node, Dimension):
        return list(node.items)
    if isinstance(node, BestOf):
        return list(node.items)
    return []


def walk(node: Any) -> list[Any]:
    """The node and all nodes below it, pre-order."""
    out = [node]
    for child in children(node):
        out.extend(walk(child))
    return out


def features_used(rulebook: Rulebook) -> list[str]:
    found: list[str] = []
    for n in walk(rulebook.tree):
        if isinstance(n, Switch):
            found.extend(c.when.feature for c in n.cases)
        if isinstance(n, Bands):
            found.extend(n.band_feature(b) for b in n.bands)
        elif isinstance(n, (Threshold, Flag, Matches)):
            found.append(n.feature)
    return found


# --- loading ---------------------------------------------------------------------------------


class RulebookError(ValueError):
    """Rulebook files that do not validate; the message lists every problem found."""


def _replace_nodes(tree: Any, replacements: dict[str, Any], used: set[str]) -> Any:
    if isinstance(tree, list):
        return [_replace_nodes(x, replacements, used) for x in tree]
    if isinstance(tree, dict):
        if tree.get("id") in replacements:
            used.add(tree["id"])
            return copy.deepcopy(replacements[tree["id"]])
        return {k: _replace_nodes(v, replacements, used) for k, v in tree.items()}
    return tree


def _resolve_extends(raw: dict[str, dict], name: str, seen: tuple[str, ...] = ()) -> dict:
    """`extends: <id>` takes the base's fields; `replace: {node_id: node}` swaps nodes by id."""
    doc = raw[name]
    base_id = doc.get("extends")
    if base_id is None:
        return doc
    if base_id in seen or base_id not in raw:
        raise RulebookError(f"{name}: extends {base_id!r}, which is missing or circular")
    base = copy.deepcopy(_resolve_extends(raw, base_id, (*seen, name)))
    base.pop("examples", None)
    merged = {**base, **{k: v for k, v in doc.items() if k not in ("extends", "replace")}}
    replacements = doc.get("replace") or {}
    used: set[str] = set()
    merged["criteria"] = _replace_nodes(merged["criteria"], replacements, used)
    if set(replacements) - used:
        raise RulebookError(f"{name}: replace names unknown ids {sorted(set(replacements) - used)}")
    return merged


def _use_fragments(tree: Any, fragments: dict[str, Any], missing: set[str]) -> Any:
    """`{use: <name>}` anywhere in a rulebook stands for a copy of that fragment's node."""
    if isinstance(tree, list):
        return [_use_fragments(x, fragments, missing) for x in tree]
    if isinstance(tree, dict):
        if set(tree) == {"use"}:
            if tree["use"] not in fragments:
                missing.add(str(tree["use"]))
                return tree
            return copy.deepcopy(fragments[tree["use"]])
        return {k: _use_fragments(v, fragments, missing) for k, v in tree.items()}
    return tree


def read_rulebook_files(directory: Path | str | None = None) -> list[Rulebook]:
    """Every rulebook YAML in `directory` (all of them, alternatives included), validated.

    A file with `fragment: <name>` instead of an `id` holds one criterion (`node`) that several
    rulebooks share, e.g. the SME size lines; a rulebook takes it with `- use: <name>`.
    """
    directory = Path(directory) if directory is not None else RULEBOOK_DIR
    raw: dict[str, dict] = {}
    files: dict[str, Path] = {}
    fragments: dict[str, Any] = {}
    fragment_files: dict[str, Path] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == CONFIG_NAME:
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "fragment" in doc and "id" not in doc:
            name = doc["fragment"]
            if not isinstance(doc.get("node"), dict):
                problems.append(f"{path.name}: fragment {name!r} has no node")
            elif name in fragments:
                problems.append(f"{path.name}: fragment {name!r} already defined by "
                                f"{fragment_files[name].name}")
            else:
                fragments[name], fragment_files[name] = doc["node"], path
            continue
        if not isinstance(doc, dict) or "id" not in doc:
            problems.append(f"{path.name}: not a rulebook (no id)")
            continue
        if doc["id"] in raw:
            problems.append(
                f"{path.name}: id {doc['id']!r} already used by {files[doc['id']].name}"
            )
            continue
        raw[doc["id"]], files[doc["id"]] = doc, path
    broken: set[str] = set()
    for rid, doc in raw.items():
        missing: set[str] = set()
        raw[rid] = _use_fragments(doc, fragments, missing)
        if missing:
            broken.add(rid)
            problems.append(f"{files[rid].name}: uses fragments that no file defines: "
                            f"{', '.join(sorted(missing))}")
    books: list[Rulebook] = []
    for rid in [r for r in raw if r not in broken]:   # file order, as before
        try:
            books.append(Rulebook.model_validate(_resolve_extends(raw, rid)))
        except (ValidationError, RulebookError, ValueError) as exc:
            problems.append(f"{files[rid].name}: {exc}")
    problems.extend(_cross_check(books))
    if problems:
        raise RulebookError("rulebooks do not validate:\n" + "\n".join(sorted(problems)))
    return books


def _cross_check(books: list[Rulebook]) -> list[str]:
    by_id = {b.id: b for b in books}
    problems = []
    for b in books:
        if b.alternative_of is None:
            continue
        base = by_id.get(b.alternative_of)
        if base is None:
            problems.append(f"{b.id}: alternative_of {b.alternative_of!r} does not exist")
        elif base.tier != b.tier:
            problems.append(f"{b.id}: alternative_of {base.id} is for another tier")
    return problems


def read_config(path: Path | str) -> CityConfig:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    try:
        return CityConfig.model_validate(doc)
    except ValidationError as exc:
        raise RulebookError(f"{Path(path).name}: {exc}") from exc


def select(books: list[Rulebook], config: CityConfig) -> list[Rulebook]:
    """The rulebooks a city config names, checked: right tier, dates in order, no overlap."""
    by_id = {b.id: b for b in books}
    chosen: list[Rulebook] = []
    problems: list[str] = []
    for tier, ids in config.tiers.items():
        if tier not in TIERS:
            problems.append(f"未知的层级 {tier!r} (层级: {', '.join(TIERS)})")
        chain = []
        for rid in ids:
            if rid not in by_id:
                problems.append(f"{tier}: 没有 id 为 {rid!r} 的规则 (scoring/rulebooks/ 中的规则 id 见各文件的 id 行)")
            elif by_id[rid].tier != tier:
                problems.append(f"{tier}: {rid} 是 {by_id[rid].tier} 层级的规则")
            else:
                chain.append(by_id[rid])
        problems.extend(overlaps(chain))
        chosen.extend(chain)
    if problems:
        raise RulebookError("规则配置有误:\n" + "\n".join(problems))
    return chosen


def overlaps(chain: list[Rulebook]) -> list[str]:
    """Pairs of rulebooks (of one tier) whose effective periods overlap."""
    out = []
    ordered = sorted(chain, key=lambda b: b.effective_from)
    for prev, nxt in itertools.pairwise(ordered):
        if prev.effective_to is None or prev.effective_to >= nxt.effective_from:
            out.append(f"{prev.id} 和 {nxt.id} 在 {nxt.effective_from} 同时有效 (both in force), 一个层级同一天只能有一套规则")
    return out
