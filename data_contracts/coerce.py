"""Type a table read as text (parquet numbers and dates arrive typed): each column by its kind,
each unreadable cell a finding.

A finding is one (row, column, check) a clerk must look at; FINDING_SCHEMA is the shape of
quarantine.csv. Cells that cannot be read make their row an `error` (quarantined), except in a
column that says what its null means (`Column.unreadable_as_null`: 链主企业), where they are a
`warn`; the typed frame keeps every row, with the unreadable value as null, so later checks still
see the row.
"""

from __future__ import annotations

import re

import polars as pl

from data_contracts import identifiers, parsing
from data_contracts.schema import (
    BOOL,
    CODE,
    DATE,
    INTEGER,
    NUMBER,
    NUMBER_OR_TEXT,
    PERIOD,
    PERSONAL_COLUMNS,
    ROUND,
    ROUNDS,
    TEXT,
    USCC,
    Table,
)

FINDING_SCHEMA = {
    "table": pl.Utf8, "file": pl.Utf8, "row": pl.Int64, "column": pl.Utf8, "value": pl.Utf8,
    "check": pl.Utf8, "severity": pl.Utf8, "message": pl.Utf8,
}

# What a cell of the kind should hold, said after "不是有效的": the clerk learns how to write it.
_KIND_WORDS = {NUMBER: "数字 (只填数字, 单位以表头为准, 如 1234.5; 负数写 -12.5)",
               INTEGER: "整数 (只填数字, 如 64)", DATE: "日期 (如 2024-03-05 或 2024年3月5日)",
               PERIOD: "报告期 (如 2024Q3、2024年三季度)", BOOL: "是/否"}

# Cell dtypes a reader may hand over instead of text (parquet numbers and dates). A number is typed
# as its text would be (the text of a float is its shortest round-trip form), a date as its ISO
# text; every other pairing of kind and dtype is typed through the text.
NATIVE_DTYPES = (pl.Float64, pl.Int64, pl.Date)
_NATIVE_KINDS = {pl.Float64: (NUMBER, INTEGER, NUMBER_OR_TEXT), pl.Int64: (NUMBER, INTEGER, NUMBER_OR_TEXT),
                 pl.Date: (DATE,)}
_DATE_YEARS = (1800, 2200)     # parsing.parse_date's range
_EXACT_INT = 2**53             # integers a Float64 holds exactly


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)


def coerce(table: Table, raw: pl.DataFrame, file: str, unit_factors: dict[str, float] | None = None,
           headers: dict[str, str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(typed frame with `_row`, findings for cells that are not values of their kind). `headers`:
    each column's header as the sheet writes it, the name its findings give (default: the input
    format's)."""
    unit_factors, headers = unit_factors or {}, headers or {}
    columns: list[pl.Series] = [raw.get_column("_row")]
    findings = [empty_findings()]
    for col in table.columns:
        if col.name in PERSONAL_COLUMNS:  # dropped at read time; not even an empty column is kept
            continue
        if col.name not in raw.columns:
            columns.append(pl.Series(col.name, [None] * raw.height, dtype=column_dtype(col.kind)))
            continue
        source = raw.get_column(col.name)
        if col.name == "registered_capital":  # registry text: unit and currency words, flagged not quarantined
            columns.extend(_registered_capital(source.cast(pl.Utf8), col, unit_factors.get(col.name, 1.0)))
            continue
        if _is_native(col.kind, source.dtype):
            value, ok = _parse_native(col.kind, source)
        else:
            source = source.cast(pl.Utf8)
            value, ok = _parse_distinct(col.kind, source, col.name)
        if col.name in unit_factors:
            value = value * unit_factors[col.name]
        columns.append(value.alias(col.name))
        if col.kind == NUMBER_OR_TEXT:  # 融资金额: `数千万`, `未披露` are undisclosed amounts, not errors
            text = parsing.clean_text(source)  # casts a native number to its text
            columns.append(pl.select(pl.when(value.is_null()).then(text)).to_series().alias(f"{col.name}_text"))
        if ok is not None and not ok.all():
            findings.append(_parse_findings(table, col, raw.get_column("_row"), source, ok, file,
                                            headers.get(col.name) or col.label))
    if "_extra_cells" in raw.columns:   # (the moved cells' own findings go: validate.ROW_SHIFTED)
        findings.append(_overlong_findings(table, raw, file))
    typed = pl.DataFrame(columns)
    if any(c.name in PERSONAL_COLUMNS for c in table.columns):
        typed, personal = _without_personal_ids(table, raw, typed, file, headers)
        findings.append(personal)
    return typed, pl.concat(findings)


def _without_personal_ids(table: Table, raw: pl.DataFrame, typed: pl.DataFrame, file: str,
                          headers: dict[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The registry's rows with a cell shaped like a resident ID number, in any column as
    written (法定代表人证件号 itself is dropped when the file is read): a comma left out or added
    moved the number into 曾用名, 链主企业, 注册资本 or another column. Each such row gets one error
    naming the columns, not the number, and its typed values are emptied (its credit code kept,
    to quarantine the firm's other rows with it), so that no check repeats the number and no
    table stores it. The cells are matched as written, in every column: typed, a number moved
    into 链主企业 or 注册资本 is no text (printed by their own findings, or stored as a number)."""
    names = [c for c in raw.columns if c != "_row" and raw.schema[c] == pl.Utf8]
    hits = {c: identifiers.resident_ids(raw.get_column(c)) for c in names}
    where = pl.select(pl.any_horizontal([*hits.values()] or [pl.lit(False)])).to_series()
    if not where.any():
        return typed, empty_findings()
    label = {c.name: headers.get(c.name) or c.label for c in table.columns}
    columns = pl.concat_str([pl.when(pl.lit(h)).then(pl.lit(label.get(c, c))) for c, h in hits.items()],
                            separator="、", ignore_nulls=True)
    rows = raw.select("_row", columns.alias("_where")).filter(where)
    found = rows.select(
        pl.lit(table.name).alias("table"), pl.lit(file).alias("file"), pl.col("_row").alias("row"),
        pl.lit("整行").alias("column"), pl.lit(None, pl.Utf8).alias("value"),
        pl.lit("personal_id_in_cells").alias("check"), pl.lit("error").alias("severity"),
        (pl.lit(f"{file} 第 ") + pl.col("_row").cast(pl.Utf8) + pl.lit(" 行, 整行: 「") + pl.col("_where")
         + pl.lit("」中有形如身份证号码的内容 (不在此显示): 多半是本行少了或多了一个英文逗号, 各列错了位; "
                  "身份证号不能读入, 本行未读入, 请核对该行")).alias("message"))
    # the credit code stays, unless it is the number itself (the row shifted at its first cell)
    code_is_id = hits["uscc"] if "uscc" in hits else pl.repeat(False, raw.height, eager=True)
    emptied = typed.with_columns(
        pl.when(pl.lit(code_is_id) if c == "uscc" else pl.lit(where)).then(None).otherwise(pl.col(c)).alias(c)
        for c in typed.columns if c != "_row")
    return emptied, found


def _overlong_findings(table: Table, raw: pl.DataFrame, file: str) -> pl.DataFrame:
    """An error for each row that has filled cells beyond the header's width (`_extra_cells`, their
    number; pipelines.ingest): a comma inside a cell without double quotes, every later cell one
    column on.
    The cells themselves are not repeated: what moved into them may be the last column, and in
    the registry that is the legal representative's ID number, which no output may hold."""
    count = pl.col("_extra_cells").cast(pl.Utf8)
    return raw.filter(pl.col("_extra_cells").is_not_null()).select(
        pl.lit(table.name).alias("table"), pl.lit(file).alias("file"), pl.col("_row").alias("row"),
        pl.lit("整行").alias("column"), count.alias("value"),
        pl.lit("extra_cells").alias("check"), pl.lit("error").alias("severity"),
        (pl.lit(f"{file} 第 ") + pl.col("_row").cast(pl.Utf8) + pl.lit(" 行, 整行: 本行比表头多 ") + count
         + pl.lit(" 个有内容的单元格; 多半是某个单元格 (如企业名称) 中的英文逗号没有用双引号括起, 其后各列都"
                  "错了一位。本行未读入; 请在 Excel 中打开核对该行后另存为 CSV, 或把该单元格用英文双引号括起"))
        .alias("message"))


def _registered_capital(text: pl.Series, col, factor: float) -> list[pl.Series]:
    """注册资本 as registries write it (`105(万元人民币)`, `100万美元`, `3.2亿`): the amount in 万 of
    its currency, `registered_capital_currency` (人民币 unless the text names another) and two
    flags: an amount in another currency is kept as written, not converted (no exchange rate in the
    drop); a text that is no amount becomes empty (its text kept for the finding's value). Scoring
    does not use the capital, so neither takes the firm out of the list (a firm quarantined here
    would lose all its other rows)."""
    distinct = text.unique()
    value, ok, currency = parsing.parse_money_with_unit(distinct)
    lookup = pl.DataFrame({"t": distinct, "v": value * factor, "ok": ok, "c": currency})
    rows = pl.DataFrame({"t": text}).join(lookup, on="t", how="left", nulls_equal=True, maintain_order="left")
    shown = pl.col("t").str.slice(0, 60)
    out = rows.select(
        pl.col("v").alias(col.name),
        pl.when(pl.col("v").is_not_null()).then(pl.col("c")).alias("registered_capital_currency"),
        pl.when(pl.col("v").is_not_null() & (pl.col("c") != "人民币")).then(
            pl.lit(f"{col.header_zh}「") + shown + pl.lit("」以") + pl.col("c")
            + pl.lit("登记, 金额按原币种保留 (未换算为人民币), 币种见 registered_capital_currency"))
        .alias("_p_capital_currency"),
        pl.when(~pl.col("ok")).then(pl.lit(f"{col.header_zh}「") + shown
                                    + pl.lit("」不是可识别的金额, 记为空值 (不影响评分)"))
        .alias("_p_capital_unreadable"),
        # the text as written, the value of either flag's finding
        pl.when(~pl.col("ok") | (pl.col("c") != "人民币")).then(pl.col("t")).alias("_p_capital_as_written"))
    return out.get_columns()


def _is_native(kind: str, dtype: pl.DataType) -> bool:
    """Is a cell of this dtype typed directly (else through its text)? (注册资本 never comes here:
    it is read with its unit and currency words, from text, by `_registered_capital`.)"""
    return kind in _NATIVE_KINDS.get(dtype, ())


def _parse_native(kind: str, raw: pl.Series) -> tuple[pl.Series, pl.Series | None]:
    """`_parse` of the text of these numbers or dates, without the text: the value when the parser
    would read it (finite numbers; whole ones for integers; dates of 1800–2200), else null and not ok.

    A column the parser would leave as it is comes back as the same Series, without a copy.
    """
    if kind == DATE:
        readable = raw.dt.year().is_between(*_DATE_YEARS)
    else:
        number = raw.cast(pl.Float64)
        readable = number.is_finite()
        if kind == INTEGER:
            readable = readable & (number == number.round(0))
    readable = readable.fill_null(True)
    ok = None if kind == NUMBER_OR_TEXT else readable
    if not readable.all():
        raw = pl.select(pl.when(readable).then(raw)).to_series()
    if kind == INTEGER and raw.dtype == pl.Int64:
        exact = raw.is_between(-_EXACT_INT, _EXACT_INT).fill_null(True).all()
        return (raw if exact else raw.cast(pl.Float64).cast(pl.Int64, strict=False)), ok
    if kind == INTEGER:
        return raw.cast(pl.Int64, strict=False), ok
    return raw.cast(column_dtype(kind)), ok


def _parse_distinct(kind: str, raw: pl.Series, name: str) -> tuple[pl.Series, pl.Series | None]:
    """`_parse`, once per distinct text: a drop repeats its periods, dates and codes millions of
    times. Cells the parser would take as they are skip it: plain numbers are cast directly, and
    clean text (`_as_written`) is kept, a column of it without a copy."""
    direct = None
    base = raw
    if kind in (NUMBER, INTEGER):
        base = raw.cast(pl.Float64, strict=False)
        direct = base.is_finite().fill_null(False)
        if kind == INTEGER:
            direct = direct & (base == base.round(0)).fill_null(False)
            base = base.cast(pl.Int64, strict=False)
    elif kind in _WRITTEN_AS_PARSED:
        direct = _as_written(kind, raw)
    rest = raw if direct is None else raw.filter(~direct)
    distinct = rest.unique()
    value, ok = _parse(kind, distinct)
    table = pl.DataFrame({"r": distinct, "v": value, **({} if ok is None else {"ok": ok})})
    parsed = rest.to_frame("r").join(table, on="r", how="left", nulls_equal=True, maintain_order="left")
    if direct is None:
        return parsed["v"].alias(name), None if ok is None else parsed["ok"]
    where = (~direct).arg_true()
    if where.len() == 0:
        return base.alias(name), None
    # `alias` first: scatter writes into the Series object, and base may be the caller's raw column
    return (base.alias(name).scatter(where, parsed["v"]),
            None if ok is None else pl.repeat(True, raw.len(), eager=True).scatter(where, parsed["ok"]))


# Cells that their kind's parser returns as they are (unless they are a missing marker): text
# without space or BOM at either end; a credit code or other code of digits and capitals; a period
# as 2024Q3.
_CODE_KINDS = (USCC, CODE)   # read alike: half-width, upper case, no spaces
_WRITTEN_AS_PARSED = {TEXT: r"(?s)^[^\s\ufeff\u200b-\u200d\u2060\u00ad](?:.*[^\s\ufeff\u200b-\u200d\u2060\u00ad])?$",
                      PERIOD: r"^[0-9]{4}Q[1-4]$",
                      **dict.fromkeys(_CODE_KINDS, r"^[0-9A-Z]+$"),
                      ROUND: "^(?:" + "|".join(re.escape(r) for r in ROUNDS) + ")$"}


def _as_written(kind: str, raw: pl.Series) -> pl.Series:
    """True where `_parse` would return the cell as it is (null cells included)."""
    kept = raw.str.contains(_WRITTEN_AS_PARSED[kind]) & ~raw.is_in(parsing.MISSING)
    return kept.fill_null(True)


def _parse(kind: str, raw: pl.Series) -> tuple[pl.Series, pl.Series | None]:
    if kind == NUMBER:
        return parsing.parse_number(raw)
    if kind == NUMBER_OR_TEXT:   # 融资金额 in 万元: a number, else an amount with its unit in RMB
        value, _ = parsing.parse_number(raw)
        money, _, currency = parsing.parse_money_with_unit(raw)   # `1.5亿`, `3000万`, `800万元` → 万元
        in_rmb = pl.select(pl.when(currency == "人民币").then(money)).to_series()
        return value.fill_null(in_rmb), None
    if kind == INTEGER:
        return parsing.parse_integer(raw)
    if kind == DATE:
        return parsing.parse_date(raw)
    if kind == PERIOD:
        return parsing.parse_period(raw)
    if kind == BOOL:
        return parsing.parse_bool(raw)
    if kind == ROUND:
        return parsing.parse_round(raw, ROUNDS), None
    text = parsing.clean_text(raw)
    if kind in _CODE_KINDS:  # upper case, half-width, no inner spaces, no apostrophe Excel's text
        # prefix left in front (`'91320200MA1RFTM8XD`); validity is checked later
        return (text.str.normalize("NFKC").str.replace_all(r"\s", "").str.strip_chars_start("'‘’`")
                .str.to_uppercase(), None)
    return text, None


def column_dtype(kind: str) -> pl.DataType:
    """The Polars dtype a column of this kind has once typed."""
    return {NUMBER: pl.Float64, NUMBER_OR_TEXT: pl.Float64, INTEGER: pl.Int64, DATE: pl.Date,
            BOOL: pl.Boolean}.get(kind, pl.Utf8)


def _parse_findings(table: Table, col, rows: pl.Series, source: pl.Series, ok: pl.Series,
                    file: str, header: str) -> pl.DataFrame:
    """One finding per unreadable cell: an error (its row quarantined), or a warn where the column
    reads such a cell as null (`Column.unreadable_as_null`, said in the message)."""
    bad = pl.DataFrame({"row": rows, "raw": source.cast(pl.Utf8), "ok": ok}).filter(~pl.col("ok"))
    raw = pl.col("raw")
    severity, outcome = ("warn", f", {col.unreadable_as_null}") if col.unreadable_as_null else ("error", "")
    return bad.select(
        pl.lit(table.name).alias("table"), pl.lit(file).alias("file"), pl.col("row"),
        pl.lit(header).alias("column"), raw.str.slice(0, 200).alias("value"),
        pl.lit(f"format_{col.kind}").alias("check"), pl.lit(severity).alias("severity"),
        (pl.lit(f"{file} 第 ") + pl.col("row").cast(pl.Utf8) + pl.lit(f" 行, {header}: \"")
         + raw.str.slice(0, 60) + pl.lit(f"\" 不是有效的{_KIND_WORDS.get(col.kind, col.kind)}{outcome}"))
        .alias("message"))
