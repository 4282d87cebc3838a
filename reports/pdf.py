"""The review-meeting PDF: cover, one-page summary, candidate lists per tier, a page per top
candidate, the funding memo with allocation and sensitivity, KPIs, backtest, global SHAP, the
data-quality appendix and the methods page.

It reads the saved run folder only (manifest.json, memo.md, quarantine.csv, tables/*.parquet)
and never recomputes a score; counting and summing for the summary is the only arithmetic. All
text reaches typst as JSON (`json("data.json")` in templates/report.typ) and is placed as
strings, never parsed as markup, so a company name such as `=HYPERLINK("http://x","y")` or one
full of `#*_$[]\\@<` prints literally. The same tables give a byte-identical PDF: no dates, fixed
order everywhere, charts with a fixed SVG hash salt. A missing CJK font is an error, not tofu.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import typst

from reports import charts
from reports.charts import CJK_FONT_FILE, FontMissingError, register_cjk_font
from reports.tables import as_typed, verdict
from scoring.backtest import MIN_POSITIVES
from scoring.rules import MANUAL_SUFFIX, MISSING_SUFFIX
from scoring.tiers import TIERS

TEMPLATES = Path(__file__).parent / "templates"
# Report order of tiers (outputs.md); tiers not listed here follow in the order they appear.
TIER_ORDER = tuple(TIERS)
TOP_LISTED = 50  # candidates per tier printed; the full list is in candidates.xlsx
TOP_EXPLAINED = 3  # one page each, per tier
REVIEW_LISTED = 3  # conditions to verify by hand printed for a 待核实 firm in its tier's list
MAX_FIRM_PAGES = 24
FIRM_PAGE_ITEMS = 8   # gaps, and conditions to verify, listed on a firm's page (so that it stays one page)
QUARANTINE_SHOWN = 30
CHECKS_SHOWN = 15
NO_DATA = "本期无数据"
NO_RULEBOOK = "未收录规则"   # a tier's 待核实 cell when no rulebook of the config is in force for the quarter
LIKELY_RULE = (
    "预计新认定: 本层级全部候选企业的认定概率之和, 即四个季度内预计新获认定的企业数 (模型估计值); "
    "建议支持: 列入本期资金分配方案。"
)
TABLE_ZH = {
    "enterprises": "企业登记",   # the file stems of input-format.md
    "filings": "财务快报",
    "patents": "专利",
    "patent_owners": "专利权人",
    "projects": "重点项目",
    "financing": "融资",
    "honors": "资质荣誉",
}
PARQUET_TABLES = (
    "candidates",
    "allocation",
    "sensitivity",
    "baseline",
    "kpis",
    "quality",
    "checks",
    "shap_global",
    "shap_sample",
    "shap_top",
    "firm_facts",
    "firm_facts_labels",
    "backtest",
)
PERCENT_UNITS = {"%", "％", "百分比"}
RATIO_NAME = re.compile(r"(_share|intensity|ratio|growth|margin|cagr)")


class ReportError(RuntimeError):
    """typst could not build the PDF; the message carries typst's diagnostics."""


@dataclass
class Fonts:
    """Where typst and matplotlib look for the CJK face. font_dir given: only there."""

    file: Path = CJK_FONT_FILE
    dirs: list[str] = field(default_factory=lambda: [str(CJK_FONT_FILE.parent)])
    system: bool = True

    @classmethod
    def at(cls, font_dir: Path | None) -> Fonts:
        if font_dir is None:
            return cls()
        return cls(Path(font_dir) / CJK_FONT_FILE.name, [str(font_dir)], system=False)


def render_report(run_dir: Path, *, font_dir: Path | None = None) -> Path:
    """Write run_dir/report.pdf (and run_dir/charts/*.svg) from the saved run folder.

    font_dir: look for NotoSansCJK-Regular.ttc there only (tests); default the Debian location
    plus the system fonts. Raises FontMissingError when the CJK face is not available.
    """
    run_dir = Path(run_dir)
    fonts = Fonts.at(font_dir)
    register_cjk_font(fonts.file)
    run = Run.load(run_dir)
    drawn = draw_charts(run, run_dir / "charts")
    data = build_data(run, {name: f"charts/{path.name}" for name, path in drawn.items()})
    pdf = compile_pdf(data, list(drawn.values()), fonts)
    out = run_dir / "report.pdf"
    out.write_bytes(pdf)
    return out


# ------------------------------------------------------------------------------ the run folder


@dataclass
class Run:
    manifest: dict
    tables: dict[str, pl.DataFrame | None]
    memo: str | None
    quarantine: pl.DataFrame | None
    quarantine_total: int
    flags: pl.DataFrame | None = None   # rows accepted with a warning (flags.csv), the first ones
    flags_total: int = 0

    @classmethod
    def load(cls, run_dir: Path) -> Run:
        path = run_dir / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the run manifest is missing; the report needs it")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        tables = {name: _parquet(run_dir / "tables" / f"{name}.parquet") for name in PARQUET_TABLES
                  if name != "candidates"}
        tables["candidates"], tables["printed"] = _candidates(run_dir / "tables" / "candidates.parquet")
        memo_path = run_dir / "memo.md"
        memo = memo_path.read_text(encoding="utf-8-sig") if memo_path.is_file() else None
        quarantine, total = _findings(run_dir / "quarantine.csv")
        flags, flags_total = _findings(run_dir / "flags.csv")
        return cls(manifest, tables, memo, quarantine, total, flags, flags_total)

    def table(self, name: str) -> pl.DataFrame | None:
        """The table, or None when it is missing or has no rows."""
        frame = self.tables.get(name)
        return frame if frame is not None and frame.height else None

    def tiers(self) -> list[tuple[str, str]]:
        """(tier_key, Chinese name) in report order, from the candidates."""
        cands, printed = self.table("candidates"), self.table("printed")
        if cands is None or printed is None:
            return []
        name = dict(printed.select("tier_key", "tier").unique().rows())
        pairs = [(k, name.get(k, k)) for k in cands.get_column("tier_key").unique(maintain_order=True)]
        rank = {k: i for i, k in enumerate(TIER_ORDER)}
        return sorted(pairs, key=lambda p: rank.get(p[0], len(rank)))


def _parquet(path: Path) -> pl.DataFrame | None:
    return pl.read_parquet(path) if path.is_file() else None


# What the report reads of every candidate: the counts per tier. The whole row only of those it
# prints (a tier's first TOP_LISTED, the firm pages among them): a province's 7.4M candidates
# with their texts were 2.5 GB, read while the run still held its own frames (the run's top).
COUNTED = ("uscc", "tier_key", "eligible", "eligible_if_unknowns_hold", "probability", "rank")
assert TOP_EXPLAINED <= TOP_LISTED


def _candidates(path: Path) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """(every candidate's COUNTED columns, every column of the printed candidates)."""
    if not path.is_file():
        return None, None
    scan = pl.scan_parquet(path)
    have = scan.collect_schema().names()
    return (scan.select(c for c in COUNTED if c in have).collect(),
            scan.filter(pl.col("rank") <= TOP_LISTED).collect())


def _findings(path: Path) -> tuple[pl.DataFrame | None, int]:
    """(the first QUARANTINE_SHOWN findings of quarantine.csv or flags.csv, how many it holds)."""
    if not path.is_file():
        return None, 0
    total = pl.scan_csv(path, infer_schema=False, encoding="utf8").select(pl.len()).collect().item()
    head = pl.read_csv(path, infer_schema=False, n_rows=QUARANTINE_SHOWN, encoding="utf8")
    return as_typed(head.rename(lambda c: c.lstrip("\ufeff"))), int(total)


# ------------------------------------------------------------------------------ charts


def draw_charts(run: Run, out: Path) -> dict[str, Path]:
    """Every chart the report shows, by name; a chart whose table is empty is not drawn."""
    drawn: dict[str, Path] = {}
    for stale in out.glob("waterfall_*.svg"):  # top firms change between runs into the same folder
        stale.unlink()
    top = run.table("shap_top")
    for key, rank, row in _explained(run) if top is not None else []:
        part = top.filter((pl.col("uscc") == row["uscc"]) & (pl.col("tier_key") == key))
        if part.height:
            name = f"waterfall_{_slug(key)}_{rank}"
            drawn[name] = charts.waterfall(part, out / f"{name}.svg", probability=row.get("probability"))
    if (sens := run.table("sensitivity")) is not None:
        drawn["sensitivity"] = charts.sensitivity(
            sens, out / "sensitivity.svg", run.manifest.get("budget_wan")
        )
    if (bt := run.table("backtest")) is not None and bt["enough_positives"].any():
        drawn["backtest"] = charts.backtest(_in_tier_order(bt.filter("enough_positives"), run),
                                            out / "backtest.svg")
    if (glob := run.table("shap_global")) is not None:
        drawn["shap_bar"] = charts.shap_bar(glob, out / "shap_bar.svg")
    if (sample := run.table("shap_sample")) is not None:
        drawn["shap_beeswarm"] = charts.beeswarm(sample, out / "shap_beeswarm.svg")
    return drawn


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text)


def _in_tier_order(frame: pl.DataFrame, run: Run) -> pl.DataFrame:
    order = {k: i for i, k in enumerate([k for k, _ in run.tiers()] + list(TIER_ORDER))}
    return (
        frame.with_columns(pl.col("tier_key").replace_strict(order, default=len(order)).alias("_o"))
        .sort("_o", "tier_key", "k")
        .drop("_o")
    )


def _explained(run: Run) -> list[tuple[str, int, dict]]:
    """(tier_key, rank, candidate row) for the firms that get a page of their own."""
    cands = run.table("printed")
    if cands is None:
        return []
    out = []
    for key, _ in run.tiers():
        part = cands.filter((pl.col("tier_key") == key) & (pl.col("rank") <= TOP_EXPLAINED)).sort(
            "rank"
        )
        part = part.with_columns(verdict(part.columns).cast(pl.Utf8).alias("verdict"))
        out += [(key, int(r["rank"]), r) for r in part.iter_rows(named=True)]
    return out[:MAX_FIRM_PAGES]


# ------------------------------------------------------------------------------ formatting


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _pct(x, digits: int = 1) -> str:
    return "—" if _missing(x) else f"{x * 100:.{digits}f}%"


def _num(x, digits: int = 1) -> str:
    if _missing(x):
        return "—"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.{digits}f}"


def _points(x) -> str:
    """Rule points and expected values: always one decimal, so a column lines up."""
    return "—" if _missing(x) else f"{x:,.1f}"


def _short(x, digits: int = 2) -> str:
    """A figure with at most `digits` decimals and no trailing zeros (KPI values: 9.1, 12.5, 30)."""
    if _missing(x):
        return "—"
    return f"{x:,.{digits}f}".rstrip("0").rstrip(".")



def _capped(items: list[str], column: str, limit: int = FIRM_PAGE_ITEMS) -> list[str]:
    """A firm page's list cut to `limit` items, the last saying how many more the workbook holds:
    eleven conditions to verify pushed one bullet onto a page of its own (analyst audit)."""
    if len(items) <= limit:
        return items
    return [*items[: limit - 1], f"另有 {len(items) - limit + 1} 项, 全文见 candidates.xlsx 的“{column}”列"]


def _split(text) -> list[str]:
    """A `；`-joined list (gaps, needs_review, reasons) as its items."""
    if _missing(text):
        return []
    return [p.strip() for p in re.split(r"[；;]", str(text)) if p.strip()]


def _fact(feature: str, value, unit: str | None) -> str:
    """A key figure in words: ratios are fractions in the tables and print as percent."""
    unit = unit or ""
    if _missing(value):
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if not isinstance(value, (int, float)):
        return f"{value} {unit}".strip()
    if unit in PERCENT_UNITS or (not unit and RATIO_NAME.search(feature)):
        return _pct(value)
    return f"{_num(value, 2 if abs(value) < 10 else 1)} {unit}".strip()


def _str(x) -> str:
    return "" if _missing(x) else str(x)


def _identifier(x) -> str:
    """A check id that may wrap after its underscores in a narrow column (a zero-width space
    after each: `total_liabilities_nonnegative` ran into the next cell)."""
    return _str(x).replace("_", "_\u200b")


# ------------------------------------------------------------------------------ the data for typst


def _program(manifest: dict) -> str:
    """The version and the code's fingerprint (manifest code_sha256, what `tidu verify` compares):
    the version number alone stays 0.1.0 from commit to commit."""
    code = _str(manifest.get("code_sha256"))
    return _str(manifest.get("package_version")) + (f" · 代码 {code[:12]}" if code else "")


def build_data(run: Run, chart_paths: dict[str, str]) -> dict:
    """Everything the template prints, as preformatted strings in report order."""
    m = run.manifest
    cover = {k: _str(m.get(k)) for k in ("city", "quarter", "data_as_of", "run_id")}
    cover["package_version"] = _program(m)
    cover["model_id"] = _str((m.get("model") or {}).get("id"))
    return {
        "no_data": NO_DATA,
        "cover": cover,
        "summary": summary(run),
        "tiers": tier_lists(run),
        "firms": firm_pages(run, chart_paths),
        "memo": memo_section(run, chart_paths),
        "kpis": _rows(run.table("kpis"), KPI_COLUMNS),
        "backtest": backtest_section(run, chart_paths),
        "shap": {"bar": chart_paths.get("shap_bar"), "beeswarm": chart_paths.get("shap_beeswarm")},
        "quality": quality_section(run),
        "methods": methods_section(run),
    }


def _rows(frame: pl.DataFrame | None, columns: dict[str, tuple[str, Callable]]) -> list[dict]:
    """Each row as {key: format(row[column])}; a missing table gives []. A missing column is a bug
    in tidu, not an empty cell: the comparison table's labels went missing for months as "—"."""
    if frame is None:
        return []
    missing = sorted({col for col, _ in columns.values()} - set(frame.columns))
    if missing:
        raise KeyError(f"report table lacks columns {missing}; it has {frame.columns}")
    return [
        {key: fmt(row.get(col)) for key, (col, fmt) in columns.items()}
        for row in frame.iter_rows(named=True)
    ]


def _sum(frame: pl.DataFrame | None, column: str) -> float | None:
    if frame is None or column not in frame.columns:
        return None
    return float(frame[column].sum())


def _firms(frame: pl.DataFrame | None) -> int:
    return frame["uscc"].n_unique() if frame is not None else 0


def summary(run: Run) -> dict:
    """The one-page summary: counts per tier, budget use, KPI status, data-quality totals."""
    alloc = run.table("allocation")
    budget = run.manifest.get("budget_wan")
    allocated = _sum(alloc, "amount_wan") or 0.0
    return {
        "firms": _num(_firms(run.table("candidates"))),
        "rows": _tier_counts(run, alloc),
        "no_rulebook": NO_RULEBOOK,
        "likely_rule": LIKELY_RULE,
        "rules_change": _rules_change(run.manifest.get("rulebooks") or [], _str(run.manifest.get("quarter"))),
        "budget": {
            "total": _num(budget),
            "allocated": _num(allocated),
            "share": _pct(allocated / budget) if budget else "—",
            "firms": _num(_firms(alloc)),
            "expected_value": _points(_sum(alloc, "expected_value")),
        },
        "kpi_counts": _kpi_counts(run.table("kpis")),
        "quality": _quality_totals(run.table("quality")),
    }


def _tier_counts(run: Run, alloc: pl.DataFrame | None) -> list[dict]:
    """Per tier: candidates, eligible, to verify (eligible once a person confirms the conditions
    the data cannot decide), likely (the expected new recognitions: LIKELY_RULE) and recommended
    (in the allocation)."""
    funded: dict[str, tuple[int, float]] = {}
    if alloc is not None:
        key_of = {**{zh: k for k, zh in run.tiers()}, **{k: k for k, _ in run.tiers()}}
        per = (
            alloc.with_columns(
                pl.col("tier").replace_strict(key_of, default=pl.col("tier")).alias("_k")
            )
            .group_by("_k")
            .agg(pl.col("uscc").n_unique(), pl.col("amount_wan").sum())
        )
        funded = {k: (n, amount) for k, n, amount in per.rows()}
    cands = run.table("candidates")
    rows = []
    for key, zh in run.tiers():
        part = cands.filter(pl.col("tier_key") == key)
        expected = float(part["probability"].sum()) if part.height else 0.0
        n, amount = funded.get(key, (0, 0.0))
        # no rulebook in force for the quarter: every verdict is null, none is a 否
        unruled = part.height > 0 and part["eligible"].null_count() == part.height
        rows.append(
            {
                "tier": zh,
                "n": _num(part.height),
                "eligible": "—" if unruled else _num(part["eligible"].sum()),
                "to_verify": NO_RULEBOOK if unruled
                else _num(part.filter(~pl.col("eligible") & pl.col("eligible_if_unknowns_hold")).height)
                if "eligible_if_unknowns_hold" in part.columns else "—",
                "likely": f"{expected:,.1f}",
                "recommended": _num(n),
                "amount": _num(amount),
            }
        )
    return rows


def _kpi_counts(kpis: pl.DataFrame | None) -> list[dict]:
    if kpis is None:
        return []
    counts = dict(kpis.group_by("status").len().rows())
    order = ["达标", "进度正常", "存在风险"] + sorted(
        set(counts) - {"达标", "进度正常", "存在风险"}, key=str
    )
    return [{"status": _str(s), "n": str(counts[s])} for s in order if s in counts]


def _quality_totals(quality: pl.DataFrame | None) -> dict | None:
    if quality is None:
        return None
    return {c: _num(_sum(quality, c)) for c in ("rows_read", "rows_accepted", "rows_quarantined")}


CANDIDATE_COLUMNS = {
    "rank": ("rank", str),
    "name": ("name", _str),
    "district": ("district", _str),
    "points": ("points", _points),
    "probability": ("probability", _pct),
    "gaps": ("gaps", _split),
    "reasons": ("reasons", _split),
}


def tier_lists(run: Run) -> list[dict]:
    """Per tier, the first TOP_LISTED candidates by rank and a sentence on where the rest are."""
    cands, printed = run.table("candidates"), run.table("printed")
    out = []
    for key, zh in run.tiers():
        part = cands.filter(pl.col("tier_key") == key)
        shown = printed.filter(pl.col("tier_key") == key).sort("rank").head(TOP_LISTED)
        rows = _rows(shown, CANDIDATE_COLUMNS)
        review = shown["needs_review"] if "needs_review" in shown.columns else [None] * shown.height
        for row, word, to_check in zip(rows, _verdicts(shown), review, strict=True):
            row["eligible"] = word
            if word == "待核实":
                row["gaps"] = row["gaps"] + _review_lines(to_check)
        note = (
            f"本层级共 {part.height:,} 家候选企业, 此处列出前 {TOP_LISTED} 名; "
            f"完整名单见 candidates.xlsx 的“{zh}”工作表。"
            if part.height > TOP_LISTED
            else f"本层级共 {part.height:,} 家候选企业, 全部列出。"
        )
        out.append({"key": key, "tier": zh, "note": note, "rows": rows})
    return out


def _review_lines(text) -> list[str]:
    """What a 待核实 firm's list row says must be verified: how many conditions, then the
    first REVIEW_LISTED of them in rulebook order without the suffix the rules give every one
    (`上年营业收入(数据缺失，需人工核实)` → `上年营业收入(数据缺失)`); the rest are in the
    workbook's 需人工核实 column."""
    def short(item: str) -> str:
        if item.endswith(MISSING_SUFFIX):
            return item.removesuffix(MISSING_SUFFIX) + "(数据缺失)"
        return item.removesuffix(MANUAL_SUFFIX)

    items = [short(item) for item in _split(text)]
    if not items:
        return []
    shown = items[:REVIEW_LISTED]
    if len(items) > REVIEW_LISTED:
        shown[-1] += " 等"
    return [f"待核实 {len(items)} 项:", *shown]


def _verdicts(frame: pl.DataFrame) -> list[str]:
    return frame.select(verdict(frame.columns).cast(pl.Utf8)).to_series().to_list()


def firm_pages(run: Run, chart_paths: dict[str, str]) -> list[dict]:
    """One page per top candidate: key figures, verdict, funding, reasons, gaps, waterfall."""
    facts = run.table("firm_facts")
    labels = run.table("firm_facts_labels")
    label_of = (
        {f: (lab, unit) for f, lab, unit in labels.select("feature", "label", "unit").rows()}
        if labels is not None
        else {}
    )
    alloc = run.table("allocation")
    pages = []
    for key, rank, r in _explained(run):
        funded = alloc.filter(pl.col("uscc") == r["uscc"]) if alloc is not None else None
        pages.append(
            {
                "tier": _str(r["tier"]),
                "rank": str(rank),
                "name": _str(r["name"]),
                "uscc": _str(r["uscc"]),
                "district": _str(r.get("district")),
                "probability": _pct(r.get("probability")),
                "points": _points(r.get("points")),
                "eligible": r["verdict"],
                "gaps": _capped(_split(r.get("gaps")), "差距"),
                "needs_review": _capped(_split(r.get("needs_review")), "需人工核实"),
                "reasons": _split(r.get("reasons")),
                "facts": _facts_of(facts, r["uscc"], label_of),
                "funding": [
                    f"{_str(a['instrument'])} {_num(a['amount_wan'])} 万元"
                    for a in funded.iter_rows(named=True)
                ]
                if funded is not None
                else [],
                "chart": chart_paths.get(f"waterfall_{_slug(key)}_{rank}"),
            }
        )
    return pages


def _facts_of(facts: pl.DataFrame | None, uscc: str, label_of: dict) -> list[dict]:
    """Every key-figure column the table has, labelled from firm_facts_labels."""
    if facts is None:
        return []
    row = facts.filter(pl.col("uscc") == uscc)
    if not row.height:
        return []
    out = []
    for column, value in row.row(0, named=True).items():
        if column in ("uscc", "name", "district"):
            continue
        label, unit = label_of.get(column, (column, ""))
        out.append({"label": _str(label) or column, "value": _fact(column, value, unit)})
    return out


ALLOCATION_COLUMNS = {
    "name": ("name", _str),
    "tier": ("tier", _str),
    "instrument": ("instrument", _str),
    "amount": ("amount_wan", _num),
    "expected_value": ("expected_value", _points),
    "rationale": ("rationale", _str),
}
BASELINE_COLUMNS = {
    "plan": ("scheme", _str),
    "expected_value": ("expected_value", _points),
    "firms": ("firms_funded", _num),
    "budget_used": ("budget_used_wan", _num),
}
KPI_COLUMNS = {
    "target": ("target", _str),
    "unit": ("unit", _str),
    "target_value": ("target_value", _short),
    "current_value": ("current_value", _short),
    "projected_value": ("projected_value", _short),
    "status": ("status", _str),
}


def memo_section(run: Run, chart_paths: dict[str, str]) -> dict:
    alloc = run.table("allocation")
    total = (
        None
        if alloc is None
        else {
            "amount": _num(_sum(alloc, "amount_wan")),
            "expected_value": _points(_sum(alloc, "expected_value")),
            "firms": _num(_firms(alloc)),
        }
    )
    return {
        "blocks": memo_blocks(run.memo or ""),
        "allocation": _rows(alloc, ALLOCATION_COLUMNS),
        "total": total,
        "baseline": _rows(run.table("baseline"), BASELINE_COLUMNS),
        "sensitivity": chart_paths.get("sensitivity"),
    }


BACKTEST_COLUMNS = {
    "tier": ("tier", _str),
    "positives": ("positives", _num),
    "k": ("k", _str),
    "recall_rules": ("recall_rules", _pct),
    "recall_tidu": ("recall_tidu", _pct),
    "precision_rules": ("precision_rules", _pct),
    "precision_tidu": ("precision_tidu", _pct),
}


def backtest_section(run: Run, chart_paths: dict[str, str]) -> dict | None:
    bt = run.table("backtest")
    if bt is None:
        return None
    # a tier with too few later recognitions shows its count, not figures that one firm swings
    shown = _in_tier_order(bt, run).with_columns(
        pl.when(pl.col("enough_positives")).then(pl.col(c)).alias(c)
        for c in ("recall_rules", "recall_tidu", "precision_rules", "precision_tidu"))
    window = (run.manifest.get("model") or {}).get("window") or {}
    valid, train = window.get("validation_quarters") or [], window.get("train_quarters") or []
    tune = window.get("tuning_quarters") or []
    return {
        "chart": chart_paths.get("backtest"),
        "rows": _rows(shown, BACKTEST_COLUMNS),
        "min_positives": None if bt["enough_positives"].all() else str(MIN_POSITIVES),
        # which lists are compared with what: a reader cannot tell from the table alone
        "about": _backtest_about(valid, train, tune),
    }


def _backtest_about(valid: list, train: list, tune: list) -> str:
    """What the backtest compares: the validation quarter's lists, by which model, against what."""
    about = ""
    if valid and train:
        rounds = f", 迭代轮数按调参季度 {tune[-1]} 选定" if tune else ""
        about = (f"名单为验证季度 {valid[-1]} 的名单 (验证用模型只用 {train[-1]} 及以前的数据训练{rounds}), "
                 "对照其后四个季度实际新认定的企业。")
    return (about + "tidu 排序与公布的名单相同: 先按是否符合条件分组, 组内按认定概率; 规则排序: 符合条件在前, 再按评分。"
            "规则对所有企业给分相同的层级 (不评分且无人符合) 规则一栏为 —。")


def _table_zh(name) -> str:
    name = _str(name)
    return f"{TABLE_ZH[name]} ({name})" if name in TABLE_ZH else name


def _severity(s) -> str:
    return {"error": "错误", "warn": "警告", "warning": "警告", "info": "提示"}.get(_str(s), _str(s))


def _clip(limit: int) -> Callable:
    """A formatter that cuts long text, so a pasted paragraph cannot swallow the page."""

    def fmt(x) -> str:
        text = _str(x)
        return text if len(text) <= limit else text[: limit - 1] + "…"

    return fmt


def _wrappable(limit: int) -> Callable:
    """_clip, and a zero-width space after every 9th character of a long unbroken run, so that a
    credit code or a long number wraps inside its narrow column instead of running into the next
    (an 18-character code ran over the check's name in the appendix)."""
    clip = _clip(limit)

    def fmt(x) -> str:
        return re.sub(r"(\S{9})(?=\S)", "\\1\u200b", clip(x))

    return fmt


QUALITY_COLUMNS = {
    "table": ("table", _table_zh),
    "file": ("file", _str),
    "read": ("rows_read", _num),
    "accepted": ("rows_accepted", _num),
    "quarantined": ("rows_quarantined", _num),
    "match_rate": ("match_rate", _pct),
}
CHECK_COLUMNS = {
    "table": ("table", _table_zh),
    "column": ("column", _str),
    "check": ("check", _identifier),
    "severity": ("severity", _severity),
    "rows": ("rows_failing", _num),
}
QUARANTINE_COLUMNS = {
    "table": ("table", lambda t: TABLE_ZH.get(_str(t), _str(t))),
    "file": ("file", _str),
    "row": ("row", _str),
    "column": ("column", _str),
    "value": ("value", _wrappable(40)),
    "check": ("check", _identifier),
    "severity": ("severity", _severity),
    "message": ("message", _clip(160)),
}


def quality_section(run: Run) -> dict:
    """Appendix: rows per table, most failed checks, name-match rates, first quarantined rows,
    first rows accepted with a warning."""
    checks = run.table("checks")
    if checks is not None:
        checks = (
            checks.filter(pl.col("rows_failing") > 0)
            .sort(["rows_failing", "table", "check"], descending=[True, False, False])
            .head(CHECKS_SHOWN)
        )
    rates = run.manifest.get("match_rates") or {}
    quarantine = _rows(run.quarantine, QUARANTINE_COLUMNS)
    flags = _rows(run.flags, QUARANTINE_COLUMNS)
    return {
        "tables": _rows(run.table("quality"), QUALITY_COLUMNS),
        "checks": _rows(checks, CHECK_COLUMNS),
        "match_rates": [{"table": _table_zh(t), "rate": _pct(v)} for t, v in sorted(rates.items())],
        "honor_names": [{"name": _clip(40)(h.get("name")), "read_as": _str(h.get("read_as")) or "不参与评分",
                         "rows": _num(h.get("rows"))}
                        for h in (run.manifest.get("honor_names") or [])[:QUARANTINE_SHOWN]],
        "honor_names_total": _num(len(run.manifest.get("honor_names") or [])),
        # an optional column missing, a file not read, a table not given (pipelines.ingest.drop_notes)
        "drop_notes": [_str(n) for n in run.manifest.get("drop_notes") or []],
        "quarantine": quarantine,
        "quarantine_total": _num(run.quarantine_total),
        # quarantine.csv has a line per finding; a data row may have several (manifest.json)
        "quarantine_rows": _num((run.manifest.get("quarantine") or {}).get("rows")),
        "quarantine_shown": str(len(quarantine)),
        "flags": flags,
        "flags_total": _num(run.flags_total),
        "flags_shown": str(len(flags)),
    }


METRICS = (
    ("auc", "AUC", 3),
    ("pr_auc", "PR-AUC", 3),
    ("recall_top10", "前 10% 召回率", None),
    ("brier", "Brier", 3),
    ("ece", "ECE", 3),
)
RULEBOOK_KEYS = ("tier", "id", "version", "source")
INPUT_COLUMNS = {
    "table": ("table", _table_zh),
    "file": ("file", _str),
    "sha256": ("sha256", lambda s: _str(s)[:16]),
    "read": ("rows_read", _num),
    "accepted": ("rows_accepted", _num),
    "quarantined": ("rows_quarantined", _num),
}


MODEL_KIND = ("LightGBM 梯度提升树: 所有层级合并训练的模型与该层级单独训练的模型取对数几率平均 "
              "(正例太少的层级只用合并模型); 按时间外推验证, 调参季度上 Platt 校准")


def _period(start: str | None, end: str | None) -> str:
    """A rulebook's dates of force as the methods page writes them."""
    if not start:
        return ""
    return f"{start} 起" if not end else f"{start} 至 {end}"


def _renamed(rulebook: dict) -> str:
    """The next rulebook as the sentence names it: its id, after its tier's new name where the new
    rules rename the tier (创新型中小企业 → 科技和创新型中小企业 from 2026-04-01)."""
    nxt, name = rulebook["next"], rulebook["next"].get("name_zh")
    renamed = name and rulebook.get("name_zh") and name != rulebook["name_zh"]
    return f"改称{name}, {nxt['id']}" if renamed else nxt["id"]


def _rules_change(rulebooks: list[dict], quarter: str) -> str:
    """One sentence when a tier's rules change after the quarter's end: the lists are judged by
    the rules in force at the quarter's end, and an application made after the change is judged
    by the new ones."""
    changes = [(r["next"]["effective_from"], _str(r.get("tier_zh") or r.get("tier")), _renamed(r))
               for r in rulebooks if r.get("next")]
    if not changes:
        return ""
    by_day: dict[str, list[str]] = {}
    for day, tier, book in sorted(changes, key=lambda c: c[0]):   # tiers in the manifest's order
        by_day.setdefault(day, []).append(f"{tier} ({book})")
    when = "；".join(f"{day} 起 {'、'.join(tiers)}" for day, tiers in by_day.items())
    return (f"规则变更: {when} 适用新规则。本报告按{' ' + quarter + ' ' if quarter else ''}季度末生效的规则判定"
            "资格、打分和列出差距; 在新规则生效后提交的申报, 须按新规则重新核对。")


def methods_section(run: Run) -> dict:
    """Rulebooks, model window and metrics beside the rule-points baseline, rank rule, inputs."""
    m = run.manifest
    model = m.get("model") or {}
    names = {"overall": "全部层级", **dict(run.tiers())}
    metrics, baseline = model.get("metrics") or {}, model.get("baseline_metrics") or {}
    keys = [k for k in ("overall", *TIER_ORDER) if k in metrics] + sorted(
        set(metrics) - {"overall", *TIER_ORDER}
    )
    rulebooks = [
        {
            **{k: _str(r.get(k)) for k in RULEBOOK_KEYS},
            "tier": _str(r.get("tier_zh") or r.get("tier")),
            "period": _period(r.get("effective_from"), r.get("effective_to")),
        }
        for r in m.get("rulebooks") or []
    ]
    inputs = pl.DataFrame(m["inputs"]) if m.get("inputs") else None
    # Stage timings stay in manifest.json: printed here they would make two runs of the same
    # inputs give different PDFs, and an auditor compares PDFs byte for byte.
    return {
        "rulebooks": rulebooks,
        "rules_change": _rules_change(m.get("rulebooks") or [], _str(m.get("quarter"))),
        "model_id": _str(model.get("id")),
        "model_kind": MODEL_KIND if model.get("id") else "",
        "window": _window_lines(model.get("window") or {}, names),
        "metrics": [
            _metric_row(names.get(k, k), metrics.get(k) or {}, baseline.get(k) or {}) for k in keys
        ],
        "metric_names": [label for _, label, _ in METRICS],
        "rank_rule": _str(m.get("rank_rule")),
        "likely_rule": LIKELY_RULE,
        "checked_on": _str(m.get("checked_on")),
        "inputs": _rows(inputs, INPUT_COLUMNS),
        "package_version": _program(m),
    }


def _metric_row(name: str, ours: dict, base: dict) -> dict:
    """One scope's metrics, tidu beside the baseline; a tier without metrics keeps its note."""
    if not any(k in ours for k, _, _ in METRICS):
        return {"name": name, "note": _str(ours.get("note")) or "—", "values": []}

    def fmt(d: dict, key: str, digits: int | None) -> str:
        v = d.get(key)
        return "—" if _missing(v) else _pct(v) if digits is None else f"{v:.{digits}f}"

    values = [{"tidu": fmt(ours, k, d), "rules": fmt(base, k, d)} for k, _, d in METRICS]
    size = (
        f"{_num(ours.get('rows'))} 行 / {_num(ours.get('positives'))} 正例"
        if "rows" in ours
        else ""
    )
    return {"name": name, "note": size, "values": values}


def _window_lines(window: dict, names: dict) -> list[str]:
    lines = []
    for key, label in (("train_quarters", "训练期 (验证用模型)"), ("tuning_quarters", "早停与校准"),
                       ("validation_quarters", "验证期"), ("refit_quarters", "评分模型的训练期 (以验证所得迭代轮数重新训练)")):
        q = window.get(key)
        if q:
            span = (q[0] if q[0] == q[-1] else f"{q[0]} – {q[-1]}") if isinstance(q, list) else q
            lines.append(f"{label}: {span}")
    rounds = window.get("best_iteration")
    if isinstance(rounds, dict):
        lines.append("迭代轮数 (早停): " + "; ".join(
            f"{'各层级合并模型' if k == 'pooled' else names.get(k, k)} {v}" for k, v in rounds.items()))
    elif rounds is not None:
        lines.append(f"最佳迭代轮数: {rounds}")
    if pooled := window.get("tiers_pooled_only"):
        # each with its reason (the training window's positives): the counts below are all quarters'
        said = pooled.items() if isinstance(pooled, dict) else ((k, "正例太少") for k in pooled)
        levels = window.get("level_offsets") or {}
        lines.append("只用合并模型的层级: " + "; ".join(
            f"{names.get(k, k)} ({why.removesuffix(', 只用合并模型')}"
            + (f"; 按训练与调参季度的认定数校正水平, 对数几率 {levels[k]:+.2f}" if k in levels else "") + ")"
            for k, why in said))
    if (cal := window.get("calibration") or {}).get("b_refit") is not None:
        lines.append(f"Platt 校准: 斜率 {cal['a']:.2f} (调参季度); 截距 {cal['b_tuning']:.2f} (调参季度, 验证用模型) → "
                     f"{cal['b_refit']:.2f} (评分模型, 使其在训练季度上的预计认定数等于实际认定数)")
    if pos := window.get("positives_by_tier") or {}:
        lines.append("各层级正例数 (所有已知结果的季度, 含调参与验证季度): "
                     + "; ".join(f"{names.get(k, k)} {v}" for k, v in pos.items()))
    return lines


# ------------------------------------------------------------------------------ memo.md


def memo_blocks(text: str) -> list[dict]:
    """Markdown as the memo writer uses it → headings, paragraphs, lists and pipe tables.

    `- item` is a bullet list, `1. item` / `1、item` a numbered one that keeps its numbers;
    inline only `**bold**` (backticks are dropped). Anything else stays literal text.
    """
    blocks: list[dict] = []
    para: list[str] = []
    items: list[list[dict]] = []
    table: list[list[str]] = []
    start: list[int | None] = [None]  # number of the first item of a numbered list

    def flush() -> None:
        if para:
            blocks.append({"kind": "para", "spans": _spans(_join_lines(para))})
        if items:
            blocks.append({"kind": "list", "items": list(items), "start": start[0]})
        if table:
            blocks.append({"kind": "table", "header": table[0], "rows": table[1:]})
        para.clear(), items.clear(), table.clear()

    for line in text.splitlines():
        s = line.strip()
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*$", s)
        item = re.match(r"^(?:[-*+]\s+|(\d+)(?:[.)]\s+|、\s*))(.*)$", s)
        if not s:
            flush()
        elif heading:
            flush()
            blocks.append(
                {"kind": "heading", "level": len(heading[1]), "spans": _spans(heading[2])}
            )
        elif s.startswith("|") and s.endswith("|"):
            if para or items:
                flush()
            if not re.fullmatch(r"\|[\s:|-]+\|", s):  # the |---|---| rule under the header
                table.append([c.strip() for c in s.strip("|").split("|")])
        elif item:
            number = int(item[1]) if item[1] else None
            if para or table or (items and (number is None) != (start[0] is None)):
                flush()
            if not items:
                start[0] = number
            items.append(_spans(item[2]))
        elif items and line[:1].isspace():
            items[-1] += _spans(s)
        else:
            if items or table:
                flush()
            para.append(s)
    flush()
    return blocks


def _join_lines(lines: list[str]) -> str:
    out = lines[0]
    for nxt in lines[1:]:
        cjk = _is_cjk(out[-1]) or _is_cjk(nxt[0])
        out += ("" if cjk else " ") + nxt
    return out


def _is_cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" or "\u3000" <= ch <= "\u303f"


def _spans(text: str) -> list[dict]:
    parts = re.split(r"\*\*(.+?)\*\*", text)
    return [{"text": p.replace("`", ""), "strong": i % 2 == 1} for i, p in enumerate(parts) if p]


# ------------------------------------------------------------------------------ typst


def compile_pdf(data: dict, chart_files: list[Path], fonts: Fonts) -> bytes:
    """Compile templates/report.typ against data in a scratch folder; fail on a missing font."""
    with tempfile.TemporaryDirectory(prefix="tidu-report-") as tmp:
        build = Path(tmp)
        for typ in TEMPLATES.glob("*.typ"):
            shutil.copyfile(typ, build / typ.name)
        (build / "charts").mkdir()
        for path in chart_files:
            shutil.copyfile(path, build / "charts" / path.name)
        (build / "data.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        try:
            pdf, warnings = typst.compile_with_warnings(
                str(build / "report.typ"),
                root=str(build),
                font_paths=fonts.dirs,
                ignore_system_fonts=not fonts.system,
                pdf_tags=False,
            )
        except typst.TypstError as exc:
            raise ReportError(f"typst could not build report.pdf: {exc}") from exc
    missing = [w.message for w in warnings if "unknown font family" in w.message]
    if missing:
        raise FontMissingError(
            f"typst cannot find the CJK font ({'; '.join(missing)}); install fonts-noto-cjk "
            f"(Noto Sans CJK SC) — without it Chinese text would print as empty boxes"
        )
    return pdf
