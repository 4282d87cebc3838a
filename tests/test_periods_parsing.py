"""Quarters and the parsers that turn a clerk's text into typed values."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from data_contracts import parsing
from data_contracts.periods import Quarter, quarter_range


def test_quarter_arithmetic_and_ends():
    q = Quarter.parse("2024Q4")
    assert q.end == dt.date(2024, 12, 31) and q.start == dt.date(2024, 10, 1)
    assert str(q + 1) == "2025Q1" and str(q - 4) == "2023Q4"
    assert Quarter(2024, 1).end == dt.date(2024, 3, 31)
    assert Quarter.of(dt.date(2024, 5, 17)) == Quarter(2024, 2)
    assert [str(x) for x in quarter_range(Quarter(2023, 4), Quarter(2024, 2))] == ["2023Q4", "2024Q1", "2024Q2"]
    with pytest.raises(ValueError):
        Quarter.parse("2024Q5")


def _run(parser, values):
    value, ok = parser(pl.Series("x", values, dtype=pl.Utf8))[:2]
    return value.to_list(), ok.to_list()


@pytest.mark.parametrize("text,expected", [
    ("2024Q3", "2024Q3"), ("2024q3", "2024Q3"), ("2024年三季度", "2024Q3"), ("2024年第三季度", "2024Q3"),
    ("2024年1-9月", "2024Q3"), ("2024-09", "2024Q3"), ("2024年12月", "2024Q4"), ("2024年1-3月", "2024Q1"),
    # as clerks also write them: full-width dash or tilde, 前三季度, 上半年, 年Q3, full-width digits
    ("2024年1－9月", "2024Q3"), ("2024年1～9月", "2024Q3"), ("2024年前三季度", "2024Q3"),
    ("2024年上半年", "2024Q2"), ("2024年Q3", "2024Q3"), ("２０２４Ｑ３", "2024Q3"),
])
def test_period_forms(text, expected):
    assert _run(parsing.parse_period, [text]) == ([expected], [True])


@pytest.mark.parametrize("text", ["2024Q5", "2024-08", "2024年五季度", "Q3 2024", "abc", "2024年前五季度",
                                  "2024年下半年"])
def test_bad_periods_are_flagged(text):
    assert _run(parsing.parse_period, [text]) == ([None], [False])


def test_numbers_separators_missing_markers_and_junk():
    values, ok = _run(parsing.parse_number, ["1,234.5", " 12 ", "-", "—", "/", "无", "NaN", "inf", "12,3a4", "-3.5"])
    assert values == [1234.5, 12.0, None, None, None, None, None, None, None, -3.5]
    assert ok == [True, True, True, True, True, True, False, False, False, True]


def test_dates_every_form_and_invalid_day():
    values, ok = _run(parsing.parse_date, ["2021-03-05", "2021/3/5", "2021年3月5日", "20210305", "44260",
                                           "2021-02-30", "2021-03-05 00:00:00", "2021-13-01", "2024-02-29"])
    d = dt.date(2021, 3, 5)
    assert values == [d, d, d, d, d, None, d, None, dt.date(2024, 2, 29)]  # serial 44260 is 2021-03-05
    assert ok == [True, True, True, True, True, False, True, False, True]


def test_a_year_or_a_year_and_month_is_no_date_not_an_excel_serial_of_1905():
    """`2025`, `2016.09` and `1998.6` were read as Excel serials: days in 1905, accepted without a
    word. Only five-digit serials (1927 on) are serials; these are unreadable, and said so."""
    values, ok = _run(parsing.parse_date, ["2025", "2016.09", "1998.6", "9999", "10000", "45123"])
    assert values == [None, None, None, None, dt.date(1927, 5, 18), dt.date(2023, 7, 16)]
    assert ok == [False, False, False, False, True, True]


def test_dates_with_a_time_of_day_or_full_width_digits():
    """Excel writes a date cell into a CSV as a date-time (`2021/3/5 0:00`); some systems write
    full-width digits. The day is what counts; a time that is no time is not a date."""
    values, ok = _run(parsing.parse_date, ["2021/3/5 0:00", "2021-03-05 14:30", "２０２１－０３－０５",
                                           "2021/3/5 25:61:99x"])
    d = dt.date(2021, 3, 5)
    assert values == [d, d, d, None] and ok == [True, True, True, False]


def test_integer_rejects_fractions():
    assert _run(parsing.parse_integer, ["12", "12.0", "12.5"]) == ([12, 12, None], [True, True, False])


def test_registry_money_texts():
    texts = pl.Series("x", ["105(万元人民币)", "5万人民币", "100万美元", "3.2亿", "5000元", "1,000", "很多",
                            "1000万人民币元", "40,000(万日元)", "60(元/万元)"])
    value, ok, currency = parsing.parse_money_with_unit(texts)
    assert value.to_list() == [105.0, 5.0, 100.0, 32000.0, 0.5, 1000.0, None, 1000.0, 40000.0, None]
    assert ok.to_list() == [True] * 6 + [False, True, True, False]
    assert currency.to_list()[2] == "美元" and currency.to_list()[8] == "日元"


@pytest.mark.parametrize("written,read", [
    ("A轮", "A"), ("天使轮", "天使"), ("Pre-A轮", "Pre-A"), ("A+轮", "A+"), ("pre-a", "Pre-A"),
    (" ａ 轮 ", "A"), ("战略投资", "战略"), ("战略融资", "战略"), ("E轮融资", "E"), ("pre-ipo轮", "Pre-IPO"),
    ("B", "B"), ("其他", "其他"),
    # not one of the input format's rounds: kept as written (the contracts flag them)
    ("种子轮", "种子轮"), ("新三板定增", "新三板定增"), ("IPO上市", "IPO上市"), ("Pre-B轮", "Pre-B轮"),
    ("-", None), (None, None),
])
def test_rounds_are_read_as_the_input_formats_names(written, read):
    from data_contracts.schema import ROUNDS

    assert parsing.parse_round(pl.Series("x", [written], dtype=pl.Utf8), ROUNDS).to_list() == [read]


def test_real_round_names_are_read_as_the_input_formats(research_data):
    """IT桔子's 1,439 funding rows (2018) write their rounds as 天使轮, A轮, Pre-A轮, 战略投资…: none is
    one of the input format's names as written, and before this reading every one was flagged."""
    from data_contracts.schema import ROUNDS

    path = research_data / "itjuzi-china-ai-2018" / "itjuzi_china_ai_companies_2018-12.csv"
    if not path.exists():
        pytest.skip(f"{path} is not present")
    written = pl.read_csv(path, columns=["轮次"], infer_schema=False).get_column("轮次")
    read = parsing.parse_round(written, ROUNDS)
    for w, r in pl.DataFrame({"w": written, "r": read}).unique().iter_rows():
        if w is None or w in parsing.MISSING:
            assert r is None, w
        elif w.removesuffix("轮") in ROUNDS:
            assert r == w.removesuffix("轮"), w
        elif w == "战略投资":
            assert r == "战略"
        else:   # 种子轮, 新三板, 并购, IPO上市, …: not rounds of the input format, kept as written
            assert r == w and r not in ROUNDS, w
    assert written.is_in(ROUNDS).sum() == 0
    assert read.is_in(ROUNDS).sum() == 1039 and read.is_not_null().sum() == 1153


def test_invisible_characters_the_typeset_minus_and_an_accountants_negative_are_read_through():
    """A zero-width space after `113.99` or `2023Q1` (pasted from a web page), a soft hyphen, the
    minus sign of typeset text (U+2212) and an accountant's `(12.5)` made values that look right
    unreadable."""
    values, ok = _run(parsing.parse_number, ["113.99\u200b", "\u2060-5", "\u221219.69", "1\u00ad234",
                                             "(12.5)", "（1,200）", "(12.5", "(-3)"])
    assert values == [113.99, -5.0, -19.69, 1234.0, -12.5, -1200.0, None, None]
    assert ok == [True] * 6 + [False, False]
    periods, ok = _run(parsing.parse_period, ["2023Q1\u200b", "\ufeff2023Q2"])
    assert periods == ["2023Q1", "2023Q2"] and all(ok)


def test_a_period_written_as_its_quarters_last_day_is_that_quarter():
    """Systems export 报告期 as the report date: `2024-09-30`, `2024/9/30`, `2024年9月30日` are 2024Q3;
    a day that ends no quarter (09-29, 06-31) is no period."""
    values, ok = _run(parsing.parse_period, ["2024-09-30", "2024/9/30", "2024年9月30日", "2024.12.31",
                                             "2024-03-31", "2024-09-29", "2024-06-31"])
    assert values == ["2024Q3", "2024Q3", "2024Q3", "2024Q4", "2024Q1", None, None]
    assert ok == [True] * 5 + [False, False]
