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
    exprs: list[pl.Expr] = [pl.col("_row")]
    oks: dict[str, pl.Expr] = {}
    for col in table.columns:
        if col.name not in raw.columns:
            exprs.append(pl.lit(None, dtype=_dtype(col.kind)).alias(col.name))
            continue
        value, ok = _parse(col.kind, pl.col(col.name), col.name)
        if col.name in unit_factors:
            value = value * unit_factors[col.name]
        exprs.append(value.alias(col.name))
        if ok is not None:
            oks[col.name] = ok
    typed = raw.with_columns([ok.alias(f"_ok_{name}") for name, ok in oks.items()]).select(
        exprs + [pl.col(f"_ok_{name}") for name in oks] + [pl.col(c).alias(f"_raw_{c}")
                                                           for c in oks])
    findings = _parse_findings(table, typed, file, oks)
    typed = typed.drop([c for c in typed.columns if c.startswith(("_ok_", "_raw_"))])
    for col in table.columns:  # keep the words of an undisclosed amount beside the number
        if col.kind == NUMBER_OR_TEXT and col.name in raw.columns:
            text = raw.select(parsing.clean_text(pl.col(col.name))).to_series().alias("_t")
            typed = typed.with_columns(text).with_columns(
                pl.when(pl.col(col.name).is_null()).then(pl.col("_t")).alias(f"{col.name}_text")
            ).drop("_t")
    return typed, findings


def _parse(kind: str, raw: pl.Expr, name: str) -> tuple[pl.Expr, pl.Expr | None]:
    if kind == NUMBER:
        if name == "registered_capital":
            value, ok, _ = parsing.parse_money_with_unit(raw)
            return value, ok
        return parsing.parse_number(raw)
    if kind == NUMBER_OR_TEXT:  # 融资金额: `数千万`, `未披露` are undisclosed amounts, not errors
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
    if kind == USCC:
        return _normalize_code(text), None
    return text, None


def _normalize_code(text: pl.Expr) -> pl.Expr:
    """Credit codes: upper case, half-width, no inner spaces (validity is checked later)."""
    return text.str.normalize("NFKC").str.replace_all(r"\s", "").str.to_uppercase()


def _dtype(kind: str) -> pl.DataType:
    return {NUMBER: pl.Float64, INTEGER: pl.Int64, DATE: pl.Date, BOOL: pl.Boolean}.get(kind, pl.Utf8)


def _parse_findings(table: Table, typed: pl.DataFrame, file: str,
                    oks: dict[str, pl.Expr]) -> pl.DataFrame:
    parts = []
    for name in oks:
        col = table.column(name)
        bad = typed.filter(~pl.col(f"_ok_{name}"))
        if bad.height == 0:
            continue
        raw = pl.col(f"_raw_{name}")
        parts.append(bad.select(
            pl.lit(table.name).alias("table"), pl.lit(file).alias("file"),
            pl.col("_row").alias("row"), pl.lit(col.label).alias("column"),
            raw.str.slice(0, 200).alias("value"), pl.lit(f"format_{col.kind}").alias("check"),
            pl.lit("error").alias("severity"),
            (pl.lit(f"{file} 第 ") + pl.col("_row").cast(pl.Utf8) + pl.lit(f" 行, {col.label}: \"")
             + raw.str.slice(0, 60) + pl.lit(f"\" 不是有效的{_KIND_WORDS.get(col.kind, col.kind)}"))
            .alias("message"),
        ))
    return pl.concat(parts) if parts else empty_findings()
