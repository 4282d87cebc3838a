"""Derived check columns that the GX suites judge: problem texts (`_p_*`) and flags (`_f_*`).

Each function takes a typed table and returns it with its derived columns; none drops a row.
A value entered in 元 is corrected here (÷10,000) with the original kept in `original_values`.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from data_contracts import identifiers
from data_contracts.entity import NameIndex, split_applicants_series
from data_contracts.honors import HONOR_NAMES_ZH, TITLE_LEVELS, cleaned_honor_name, honor_key_expr
from data_contracts.schema import FILINGS, LEVELS, Table

YUAN_RATIO = 1_000.0       # a row this many times the firm's usual size was entered in 元
# Revenue or assets above this (万元, i.e. 100亿元) are flagged when the firm's other rows cannot
# show a 元 entry: every row of the firm, or the whole file, in 元 (1,289万 typed as 12,890,000).
# A city's few real firms of that size get a warn to confirm, nothing more.
YUAN_ABSOLUTE = 1_000_000.0
QUARANTINED_FIRM = "该企业在企业登记表中的行已被隔离, 本行随之隔离"
MONEY_COLUMNS = ("revenue_ytd", "main_revenue_ytd", "profit_ytd", "net_profit_ytd", "rd_expense_ytd",
                 "total_assets", "total_liabilities", "export_ytd")


def canonical_patents(frame: pl.DataFrame) -> pl.DataFrame:
    """Patents with their application numbers in the normal form (`CN2023101234567`,
    `ZL 202310123456.7` → `202310123456.7`) and 专利类型 by the input format's names (`发明专利` →
    发明), before copies are looked for: the same patent written two ways is one patent, whose
    second row is a copy, not a second patent counted twice."""
    normalized = identifiers.normalize_application_no_series(frame.get_column("application_no"))
    frame = frame.with_columns(  # the normaliser turns null into "": keep missing as missing
        pl.when(pl.col("application_no").is_null()).then(None).otherwise(normalized).alias("application_no"))
    if "patent_type" not in frame.columns:
        return frame
    return frame.with_columns(identifiers.patent_type_names(frame.get_column("patent_type")))


def duplicates(frame: pl.DataFrame, table: Table) -> pl.DataFrame:
    """`_f_duplicate_row` on the 2nd+ copy of an identical row; `_p_duplicate_key` on conflicts.

    Filings are the exception: a period reported twice with different values is a revision, and
    the row further down the sheet wins (`_p_revision`); the earlier one is set aside
    (`_p_superseded`), both visible to the clerk. `_first_row` is the row a copy repeats (a row's
    own number when it is no copy); rows come in sheet order.
    """
    read = {c: e for c, e in _compared_as_read(table.name).items() if c in frame.columns}
    written = frame.columns
    frame = frame.with_columns(e.alias(f"_read_{c}") for c, e in read.items())

    def compared(column: str) -> str:
        return f"_read_{column}" if column in read else column

    canon = [compared(c.name) for c in table.columns if c.name in frame.columns]
    key = [compared(k) for k in table.key if k in frame.columns]
    # Only rows whose key another row shares can be copies or conflicts: those few are examined.
    # They are found by the key's hash (a repeated hash takes along the rare rows whose hash alone
    # repeats, which the exact steps below leave alone), the repeated hashes by sorting them.
    hashes = frame.select(pl.struct(key).hash()).to_series()
    ordered = hashes.sort()
    repeated = ordered.filter((ordered == ordered.shift(1)) | (ordered == ordered.shift(-1)))
    at = hashes.is_in(repeated.implode()).arg_true()
    shared = frame[at].select(pl.Series("_i", at), "_row", *canon).with_columns(
        (~pl.struct(canon).is_first_distinct()).alias("_copy"))
    distinct = shared.filter(~pl.col("_copy"))
    copies = shared.filter("_copy").join(distinct.select(*canon, pl.col("_row").alias("_first")),
                                          on=canon, how="left", nulls_equal=True, maintain_order="left")
    labels = {compared(c.name): c.header_zh for c in table.columns if c.name in written}
    clashes = _key_clashes(distinct, key, table.name, labels)
    n = frame.height
    first_row = frame.get_column("_row")
    if copies.height:
        first_row = first_row.scatter(copies["_i"], copies["_first"])
    frame = frame.with_columns(
        first_row.alias("_first_row"),
        _at(n, copies["_i"], pl.repeat(True, copies.height, eager=True), False).alias("_f_duplicate_row"))
    frame = frame.select(*written, "_first_row", "_f_duplicate_row")
    if table.name != "filings":
        text = pl.lit("第 ") + pl.col("_rows_text") + pl.lit(" 行") + pl.col("_differs")
        return frame.with_columns(
            _at(n, clashes["_i"], clashes.select(text).to_series()).alias("_p_duplicate_key"),
            pl.lit(None, pl.Utf8).alias("_p_revision"), pl.lit(None, pl.Utf8).alias("_p_superseded"))
    latest = clashes.filter(pl.col("_row") == pl.col("_last"))
    earlier = clashes.filter(pl.col("_row") != pl.col("_last"))
    revision = (pl.lit("同一企业同一报告期出现多行 (第 ") + pl.col("_rows_text") + pl.lit(" 行") + pl.col("_differs")
                + pl.lit("), 采用表中最靠后的本行作为修订值"))
    superseded = (pl.lit("已被表中靠后的第 ") + pl.col("_last").cast(pl.Utf8)
                  + pl.lit(" 行的修订值替代, 本行不参与评分"))
    return frame.with_columns(
        pl.lit(None, pl.Utf8).alias("_p_duplicate_key"),
        _at(n, latest["_i"], latest.select(revision).to_series()).alias("_p_revision"),
        _at(n, earlier["_i"], earlier.select(superseded).to_series()).alias("_p_superseded"))


def _compared_as_read(table: str) -> dict[str, pl.Expr]:
    """Columns whose copies are looked for by how tidu reads them, not as written: one recognition
    written `雏鹰` and `雏鹰企业`, or `高新技术企业` and `高新技术企业（复审）`, is one recognition (the
    reading the panel and the labels use, `honor_key_expr`; a name tidu does not know, cleaned of
    quote marks and notes). The rows themselves keep the name as written."""
    if table == "honors":
        return {"honor": pl.coalesce(honor_key_expr(pl.col("honor")), cleaned_honor_name(pl.col("honor")))}
    return {}


def _key_clashes(distinct: pl.DataFrame, key: list[str], table: str,
                 labels: dict[str, str] | None = None) -> pl.DataFrame:
    """Distinct rows that share a (present) key: `_i`, `_row`, the first five such rows as text
    (`_rows_text`), the columns whose values differ among them when `labels` names the columns
    compared (`_differs`: `; 不同的列: 登记状态`, else empty) and the last of them (`_last`)."""
    if table == "financing":  # one of uscc / company_name identifies the firm
        key_present = (pl.all_horizontal([pl.col(k).is_not_null() for k in ("financed_on", "round")])
                       & (pl.col("uscc").is_not_null() | pl.col("company_name").is_not_null()))
    else:
        key_present = pl.all_horizontal([pl.col(k).is_not_null() for k in key])
    compared = [c for c in (labels or {}) if c not in key]
    groups = distinct.group_by(key).agg(
        pl.len().alias("_n"), pl.col("_row").sort().head(5).cast(pl.Utf8).str.join("、").alias("_rows_text"),
        pl.col("_row").max().alias("_last"),
        *[(pl.col(c).n_unique() > 1).alias(f"_d_{i}") for i, c in enumerate(compared)])
    differing = pl.concat_str([pl.when(pl.col(f"_d_{i}")).then(pl.lit(labels[c])) for i, c in enumerate(compared)],
                              separator="、", ignore_nulls=True) if compared else pl.lit("")
    groups = groups.with_columns(pl.when(differing != "").then(pl.lit("; 不同的列: ") + differing)
                                 .otherwise(pl.lit("")).alias("_differs"))
    return (distinct.join(groups, on=key, how="left", nulls_equal=True, maintain_order="left")
            .filter(key_present & (pl.col("_n") > 1)).select("_i", "_row", "_rows_text", "_differs", "_last"))


def _at(n: int, where: pl.Series, values: pl.Series, default=None) -> pl.Series:
    """A column of n rows holding `values` at positions `where` and `default` elsewhere."""
    column = pl.repeat(default, n, dtype=values.dtype, eager=True)
    return column.scatter(where, values) if where.len() else column


# Dates that cannot lie after the day the drop is checked (`as_of`): a founding, a recognition, a
# financing round or a patent application dated later is a typo (2052 for 2025), flagged
# `_f_<column>_future`.
EVENT_DATES = {"enterprises": ("founded_on",), "honors": ("recognized_on",),
               "financing": ("financed_on",), "patents": ("filed_on",)}


def events_not_future(frame: pl.DataFrame, table: str, as_of: dt.date) -> pl.DataFrame:
    """`_f_<column>_future` for each of the table's EVENT_DATES (a missing date is not flagged);
    for the returns `_f_period_future`: a quarter that had not ended by the check day cannot have
    been reported (2026Q4 typed for 2025Q4)."""
    flags = [(pl.col(c) > pl.lit(as_of)).fill_null(False).alias(f"_f_{c}_future")
             for c in EVENT_DATES.get(table, ())]
    if table == "filings" and "period" in frame.columns:   # judged once per distinct period
        periods = frame.get_column("period").unique().drop_nulls()
        ends = pl.select(pl.date(periods.str.slice(0, 4).cast(pl.Int32), periods.str.slice(5, 1).cast(pl.Int8) * 3, 1)
                         .dt.month_end()).to_series()
        future = periods.filter(ends > as_of)
        flags.append(pl.col("period").is_in(future.implode()).fill_null(False).alias("_f_period_future"))
    return frame.with_columns(flags)


def enterprise_checks(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        identifiers.uscc_problems(frame.get_column("uscc")).alias("_p_uscc"),
        # 行业代码 may be missing (the column is nullable); only a code that is written is judged.
        pl.when(pl.col("industry_code").is_not_null()).then(
            identifiers.industry_code_problems(frame.get_column("industry_code"))).alias("_p_industry_code"),
    )


def registration(frame: pl.DataFrame, accepted: pl.Series, quarantined: pl.Series,
                 codes: pl.Series | None = None) -> pl.DataFrame:
    """`_p_unregistered`: the credit code names no accepted enterprise (and why); `_p_uscc`, what is
    wrong with the code, unless the table checks its codes itself.

    Both are worked out once per distinct code (a firm files every quarter; `codes`, when the
    caller has them already) and written only into the rows with a finding.
    """
    column = frame.get_column("uscc")
    distinct = (column.unique() if codes is None else codes).to_frame("uscc")
    problems = distinct.with_columns(
        pl.when(pl.col("uscc").is_null() | pl.col("uscc").is_in(accepted.implode())).then(None)
        .when(pl.col("uscc").is_in(quarantined.implode())).then(pl.lit(QUARANTINED_FIRM))
        .otherwise(pl.lit("统一社会信用代码 ") + pl.col("uscc") + pl.lit(" 不在企业登记表中"))
        .alias("_p_unregistered"),
        identifiers.uscc_problems(distinct.get_column("uscc")).alias("_p_uscc"))
    wanted = ["_p_unregistered"] + ([] if "_p_uscc" in frame.columns else ["_p_uscc"])
    problems = problems.filter(pl.any_horizontal(pl.col(wanted).is_not_null()))
    bad = problems.get_column("uscc")
    where = ((column.is_in(bad.drop_nulls().implode()) | (column.is_null() & bad.has_nulls())).arg_true()
             if bad.len() else pl.Series(dtype=pl.UInt32))
    found = frame[where].select("uscc").join(problems, on="uscc", how="left", nulls_equal=True,
                                             maintain_order="left")
    return frame.with_columns([_at(frame.height, where, found.get_column(c)).alias(c) for c in wanted])


def filing_checks(frame: pl.DataFrame, accepted: pl.Series, quarantined: pl.Series) -> pl.DataFrame:
    """Registration (as `registration`), 元-for-万元 rows corrected and flagged, year-to-date values
    that fall flagged.

    All compare a row with the same firm's other rows or look at its firm once. They work on a
    narrow copy of the filings in firm, period and row order (`_by_firm`), and write texts only
    for the rows they flag.
    """
    order, codes = _by_firm(frame)
    frame = registration(frame, accepted, quarantined, codes=codes)
    frame = _correct_yuan(frame, order)
    return _ytd_decrease(_implausibly_large(frame), order)


def _by_firm(frame: pl.DataFrame, hash_bits: int = 48) -> tuple[pl.DataFrame, pl.Series]:
    """(`_i` (position in frame), `_firm` and `_pc` (period as a count of quarters), sorted by firm,
    period and row; the distinct credit codes).

    `_firm` is the top `hash_bits` (≤ 48) bits of the credit code's hash: with the period in the
    low 16 bits it makes one integer sort key, many times faster to sort than the text. Rows of
    two codes that share those bits would end up side by side; should that ever happen, the codes
    themselves are used instead.
    """
    periods = frame.get_column("period").unique()  # typed: 2024Q3 or null
    quarters = pl.select(pl.lit(periods).str.slice(0, 4).cast(pl.Int32) * 4
                         + pl.lit(periods).str.slice(5, 1).cast(pl.Int32) - 1).to_series()
    narrow = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), pl.col("uscc").alias("_firm"),
                          pl.col("period").replace_strict(periods, quarters, default=None).alias("_pc"), "_row")
    firm = pl.col("_firm").hash() // 2 ** (64 - hash_bits)
    key = pl.col("_firm") * 2**16 + pl.col("_pc").fill_null(2**16 - 1).cast(pl.UInt64)
    order = narrow.with_columns(firm).sort(key, "_row").select("_i", pl.col("_firm").set_sorted(), "_pc")
    codes = frame.get_column("uscc").gather(order.get_column("_i"))
    firms = order.get_column("_firm")
    if ((firms == firms.shift(1)) & codes.ne_missing(codes.shift(1))).any():
        order = narrow.sort("_firm", "_pc", "_row").drop("_row")
        firms = codes = order.get_column("_firm")
    first = pl.col("_firm").ne_missing(pl.col("_firm").shift(1)) | (pl.int_range(pl.len()) == 0)
    return order, pl.DataFrame([firms, codes.alias("uscc")]).filter(first).get_column("uscc")


def _implausibly_large(frame: pl.DataFrame) -> pl.DataFrame:
    """`_p_amount_scale` on a row whose revenue or assets exceed YUAN_ABSOLUTE and that
    `_correct_yuan` did not convert (its firm's other rows are as large)."""
    big = pl.max_horizontal(pl.col("revenue_ytd"), pl.col("total_assets"))
    return frame.with_columns(
        pl.when((big > YUAN_ABSOLUTE) & pl.col("_p_unit_yuan").is_null())
        .then(pl.lit("营业收入或资产总计超过 100 亿元 (") + big.round(0).cast(pl.Int64).cast(pl.Utf8)
              + pl.lit(" 万元), 若是以元填报请改为万元; 确为百亿级企业可忽略"))
        .alias("_p_amount_scale"))


def _correct_yuan(frame: pl.DataFrame, order: pl.DataFrame) -> pl.DataFrame:
    """A row about YUAN_RATIO times its firm's median revenue or assets was entered in 元. Each of
    its money columns that is itself out of scale (≥ YUAN_RATIO / 10 times the firm's median of
    that column) is divided by 10,000; the others were in 万元 and are kept (a revenue typed in 元
    beside correct assets must not shrink the assets). The values as entered are kept in
    `original_values`, and the message names the columns converted."""
    present = [c for c in MONEY_COLUMNS if c in frame.columns]

    def ratios(values: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
        """Each value ÷ its firm's median (of absolute values; null when that median is 0)."""
        medians = values.with_columns(pl.col(columns).abs().median().over("_firm").name.prefix("_m_"))
        return medians.select("_i", "_firm", *[pl.when(pl.col(f"_m_{c}") > 0).then(pl.col(c).abs() / pl.col(f"_m_{c}"))
                                               .alias(c) for c in columns])

    # the rows are found on revenue and assets; only their firms' rows are read for the rest
    scale = ratios(order.select("_i", "_firm").with_columns(
        frame.select(pl.col("revenue_ytd", "total_assets").gather(order.get_column("_i")))),
        ["revenue_ytd", "total_assets"])
    found = scale.filter(pl.max_horizontal("revenue_ytd", "total_assets") >= YUAN_RATIO)
    firms = order.filter(pl.col("_firm").is_in(found.get_column("_firm").unique().implode()))
    columns = ratios(firms.select("_i", "_firm").with_columns(
        frame.select(pl.col(present).gather(firms.get_column("_i")))), present)
    suspects = (columns.join(found.select("_i", pl.max_horizontal("revenue_ytd", "total_assets").alias("_ratio")),
                             on="_i")
                .select("_i", "_ratio", *[(pl.col(c) >= YUAN_RATIO / 10).fill_null(False).alias(f"_x_{c}")
                                          for c in present])
                .sort("_i"))
    where = suspects.get_column("_i")
    rows = frame[where]
    original = pl.concat_str([pl.lit(f"{c}=") + pl.col(c).cast(pl.Utf8).fill_null("") for c in present],
                             separator="; ")
    labels = {c: FILINGS.column(c).header_zh for c in present}
    converted = pl.concat_str([pl.when(pl.col(f"_x_{c}")).then(pl.lit(labels[c])) for c in present],
                              separator="、", ignore_nulls=True)
    message = (pl.lit("该行金额约为同一企业其他报告期的 ") + pl.col("_ratio").round(0).cast(pl.Int64).cast(pl.Utf8)
               + pl.lit(" 倍, 疑似以元填报; 已将 ") + converted
               + pl.lit(" 除以 10000 换算为万元 (其余金额与其他报告期相称, 未改), 原值保留在 original_values"))
    n = frame.height
    return frame.with_columns(
        _at(n, where, rows.select(pl.lit("原值(元): ") + original).to_series()).alias("original_values"),
        _at(n, where, suspects.select(message).to_series()).alias("_p_unit_yuan"),
        # the flag's value: revenue as the clerk typed it, to find the cell by (not the 万元 kept)
        _at(n, where, rows.get_column("revenue_ytd")).alias("_p_unit_yuan_typed"),
        *[frame.get_column(c).scatter(where, pl.select(pl.when(suspects[f"_x_{c}"]).then(rows[c] / 10_000)
                                                         .otherwise(rows[c])).to_series())
          if where.len() else pl.col(c) for c in present])


# Year-to-date flows that cannot fall within a year (none may be negative): column → its label
# and the derived column of its check (`suites`: ytd_decreasing for revenue, <column>_decreasing
# for the others). Profits may fall: a loss in a later quarter lowers the year's total.
YTD_NONDECREASING = {"revenue_ytd": ("营业收入", "_p_ytd_decrease"),
                     "main_revenue_ytd": ("主营业务收入", "_p_ytd_decrease_main_revenue"),
                     "rd_expense_ytd": ("研发费用", "_p_ytd_decrease_rd_expense"),
                     "export_ytd": ("出口额", "_p_ytd_decrease_export")}


def _ytd_decrease(frame: pl.DataFrame, order: pl.DataFrame) -> pl.DataFrame:
    """For each of YTD_NONDECREASING the frame has: its value below the same firm's previous row
    of the year (in period, then row order) when that row is of an earlier period."""
    year = pl.col("_pc") // 4
    same_year = pl.col("_firm").eq_missing(pl.col("_firm").shift(1)) & (year == year.shift(1))
    earlier = order.select(
        "_i", "_pc", pl.when(same_year).then(pl.col("_pc").shift(1)).alias("_prev_pc"),
        pl.col("_i").shift(1).alias("_prev_i"))
    flagged = []
    for column, (label, derived) in YTD_NONDECREASING.items():
        if column not in frame.columns:
            continue
        rows = earlier.with_columns(frame.get_column(column).gather(order.get_column("_i")).alias("_v"))
        falls = rows.with_columns(pl.col("_v").shift(1).alias("_prev")).filter(
            (pl.col("_v") < pl.col("_prev") * (1 - 1e-9)) & pl.col("_prev_pc").is_not_null()
            & (pl.col("_prev_pc") != pl.col("_pc"))).sort("_i")
        period = frame.get_column("period").gather(falls.get_column("_prev_i"))
        text = falls.select(
            pl.lit(f"本年累计{label} ") + pl.col("_v").round(1).cast(pl.Utf8) + pl.lit(" 万元低于上一报告期 ")
            + period + pl.lit(" 的 ") + pl.col("_prev").round(1).cast(pl.Utf8)
            + pl.lit(" 万元 (本年累计值不应下降)")).to_series()
        flagged.append(_at(frame.height, falls.get_column("_i"), text).alias(derived))
    return frame.with_columns(flagged)


def _reason(result: pl.DataFrame, names: pl.Series, set_aside: NameIndex | None) -> pl.Series:
    """Why a name did not match: the matcher's reason, or that its registry row was quarantined."""
    reason = result.get_column("reason").fill_null("未在企业登记中找到")
    if set_aside is None:
        return reason
    again = set_aside.match(names).get_column("uscc")
    return pl.select(pl.when(again.is_not_null()).then(pl.lit(QUARANTINED_FIRM)).otherwise(reason)).to_series()


def patent_checks(frame: pl.DataFrame, index: NameIndex,
                  set_aside: NameIndex | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(patents with `_p_application_no`, `_p_unmatched`; owners: `_row`, `uscc` of each patent and
    registered firm among its applicants, a pair possibly more than once)."""
    frame = frame.with_columns(identifiers.application_no_problems(
        frame.get_column("application_no"), frame.get_column("patent_type")).alias("_p_application_no"))
    owners_of, unmatched = _applicant_verdicts(frame.get_column("applicants"), index, set_aside)
    # Joined on the texts' hashes (long texts are slow join keys), keeping the pairs whose texts agree.
    text_hash = pl.col("applicants").hash().alias("_h")
    owners = (frame.select("_row", "applicants", text_hash).join(owners_of.with_columns(text_hash), on="_h")
              .filter(pl.col("applicants") == pl.col("applicants_right")).select("_row", "uscc"))
    where = frame.get_column("applicants").is_in(unmatched.get_column("applicants").implode()).arg_true()
    found = frame[where].select("applicants").join(unmatched, on="applicants", how="left", maintain_order="left")
    message = found.select(pl.lit("申请人「") + pl.col("applicants") + pl.lit("」均未匹配到已登记企业 (")
                           + pl.col("_why").fill_null("未在企业登记中找到") + pl.lit(")")).to_series()
    return frame.with_columns(_at(frame.height, where, message).alias("_p_unmatched")), owners


def _applicant_verdicts(applicants: pl.Series, index: NameIndex,
                        set_aside: NameIndex | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(applicants text → the registered firms its names match, a firm as often as its names do;
    the texts none of whose names match → `_why`, the reason for the first one).

    A firm's patents repeat the same applicants, so each distinct text is split, and each
    distinct name matched, once.
    """
    texts = applicants.drop_nulls().unique()
    names = (pl.DataFrame({"applicants": texts, "applicant": split_applicants_series(texts)})
             .explode("applicant").drop_nulls("applicant"))
    distinct = names.get_column("applicant").unique()
    matched = index.match(distinct)
    verdict = pl.DataFrame({"applicant": distinct, "uscc": matched.get_column("uscc"),
                            "_why": _reason(matched, distinct, set_aside)})
    names = names.join(verdict, on="applicant", how="left", maintain_order="left")
    owners_of = names.filter(pl.col("uscc").is_not_null()).select("applicants", "uscc")
    why = (names.filter(pl.col("uscc").is_null()).group_by("applicants", maintain_order=True)
           .agg(pl.col("_why").first()))
    unmatched = texts.filter(~texts.is_in(owners_of.get_column("applicants").implode())).to_frame()
    return owners_of, unmatched.join(why, on="applicants", how="left")


def project_checks(frame: pl.DataFrame, index: NameIndex, set_aside: NameIndex | None = None) -> pl.DataFrame:
    span = (pl.col("span").str.normalize("NFKC").str.replace_all(r"\s|年", "")   # (NFKC: ～ is ~)
            .str.extract_groups(r"^(\d{4})[-—–~至到](\d{4})$"))
    frame = frame.with_columns(span.struct.field("1").cast(pl.Int64).alias("span_start"),
                               span.struct.field("2").cast(pl.Int64).alias("span_end"))
    outside = ((pl.col("year") < pl.col("span_start")) | (pl.col("year") > pl.col("span_end")))
    frame = frame.with_columns(
        pl.when(pl.col("span").is_not_null() & pl.col("span_start").is_null())
        .then(pl.lit("起止年限 \"") + pl.col("span") + pl.lit("\" 不是 起始年-结束年 的形式 (如 2022-2029)"))
        .alias("_p_span_format"),
        pl.when(outside.fill_null(False))
        .then(pl.lit("年度 ") + pl.col("year").cast(pl.Utf8) + pl.lit(" 不在起止年限 ") + pl.col("span")
              + pl.lit(" 之内")).alias("_p_year_span"))
    return _match_names(frame, index, "company_name", "项目单位", set_aside)


def financing_checks(frame: pl.DataFrame, index: NameIndex, set_aside: NameIndex | None = None) -> pl.DataFrame:
    frame = frame.with_columns(
        (pl.col("uscc").is_null() & pl.col("company_name").is_null()).alias("_f_no_company"),
        pl.col("currency").fill_null("人民币"))
    result = index.match_with_code(frame.get_column("company_name"), frame.get_column("uscc"))
    reason = _reason(result, frame.get_column("company_name"), set_aside).alias("_why")
    # the matcher's note: a name that is another firm's than its code's, an invalid code set
    # aside for the name, a name matched only loosely
    note = result.get_column("note").alias("_p_match_note")
    return frame.with_columns(result.get_column("uscc").alias("uscc"), reason, note).with_columns(
        pl.when(pl.col("uscc").is_null() & ~pl.col("_f_no_company"))
        .then(pl.lit("融资企业「") + pl.coalesce("company_name", pl.lit("")) + pl.lit("」: ") + pl.col("_why"))
        .alias("_p_unmatched")).drop("_why")


def honor_checks(frame: pl.DataFrame) -> pl.DataFrame:
    """`_f_unknown_honor`: a 资质名称 that `honor_key_expr` (the panel's and the labels' reading)
    does not know; `_p_level_mismatch`: a 级别 other than the one the title is granted at."""
    key = honor_key_expr(pl.col("honor"))
    expected = key.replace_strict(TITLE_LEVELS, default=None, return_dtype=pl.Utf8)
    title = key.replace_strict(HONOR_NAMES_ZH, default=None, return_dtype=pl.Utf8)
    level = pl.col("level").str.strip_chars()
    mismatch = (pl.when(expected.is_not_null() & level.is_in(list(LEVELS)) & (level != expected))
                .then(pl.lit("级别「") + level + pl.lit("」与") + title + pl.lit("的认定级别 (") + expected
                      + pl.lit(") 不符, 可能是同名的另一项地方资质; 本行仍按") + title + pl.lit("计, 请核对")))
    return frame.with_columns((key.is_null() & pl.col("honor").is_not_null()).alias("_f_unknown_honor"),
                              mismatch.alias("_p_level_mismatch"))


def _match_names(frame: pl.DataFrame, index: NameIndex, column: str, label: str,
                 set_aside: NameIndex | None) -> pl.DataFrame:
    result = index.match(frame.get_column(column))
    reason = _reason(result, frame.get_column(column), set_aside).alias("_why")
    return frame.with_columns(result.get_column("uscc").alias("uscc"), reason).with_columns(
        pl.when(pl.col("uscc").is_null() & pl.col(column).is_not_null())
        .then(pl.lit(f"{label}「") + pl.col(column) + pl.lit("」: ") + pl.col("_why"))
        .alias("_p_unmatched")).drop("_why")
