"""Key-project features (重点项目): the firm's planned and completed investment in the quarter's
calendar year, in 亿元 as the ledger gives it, and planned investment relative to revenue.

A feature of quarter q reads only ledger rows of q's year. The annual plan is published at the
start of the year, so the whole year's plan counts from Q1. The ledger gives completed investment
as one figure per year; by default (`prorate_completed_investment`) only the elapsed share of the
year is taken (Q1 ¼, Q2 ½, Q3 ¾, Q4 all), assuming even progress.
"""

from __future__ import annotations

import polars as pl

WAN_PER_YI = 1e4  # 1 亿元 = 10,000 万元


def project_planned_year_yi() -> pl.Expr:
    """Planned investment of the firm's key projects for the quarter's year (亿元; 0 if none)."""
    return pl.col("planned_year").sum().alias("project_planned_year_yi")


def project_completed_year_yi() -> pl.Expr:
    """Completed investment reported for the quarter's year (亿元; null if no project reports one)."""
    completed = pl.col("completed_year")
    return pl.when(completed.is_not_null().any()).then(completed.sum()).alias(
        "project_completed_year_yi")


def elapsed_share_of_year() -> pl.Expr:
    """Share of the calendar year elapsed at the quarter's end (Q1 0.25 … Q4 1.0)."""
    return ((pl.col("qi") % 4 + 1) / 4).alias("elapsed_share")


def project_intensity() -> pl.Expr:
    """Planned investment this year ÷ revenue_ttm, both in 万元 (fraction); null if revenue_ttm ≤ 0."""
    planned_wan = pl.col("project_planned_year_yi") * WAN_PER_YI
    return (pl.when(pl.col("revenue_ttm") > 0).then(planned_wan / pl.col("revenue_ttm"))
            .alias("project_intensity"))


def project_features(projects: pl.LazyFrame, firm_ids: pl.LazyFrame, calendar: pl.DataFrame,
                     prorate_completed: bool) -> pl.LazyFrame:
    """Per (fid, qi) with a key project in the quarter's year: planned and completed investment
    (亿元). Only ledger rows of the quarter's own year are read; rows without a matched uscc are
    left out."""
    per_year = (
        projects.select("uscc", pl.col("year").cast(pl.Int32), "planned_year", "completed_year")
        .join(firm_ids, on="uscc", how="inner")
        .group_by("fid", "year")
        .agg(project_planned_year_yi(), project_completed_year_yi())
    )
    completed = pl.col("project_completed_year_yi")
    return (
        per_year.join(calendar.lazy().select("qi", "year"), on="year", how="inner")
        .with_columns((completed * elapsed_share_of_year() if prorate_completed else completed)
                      .alias("project_completed_year_yi"))
        .select("fid", "qi", "project_planned_year_yi", "project_completed_year_yi")
    )


# A firm without a key project that year invests 0 (planned and completed).
DEFAULTS = {"project_planned_year_yi": 0.0, "project_completed_year_yi": 0.0}
