"""The 元/万元 checks on real accounts: A-share firms' annual revenue and assets 2022–2024
(../shared/research-data/a-share-fin-2022-2024, SOURCES.md: tushare, internal test data; read here
at test time, never copied), written as Q4 year-to-date returns in 万元.

Real accounts move more than synthetic ones (losses, restructurings, revenue from almost nothing):
a check that takes a true jump for a row typed in 元 would divide a real firm's figures by 10,000.
"""

from __future__ import annotations

import polars as pl
import pytest

from data_contracts import derive
from data_contracts.coerce import coerce
from data_contracts.schema import FILINGS

SOURCE = "a-share-fin-2022-2024/a_share_financials_2022_2024.csv"


@pytest.fixture(scope="module")
def returns(research_data) -> pl.DataFrame:
    """One Q4 return per firm and year, money in 万元 (the source is in 元); the stock code
    stands for the credit code (the checks group by it, nothing else reads it)."""
    src = pl.read_csv(research_data / SOURCE, infer_schema_length=0)
    return src.select(
        pl.col("股票代码").alias("uscc"), (pl.col("年度") + "Q4").alias("period"),
        (pl.col("营业收入").cast(pl.Float64) / 1e4).alias("revenue_ytd"),
        (pl.col("总资产").cast(pl.Float64) / 1e4).alias("total_assets"),
    ).sort("uscc", "period")


def _checked(frame: pl.DataFrame) -> pl.DataFrame:
    raw = (frame.with_columns(pl.all().cast(pl.Utf8))
           .with_row_index("_row", offset=2).with_columns(pl.col("_row").cast(pl.Int64)))
    typed = coerce(FILINGS, raw, "财务快报.csv")[0]
    order, _ = derive._by_firm(typed)
    return derive._implausibly_large(derive._correct_yuan(typed, order))


def test_real_accounts_in_wan_are_never_converted(returns):
    """17,257 firm-years of 6,085 listed firms, all in 万元: not one row is taken for 元. Those
    over 100亿元 are flagged for the clerk to confirm the unit (listed firms are large; a city's
    SMEs seldom are), and nothing else."""
    checked = _checked(returns)
    assert returns.height > 17_000 and returns["uscc"].n_unique() > 6_000
    assert checked.get_column("_p_unit_yuan").null_count() == checked.height
    flagged = checked.filter(pl.col("_p_amount_scale").is_not_null())
    big = pl.max_horizontal("revenue_ytd", "total_assets") > derive.YUAN_ABSOLUTE
    assert flagged.height == returns.filter(big).height > 0


def test_a_real_year_typed_in_yuan_is_found_and_restored(returns):
    """One year of every 20th firm with three years of accounts (every 4th with two) typed in 元 (×10,000): each such
    row is found and divided back to its 万元 figures; no other row is touched. A firm with two
    returns only cannot say which of the two is out of scale, and is left alone."""
    years = returns.group_by("uscc").len()
    three = sorted(years.filter(pl.col("len") == 3)["uscc"].to_list())[::20]
    two = sorted(years.filter(pl.col("len") == 2)["uscc"].to_list())[::4]
    typed_in_yuan = (pl.col("uscc").is_in(three + two) & (pl.col("period") == "2023Q4")
                     & pl.col("revenue_ytd").is_not_null() & (pl.col("revenue_ytd") > 0))
    entered = returns.with_columns(
        pl.when(typed_in_yuan).then(pl.col(c) * 10_000).otherwise(pl.col(c)).alias(c)
        for c in ("revenue_ytd", "total_assets"))
    checked = _checked(entered).with_columns(typed_in_yuan.alias("_yuan"), pl.col("uscc").is_in(three).alias("_three"))
    converted = checked.filter(pl.col("_p_unit_yuan").is_not_null())
    assert len(three) > 200
    assert converted.select("uscc", "period").sort("uscc").rows() == (
        checked.filter(pl.col("_yuan") & pl.col("_three")).select("uscc", "period").sort("uscc").rows())
    restored = converted.join(returns, on=["uscc", "period"], suffix="_true")
    for c in ("revenue_ytd", "total_assets"):
        assert ((restored[c] - restored[f"{c}_true"]).abs() <= 1e-9 * restored[f"{c}_true"].abs()).all(), c
    # two returns: nothing converted, and a 元 figure beyond 100亿元 is still put to the clerk
    pairs = checked.filter(pl.col("_yuan") & ~pl.col("_three"))
    assert pairs.height > 20 and pairs["_p_unit_yuan"].null_count() == pairs.height
    assert pairs.filter(pl.col("revenue_ytd") > derive.YUAN_ABSOLUTE)["_p_amount_scale"].null_count() == 0
