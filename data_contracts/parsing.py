"""Turn the text a clerk typed into typed values, a whole column at a time.

Every parser takes a Utf8 Series and returns `(value, ok)`: `value` is the typed value (null when
missing or unreadable) and `ok` is false exactly when the cell held text that is not a value of
that kind — the reader quarantines those cells with the raw text in the message. The parsers work
on eager Series so that each intermediate step is computed once (nested expressions that reuse a
sub-expression were re-evaluated many times: 30 s instead of 1 s for 800,000 dates).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

MISSING = ("", "-", "—", "–", "－", "/", "无", "N/A", "n/a", "NA", "null", "NULL", "None", "--", "——")

_EXCEL_EPOCH = dt.date(1899, 12, 30)
_CN_DIGITS = {"一": "1", "二": "2", "三": "3", "四": "4"}
_CURRENCIES = "人民币|美元|港元|港币|欧元|日元|英镑|瑞士法郎|加拿大元|加元|澳大利亚元|澳元|新加坡元|新台币"


def _frame(s: pl.Series) -> pl.DataFrame:
    return s.alias("t").to_frame()


# Characters that print as nothing: pasted from web pages and chat tools, they make
# `91320211MA1EDHBA0X` or `113.99` look right and read wrong.
INVISIBLE = "[\u200b\u200c\u200d\u2060\ufeff\u00ad]"


def clean_text(raw: pl.Series) -> pl.Series:
    """Trimmed text (full-width spaces too), without invisible characters, missing markers as null."""
    text = (raw.cast(pl.Utf8).str.replace_all(INVISIBLE, "").str.strip_chars()
            .str.strip_chars("\u3000\ufeff\t "))
    return _frame(text).select(pl.when(pl.col("t").is_in(MISSING)).then(None)
                               .otherwise(pl.col("t")).alias(raw.name)).to_series()


def _ok(text: pl.Series, value: pl.Series) -> pl.Series:
    return (text.is_null() | value.is_not_null()).alias("ok")


def parse_number(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    """`1,234.5`, ` 1234 `, `-3.2`, full-width digits; NaN/inf and words are not numbers."""
    text = clean_text(raw)
    digits = (text.str.normalize("NFKC").str.replace_all(r"[,，\s]", "").str.replace_all("．", ".")
              .str.replace_all("\u2212", "-")    # the minus sign of typeset text: −19.69
              .str.replace(r"^\((\d+(?:\.\d+)?)\)$", "-$1"))   # an accountant's negative: (12.5)
    value = digits.cast(pl.Float64, strict=False)
    value = _frame(value).select(pl.when(pl.col("t").is_finite()).then(pl.col("t"))).to_series()
    return value.alias(raw.name), _ok(text, value)


def parse_money_with_unit(raw: pl.Series, default_unit: str = "万元") -> tuple[pl.Series, pl.Series, pl.Series]:
    """Registry-style money: `105(万元人民币)`, `5万人民币`, `100万美元`, `3.2亿` → 万元.

    Returns (value in 万元 of the stated currency, ok, currency) — 人民币 unless the text names another.
    """
    text = clean_text(raw)
    frame = pl.DataFrame({"norm": text.str.normalize("NFKC").str.replace_all(r"[,，\s()（）]", "")})
    frame = frame.with_columns(
        pl.col("norm").str.extract(r"^(-?\d+(?:\.\d+)?)", 1).cast(pl.Float64, strict=False).alias("number"),
        pl.col("norm").str.replace(r"^-?\d+(?:\.\d+)?", "").alias("rest"))
    rest = pl.col("rest")
    factor = (pl.when(rest.str.starts_with("亿")).then(10_000.0)
              .when(rest.str.starts_with("万")).then(1.0)
              .when(rest.str.starts_with("千元")).then(0.1)
              .when(rest.str.starts_with("元")).then(0.0001)
              .when(rest == "").then(1.0 if default_unit == "万元" else 10_000.0))
    # `万人民币元`, `万元(人民币)`, `万日元`, `万瑞士法郎`: registries write the currency before or after 元.
    known = rest.str.contains(rf"^(亿|万|千元|元)?(元)?({_CURRENCIES})?(元)?$")
    out = frame.select(
        pl.when(known).then(pl.col("number") * factor).alias("value"),
        rest.str.extract(f"({_CURRENCIES})", 1).replace({"港币": "港元"}).fill_null("人民币").alias("currency"))
    value = out.get_column("value").alias(raw.name)
    return value, _ok(text, value), out.get_column("currency")


def parse_integer(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    value, ok = parse_number(raw)
    out = _frame(value).select(
        (pl.col("t").is_null() | (pl.col("t") == pl.col("t").round(0))).alias("integral"))
    integral = out.get_column("integral")
    whole = _frame(value).with_columns(integral).select(
        pl.when(pl.col("integral")).then(pl.col("t")).cast(pl.Int64, strict=False)).to_series()
    return whole.alias(raw.name), (ok & integral).alias("ok")


_SERIAL_FROM = 10_000   # 1927-05-18: the first five-digit Excel serial


def parse_date(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    """`2021-03-05`, `2021/3/5`, `2021年3月5日`, `20210305`, full-width digits, a time of day after
    the date (`2021-03-05 00:00:00`, `2021/3/5 0:00`: Excel's date-time in a CSV), Excel serials."""
    text = clean_text(raw)
    frame = pl.DataFrame({"t": text.str.normalize("NFKC")})
    frame = frame.with_columns(
        pl.col("t").str.replace(r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", "").str.replace_all(r"[年月/.]", "-")
        .str.replace(r"日$", "").str.strip_chars("-").alias("dashed"))
    frame = frame.with_columns(
        pl.col("dashed").str.extract_groups(r"^(\d{4})-(\d{1,2})-(\d{1,2})$").alias("a"),
        pl.col("t").str.extract_groups(r"^(\d{4})(\d{2})(\d{2})$").alias("b"))
    # A failed extract is a struct of nulls, not a null struct: coalesce field by field.
    frame = frame.with_columns(
        *[pl.coalesce(pl.col("a").struct.field(k), pl.col("b").struct.field(k)).cast(pl.Int32, strict=False)
          .alias(name) for k, name in (("1", "y"), ("2", "m"), ("3", "d"))],
        pl.col("t").cast(pl.Float64, strict=False).alias("serial"))
    y, m, d, serial = pl.col("y"), pl.col("m"), pl.col("d"), pl.col("serial")
    in_range = (m >= 1) & (m <= 12) & (d >= 1) & (y >= 1800) & (y <= 2200)
    # Out-of-range parts become null first: pl.date is evaluated for every row, chosen or not.
    frame = frame.with_columns(pl.when(in_range).then(y).alias("y"), pl.when(in_range).then(m).alias("m"))
    frame = frame.with_columns(pl.date(y, m, 1).dt.month_end().dt.day().alias("last"))
    built = pl.when(d <= pl.col("last")).then(pl.date(y, m, pl.min_horizontal(d, pl.col("last"))))
    # Excel serials of 1927–2119 only: a year alone (`2025`) or a year and month (`2016.09`, `1998.6`)
    # read as a serial would be a day in 1905, accepted without a word
    from_serial = pl.when((serial >= _SERIAL_FROM) & (serial < 80_000) & pl.col("y").is_null()).then(
        pl.lit(_EXCEL_EPOCH) + pl.duration(days=serial.floor().cast(pl.Int64)))
    value = frame.select(pl.coalesce(built, from_serial).alias(raw.name)).to_series()
    return value, _ok(text, value)


_QUARTER_END_DAY = {"3": "31", "03": "31", "6": "30", "06": "30", "9": "30", "09": "30", "12": "31"}


def _quarter_end_month(t: pl.Expr) -> pl.Expr:
    """The month of a date written as a quarter's last day (`2024-09-30`, `2024/9/30`,
    `2024年9月30日`, `2024.09.30`), else null."""
    parts = t.str.extract_groups(r"^\d{4}(?:[-/.]|年)([0-9]{1,2})(?:[-/.]|月)([0-9]{1,2})日?$")
    month, day = parts.struct.field("1"), parts.struct.field("2")
    return pl.when(day == month.replace_strict(_QUARTER_END_DAY, default=None)).then(month)


def _date_cell_as_written(t: pl.Series) -> pl.Series:
    """A date cell of a workbook arrives as a date-time at midnight (`2024-09-3000:00:00` once
    spaces are gone): read as its date, and on the 1st of a month as the month, which is how Excel
    keeps `2024-09` or `2024年9月` typed in a cell. Text typed as `2024-09-01` stays a day."""
    cell = t.str.extract_groups(r"^(\d{4})-(\d{1,2})-(\d{1,2})T?0?0:00(?::00(?:\.0+)?)?$")
    y, m, d = (cell.struct.field(k) for k in ("1", "2", "3"))
    as_written = pl.select(
        pl.when(d.cast(pl.Int32, strict=False) == 1).then(pl.concat_str([y, m], separator="-"))
        .otherwise(pl.concat_str([y, m, d], separator="-"))).to_series()
    return as_written.fill_null(t).alias(t.name)


def parse_period(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    """`2024Q3`, `2024q3`, `2024年Q3`, `2024年三季度`, `2024年第3季度`, `2024年前三季度`,
    `2024年1-9月` (any dash, ~, 至, 到), `2024-09`, `2024年9月`, `2024年上半年`, the quarter's last day
    (`2024-09-30`, `2024/9/30`, `2024年9月30日`: a report date as systems export it), full-width
    digits → `2024Q3` (a year-to-date span reads as its last quarter). Another day of the month is
    no period. A workbook's date cell is read as Excel shows it (`_date_cell_as_written`)."""
    text = clean_text(raw)
    t = text.str.normalize("NFKC").str.replace_all(r"\s", "").str.to_uppercase()
    t = _date_cell_as_written(t)
    t = t.str.replace(r"年上半年$", "年第2季度").str.replace(r"年前([一二三四1-4])季度$", "年第${1}季度")
    for zh, digit in _CN_DIGITS.items():
        t = t.str.replace_all(zh, digit, literal=True)
    frame = pl.DataFrame({"t": t})
    month = pl.coalesce(
        pl.col("t").str.extract(r"^\d{4}年1[-—~至到]([0-9]{1,2})月$", 1),
        pl.col("t").str.extract(r"^\d{4}[-/.]([0-9]{1,2})$", 1),
        pl.col("t").str.extract(r"^\d{4}年([0-9]{1,2})月$", 1),
        _quarter_end_month(pl.col("t")),
    ).cast(pl.Int32, strict=False)
    frame = frame.with_columns(
        pl.col("t").str.extract(r"^(\d{4})", 1).alias("year"),
        pl.coalesce(pl.col("t").str.extract(r"^\d{4}(?:-|年)?Q([1-4])$", 1),
                    pl.col("t").str.extract(r"^\d{4}年第?([1-4])季度?$", 1),
                    pl.when(month.is_in([3, 6, 9, 12])).then((month // 3).cast(pl.Utf8))).alias("q"))
    value = frame.select(pl.when(pl.col("year").is_not_null() & pl.col("q").is_not_null())
                         .then(pl.col("year") + pl.lit("Q") + pl.col("q")).alias(raw.name)).to_series()
    return value, _ok(text, value)


def parse_bool(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    text = clean_text(raw)
    value = _frame(text.str.to_lowercase()).select(
        pl.when(pl.col("t").is_in(["是", "y", "yes", "true", "1", "√", "链主"])).then(True)
        .when(pl.col("t").is_in(["否", "n", "no", "false", "0", "×"])).then(False).alias(raw.name)).to_series()
    return value, _ok(text, value)


# Words a round is written with around its name in financing databases (IT桔子 writes 天使轮, A轮,
# Pre-A轮, A+轮, 战略投资): the drop's 轮次 is read as its name in the input format.
_ROUND_SUFFIX = r"(?:轮融资|轮)$"
_ROUND_WORDS = {"战略投资": "战略", "战略融资": "战略"}


def parse_round(raw: pl.Series, names: tuple[str, ...]) -> pl.Series:
    """轮次 as one of `names` (the input format's rounds) where it is one written another way —
    half-width, any case, without spaces, with or without 轮 / 轮融资 (`A轮`, `ａ 轮`, `pre-a轮`,
    `天使轮`, `战略投资`) — else the text as written (trimmed; checked against `names` later)."""
    text = clean_text(raw)
    key = (text.str.normalize("NFKC").str.replace_all(r"\s", "").str.replace(_ROUND_SUFFIX, "")
           .replace(_ROUND_WORDS).str.to_lowercase())
    by_key = pl.DataFrame({"k": [n.lower() for n in names], "v": list(names)})
    named = key.to_frame("k").join(by_key, on="k", how="left", maintain_order="left").get_column("v")
    return pl.select(pl.coalesce(named, text).alias(raw.name)).to_series()
