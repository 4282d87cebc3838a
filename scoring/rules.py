"""Eligibility by rulebook: which firms meet which tier's rules in a quarter, and what they lack.

Each rulebook (`scoring/rulebooks/*.yaml`, validated by `scoring.rulebook`) is compiled once into
Polars expressions and run on the panel rows of the quarters it is in force for. Every criterion
has three-valued logic: *pass*, *fail* or *unknown* (a manual criterion, or a feature that is null).
Three Boolean columns carry it through the tree: `lo` (passes for certain), `hi` (passes if every
unknown passes) and `hp` (passes under each criterion's `presume`); points items carry a floor, a
ceiling and the score under their bands' `review_presume`. `eligible` is the root's `lo`,
`eligible_if_unknowns_hold` its `hp`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from scoring.rulebook import (
    CONFIG_NAME,
    RULEBOOK_DIR,
    AllOf,
    AnyOf,
    Bands,
    BestOf,
    Dimension,
    Flag,
    Manual,
    ManualItem,
    Matches,
    Points,
    Rulebook,
    Switch,
    Threshold,
    children,
    read_config,
    read_rulebook_files,
    select,
    walk,
)
from scoring.tiers import TIERS

OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    "uscc": pl.Utf8,
    "quarter": pl.Utf8,
    "tier": pl.Utf8,
    "rulebook_id": pl.Utf8,
    "rulebook_version": pl.Utf8,
    "eligible": pl.Boolean,
    "eligible_if_unknowns_hold": pl.Boolean,
    "points": pl.Float64,
    "gaps": pl.Utf8,
    "needs_review": pl.Utf8,
    "criteria": pl.Utf8,
}
MANUAL_SUFFIX = "(需人工核实)"
MISSING_SUFFIX = "(数据缺失，需人工核实)"
SEP = "；"


# --- derived features ------------------------------------------------------------------------
# Rule-local quantities the panel does not carry; each reads only panel columns of the same row.


def _f(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.Float64)


def _founded_year() -> pl.Expr:
    days = (_f("age_years") * 365.25).round().cast(pl.Int64)
    return (pl.col("quarter_end") - pl.duration(days=days)).dt.year().cast(pl.Float64)


DERIVED: dict[str, tuple[Callable[[], pl.Expr], tuple[str, ...]]] = {
    # 近两年研发费用总额 / 均值, 近三年研发费用均值 (万元)
    "rd_expense_2y_total": (
        lambda: _f("rd_expense_py") + _f("rd_expense_py2"),
        ("rd_expense_py", "rd_expense_py2"),
    ),
    "rd_expense_2y_avg": (
        lambda: (_f("rd_expense_py") + _f("rd_expense_py2")) / 2,
        ("rd_expense_py", "rd_expense_py2"),
    ),
    "rd_expense_3y_avg": (
        lambda: (_f("rd_expense_py") + _f("rd_expense_py2") + _f("rd_expense_py3")) / 3,
        ("rd_expense_py", "rd_expense_py2", "rd_expense_py3"),
    ),
    # two-year compound growth of revenue, prior year over the year three back (py3 → py)
    "revenue_cagr_2y": (
        lambda: pl.when(_f("revenue_py3") > 0).then(
            (_f("revenue_py") / _f("revenue_py3")).sqrt() - 1
        ),
        ("revenue_py", "revenue_py3"),
    ),
    # R&D ÷ total costs, costs approximated as revenue − total profit (科技型中小企业, 115号)
    "rd_cost_share_py": (
        lambda: pl.when((_f("revenue_py") - _f("profit_py")) > 0).then(
            _f("rd_expense_py") / (_f("revenue_py") - _f("profit_py"))
        ),
        ("rd_expense_py", "revenue_py", "profit_py"),
    ),
    # valid granted patents of any kind
    "ip_valid_total": (
        lambda: _f("invention_granted_valid") + _f("utility_valid") + _f("design_valid"),
        ("invention_granted_valid", "utility_valid", "design_valid"),
    ),
    # 115号 Ⅱ类: valid utility-model and design patents, without 63号's two-year rule
    "ip_class_2_tsme": (
        lambda: _f("utility_valid") + _f("design_valid"),
        ("utility_valid", "design_valid"),
    ),
    # calendar year of founding, recovered from age at the quarter's end
    "founded_year": (_founded_year, ("age_years", "quarter_end")),
}


# --- loading and choosing rulebooks ----------------------------------------------------------


def load_rulebooks(
    directory: Path | str | None = None,
    *,
    config: Path | str | None = None,
    include_alternatives: bool = False,
) -> list[Rulebook]:
    """The rulebooks a city uses: those its config (default `<directory>/config.yaml`) names.

    With `include_alternatives=True`, every rulebook in the directory, alternatives included.
    Without a config file, every rulebook that is not an `alternative_of` another.
    """
    directory = Path(directory) if directory is not None else RULEBOOK_DIR
    books = read_rulebook_files(directory)
    if include_alternatives:
        return books
    cfg = Path(config) if config is not None else directory / CONFIG_NAME
    if cfg.exists():
        return select(books, read_config(cfg))
    return [b for b in books if b.alternative_of is None]


def rulebook_in_force(rulebooks: Iterable[Rulebook], tier: str, on: dt.date) -> Rulebook:
    """The rulebook for `tier` whose effective dates contain `on`.

    When more than one is in force, one that is not an `alternative_of` wins. The 2026 MIIT
    rulebooks replace the 2022 ones from 2026-04-01 (2022's end on 2026-03-31); criteria.md notes
    that certificates granted under 63号 stay valid to expiry and that the 2026 小巨人 复核 still
    used 63号 — this chooses rules for new recognition, so it follows the dates.
    """
    found = [b for b in rulebooks if b.tier == tier and b.in_force(on)]
    if len(found) > 1:
        found = [b for b in found if b.alternative_of is None] or found
    if len(found) == 1:
        return found[0]
    if not found:
        raise LookupError(f"no {tier} rulebook is in force on {on}")
    ids = ", ".join(b.id for b in found)
    raise LookupError(f"{len(found)} {tier} rulebooks are in force on {on}: {ids}")


# --- compiling a rulebook to expressions -----------------------------------------------------


@dataclass
class _Cols:
    """Column names of one compiled node."""

    lo: str | None = None
    hi: str | None = None
    hp: str | None = None
    plo: str | None = None  # points floor
    phi: str | None = None  # points ceiling
    pph: str | None = None  # points under each band's `review_presume`
    height: int = 0


def _eps(value: float) -> float:
    """Tolerance for boundaries: a ratio computed as 0.0299999999 still meets ≥ 3%."""
    return 1e-9 * max(1.0, abs(value))


def _compare(x: pl.Expr, op: str, value: float) -> pl.Expr:
    e = _eps(value)
    if op == ">=":
        return x >= value - e
    if op == ">":
        return x > value + e
    if op == "<=":
        return x <= value + e
    return x < value - e


_INVERSE = {">=": "<", ">": "≤", "<=": ">", "<": "≥"}
_AS_WRITTEN = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}
_SUFFIX = {
    "pct": "%",
    "wan": " 万元",
    "yi": " 亿元",
    "usd_yi": " 亿美元",
    "count": " 件",
    "people": " 人",
    "years": " 年",
    "points": " 分",
    "none": "",
}


def _py_num(v: float) -> str:
    text = f"{v:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _show_const(value: float, unit: str) -> str:
    return _py_num(value * 100 if unit == "pct" else value) + _SUFFIX[unit]


def _num_text(x: pl.Expr, decimals: int = 2) -> pl.Expr:
    """Rounded, shortest form: 3.0 → "3", 2.10 → "2.1" (adding 0.0 turns -0.0 into 0.0)."""
    return (x.round(decimals) + 0.0).cast(pl.Utf8).str.strip_suffix(".0")


def _show(x: pl.Expr, unit: str) -> pl.Expr:
    """A value for people, in the unit's display form (up to two decimals)."""
    return _num_text(x * 100 if unit == "pct" else x) + pl.lit(_SUFFIX[unit])


class _Compiler:
    def __init__(self, rulebook: Rulebook) -> None:
        self.rb = rulebook
        self.stages: dict[int, list[pl.Expr]] = defaultdict(list)
        self.cols: dict[str, _Cols] = {}
        self.features: dict[str, tuple[str, str]] = {}
        self.shared: dict[str, str] = {}  # JSON text of a feature → column name
        self.branch_cols: dict[str, tuple[list[str], list[str]]] = {}  # switch id → (may, sure)
        self.n = 0

    # feature access --------------------------------------------------------------------------
    def feature(self, name: str, kind: Literal["num", "bool", "str"]) -> pl.Expr:
        key = f"{kind}:{name}"
        if key not in self.features:
            self.features[key] = (kind, f"__{kind}_{len(self.features)}")
        return pl.col(self.features[key][1])

    def cond(self, leaf: Threshold | Flag | Matches) -> pl.Expr:
        """The leaf's test as a nullable Boolean (null = cannot tell)."""
        if isinstance(leaf, Threshold):
            return _compare(self.feature(leaf.feature, "num"), leaf.op, leaf.value)
        if isinstance(leaf, Flag):
            return self.feature(leaf.feature, "bool") == leaf.expect
        return self.feature(leaf.feature, "str").str.contains(leaf.pattern)

    def json(self, feature: str, kind: Literal["num", "bool", "str"]) -> pl.Expr:
        """The feature as a JSON literal (shared column)."""
        key = f"{kind}:{feature}"
        if key not in self.shared:
            name = f"__j{len(self.shared)}"
            x = self.feature(feature, kind)
            if kind == "bool":
                e = pl.when(x).then(pl.lit("true")).when(~x).then(pl.lit("false"))
            elif kind == "str":
                quoted = x.str.replace_all("\\", "\\\\", literal=True).str.replace_all(
                    '"', '\\"', literal=True
                )
                e = pl.concat_str([pl.lit('"'), quoted, pl.lit('"')])
            else:
                e = x.round(6).cast(pl.Utf8)
            self.stages[-1].append(e.fill_null(pl.lit("null")).alias(name))
            self.shared[key] = name
        return pl.col(self.shared[key])

    def value(self, leaf: Threshold | Flag | Matches) -> pl.Expr:
        kind = "num" if isinstance(leaf, Threshold) else "bool" if isinstance(leaf, Flag) else "str"
        return self.feature(leaf.feature, kind)

    def put(self, node_id: str, height: int, **exprs: pl.Expr) -> _Cols:
        self.n += 1
        cols = _Cols(height=height)
        for key, expr in exprs.items():
            name = f"__n{self.n}_{key}"
            self.stages[height].append(expr.alias(name))
            setattr(cols, key, name)
        self.cols[node_id] = cols
        return cols

    # nodes -------------------------------------------------------------------------------------
    def node(self, node: Any) -> _Cols:
        if isinstance(node, (Threshold, Flag, Matches)):
            c = self.cond(node)
            return self.put(
                node.id,
                0,
                lo=c.fill_null(False),
                hi=c.fill_null(True),
                hp=c.fill_null(node.presume == "pass"),
            )
        if isinstance(node, Manual):
            return self.put(
                node.id, 0, lo=pl.lit(False), hi=pl.lit(True), hp=pl.lit(node.presume == "pass")
            )
        if isinstance(node, (AllOf, AnyOf)):
            kids = [self.node(c) for c in node.criteria]
            agg = pl.all_horizontal if isinstance(node, AllOf) else pl.any_horizontal
            lo = agg([pl.col(k.lo) for k in kids])
            hp = agg([pl.col(k.hp) for k in kids]) if node.presume == "pass" else lo
            return self.put(
                node.id,
                1 + max(k.height for k in kids),
                lo=lo,
                hi=agg([pl.col(k.hi) for k in kids]),
                hp=hp,
            )
        if isinstance(node, Switch):
            return self.switch(node)
        if isinstance(node, Points):
            return self.points(node)
        raise TypeError(f"cannot compile {type(node).__name__}")

    def branch_columns(self, node: Switch) -> tuple[list[str], list[str]]:
        """Per branch (cases, then else): 'may apply' and 'certainly applies' column names.

        Each case's test is a column of its own, computed once before the branches read it: a
        branch reads every case before it, so inline tests ran n²/2 times (the SME switch's 16
        patterns made the rules stage twice as slow)."""
        conds = []
        for case in node.cases:
            self.n += 1
            self.stages[-1].append(self.cond(case.when).alias(f"__n{self.n}_when"))
            conds.append(pl.col(f"__n{self.n}_when"))
        possible, definite = [], []
        for i in range(len(conds) + 1):
            p = [(~w).fill_null(True) for w in conds[:i]]
            d = [(~w).fill_null(False) for w in conds[:i]]
            if i < len(conds):
                p.append(conds[i].fill_null(True))
                d.append(conds[i].fill_null(False))
            self.n += 1
            possible.append(f"__n{self.n}_may")
            definite.append(f"__n{self.n}_sure")
            self.stages[0] += [
                pl.all_horizontal(p).alias(possible[-1]),
                pl.all_horizontal(d).alias(definite[-1]),
            ]
        self.branch_cols[node.id] = (possible, definite)
        return possible, definite

    def switch(self, node: Switch) -> _Cols:
        kids = [self.node(c.then) for c in node.cases] + [self.node(node.otherwise)]
        may, _ = self.branch_columns(node)
        lo = pl.all_horizontal([~pl.col(m) | pl.col(k.lo) for m, k in zip(may, kids)])
        hi = pl.any_horizontal([pl.col(m) & pl.col(k.hi) for m, k in zip(may, kids)])
        hp = pl.any_horizontal([pl.col(m) & pl.col(k.hp) for m, k in zip(may, kids)])
        return self.put(
            node.id,
            1 + max(k.height for k in kids),
            lo=lo,
            hi=hi,
            hp=lo if node.presume == "fail" else hp,
        )

    def bands(self, item: Bands) -> _Cols:
        """Floor and ceiling over the bands that may be the first to hold."""
        conds = [
            _compare(self.feature(item.band_feature(b), "num"), item.band_op(b), b.value)
            for b in item.bands[:-1]
        ]
        lows, highs, presumed = [], [], []
        for i, band in enumerate(item.bands):
            may = [(~w).fill_null(True) for w in conds[:i]]
            if i < len(conds):
                may.append(conds[i].fill_null(True))
            p, h = float(band.points), float(band.review_max or band.points)
            hp = h if band.review_presume == "pass" else p
            for out, value in ((lows, p), (highs, h), (presumed, hp)):
                out.append(pl.when(pl.all_horizontal(may)).then(pl.lit(value)) if may else pl.lit(value))
        return self.put(item.id, 0, plo=pl.min_horizontal(lows), phi=pl.max_horizontal(highs),
                        pph=pl.max_horizontal(presumed))

    def item(self, item: Bands | ManualItem | BestOf) -> _Cols:
        if isinstance(item, Bands):
            return self.bands(item)
        if isinstance(item, ManualItem):
            top = pl.lit(float(item.max_points))
            return self.put(item.id, 0, plo=pl.lit(float(item.min_points)), phi=top, pph=top)
        kids = [self.bands(i) for i in item.items]
        return self.put(
            item.id,
            1,
            **{key: pl.max_horizontal([pl.col(getattr(k, key)) for k in kids])
               for key in ("plo", "phi", "pph")},
        )

    def points(self, node: Points) -> _Cols:
        dims = []
        for dim in node.dimensions:
            kids = [self.item(i) for i in dim.items]
            dims.append(
                self.put(
                    dim.id,
                    1 + max(k.height for k in kids),
                    **{key: pl.sum_horizontal([pl.col(getattr(k, key)) for k in kids])
                       for key in ("plo", "phi", "pph")},
                )
            )
        h = 1 + max(d.height for d in dims)
        totals = self.put(
            node.id + "__total",
            h,
            **{key: pl.sum_horizontal([pl.col(getattr(d, key)) for d in dims])
               for key in ("plo", "phi", "pph")},
        )

        def meets(key: str) -> pl.Expr:
            tests = [pl.col(getattr(totals, key)) >= node.min_total - _eps(node.min_total)]
            tests += [
                pl.col(getattr(d, key)) >= dim.min - _eps(dim.min)
                for d, dim in zip(dims, node.dimensions)
                if dim.min > 0
            ]
            return pl.all_horizontal(tests)

        cols = self.put(node.id, h + 1, lo=meets("plo"), hi=meets("phi"), hp=meets("pph"))
        cols.plo, cols.phi, cols.pph = totals.plo, totals.phi, totals.pph
        return cols


# --- texts: gaps, needs_review, criteria JSON ------------------------------------------------
# Building a string per leaf per row is what costs time at scale, so `gaps` and `needs_review`
# are built from bit masks: each possible phrase ("unit") gets a Boolean "is shown" column, the
# bits are packed into integers, and the text is written once per distinct mask — with the row's
# numbers filled in per group of rows sharing a mask.

_BITS = 63  # bits per mask word (UInt64, top bit unused)
Piece = Any  # a literal str, or a pl.Expr evaluated on the collected frame


@dataclass
class _Unit:
    """One phrase that may appear in `gaps` or `needs_review`, and when it does."""

    node: Any
    role: str
    shown: pl.Expr
    text: str = ""


def _all(conds: list[pl.Expr]) -> pl.Expr:
    return pl.all_horizontal(conds) if conds else pl.lit(True)


def _flatten_join(lists: list[list[Piece] | None], sep: str) -> list[Piece] | None:
    out: list[Piece] = []
    for part in [x for x in lists if x]:
        if out:
            out.append(sep)
        out.extend(part)
    return out or None


class _Texts:
    """Finds the units of a compiled rulebook and writes their texts."""

    def __init__(self, comp: _Compiler) -> None:
        self.c = comp
        self.gap_units: list[_Unit] = []
        self.gap_index: dict[tuple[str, str], int] = {}
        self.review_units: list[_Unit] = []
        self.needs: set[str] = set()  # columns the gap texts read

    def col(self, node_id: str, key: str) -> pl.Expr:
        return pl.col(getattr(self.c.cols[node_id], key))

    def branch(self, node: Switch, i: int, sure: bool = True) -> pl.Expr:
        may, certain = self.c.branch_cols[node.id]
        return pl.col((certain if sure else may)[i])

    @staticmethod
    def branches(node: Switch) -> list[Any]:
        return [c.then for c in node.cases] + [node.otherwise]

    # gap units -------------------------------------------------------------------------------
    def add_gap(self, node: Any, role: str, shown: pl.Expr) -> None:
        self.gap_index[(node.id, role)] = len(self.gap_units)
        self.gap_units.append(_Unit(node, role, shown))

    def collect_gaps(self, node: Any, rel: list[pl.Expr]) -> None:
        """A leaf's gap shows when it fails and no passed any_of or other case hides it; an any_of
        passes here also as presumed (`hp`): while another route is presumed to hold pending a
        check (qualified equity at the figure), a failed one is no shortfall of the firm's."""
        if getattr(node, "quiet", False) or isinstance(node, Manual):
            return
        if isinstance(node, (Threshold, Flag, Matches)):
            # shown when it fails as presumed (`hp`), not only for certain (`hi`): a value that is
            # missing and presumed to fail keeps the firm at 否, and 差距 must say why
            self.add_gap(node, "leaf", _all([*rel, ~self.col(node.id, "hp")]))
            if isinstance(node, Threshold):
                self.needs.add(self.c.features[f"num:{node.feature}"][1])
        elif isinstance(node, AllOf):
            for child in node.criteria:
                self.collect_gaps(child, rel)
        elif isinstance(node, AnyOf):
            for child in node.criteria:
                if isinstance(child, Manual):
                    # a route only a person can confirm (software copyrights beside patents, S&T
                    # staff beyond R&D staff) is named beside the failed ones: the firm is 否 on
                    # the data, and 差距 says what could still carry it
                    self.add_gap(child, "open", _all([*rel, ~self.col(node.id, "hp")]))
                else:
                    self.collect_gaps(child, [*rel, ~self.col(node.id, "hp")])
        elif isinstance(node, Switch):
            # the case that applies; while the selector is unknown, every case that may apply
            n = len(self.branches(node))
            undecided = ~pl.any_horizontal([self.branch(node, i) for i in range(n)])
            for i, child in enumerate(self.branches(node)):
                shown = self.branch(node, i) | (undecided & self.branch(node, i, sure=False))
                self.collect_gaps(child, [*rel, shown])
        elif isinstance(node, Points):
            total = self.c.cols[node.id]
            self.needs |= {total.plo, total.phi}
            # short as presumed (`pph`): a score that reaches the bar only if a review presumed to
            # fail raises it (IP beyond patents) is a shortfall, given with its ceiling
            self.add_gap(
                node,
                "total",
                _all([*rel, pl.col(total.pph) < node.min_total - _eps(node.min_total)]),
            )
            for dim in node.dimensions:
                if dim.min > 0:
                    d = self.c.cols[dim.id]
                    self.needs |= {d.plo, d.phi}
                    self.add_gap(dim, "dim", _all([*rel, pl.col(d.pph) < dim.min - _eps(dim.min)]))

    def gap_pieces(self, node: Any, shown: set[int], nested: bool = False) -> list[Piece] | None:
        """The gap text of `node` for a set of shown units, as literals and value expressions."""
        if getattr(node, "quiet", False) or isinstance(node, Manual):   # a manual route: by its any_of
            return None
        if isinstance(node, (Threshold, Flag, Matches)):
            if self.gap_index[(node.id, "leaf")] not in shown:
                return None
            if not isinstance(node, Threshold):
                return [node.fail_text or f"不满足：{node.label}"]
            x = pl.col(self.c.features[f"num:{node.feature}"][1])
            tail = f" {_INVERSE[node.op]} {_show_const(node.value, node.unit)}"
            # a missing value (presumed to fail) reads 无数据 with what is needed, not a null that
            # blanks the text
            need = f"无数据（需 {_AS_WRITTEN[node.op]} {_show_const(node.value, node.unit)}）"
            return [node.label + " ",
                    pl.when(x.is_null()).then(pl.lit(need)).otherwise(pl.concat_str([_show(x, node.unit), pl.lit(tail)]))]
        if isinstance(node, AllOf):
            return _flatten_join(
                [self.gap_pieces(c, shown, nested) for c in node.criteria], "，" if nested else SEP
            )
        if isinstance(node, AnyOf):
            failed = _flatten_join([self.gap_pieces(c, shown, True) for c in node.criteria], " 或 ")
            # the routes only a person can confirm, after the failed ones and bound to them:
            # `有效专利 0 件 < 1 件（或 软件著作权等其他知识产权，需人工核实）`
            open_ = [c.label for c in node.criteria
                     if isinstance(c, Manual) and self.gap_index.get((c.id, "open")) in shown]
            if not open_:
                return failed
            if failed is None:
                return ["、".join(open_) + MANUAL_SUFFIX]
            return _merge_literals([*failed, f"（或 {'、'.join(open_)}，需人工核实）"])
        if isinstance(node, Switch):
            return _flatten_join(
                [self.gap_pieces(c, shown, True) for c in self.branches(node)], " 或 "
            )
        if isinstance(node, Points):
            return self.points_pieces(node, shown, nested)
        return None

    def points_pieces(self, node: Points, shown: set[int], nested: bool) -> list[Piece] | None:
        parts: list[list[Piece] | None] = []
        if self.gap_index[(node.id, "total")] in shown:
            cols = self.c.cols[node.id]
            lo, hi = pl.col(cols.plo), pl.col(cols.phi)
            ceiling = (
                pl.when(hi > lo)
                .then(pl.concat_str([pl.lit("（最高可能 "), _num_text(hi), pl.lit(" 分）")]))
                .otherwise(pl.lit(""))
            )
            parts.append(
                [
                    f"{node.label} ",
                    _num_text(lo),
                    " 分",
                    ceiling,
                    f" < {_py_num(node.min_total)} 分",
                ]
            )
        for dim in node.dimensions:
            if dim.min > 0 and self.gap_index[(dim.id, "dim")] in shown:
                plo, phi = pl.col(self.c.cols[dim.id].plo), pl.col(self.c.cols[dim.id].phi)
                ceiling = (pl.when(phi > plo)
                           .then(pl.concat_str([pl.lit("（最高可能 "), _num_text(phi), pl.lit(" 分）")]))
                           .otherwise(pl.lit("")))
                parts.append([f"{dim.label}得分 ", _num_text(plo), " 分", ceiling, f" < {_py_num(dim.min)} 分"])
        return _flatten_join(parts, "，" if nested else SEP)

    # review units ----------------------------------------------------------------------------
    def add_review(self, node: Any, text: str, shown: list[pl.Expr]) -> None:
        self.review_units.append(_Unit(node, "review", _all(shown), text))

    def collect_review(self, node: Any, rel: list[pl.Expr]) -> None:
        """Unknowns to check by hand, unless a passed any_of, an alternative of it that fails for
        certain, or a decided score hides them."""
        if isinstance(node, Manual):
            self.add_review(node, node.label + MANUAL_SUFFIX, rel)
        elif isinstance(node, (Threshold, Flag, Matches)):
            self.add_review(node, node.label + MISSING_SUFFIX, [*rel, self.c.value(node).is_null()])
        elif isinstance(node, AllOf):
            for child in node.criteria:
                self.collect_review(child, rel)
        elif isinstance(node, AnyOf):
            for child in node.criteria:
                # an alternative that fails for certain has nothing left to check by hand (e.g.
                # whether the investors behind too little equity were qualified)
                failed = [self.col(child.id, "hi")] if self.c.cols[child.id].hi else []
                self.collect_review(child, [*rel, ~self.col(node.id, "lo"), *failed])
        elif isinstance(node, Switch):
            branches = self.branches(node)
            undecided = ~pl.any_horizontal([self.branch(node, i) for i in range(len(branches))])
            open_ = ~self.col(node.id, "lo") & self.col(node.id, "hi")
            asked: set[tuple[str, str]] = set()   # cases on one column ask for it once
            for case in node.cases:
                if (case.when.feature, case.when.label) in asked:
                    continue
                asked.add((case.when.feature, case.when.label))
                self.add_review(
                    case.when,
                    case.when.label + MISSING_SUFFIX,
                    [*rel, undecided, open_, self.c.value(case.when).is_null()],
                )
            for i, child in enumerate(branches):
                self.collect_review(child, [*rel, self.branch(node, i)])
        elif isinstance(node, Points):
            open_ = ~self.col(node.id, "lo") & self.col(node.id, "hi")
            for dim in node.dimensions:
                for item in dim.items:
                    self.collect_item_review(item, [*rel, open_])

    def collect_item_review(self, item: Any, rel: list[pl.Expr]) -> None:
        cols = self.c.cols[item.id]
        undetermined = pl.col(cols.plo) != pl.col(cols.phi)
        if isinstance(item, ManualItem):
            self.add_review(item, item.label + MANUAL_SUFFIX, [*rel, undetermined])
        elif isinstance(item, BestOf):
            for child in item.items:
                self.collect_item_review(child, [*rel, undetermined])
        else:
            missing = pl.any_horizontal(
                [self.c.feature(item.band_feature(b), "num").is_null() for b in item.bands[:-1]]
            )
            self.add_review(item, item.label + MISSING_SUFFIX, [*rel, undetermined, missing])
            self.add_review(
                item,
                (item.review_label or item.label) + MANUAL_SUFFIX,
                [*rel, undetermined, ~missing],
            )

    # criteria JSON ---------------------------------------------------------------------------
    def json_pieces(self, node: Any, active: pl.Expr | None, first: bool) -> list[Piece]:
        """The criteria JSON of `node` and below: literal strings and per-row expressions."""
        pieces = self.json_entry(node, active, first)
        if isinstance(node, Switch):
            for i, child in enumerate(self.branches(node)):
                may = self.branch(node, i, sure=False)
                pieces += self.json_pieces(child, may if active is None else active & may, False)
        else:
            for child in children(node):
                pieces += self.json_pieces(child, active, False)
        return pieces

    def json_entry(self, node: Any, active: pl.Expr | None, first: bool) -> list[Piece]:
        cols = self.c.cols[node.id]
        head = (
            ("" if first else ",")
            + f'{{"id":{json.dumps(node.id)},"label":{json.dumps(node.label, ensure_ascii=False)},"result":"'
        )
        value: Piece = "null"
        threshold = "null"
        if isinstance(node, (Threshold, Flag, Matches)):
            kind = (
                "num"
                if isinstance(node, Threshold)
                else "bool"
                if isinstance(node, Flag)
                else "str"
            )
            value = self.c.json(node.feature, kind)
            raw = (
                node.value
                if isinstance(node, Threshold)
                else (node.expect if isinstance(node, Flag) else node.pattern)
            )
            threshold = json.dumps(raw, ensure_ascii=False)
        elif isinstance(node, Bands):
            value = self.c.json(node.feature, "num")
        elif isinstance(node, Points):
            threshold = json.dumps(node.min_total)
        elif isinstance(node, Dimension):
            threshold = json.dumps(node.min)
        is_pass, is_fail = self.states(node, cols)
        result = (
            pl.when(is_pass)
            .then(pl.lit("pass"))
            .when(is_fail)
            .then(pl.lit("fail"))
            .otherwise(pl.lit("unknown"))
        )
        pieces: list[Piece] = [
            head,
            result,
            '","value":',
            value,
            f',"threshold":{threshold},"points":',
        ]
        if cols.plo is not None:
            pieces += [
                _num_text(pl.col(cols.plo), 4),
                ',"max_points":',
                _num_text(pl.col(cols.phi), 4),
                "}",
            ]
        else:
            pieces.append("null}")
        if active is None:
            return pieces
        return [pl.when(active).then(p if isinstance(p, pl.Expr) else pl.lit(p)) for p in pieces]

    def states(self, node: Any, cols: _Cols) -> tuple[pl.Expr, pl.Expr]:
        """(passes, fails) for the node's result; points items judge by their floor/ceiling."""
        if cols.lo is not None:
            return pl.col(cols.lo), ~pl.col(cols.hi)
        plo, phi = pl.col(cols.plo), pl.col(cols.phi)
        if isinstance(node, Dimension):
            m = node.min - _eps(node.min)
            return plo >= m, phi < m
        return (plo == phi) & (plo > 0), (plo == phi) & (plo <= 0)


def _merge_literals(pieces: list[Piece]) -> list[Piece]:
    out: list[Piece] = []
    for p in pieces:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        else:
            out.append(p)
    return out


def _mask_words(units: list[_Unit], prefix: str) -> list[pl.Expr]:
    words = []
    for w in range(0, max(len(units), 1), _BITS):
        chunk = units[w : w + _BITS]
        bits = [u.shown.cast(pl.UInt64) * pl.lit(1 << b, pl.UInt64) for b, u in enumerate(chunk)]
        words.append(
            (pl.sum_horizontal(bits) if bits else pl.lit(0, pl.UInt64)).alias(
                f"{prefix}{w // _BITS}"
            )
        )
    return words


def _decode(words: tuple[int, ...]) -> set[int]:
    return {w * _BITS + b for w, word in enumerate(words) for b in range(_BITS) if word >> b & 1}


@dataclass
class _Compiled:
    rulebook: Rulebook
    features: dict[str, tuple[str, str]]  # "kind:feature" → (kind, column name)
    stages: list[list[pl.Expr]]
    outputs: list[pl.Expr]  # run lazily: identity, flags, points, mask words, gap columns, JSON
    texts: _Texts
    gap_words: list[str]
    review_words: list[str]
    needed: set[str] = field(default_factory=set)

    def gap_text(self, frame: pl.DataFrame) -> pl.Series:
        """`gaps` for the collected frame: written once per mask, numbers filled per group."""
        tree = self.rulebook.tree
        rows, templates = [], []
        for key in frame.select(self.gap_words).unique().iter_rows():
            pieces = self.texts.gap_pieces(tree, _decode(key)) or []
            if all(isinstance(p, str) for p in pieces):
                rows.append((*key, "".join(pieces), None))
            else:
                rows.append((*key, None, len(templates)))
                templates.append([pl.lit(p) if isinstance(p, str) else p for p in pieces])
        table = pl.DataFrame(
            rows,
            orient="row",
            schema=[*[(w, pl.UInt64) for w in self.gap_words], ("__g", pl.Utf8), ("__t", pl.Int64)],
        )
        keyed = frame.join(table, on=self.gap_words, how="left", maintain_order="left")
        out = keyed["__g"]
        if templates:
            todo = keyed.with_row_index("__i").filter(pl.col("__t").is_not_null())
            filled = [
                part.select("__i", pl.concat_str(templates[tid]).alias("__g"))
                for (tid,), part in todo.partition_by("__t", as_dict=True).items()
            ]
            done = pl.concat(filled)
            out = out.scatter(done["__i"], done["__g"])
        return out.fill_null("")

    def review_text(self, frame: pl.DataFrame) -> pl.Series:
        """`needs_review` for the collected frame, one text per distinct mask."""
        keys = frame.select(self.review_words).unique()
        units = self.texts.review_units
        rows = []
        for key in keys.iter_rows():
            texts = [units[i].text for i in sorted(_decode(key))]
            rows.append((*key, SEP.join(dict.fromkeys(texts))))
        table = pl.DataFrame(
            rows,
            orient="row",
            schema=[*[(w, pl.UInt64) for w in self.review_words], ("__r", pl.Utf8)],
        )
        return (
            frame.select(self.review_words)
            .join(table, on=self.review_words, how="left", maintain_order="left")["__r"]
            .fill_null("")
        )


# Common-subexpression elimination costs more than it saves on these wide expression sets.
_OPTIMIZATIONS = pl.QueryOptFlags(comm_subexpr_elim=False, comm_subplan_elim=False)
_CACHE: dict[tuple[int, bool], tuple[Rulebook, _Compiled]] = {}


def compile_rulebook(rulebook: Rulebook, *, details: bool = True) -> _Compiled:
    """Expressions that evaluate `rulebook` on panel rows (cached per rulebook object)."""
    key = (id(rulebook), details)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is rulebook:
        return hit[1]
    if len(_CACHE) > 256:
        _CACHE.clear()
    compiled = _compile(rulebook, details)
    _CACHE[key] = (rulebook, compiled)  # holding the rulebook keeps its id from being reused
    return compiled


def _compile(rulebook: Rulebook, details: bool) -> _Compiled:
    comp = _Compiler(rulebook)
    tree = rulebook.tree
    root = comp.node(tree)
    texts = _Texts(comp)
    texts.collect_gaps(tree, [])
    texts.collect_review(tree, [])
    score = next((n for n in walk(tree) if isinstance(n, Points)), None)
    criteria = pl.lit(None, pl.Utf8)
    if details:
        # per-row pieces become columns of one stage (computed in parallel), then one concat
        pieces = _merge_literals(["[", *texts.json_pieces(tree, None, True), "]"])
        stage, refs = [], []
        for p in pieces:
            if isinstance(p, str):
                refs.append(pl.lit(p))
            else:
                stage.append(p.alias(f"__jp{len(stage)}"))
                refs.append(pl.col(f"__jp{len(stage) - 1}"))
        comp.stages[max(comp.stages) + 1] = stage
        criteria = pl.concat_str(refs, ignore_nulls=True)
    gap_words = _mask_words(texts.gap_units, "__gm")
    review_words = _mask_words(texts.review_units, "__rm")
    outputs = [
        pl.col("uscc").cast(pl.Utf8),
        pl.col("quarter").cast(pl.Utf8),
        pl.col(root.lo).alias("eligible"),
        pl.col(root.hp).alias("eligible_if_unknowns_hold"),
        (pl.col(comp.cols[score.id].plo) if score else pl.lit(None, pl.Float64)).alias("points"),
        criteria.alias("criteria"),
        *gap_words,
        *review_words,
        *[pl.col(c) for c in sorted(texts.needs)],
    ]
    stages = [comp.stages[h] for h in sorted(comp.stages)]
    needed = {"uscc", "quarter"}
    for key in comp.features:
        name = key.split(":", 1)[1]
        needed |= set(DERIVED[name][1]) if name in DERIVED else {name}
    return _Compiled(
        rulebook,
        dict(comp.features),
        stages,
        outputs,
        texts,
        [f"__gm{i}" for i in range(len(gap_words))],
        [f"__rm{i}" for i in range(len(review_words))],
        needed,
    )


def _feature_columns(compiled: _Compiled) -> list[pl.Expr]:
    exprs = []
    for key, (kind, col) in compiled.features.items():
        name = key.split(":", 1)[1]
        raw = DERIVED[name][0]() if name in DERIVED else pl.col(name)
        if kind == "num":
            x = raw.cast(pl.Float64)
            exprs.append(pl.when(x.is_finite()).then(x).alias(col))
        elif kind == "bool":
            exprs.append(raw.cast(pl.Boolean).alias(col))
        else:
            exprs.append(raw.cast(pl.Utf8).alias(col))
    return exprs


def _plan(lf: pl.LazyFrame, compiled: _Compiled) -> pl.LazyFrame:
    lf = lf.with_columns(_feature_columns(compiled))
    for stage in compiled.stages:
        lf = lf.with_columns(stage)
    return lf.select(compiled.outputs)


def _finish(frame: pl.DataFrame, compiled: _Compiled, texts: pl.Series | None = None) -> pl.DataFrame:
    """The output rows; `texts` (a Boolean mask) limits `gaps` and `needs_review` to those rows
    (null elsewhere), so that they are written only where they are read."""
    rb = compiled.rulebook
    if texts is None:
        gaps, review = compiled.gap_text(frame), compiled.review_text(frame)
    else:
        where = texts.arg_true()
        part = frame.filter(texts)
        gaps = pl.repeat(None, frame.height, dtype=pl.Utf8, eager=True).scatter(where, compiled.gap_text(part))
        review = pl.repeat(None, frame.height, dtype=pl.Utf8, eager=True).scatter(
            where, compiled.review_text(part))
    return frame.select(
        "uscc",
        "quarter",
        pl.lit(rb.tier).alias("tier"),
        pl.lit(rb.id).alias("rulebook_id"),
        pl.lit(rb.version).alias("rulebook_version"),
        "eligible",
        "eligible_if_unknowns_hold",
        "points",
        pl.lit(gaps).alias("gaps"),
        pl.lit(review).alias("needs_review"),
        "criteria",
    )


# --- evaluate --------------------------------------------------------------------------------


def _with_quarter_end(panel: pl.DataFrame) -> pl.DataFrame:
    """`quarter_end` as a Date, filled from the `YYYYQn` quarter where missing."""
    year = pl.col("quarter").cast(pl.Utf8).str.slice(0, 4).cast(pl.Int32, strict=False)
    q = pl.col("quarter").cast(pl.Utf8).str.slice(5, 1).cast(pl.Int32, strict=False)
    start_next = pl.date(year + (q == 4).cast(pl.Int32), (q % 4) * 3 + 1, 1)
    derived = start_next - pl.duration(days=1)
    if "quarter_end" not in panel.columns:
        return panel.with_columns(derived.alias("quarter_end"))
    return panel.with_columns(
        pl.coalesce(pl.col("quarter_end").cast(pl.Date), derived).alias("quarter_end")
    )


def _check_columns(panel: pl.DataFrame, compiled: list[_Compiled], missing: str) -> pl.DataFrame:
    needs: dict[str, list[str]] = defaultdict(list)
    for c in compiled:
        for col in sorted(c.needed):
            if col not in panel.columns:
                needs[col].append(c.rulebook.id)
    if not needs:
        return panel
    if missing == "null":
        return panel.with_columns([pl.lit(None).alias(col) for col in needs])
    lines = [
        f"  {col} (used by {', '.join(sorted(set(ids)))})" for col, ids in sorted(needs.items())
    ]
    raise KeyError("panel is missing columns the rulebooks read:\n" + "\n".join(lines))


def evaluate_rulebook(
    panel: pl.DataFrame,
    rulebook: Rulebook,
    *,
    details: bool = True,
    missing: Literal["error", "null"] = "error",
) -> pl.DataFrame:
    """One rulebook on every panel row, whatever the dates (for tests and what-if runs)."""
    panel = _with_quarter_end(panel)
    compiled = compile_rulebook(rulebook, details=details)
    panel = _check_columns(panel, [compiled], missing)
    return _finish(_plan(panel.lazy(), compiled).collect(optimizations=_OPTIMIZATIONS), compiled)


def evaluate(
    panel: pl.DataFrame,
    rulebooks: Iterable[Rulebook] | None = None,
    *,
    details: bool | Literal["latest"] = "latest",
    texts: bool | Literal["latest"] = True,
    missing: Literal["error", "null"] = "error",
    tiers: Iterable[str] | None = None,
) -> pl.DataFrame:
    """One row per (uscc, quarter, tier): eligibility under the rulebook in force at quarter_end.
    `tiers`: the tiers judged (default: those the rulebooks given cover); a tier without a
    rulebook among them gets the rows of a quarter no rulebook covers (a city's config that
    leaves a tier out).

    Rows come tier by tier (in `scoring.tiers.TIERS` order); within a tier, by the quarters'
    rulebooks in date order, in panel order within each group. Rows whose quarter no rulebook
    covers get null eligibility and an explanation in `needs_review`.

    `details` decides which rows get the `criteria` JSON, which is most of the time and memory
    (about 3 kB per row and tier): "latest" (default) the panel's latest quarter only, null for
    earlier quarters; True every row; False none. `texts` likewise for `gaps` and `needs_review`
    (null where not written; the verdicts are the same either way), True by default.
    `missing="null"` treats panel columns the rules read but the panel lacks as null (unknown)
    instead of raising.
    """
    books = load_rulebooks() if rulebooks is None else list(rulebooks)
    panel = _with_quarter_end(panel)
    dates = panel["quarter_end"].unique().drop_nulls().sort().to_list()
    latest = dates[-1] if dates else None
    plans: list[tuple[str, Rulebook | None, bool, list[dt.date | None]]] = []
    judged = [t for t in TIERS if any(b.tier == t for b in books)] if tiers is None else list(tiers)
    for tier in judged:
        chosen: dict[tuple[str, bool], tuple[Rulebook | None, bool, list[dt.date | None]]] = {}
        for day in [*dates, None]:
            try:
                rb = None if day is None else rulebook_in_force(books, tier, day)
            except LookupError:
                rb = None
            full = details is True or (details == "latest" and day == latest)
            key = (rb.id if rb else "", full and rb is not None)
            chosen.setdefault(key, (rb, key[1], []))[2].append(day)
        plans += [(tier, rb, full, days) for rb, full, days in chosen.values()]
    compiled = {(rb.id, full): compile_rulebook(rb, details=full) for _, rb, full, _ in plans if rb}
    panel = _check_columns(panel, list(compiled.values()), missing)
    lf = panel.lazy()
    lazies = []
    for _, rb, full, days in plans:
        known = [d for d in days if d is not None]
        rows = pl.col("quarter_end").is_in(known) if known else pl.lit(False)
        if None in days:
            rows = rows | pl.col("quarter_end").is_null()
        part = lf.filter(rows)
        lazies.append(part if rb is None else _plan(part, compiled[(rb.id, full)]))
    written: pl.Series | None = None   # the quarters whose rows get texts (None: every row)
    if texts is False or (texts == "latest" and latest is None):
        written = pl.Series([], dtype=pl.Utf8)
    elif texts == "latest":
        written = panel.select(pl.col("quarter").filter(pl.col("quarter_end") == latest)
                               .cast(pl.Utf8).unique()).to_series()   # one column, not the rows
    frames = []
    for frame, (tier, rb, full, _) in zip(
        pl.collect_all(lazies, optimizations=_OPTIMIZATIONS), plans, strict=True
    ):
        rows = None if written is None else frame["quarter"].is_in(written)
        if rb is None:
            latest_row = (pl.col("quarter_end") == pl.lit(latest, pl.Date)).fill_null(False)
            full = frame.select(pl.lit(details is True) | (pl.lit(details == "latest") & latest_row))
            frames.append(_uncovered(frame, tier, full.to_series(), rows))
            continue
        frames.append(_finish(frame, compiled[(rb.id, full)], rows))
    frames = [f for f in frames if f.height] or [pl.DataFrame(schema=OUTPUT_SCHEMA)]
    return pl.concat(frames, how="vertical")


def _uncovered(
    part: pl.DataFrame, tier: str, details: pl.Series, texts: pl.Series | None
) -> pl.DataFrame:
    """Rows of quarters no rulebook covers: null verdicts; texts and JSON where `evaluate`'s
    `texts` and `details` ask for them (`details`, `texts`: Boolean masks; texts None = every row)."""
    written = pl.lit(True) if texts is None else pl.lit(texts.fill_null(False))
    return part.select(
        pl.col("uscc").cast(pl.Utf8),
        pl.col("quarter").cast(pl.Utf8),
        pl.lit(tier).alias("tier"),
        pl.lit(None, pl.Utf8).alias("rulebook_id"),
        pl.lit(None, pl.Utf8).alias("rulebook_version"),
        pl.lit(None, pl.Boolean).alias("eligible"),
        pl.lit(None, pl.Boolean).alias("eligible_if_unknowns_hold"),
        pl.lit(None, pl.Float64).alias("points"),
        pl.when(written).then(pl.lit("")).alias("gaps"),
        pl.when(written).then(pl.lit(f"未收录该季度适用的{TIERS[tier]}规则(需人工核实)"))
        .alias("needs_review"),
        pl.when(pl.lit(details.fill_null(False))).then(pl.lit("[]")).alias("criteria"),
    )


# --- worked examples -------------------------------------------------------------------------

_TEXT_FEATURES = {"district", "industry_code", "chain_layer", "name", "status"}


def _feature_dtype(name: str) -> pl.DataType:
    if name in _TEXT_FEATURES:
        return pl.Utf8
    if name.startswith("holds_") or name in ("chain_leader", "chain_leader_tie"):
        return pl.Boolean
    return pl.Float64


def example_panel(
    rows: list[dict[str, Any]], quarter_end: dt.date = dt.date(2025, 12, 31)
) -> pl.DataFrame:
    """Panel rows with every feature the rules read null except those given (for examples, tests)."""
    from scoring.rulebook import PANEL_FEATURES

    quarter = f"{quarter_end.year}Q{(quarter_end.month - 1) // 3 + 1}"
    base = {"uscc": None, "quarter": quarter, "quarter_end": quarter_end}
    names = sorted(PANEL_FEATURES)
    full = [
        {**base, "uscc": f"EX{i:016d}", **dict.fromkeys(names), **row} for i, row in enumerate(rows)
    ]
    schema = {"uscc": pl.Utf8, "quarter": pl.Utf8, "quarter_end": pl.Date}
    schema |= {n: _feature_dtype(n) for n in names}
    schema |= {
        k: pl.Utf8 if isinstance(v, str) else pl.Float64
        for r in rows
        for k, v in r.items()
        if k not in schema and k not in base
    }
    return pl.DataFrame(full, schema=schema)


def check_examples(rulebook: Rulebook) -> list[str]:
    """Problems with the rulebook's own worked examples (empty when every one holds)."""
    problems = []
    for ex in rulebook.examples:
        day = ex.quarter_end or rulebook.effective_from
        row = evaluate_rulebook(example_panel([ex.given], day), rulebook).row(0, named=True)
        results = {c["id"]: c["result"] for c in json.loads(row["criteria"])}
        want = ex.expect
        for key in ("eligible", "eligible_if_unknowns_hold", "points"):
            if getattr(want, key) is not None and getattr(want, key) != row[key]:
                problems.append(f"{key} is {row[key]}, expected {getattr(want, key)}")
        for cid, result in want.results.items():
            if results.get(cid) != result:
                problems.append(f"{cid} is {results.get(cid)}, expected {result}")
        problems += [f"gaps lack {g!r}" for g in want.gaps if g not in row["gaps"]]
        problems += [
            f"needs_review lacks {r!r}" for r in want.needs_review if r not in row["needs_review"]
        ]
        if want.eligible and row["gaps"]:
            problems.append(f"eligible but gaps say {row['gaps']!r}")
        problems = [
            p if p.startswith(rulebook.id) else f"{rulebook.id} / {ex.name}: {p}" for p in problems
        ]
    return problems
