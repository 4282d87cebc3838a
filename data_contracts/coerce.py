"""Type a table read as text: each column by its kind, each unreadable cell a finding.

A finding is one (row, column, check) a clerk must look at; FINDING_SCHEMA is the shape of
quarantine.csv. Cells that cannot be read make their row an `error` (quarantined); the typed
frame keeps every row, with the unreadable value as null, so later checks still see the row.
"""

from __future__ import annotations

import polars as pl

from data_contracts import parsing
from data_contracts.schema import BOOL, DATE, INTEGER, NUMBER, NUMBER_OR_TEXT, PERIOD, USCC, Table

FINDING_SCHEMA = {
    "table": pl.Utf8, "file": pl.Utf8, "row": pl.Int64, "column": pl.Utf8, "value": pl.Utf8,
    "check": pl.Utf8, "severity": pl.Utf8, "message": pl.Utf8,
}

_KIND_WORDS = {NUMBER: "数字", INTEGER: "整数", DATE: "日期", PERIOD: "报告期 (如 2024Q3、2024年三季度)",
               BOOL: "是/否"}


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)


def coerce(table: Table, raw: pl.DataFrame, file: str,
           unit_factors: dict[str, float] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(typed frame with `_row`, findings for cells that are not values of their kind)."""
    unit_factors = unit_factors or {}
    columns: list[pl.Series] = [raw.get_column("_row")]
    findings = [empty_findings()]
    for col in table.columns:
        if col.name not in raw.columns:
            columns.append(pl.Series(col.name, [None] * raw.height, dtype=column_dtype(col.kind)))
            continue
        source = raw.get_column(col.name)
        value, ok = _parse_distinct(col.kind, source, col.name)
        if col.name in unit_factors:
            value = value * unit_factors[col.name]
        columns.append(value.alias(col.name))
        if col.kind == NUMBER_OR_TEXT:  # 融资金额: `数千万`, `未披露` are undisclosed amounts, not errors
            text = parsing.clean_text(source)
            columns.append(pl.select(pl.when(value.is_null()).then(text)).to_series().alias(f"{col.name}_text"))
        if ok is not None and not ok.all():
            findings.append(_parse_findings(table, col, raw.get_column("_row"), source, ok, file))
    return pl.DataFrame(columns), pl.concat(findings)


def _parse_distinct(kind: str, raw: pl.Series, name: str) -> tuple[pl.Series, pl.Series | None]:
    """`_parse`, once per distinct text: a drop repeats its periods, dates and codes millions of
    times. Plain numbers (most of a return) are cast directly and skip the parser."""
    direct = None
    if kind in (NUMBER, INTEGER) and name != "registered_capital":
        fast = raw.cast(pl.Float64, strict=False)
        direct = fast.is_finite().fill_null(False)
        if kind == INTEGER:
            direct = direct & (fast == fast.round(0)).fill_null(False)
    rest = raw if direct is None else raw.filter(~direct)
    distinct = rest.unique()
    value, ok = _parse(kind, distinct, name)
    table = pl.DataFrame({"r": distinct, "v": value, **({} if ok is None else {"ok": ok})})
    parsed = rest.to_frame("r").join(table, on="r", how="left", nulls_equal=True, maintain_order="left")
    if direct is None:
        return parsed["v"].alias(name), None if ok is None else parsed["ok"]
    where = (~direct).arg_true()
    fast = fast if kind == NUMBER else fast.cast(pl.Int64, strict=False)
    return (fast.scatter(where, parsed["v"]).alias(name),
            pl.repeat(True, raw.len(), eager=True).scatter(where, parsed["ok"]))


def _parse(kind: str, raw: pl.Series, name: str) -> tuple[pl.Series, pl.Series | None]:
    if kind == NUMBER:
        if name == "registered_capital":
            value, ok, _ = parsing.parse_money_with_unit(raw)
            return value, ok
        return parsing.parse_number(raw)
    if kind == NUMBER_OR_TEXT:
        value, _ = parsing.parse_number(raw)
        return value, None
    if kind == INTEGER:
        return parsing.parse_integer(raw)
    if kind == DATE:
        return parsing.parse_date(raw)
    if kind == PERIOD:
        return parsing.parse_period(raw)
    if kind == BOOL:
        return parsing.parse_bool(raw)
    text = parsing.clean_text(raw)
    if kind == USCC:  # upper case, half-width, no inner spaces; validity is checked later
        return text.str.normalize("NFKC").str.replace_all(r"\s", "").str.to_uppercase(), None
    return text, None


def column_dtype(kind: str) -> pl.DataType:
    """The Polars dtype a column of this kind has once typed."""
    return {NUMBER: pl.Float64, NUMBER_OR_TEXT: pl.Float64, INTEGER: pl.Int64, DATE: pl.Date,
            BOOL: pl.Boolean}.get(kind, pl.Utf8)


def _parse_findings(table: Table, col, rows: pl.Series, source: pl.Series, ok: pl.Series,
                    file: str) -> pl.DataFrame:
    bad = pl.DataFrame({"row": rows, "raw": source.cast(pl.Utf8), "ok": ok}).filter(~pl.col("ok"))
    raw = pl.col("raw")
    return bad.select(
        pl.lit(table.name).alias("table"), pl.lit(file).alias("file"), pl.col("row"),
        pl.lit(col.label).alias("column"), raw.str.slice(0, 200).alias("value"),
        pl.lit(f"format_{col.kind}").alias("check"), pl.lit("error").alias("severity"),
        (pl.lit(f"{file} 第 ") + pl.col("row").cast(pl.Utf8) + pl.lit(f" 行, {col.label}: \"")
         + raw.str.slice(0, 60) + pl.lit(f"\" 不是有效的{_KIND_WORDS.get(col.kind, col.kind)}"))
        .alias("message"))
