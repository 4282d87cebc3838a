"""Turn the text a clerk typed into typed values, as Polars expressions over whole columns.

Every parser takes a Utf8 expression and returns `(value, ok)`: `value` is the typed value (null
when missing or unreadable) and `ok` is false exactly when the cell held text that is not a value
of that kind — the reader quarantines those cells with the raw text in the message.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

MISSING = ("", "-", "—", "–", "－", "/", "无", "N/A", "n/a", "NA", "null", "NULL", "None", "--", "——")

_EXCEL_EPOCH = dt.date(1899, 12, 30)
_CN_DIGITS = {"一": "1", "二": "2", "三": "3", "四": "4"}


def clean_text(raw: pl.Expr) -> pl.Expr:
    """Trimmed text (full-width spaces too), missing markers as null."""
    text = raw.str.strip_chars().str.strip_chars("\u3000\ufeff\t ")
    return pl.when(text.is_in(MISSING) | text.is_null()).then(None).otherwise(text)


def parse_number(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """`1,234.5`, ` 1234 `, `-3.2`, full-width digits; NaN/inf and words are not numbers."""
    text = clean_text(raw)
    digits = (text.str.replace_all(r"[,，\s]", "")
              .str.replace_all("．", ".").str.replace_all("－", "-"))
    value = digits.cast(pl.Float64, strict=False)
    finite = value.is_finite()
    value = pl.when(finite).then(value).otherwise(None)
    ok = text.is_null() | (value.is_not_null())
    return value, ok


def parse_money_with_unit(raw: pl.Expr, default_unit: str = "万元") -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """Registry-style money: `105(万元人民币)`, `5万人民币`, `100万美元`, `3.2亿` → 万元.

    Returns (value in 万元 of the stated currency, ok, currency) — currency is 人民币 or 美元.
    """
    text = clean_text(raw)
    norm = text.str.replace_all(r"[,，\s()（）]", "")
    number = norm.str.extract(r"^(-?\d+(?:\.\d+)?)", 1).cast(pl.Float64, strict=False)
    rest = norm.str.replace(r"^-?\d+(?:\.\d+)?", "")
    factor = (pl.when(rest.str.starts_with("亿")).then(10_000.0)
              .when(rest.str.starts_with("万")).then(1.0)
              .when(rest.str.starts_with("千元")).then(0.1)
              .when(rest.str.starts_with("元")).then(0.0001)
              .when(rest == "").then(1.0 if default_unit == "万元" else 10_000.0)
              .otherwise(None))
    known_rest = rest.str.contains(r"^(亿|万|千元|元)?(元)?(人民币|美元|港元|欧元)?$")
    value = pl.when(known_rest).then(number * factor).otherwise(None)
    currency = pl.when(rest.str.contains("美元")).then(pl.lit("美元")).otherwise(pl.lit("人民币"))
    ok = text.is_null() | value.is_not_null()
    return value, ok, currency


def parse_integer(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    value, ok = parse_number(raw)
    integral = value.is_null() | (value == value.round(0))
    return (pl.when(integral).then(value).otherwise(None).cast(pl.Int64, strict=False),
            ok & integral)


def parse_date(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """`2021-03-05`, `2021/3/5`, `2021年3月5日`, `20210305`, `2021-03-05 00:00:00`, Excel serials."""
    text = clean_text(raw)
    dashed = (text.str.replace(r"[ T]00:00:00(\.0+)?$", "")
              .str.replace_all(r"[年月/.]", "-").str.replace(r"日$", "").str.strip_chars("-"))
    ymd = dashed.str.extract_groups(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
    from_dashed = pl.date(ymd.struct.field("1").cast(pl.Int32, strict=False),
                          ymd.struct.field("2").cast(pl.Int32, strict=False),
                          ymd.struct.field("3").cast(pl.Int32, strict=False))
    compact = text.str.extract_groups(r"^(\d{4})(\d{2})(\d{2})$")
    from_compact = pl.date(compact.struct.field("1").cast(pl.Int32, strict=False),
                           compact.struct.field("2").cast(pl.Int32, strict=False),
                           compact.struct.field("3").cast(pl.Int32, strict=False))
    serial = text.cast(pl.Float64, strict=False)
    from_serial = pl.when((serial >= 1) & (serial < 80_000) & ~text.str.contains(r"^\d{8}$")).then(
        pl.lit(_EXCEL_EPOCH) + pl.duration(days=serial.floor().cast(pl.Int64)))
    value = pl.coalesce(_valid_date(from_dashed, ymd), _valid_date(from_compact, compact),
                        from_serial)
    ok = text.is_null() | value.is_not_null()
    return value, ok


def _valid_date(built: pl.Expr, parts: pl.Expr) -> pl.Expr:
    """pl.date raises on 2021-02-30; guard by building only from in-range parts."""
    m = parts.struct.field("2").cast(pl.Int32, strict=False)
    d = parts.struct.field("3").cast(pl.Int32, strict=False)
    y = parts.struct.field("1").cast(pl.Int32, strict=False)
    in_range = (m >= 1) & (m <= 12) & (d >= 1) & (d <= 31) & (y >= 1800) & (y <= 2200)
    # Day beyond the month's length: compare against the month's last day.
    last_day = pl.date(y, m, 1).dt.month_end().dt.day()
    return pl.when(in_range & (d <= last_day)).then(built)


def parse_period(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """`2024Q3`, `2024q3`, `2024年三季度`, `2024年第3季度`, `2024年1-9月`, `2024-09`, `2024年9月` → `2024Q3`."""
    text = clean_text(raw)
    t = text.str.replace_all(r"\s", "").str.to_uppercase()
    for zh, digit in _CN_DIGITS.items():
        t = t.str.replace_all(zh, digit)
    year = t.str.extract(r"^(\d{4})", 1)
    q_direct = pl.coalesce(t.str.extract(r"^\d{4}-?Q([1-4])$", 1),
                           t.str.extract(r"^\d{4}年第?([1-4])季度?$", 1))
    month = pl.coalesce(
        t.str.extract(r"^\d{4}年1[-—~至到]([0-9]{1,2})月$", 1),
        t.str.extract(r"^\d{4}[-/.]([0-9]{1,2})$", 1),
        t.str.extract(r"^\d{4}年([0-9]{1,2})月$", 1),
    ).cast(pl.Int32, strict=False)
    q_month = pl.when(month.is_in([3, 6, 9, 12])).then((month // 3).cast(pl.Utf8))
    q = pl.coalesce(q_direct, q_month)
    value = pl.when(year.is_not_null() & q.is_not_null()).then(year + pl.lit("Q") + q)
    ok = text.is_null() | value.is_not_null()
    return value, ok


def parse_bool(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    text = clean_text(raw).str.to_lowercase()
    value = (pl.when(text.is_in(["是", "y", "yes", "true", "1", "√", "链主"])).then(True)
             .when(text.is_in(["否", "n", "no", "false", "0", "×"])).then(False))
    ok = text.is_null() | value.is_not_null()
    return value, ok
