"""Judge a drop: type every table, derive the checks, run the GX suites, split the rows.

rows read = rows accepted + rows quarantined, per table. A row is quarantined when it fails an
`error` check (or is a copy of an identical row); its findings go to quarantine.csv. Accepted
rows that fail a `warn` check are kept and listed in flags.csv.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from data_contracts import derive
from data_contracts.coerce import FINDING_SCHEMA, coerce, empty_findings
from data_contracts.entity import NameIndex
from data_contracts.gx_runner import ContractRun
from data_contracts.schema import Table
from data_contracts.suites import QUARANTINE_ON_WARN, SUITES, Check

ORDER = ("enterprises", "filings", "patents", "projects", "financing", "honors")


@dataclass
class TableInput:
    table: Table
    frame: pl.DataFrame | None     # canonical columns as text (or coerce.NATIVE_DTYPES), plus `_row`;
    file: str                      # `validate` lets it go (None) once the table is typed
    unit_factors: dict[str, float] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # canonical column → header as written
    rows_read: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows_read = self.frame.height

    def label(self, column: str) -> str:
        """The column as the clerk's sheet heads it (`营业收入（单位：人民币万元）`, `注册资金`);
        the input format's header where the sheet has none."""
        return self.headers.get(column) or _label(self.table, column)


@dataclass
class ValidationResult:
    accepted: dict[str, pl.DataFrame]
    patent_owners: pl.DataFrame
    quarantine: pl.DataFrame
    flags: pl.DataFrame
    counts: dict[str, dict[str, int]]
    match_rates: dict[str, float]
    checks: pl.DataFrame           # per table and check: rows failing, severity
    checked_on: dt.date | None = None  # the day dates were checked against (none may lie after it)

    @property
    def error_rows(self) -> int:
        return int(self.quarantine.filter(pl.col("severity") == "error")
                   .select(pl.struct("table", "row").n_unique()).item()) if self.quarantine.height else 0


def type_table(inp: TableInput) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the table typed, with its copies and key clashes marked; the cells that are no values of
    their kind). The text frame is let go (`inp.frame` = None): the typed values and the findings
    hold all that is needed, and a caller reading one table at a time keeps one table's text."""
    frame, parse_findings = coerce(inp.table, inp.frame, inp.file, inp.unit_factors, inp.headers)
    inp.frame = None
    if inp.table.name == "patents":
        frame = derive.canonical_patents(frame)
    return derive.duplicates(frame, inp.table), parse_findings


def validate(inputs: dict[str, TableInput], as_of: dt.date | None = None,
             docs_dir: Path | None = None) -> ValidationResult:
    """Type every table (`type_table`), then `judge` them."""
    typed = {name: type_table(inputs[name]) for name in ORDER if name in inputs}
    return judge(inputs, typed, as_of, docs_dir)


def judge(inputs: dict[str, TableInput], typed_tables: dict[str, tuple[pl.DataFrame, pl.DataFrame]],
          as_of: dt.date | None = None, docs_dir: Path | None = None) -> ValidationResult:
    """Derive the cross-row and cross-table checks, run the GX suites, split accepted from
    quarantined rows. `typed_tables`: `type_table`'s result per table of `inputs`. `as_of`: the
    day no founding, recognition, round or application may lie after (default today; the result
    keeps it as `checked_on`, and a re-check of the same drop on that day finds the same)."""
    as_of = as_of or dt.date.today()
    # dates that cannot lie after the check day, in every table that has them (derive.EVENT_DATES)
    typed = {name: derive.events_not_future(typed_tables[name][0], name, as_of)
             for name in ORDER if name in typed_tables}
    findings = [empty_findings(), *(typed_tables[name][1] for name in typed)]
    typed_tables.clear()  # the caller's dict: the typed frames live on in `typed` only
    outcome: dict = {}
    session = ContractRun(docs_dir)
    if "enterprises" in typed:
        typed["enterprises"] = derive.enterprise_checks(typed["enterprises"])
        outcome.update(session.run({"enterprises": typed["enterprises"]}))
    bad_enterprise_rows = _error_rows("enterprises", outcome, findings)
    ents = typed.get("enterprises", pl.DataFrame(schema={"_row": pl.Int64, "uscc": pl.Utf8,
                                                          "name": pl.Utf8, "former_names": pl.Utf8}))
    registry = ents.select("_row", "uscc", "name", "former_names")
    bad = pl.col("_row").is_in(list(bad_enterprise_rows))
    good_ents = registry.filter(~bad) if bad_enterprise_rows else registry
    bad_ents = registry.filter(bad & pl.col("name").is_not_null())
    accepted_codes = good_ents.get_column("uscc").drop_nulls().unique()
    codes = ents.get_column("uscc").drop_nulls()
    quarantined_codes = codes.filter(~codes.is_in(accepted_codes.implode())).unique()
    # Each table is judged as soon as its checks are derived, so that GX's copy of one table
    # does not coincide with the next table's work (nor with the name indexes, built for the
    # tables matched by name and let go before they are judged).
    if "filings" in typed:
        typed["filings"] = derive.filing_checks(typed["filings"], accepted_codes, quarantined_codes)
        outcome.update(session.run({"filings": typed["filings"]}))
    owners = _match_by_name(typed, good_ents, bad_ents)
    outcome.update(session.run({n: typed[n] for n in _MATCHED_BY_NAME if n in typed}))
    if "honors" in typed:
        typed["honors"] = derive.honor_checks(derive.registration(typed["honors"], accepted_codes,
                                                                  quarantined_codes))
        outcome.update(session.run({"honors": typed["honors"]}))
    session.build_docs()
    for name, results in outcome.items():
        findings.append(_findings(inputs[name], typed[name], results, as_of))
    result = _split(typed, owners, _without_echoes(pl.concat(findings, how="vertical_relaxed")), inputs, outcome)
    return replace(result, checked_on=as_of)


# Findings that say a row's cells moved a column (a comma too many, or one left out): each is the
# row's one finding, as the rest follow from the move (and may repeat what moved, an ID number)
ROW_SHIFTED = ("extra_cells", "personal_id_in_cells")


def _without_echoes(findings: pl.DataFrame) -> pl.DataFrame:
    """findings less the echoes of another finding:
    - of a row whose cells moved a column (ROW_SHIFTED), all but that finding: what the moved
      cells fail besides (a name read as 成立日期, a date as 注册资本) is no news to the clerk;
    - of a cell the parser could not read, its presence failure: such a cell is null once typed,
      so its column's not-null expectation fails too, and the clerk was told both "报告期:
      "2025年第5季度" 不是有效的报告期" and "报告期为空" of a cell that is not empty.
    The rows stay quarantined by the findings kept; GX's own results (Data Docs) are unchanged."""
    moved = findings.filter(pl.col("check").is_in(ROW_SHIFTED)).select("table", "row").unique()
    if moved.height:
        findings = findings.join(moved.with_columns(pl.lit(True).alias("_moved")), on=["table", "row"],
                                 how="left", maintain_order="left")
        findings = findings.filter(~pl.col("_moved").fill_null(False) | pl.col("check").is_in(ROW_SHIFTED)
                                   ).drop("_moved")
    presence = [check.id for checks in SUITES.values() for check in checks if check.kind == "not_null"]
    unreadable = (findings.filter(pl.col("check").str.starts_with("format_"))
                  .select("table", "row", "column").unique().with_columns(pl.lit(True).alias("_unreadable")))
    return (findings.join(unreadable, on=["table", "row", "column"], how="left", maintain_order="left")
            .filter(~(pl.col("check").is_in(presence) & pl.col("_unreadable").fill_null(False)))
            .drop("_unreadable"))


_MATCHED_BY_NAME = ("patents", "projects", "financing")


def _match_by_name(typed: dict[str, pl.DataFrame], good_ents: pl.DataFrame,
                   bad_ents: pl.DataFrame) -> pl.DataFrame:
    """Patents, projects and financing (in `typed`) matched to the registry by name; returns the
    patent owners. The name indexes live only while these tables are matched."""
    owners = pl.DataFrame(schema={"_row": pl.Int64, "uscc": pl.Utf8})
    if not any(n in typed for n in _MATCHED_BY_NAME):
        return owners
    index = NameIndex.build(good_ents.select("uscc", "name", "former_names"))
    set_aside = NameIndex.build(bad_ents.select("uscc", "name", "former_names")) if bad_ents.height else None
    if "patents" in typed:
        typed["patents"], owners = derive.patent_checks(typed["patents"], index, set_aside)
    if "projects" in typed:
        typed["projects"] = derive.project_checks(typed["projects"], index, set_aside)
    if "financing" in typed:
        typed["financing"] = derive.financing_checks(typed["financing"], index, set_aside)
    return owners


def _error_rows(name: str, outcome: dict, findings: list[pl.DataFrame]) -> set[int]:
    rows: set[int] = set()
    for check, failing, _ in outcome.get(name, []):
        if check.severity == "error" or check.id in QUARANTINE_ON_WARN:
            rows.update(failing)
    for f in findings:
        rows.update(f.filter((pl.col("table") == name) & (pl.col("severity") == "error"))
                    .get_column("row").to_list())
    return rows


def _findings(inp: TableInput, frame: pl.DataFrame, results, as_of: dt.date) -> pl.DataFrame:
    parts = []
    for check, failing, _ in results:
        if not failing:
            continue
        rows = frame.filter(pl.col("_row").is_in(failing))
        parts.append(rows.select(
            pl.lit(inp.table.name).alias("table"), pl.lit(inp.file).alias("file"), pl.col("_row").alias("row"),
            pl.lit(inp.label(check.column)).alias("column"),
            _text(rows, check.args.get("value", check.column)).alias("value"), pl.lit(check.id).alias("check"),
            pl.lit(check.severity).alias("severity"),
            _message(rows, inp, check, as_of).alias("message")))
    return pl.concat(parts) if parts else empty_findings()


def _label(table: Table, column: str) -> str:
    """The input format's header of a column (`整行` for the whole row)."""
    if column == "_row":
        return "整行"
    try:
        return table.column(column).label
    except StopIteration:
        return column


def _text(rows: pl.DataFrame, column: str) -> pl.Expr:
    """A value as a person would write it: a number without Python's float noise or a trailing
    `.0` (`-5`, not `-5.0`; `14431.8`, not `14431.800000000001` after 元 → 万元)."""
    if column == "_row" or column not in rows.columns:
        return pl.lit(None, dtype=pl.Utf8)
    value = pl.col(column)
    if rows.schema[column].is_float():
        return value.round(6).cast(pl.Utf8).str.replace(r"\.0$", "")
    return value.cast(pl.Utf8).str.slice(0, 200)


def _message(rows: pl.DataFrame, inp: TableInput, check: Check, as_of: dt.date) -> pl.Expr:
    """`企业登记.csv 第 57 行, 注册资本(万元): …` — the column as the sheet heads it — with {value},
    {other}, {detail}, {label} (the input format's header) and {as_of} filled. The check day is
    written as a date, never as "today": a run re-checked later (an audit, `tidu verify`) must say
    the same."""
    table = inp.table
    pieces: list[pl.Expr] = [pl.lit(f"{inp.file} 第 "), pl.col("_row").cast(pl.Utf8),
                             pl.lit(f" 行, {inp.label(check.column)}: ")]
    template = check.message
    tokens = {"{value}": _text(rows, check.column).fill_null("(空)"),
              "{other}": _text(rows, check.other_column).fill_null("(空)"),
              "{label}": pl.lit(_label(table, check.column)),
              "{as_of}": pl.lit(as_of.isoformat()),
              "{detail}": (_text(rows, check.gx_column) if check.gx_column.startswith("_p_")
                           else pl.col("_first_row").cast(pl.Utf8)).fill_null("")}
    while template:
        positions = [(template.find(t), t) for t in tokens if t in template]
        if not positions:
            pieces.append(pl.lit(template))
            break
        pos, token = min(positions)
        pieces += [pl.lit(template[:pos]), tokens[token]]
        template = template[pos + len(token):]
    return pl.concat_str(pieces)


def _split(typed, owners, findings, inputs, outcome) -> ValidationResult:
    findings = findings.unique(["table", "row", "check"], keep="first", maintain_order=True)
    stops = (pl.col("severity") == "error") | pl.col("check").is_in(list(QUARANTINE_ON_WARN))
    stopped = findings.filter(stops).select("table", "row").unique()
    q = findings.join(stopped, on=["table", "row"], how="semi")
    flags = findings.join(stopped, on=["table", "row"], how="anti")
    accepted, counts = {}, {}
    for name, frame in typed.items():
        bad = stopped.filter(pl.col("table") == name).get_column("row")
        keep = frame.filter(~pl.col("_row").is_in(bad.implode())) if bad.len() else frame
        accepted[name] = keep.drop([c for c in keep.columns if c.startswith(("_p_", "_f_", "_first"))])
        counts[name] = {"rows_read": inputs[name].rows_read, "rows_accepted": keep.height,
                        "rows_quarantined": frame.height - keep.height}
    if "patents" in accepted:  # sorted, then each (patent, firm) pair once
        kept = accepted["patents"].select("_row", "application_no")
        owners = owners.join(kept, on="_row").select("application_no", "uscc").sort("application_no", "uscc")
        repeat = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in owners.columns)
        owners = owners.filter(~repeat)
    rates = {n: _rate(typed[n]) for n in ("patents", "projects", "financing") if n in typed}
    checks = pl.DataFrame(
        [{"table": n, "check": c.id, "column": inputs[n].label(c.column), "severity": c.severity,
          "rows_failing": len(rows), "ran": ran}
         for n, res in outcome.items() for c, rows, ran in res],
        schema={"table": pl.Utf8, "check": pl.Utf8, "column": pl.Utf8, "severity": pl.Utf8,
                "rows_failing": pl.Int64, "ran": pl.Boolean})
    order = pl.col("table").replace_strict({n: i for i, n in enumerate(ORDER)}, default=99)
    q = q.sort(order, "row", "check").select(list(FINDING_SCHEMA))
    flags = flags.sort(order, "row", "check").select(list(FINDING_SCHEMA))
    return ValidationResult(accepted, owners, q, flags, counts, rates, checks)


def _rate(frame: pl.DataFrame) -> float:
    if frame.height == 0:
        return 1.0
    return float(frame.select(pl.col("_p_unmatched").is_null().mean()).item())


__all__ = ["TableInput", "ValidationResult", "validate"]
