"""Derived check columns that the GX suites judge: problem texts (`_p_*`) and flags (`_f_*`).

Each function takes a typed table and returns it with its derived columns; none drops a row.
A value entered in 元 is corrected here (÷10,000) with the original kept in `original_values`.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from data_contracts import identifiers
from data_contracts.entity import NameIndex, split_applicants_series
from data_contracts.schema import KNOWN_HONORS, Table

YUAN_RATIO = 1_000.0       # a row this many times the firm's usual size was entered in 元
MONEY_COLUMNS = ("revenue_ytd", "main_revenue_ytd", "profit_ytd", "net_profit_ytd", "rd_expense_ytd",
                 "total_assets", "total_liabilities", "export_ytd")


def duplicates(frame: pl.DataFrame, table: Table) -> pl.DataFrame:
    """`_f_duplicate_row` on the 2nd+ copy of an identical row; `_p_duplicate_key` on conflicts.

    Filings are the exception: a period reported twice with different values is a revision, and
    the row further down the sheet wins (`_p_revision`); the earlier one is set aside
    (`_p_superseded`), both visible to the clerk.
    """
    canon = [c.name for c in table.columns if c.name in frame.columns]
    frame = frame.with_columns(pl.col("_row").min().over(canon).alias("_first_row"))
    frame = frame.with_columns((pl.col("_row") != pl.col("_first_row")).alias("_f_duplicate_row"))
    key = [k for k in table.key if k in frame.columns]
    distinct = pl.col("_row").filter(~pl.col("_f_duplicate_row"))
    rows_text = distinct.sort().head(5).cast(pl.Utf8).str.join("、").over(key)
    n_distinct = (~pl.col("_f_duplicate_row")).sum().over(key)
    if table.name == "financing":  # one of uscc / company_name identifies the firm
        key_present = (pl.all_horizontal([pl.col(k).is_not_null() for k in ("financed_on", "round")])
                       & (pl.col("uscc").is_not_null() | pl.col("company_name").is_not_null()))
    else:
        key_present = pl.all_horizontal([pl.col(k).is_not_null() for k in key])
    conflict = key_present & (n_distinct > 1) & ~pl.col("_f_duplicate_row")
    if table.name != "filings":
        return frame.with_columns(
            pl.when(conflict).then(pl.lit("第 ") + rows_text + pl.lit(" 行")).alias("_p_duplicate_key"),
            pl.lit(None, pl.Utf8).alias("_p_revision"), pl.lit(None, pl.Utf8).alias("_p_superseded"))
    last = distinct.max().over(key)
    return frame.with_columns(
        pl.lit(None, pl.Utf8).alias("_p_duplicate_key"),
        pl.when(conflict & (pl.col("_row") == last)).then(
            pl.lit("同一企业同一报告期出现多行 (第 ") + rows_text
            + pl.lit(" 行), 采用表中最靠后的本行作为修订值")).alias("_p_revision"),
        pl.when(conflict & (pl.col("_row") != last)).then(
            pl.lit("已被表中靠后的第 ") + last.cast(pl.Utf8) + pl.lit(" 行的修订值替代, 本行不参与评分"))
        .alias("_p_superseded"))


def enterprise_checks(frame: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    return frame.with_columns(
        identifiers.uscc_problems(frame.get_column("uscc")).alias("_p_uscc"),
        (pl.col("founded_on") > pl.lit(as_of)).fill_null(False).alias("_f_founded_future"),
        # 行业代码 may be missing (the column is nullable); only a code that is written is judged.
        pl.when(pl.col("industry_code").is_not_null()).then(
            identifiers.industry_code_problems(frame.get_column("industry_code"))).alias("_p_industry_code"),
    )


def registration(frame: pl.DataFrame, accepted: set[str], quarantined: set[str]) -> pl.DataFrame:
    """`_p_unregistered`: the credit code names no accepted enterprise (and why)."""
    code = pl.col("uscc")
    problem = (pl.when(code.is_null() | code.is_in(list(accepted))).then(None)
               .when(code.is_in(list(quarantined)))
               .then(pl.lit("该企业在企业登记表中的行已被隔离, 本行随之隔离"))
               .otherwise(pl.lit("统一社会信用代码 ") + code + pl.lit(" 不在企业登记表中")))
    out = frame.with_columns(problem.alias("_p_unregistered"))
    if "_p_uscc" not in out.columns:
        out = out.with_columns(identifiers.uscc_problems(frame.get_column("uscc")).alias("_p_uscc"))
    return out


def filing_checks(frame: pl.DataFrame) -> pl.DataFrame:
    """元-for-万元 rows corrected and flagged; year-to-date values that fall, flagged."""
    frame = _correct_yuan(frame)
    return _ytd_decrease(frame)


def _correct_yuan(frame: pl.DataFrame) -> pl.DataFrame:
    ratio_exprs = []
    for col in ("revenue_ytd", "total_assets"):
        median = pl.col(col).median().over("uscc")
        ratio_exprs.append(pl.when(median > 0).then(pl.col(col) / median).otherwise(None))
    suspect = (pl.max_horizontal(ratio_exprs) >= YUAN_RATIO).fill_null(False)
    frame = frame.with_columns(suspect.alias("_yuan"))
    present = [c for c in MONEY_COLUMNS if c in frame.columns]
    original = pl.concat_str([pl.lit(f"{c}=") + pl.col(c).cast(pl.Utf8).fill_null("") for c in present],
                             separator="; ")
    frame = frame.with_columns(
        pl.when(pl.col("_yuan")).then(pl.lit("原值(元): ") + original).alias("original_values"),
        pl.when(pl.col("_yuan")).then(
            pl.lit("该行金额约为同一企业其他报告期的 ")
            + (pl.max_horizontal(ratio_exprs)).round(0).cast(pl.Int64).cast(pl.Utf8)
            + pl.lit(" 倍, 疑似以元填报; 已除以 10000 换算为万元, 原值保留在 original_values")
        ).alias("_p_unit_yuan"),
        *[pl.when(pl.col("_yuan")).then(pl.col(c) / 10_000).otherwise(pl.col(c)).alias(c) for c in present],
    )
    return frame.drop("_yuan")


def _ytd_decrease(frame: pl.DataFrame) -> pl.DataFrame:
    year = pl.col("period").str.slice(0, 4)
    ordered = frame.with_columns(year.alias("_year")).sort("uscc", "period", "_row")
    prev = pl.col("revenue_ytd").shift(1).over("uscc", "_year")
    prev_period = pl.col("period").shift(1).over("uscc", "_year")
    problem = pl.when((pl.col("revenue_ytd") < prev * (1 - 1e-9)) & (prev_period != pl.col("period"))).then(
        pl.lit("本年累计营业收入 ") + pl.col("revenue_ytd").round(1).cast(pl.Utf8)
        + pl.lit(" 万元低于上一报告期 ") + prev_period + pl.lit(" 的 ") + prev.round(1).cast(pl.Utf8)
        + pl.lit(" 万元 (本年累计值不应下降)"))
    out = ordered.with_columns(problem.alias("_p_ytd_decrease")).drop("_year")
    return out.sort("_row")


QUARANTINED_FIRM = "该企业在企业登记表中的行已被隔离, 本行随之隔离"


def _reason(result: pl.DataFrame, names: pl.Series, set_aside: NameIndex | None) -> pl.Series:
    """Why a name did not match: the matcher's reason, or that its registry row was quarantined."""
    reason = result.get_column("reason").fill_null("未在企业登记中找到")
    if set_aside is None:
        return reason
    again = set_aside.match(names).get_column("uscc")
    return pl.select(pl.when(again.is_not_null()).then(pl.lit(QUARANTINED_FIRM)).otherwise(reason)).to_series()


def patent_checks(frame: pl.DataFrame, index: NameIndex,
                  set_aside: NameIndex | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(patents with `_p_application_no`, `_p_unmatched`; owners: one row per patent and firm)."""
    normalized = identifiers.normalize_application_no_series(frame.get_column("application_no"))
    frame = frame.with_columns(  # the normaliser turns null into "": keep missing as missing
        pl.when(pl.col("application_no").is_null()).then(None).otherwise(normalized).alias("application_no"))
    frame = frame.with_columns(identifiers.application_no_problems(
        frame.get_column("application_no"), frame.get_column("patent_type")).alias("_p_application_no"))
    names = (frame.select("_row", split_applicants_series(frame.get_column("applicants")).alias("applicant"))
             .explode("applicant").filter(pl.col("applicant").is_not_null()))
    matched = index.match(names.get_column("applicant"))
    names = names.with_columns(matched.get_column("uscc").alias("uscc"),
                               _reason(matched, names.get_column("applicant"), set_aside).alias("_why"))
    why = (names.filter(pl.col("uscc").is_null()).group_by("_row")
           .agg(pl.col("_why").first().alias("_why")))
    owners = names.filter(pl.col("uscc").is_not_null()).unique(["_row", "uscc"]).sort("_row", "uscc")
    hit = owners.select("_row").unique().with_columns(pl.lit(True).alias("_hit"))
    frame = frame.join(hit, on="_row", how="left").join(why, on="_row", how="left").with_columns(
        pl.when(pl.col("_hit").is_null() & pl.col("applicants").is_not_null())
        .then(pl.lit("申请人「") + pl.col("applicants") + pl.lit("」均未匹配到已登记企业 (") + pl.col("_why")
              .fill_null("未在企业登记中找到") + pl.lit(")"))
        .alias("_p_unmatched")).drop("_hit", "_why")
    return frame, owners.select("_row", "uscc")


def project_checks(frame: pl.DataFrame, index: NameIndex, set_aside: NameIndex | None = None) -> pl.DataFrame:
    span = pl.col("span").str.replace_all(r"\s|年", "").str.extract_groups(r"^(\d{4})[-—–~至到](\d{4})$")
    frame = frame.with_columns(span.struct.field("1").cast(pl.Int64).alias("span_start"),
                               span.struct.field("2").cast(pl.Int64).alias("span_end"))
    outside = ((pl.col("year") < pl.col("span_start")) | (pl.col("year") > pl.col("span_end")))
    frame = frame.with_columns(
        pl.when(pl.col("span").is_not_null() & pl.col("span_start").is_null())
        .then(pl.lit("起止年限 \"") + pl.col("span") + pl.lit("\" 不是 起始年-结束年 的形式 (如 2022-2029)"))
        .when(outside.fill_null(False))
        .then(pl.lit("年度 ") + pl.col("year").cast(pl.Utf8) + pl.lit(" 不在起止年限 ") + pl.col("span")
              + pl.lit(" 之内")).alias("_p_year_span"))
    return _match_names(frame, index, "company_name", "项目单位", set_aside)


def financing_checks(frame: pl.DataFrame, index: NameIndex, set_aside: NameIndex | None = None) -> pl.DataFrame:
    frame = frame.with_columns(
        (pl.col("uscc").is_null() & pl.col("company_name").is_null()).alias("_f_no_company"),
        pl.col("currency").fill_null("人民币"))
    result = index.match_with_code(frame.get_column("company_name"), frame.get_column("uscc"))
    reason = _reason(result, frame.get_column("company_name"), set_aside).alias("_why")
    return frame.with_columns(result.get_column("uscc").alias("uscc"), reason).with_columns(
        pl.when(pl.col("uscc").is_null() & ~pl.col("_f_no_company"))
        .then(pl.lit("融资企业「") + pl.coalesce("company_name", pl.lit("")) + pl.lit("」: ") + pl.col("_why"))
        .alias("_p_unmatched")).drop("_why")


def honor_checks(frame: pl.DataFrame) -> pl.DataFrame:
    name = pl.col("honor").str.replace_all(r"\s", "")
    return frame.with_columns((~name.is_in(list(KNOWN_HONORS))).fill_null(False).alias("_f_unknown_honor"))


def _match_names(frame: pl.DataFrame, index: NameIndex, column: str, label: str,
                 set_aside: NameIndex | None) -> pl.DataFrame:
    result = index.match(frame.get_column(column))
    reason = _reason(result, frame.get_column(column), set_aside).alias("_why")
    return frame.with_columns(result.get_column("uscc").alias("uscc"), reason).with_columns(
        pl.when(pl.col("uscc").is_null() & pl.col(column).is_not_null())
        .then(pl.lit(f"{label}「") + pl.col(column) + pl.lit("」: ") + pl.col("_why"))
        .alias("_p_unmatched")).drop("_why")
