"""The pandas baseline of the benchmark (bench/pandas_panel.py) against the Polars panel: a second,
independent implementation of the catalog's definitions must give the same rows and every column,
on the benchmark's synthetic tables, on a synthetic city's checked drop (co-owned and lapsed
patents, US-dollar rounds, honors without valid_until, projects without a completed figure) and on
a few firms at the definitions' boundaries."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_series_equal

from bench.bench_features import PANEL_QUARTERS, as_panel_types, synthetic_tables
from bench.pandas_panel import pandas_panel
from data_contracts.periods import Quarter, quarter_range
from features.panel import INPUT_SCHEMAS, KEYS, PANEL_FEATURES, PanelConfig, build_panel
from pipelines.run import Timer, check_drop, load_warehouse
from pipelines.synth import synthesize

D = dt.date
CONFIGS = {
    "defaults": PanelConfig(),
    "other choices": PanelConfig(usd_cny=6.5, max_stock_age_quarters=1,
                                 lapsed_patents="valid_until_term",
                                 honor_default_validity_years=3,
                                 prorate_completed_investment=False),
}


@pytest.fixture(scope="module")
def bench_tables() -> tuple[dict[str, pl.DataFrame], list[Quarter]]:
    return synthetic_tables(2_000), PANEL_QUARTERS


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> tuple[dict[str, pl.DataFrame], list[Quarter]]:
    """A 1,500-firm city with a dirty drop, checked and read back from the warehouse as a run
    reads it; the panel covers every quarter of its returns."""
    base = tmp_path_factory.mktemp("pandas_city")
    synthesize(base / "drop", enterprises=1_500, quarters=12, seed=5, fmt="parquet", dirty=True)
    drop, result = check_drop(base / "drop", base / "check", None, Timer())
    tables = load_warehouse(base / "w.duckdb", drop, result)
    periods = tables["filings"]["period"]
    return tables, quarter_range(Quarter.parse(periods.min()), Quarter.parse(periods.max()))


def rows(table: str, columns: str, values: list[tuple]) -> pl.DataFrame:
    """A typed table from a few rows of the named columns; its other columns null."""
    frame = pl.DataFrame(values, schema=columns.split(), orient="row")
    return frame.select((pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
                        for c, t in INPUT_SCHEMAS[table].items())


@pytest.fixture(scope="module")
def boundaries() -> tuple[dict[str, pl.DataFrame], list[Quarter]]:
    """Dates on the definitions' edges: a term ending on 29 Feb or mid-quarter, a grant on a
    quarter end, a design filed before 2021-06-01, same-day rounds, an honor valid until the
    quarter's end, honor names with spaces or in code form; a repeated uscc, unknown founding
    dates, rows of unknown firms and undated rows."""
    tables = {
        "enterprises": rows("enterprises", "uscc founded_on district chain_layer chain_leader", [
            ("A", D(2010, 1, 1), "环科园", "技术产品层", True), ("A", D(2000, 1, 1), "经开区", None, False),
            ("B", None, "环科园", "技术产品层", None), ("C", D(2024, 5, 1), "经开区", "基础支撑层", True),
            ("E", D(2024, 8, 15), "经开区", "基础支撑层", False), ("F", None, "经开区", "基础支撑层", True)]),
        "filings": rows("filings", "uscc period revenue_ytd rd_expense_ytd employees", [
            *[("A", str(q), 100.0 * q.q, 3.0 * q.q, 9)
              for q in quarter_range(Quarter(2020, 1), Quarter(2025, 1))],
            ("Z", "2024Q1", 1.0, 0.0, 1)]),
        "patents": rows("patents", "application_no patent_type filed_on granted_on legal_status", [
            ("P1", "发明", D(2004, 2, 29), D(2006, 1, 1), "有效"),
            ("P2", "外观设计", D(2014, 6, 1), D(2015, 1, 1), "有效"),
            ("P3", "外观设计", D(2011, 5, 31), D(2012, 1, 1), None),
            ("P4", "实用新型", D(2021, 1, 5), D(2022, 3, 31), "有效"),
            ("P5", "实用新型", D(2021, 1, 5), D(2022, 4, 1), "有效"),
            ("P6", "发明", None, None, "审中"), ("P7", "发明", D(2024, 12, 31), D(2024, 12, 31), "失效"),
            ("P8", "其他", D(2023, 1, 1), None, None),
            ("P9", "实用新型", D(2015, 3, 31), D(2016, 1, 1), "有效"),
            ("P10", "发明", D(2023, 3, 31), D(2022, 1, 1), "有效")]),
        "patent_owners": rows("patent_owners", "application_no uscc", [
            ("P1", "A"), ("P1", "B"), ("P2", "A"), ("P3", "A"), ("P4", "A"), ("P4", "A"),
            ("P5", "B"), ("P6", "A"), ("P7", "C"), ("P8", "E"), ("P9", "E"), ("P10", "B"),
            ("P1", "Z")]),
        "financing": rows("financing", "uscc financed_on amount currency post_money", [
            ("A", D(2023, 12, 31), 100.0, "USD", 1000.0), ("A", D(2023, 12, 31), None, "人民币", 5000.0),
            ("A", D(2023, 12, 31), 10.0, None, None), ("A", D(2022, 12, 31), 50.0, "美金", None),
            ("A", D(2021, 12, 31), 70.0, "美元", 800.0), ("C", D(2020, 1, 1), 1.0, None, 10.0),
            ("B", None, 5.0, None, 1.0), ("Z", D(2023, 1, 1), 5.0, None, 1.0),
            ("B", D(2024, 3, 31), None, None, None)]),
        "honors": rows("honors", "uscc honor recognized_on valid_until", [
            ("A", "高新技术 企业", D(2021, 12, 31), D(2024, 12, 31)), ("A", "gazelle", D(2023, 12, 31), None),
            ("A", "无此荣誉", D(2020, 1, 1), None), ("B", "专精特新“小巨人”", D(2024, 3, 31), D(2024, 3, 31)),
            ("B", "瞪羚企业\u3000", D(2020, 2, 29), D(2023, 12, 30)), ("B", "瞪羚企业", D(2018, 2, 1), None),
            ("C", "雏鹰企业", None, None), ("E", None, D(2020, 1, 1), None),
            # no 有效期至: the statutory three years, ending on a quarter's end and inside a quarter
            ("C", "创新型中小企业(2024年)", D(2021, 12, 31), None), ("B", "国家高新技术企业", D(2021, 2, 28), None),
            # the 2026 title that counts as 创新型: held, and the latest of either for years_since
            ("A", "科技和创新型中小企业", D(2024, 6, 30), None), ("C", "科技和创新型中小企业", D(2024, 9, 30), None)]),
        "projects": rows("projects", "uscc year planned_year completed_year", [
            ("A", 2024, 1.0, None), ("A", 2024, 2.0, 0.5), ("B", 2024, None, None), ("B", None, 3.0, 3.0),
            ("C", 2025, 1.5, 1.0), ("Z", 2024, 1.0, 1.0)]),
    }
    return tables, quarter_range(Quarter(2023, 4), Quarter(2025, 1))


def differing_columns(tables: dict[str, pl.DataFrame], quarters: list[Quarter],
                      config: PanelConfig) -> dict[str, str]:
    """Each column on which pandas_panel and build_panel disagree, with how (numbers to rtol
    1e-9, nulls where the panel has nulls)."""
    panel = build_panel(tables, quarters, config).with_columns(pl.col(pl.Float64).fill_nan(None))
    baseline = pandas_panel({name: t.to_pandas() for name, t in tables.items()}, quarters, config)
    assert list(baseline.columns) == [*KEYS, *PANEL_FEATURES]
    baseline = as_panel_types(pl.from_pandas(baseline), panel.schema)
    assert baseline.height == panel.height
    differing = {}
    for column in panel.columns:
        try:
            assert_series_equal(baseline[column], panel[column], check_exact=False,
                                rel_tol=1e-9, abs_tol=1e-9)
        except AssertionError as error:
            differing[column] = str(error).splitlines()[0]
    return differing


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_pandas_equals_polars_on_the_benchmark_tables(bench_tables, config):
    assert differing_columns(*bench_tables, config) == {}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_pandas_equals_polars_on_a_synthetic_city(city, config):
    assert differing_columns(*city, config) == {}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_pandas_equals_polars_at_the_boundaries(boundaries, config):
    assert differing_columns(*boundaries, config) == {}
