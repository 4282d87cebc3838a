"""The point-in-time panel: one row per (enterprise, quarter) with every feature of
docs/architecture.md, each computed only from rows dated on or before the quarter's end.

`build_panel` takes the typed warehouse tables and the quarters wanted and returns one frame.
The domain modules (financials, ip, financing, honors, projects) compute their features on an
integer firm id `fid` (firms in uscc order) and quarter index `qi` (`Quarter.index`); this module
lays them side by side on the panel's rows without joining or sorting the big tables. Business
choices (exchange rate, staleness of returns, how lapsed patents, undated honors and completed
project investment count) live in `PanelConfig`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from data_contracts.periods import Quarter
from features import financials, financing, honors, ip, projects

KEYS = ("uscc", "quarter", "quarter_end")
ENTERPRISE_FEATURES = ("district", "industry_code", "chain_layer", "chain_leader", "name",
                       "status", "age_years")
FLOW_FEATURES = tuple(f"{n}_ttm" for n in ("revenue", "main_revenue", "rd_expense", "profit",
                                           "net_profit"))
PRIOR_YEAR_FEATURES = (
    "revenue_py", "main_revenue_py", "rd_expense_py", "net_profit_py", "profit_py",
    "revenue_py2", "main_revenue_py2", "rd_expense_py2", "revenue_py3", "main_revenue_py3",
    "rd_expense_py3",
)
GROWTH_FEATURES = ("revenue_growth_yoy", "main_revenue_growth_py", "main_revenue_growth_2y_avg",
                   "revenue_cagr_3y", "net_profit_growth_py")
RATIO_FEATURES = ("rd_intensity_py", "rd_intensity_py2", "rd_intensity_3y", "rd_staff_share",
                  "debt_ratio", "debt_ratio_py", "net_margin_py", "main_business_share_py",
                  "employees", "total_assets")
PROJECT_FEATURES = ("project_planned_year_yi", "project_completed_year_yi", "project_intensity")
CHAIN_FEATURES = ("chain_leader_tie",)

FINANCIAL_FEATURES = FLOW_FEATURES + PRIOR_YEAR_FEATURES + GROWTH_FEATURES + RATIO_FEATURES
PANEL_FEATURES: tuple[str, ...] = (
    ENTERPRISE_FEATURES + FINANCIAL_FEATURES + ip.PATENT_FEATURES + financing.FINANCING_FEATURES
    + honors.HONOR_FEATURES + PROJECT_FEATURES + CHAIN_FEATURES
)
DAYS_PER_YEAR = 365.25
Table = pl.DataFrame | pl.LazyFrame  # an input table, in memory or lazy (e.g. a parquet scan)


class PanelConfig(BaseModel):
    """Business choices of the panel (the run's configuration sets them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    usd_cny: float = Field(7.1, gt=0, description="CNY per USD for financing amounts and valuations")
    max_stock_age_quarters: int = Field(
        3, ge=0, description="how many quarters old the latest return may be for stock features "
                             "(employees, assets, debt_ratio, rd_staff_share); older → null")
    lapsed_patents: ip.LapsedRule = Field(
        "never_valid", description="a patent 失效 today: never valid (conservative, uses today's "
                                   "status for past quarters) or valid until its statutory term")
    honor_default_validity_years: float | None = Field(
        None, gt=0, description="term of an honor without valid_until and without a statutory term "
                               "(data_contracts.honors.TITLE_TERM_YEARS); None = held indefinitely")
    prorate_completed_investment: bool = Field(
        True, description="count only the elapsed share of the year's completed project investment")


# Columns each table must offer (missing optional columns are added as nulls; an absent table
# is an empty frame). Casting here keeps the domain modules free of dtype worries.
INPUT_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "enterprises": {"uscc": pl.Utf8, "name": pl.Utf8, "founded_on": pl.Date,
                    "industry_code": pl.Utf8, "district": pl.Utf8, "status": pl.Utf8,
                    "chain_layer": pl.Utf8, "chain_leader": pl.Boolean},
    "filings": {"uscc": pl.Utf8, "period": pl.Utf8,
                **{f"{n}_ytd": pl.Float64 for n in financials.FLOWS},
                "total_assets": pl.Float64, "total_liabilities": pl.Float64,
                "employees": pl.Int64, "rd_staff": pl.Int64},
    "patents": {"application_no": pl.Utf8, "patent_type": pl.Utf8, "filed_on": pl.Date,
                "granted_on": pl.Date, "legal_status": pl.Utf8},
    "patent_owners": {"application_no": pl.Utf8, "uscc": pl.Utf8},
    "financing": {"uscc": pl.Utf8, "financed_on": pl.Date, "amount": pl.Float64,
                  "currency": pl.Utf8, "post_money": pl.Float64},
    "honors": {"uscc": pl.Utf8, "honor": pl.Utf8, "recognized_on": pl.Date,
               "valid_until": pl.Date},
    "projects": {"uscc": pl.Utf8, "year": pl.Int64, "planned_year": pl.Float64,
                 "completed_year": pl.Float64},
}
_REQUIRED = {"enterprises": ("uscc", "founded_on")}


def typed_input(tables: Mapping[str, Table], name: str) -> pl.LazyFrame:
    """The columns the panel reads from one table, cast to their contract dtypes."""
    schema = INPUT_SCHEMAS[name]
    frame = tables.get(name)
    if frame is None:
        if name in _REQUIRED:
            raise KeyError(f"build_panel: table {name!r} is required")
        return pl.LazyFrame(schema=schema)
    columns = frame.collect_schema().names()
    missing = [c for c in _REQUIRED.get(name, ()) if c not in columns]
    if missing:
        raise KeyError(f"build_panel: table {name!r} lacks column(s) {missing}")
    return frame.lazy().select(
        (pl.col(c) if c in columns else pl.lit(None)).cast(t).alias(c)
        for c, t in schema.items())


def quarter_calendar(quarters: Sequence[Quarter]) -> pl.DataFrame:
    """One row per panel quarter: qi, quarter text, its end, window starts, years it reads."""
    if not quarters:
        raise ValueError("build_panel: no quarters asked for")
    rows = sorted(set(quarters))

    def years_before(q: Quarter, n: int) -> dt.date:
        return q.end.replace(year=q.end.year - n)  # quarter ends exist in every year

    return pl.DataFrame({
        "qi": [q.index for q in rows],
        "quarter": [str(q) for q in rows],
        "quarter_end": [q.end for q in rows],
        "two_years_before": [years_before(q, 2) for q in rows],
        "three_years_before": [years_before(q, 3) for q in rows],
        "year": [q.year for q in rows],
        "py_year": [q.year if q.q == 4 else q.year - 1 for q in rows],
    }, schema={"qi": pl.Int32, "quarter": pl.Utf8, "quarter_end": pl.Date,
               "two_years_before": pl.Date, "three_years_before": pl.Date,
               "year": pl.Int32, "py_year": pl.Int32})


# ── enterprise features ───────────────────────────────────────────────────────────────────

def age_years() -> pl.Expr:
    """Years from founding to the quarter's end (年)."""
    days = (pl.col("quarter_end") - pl.col("founded_on")).dt.total_days()
    return (days / DAYS_PER_YEAR).alias("age_years")


def chain_leader_since() -> pl.Expr:
    """Earliest founding date of a 链主 in the firm's district and (non-null) chain layer (internal)."""
    leader_founded = pl.when(pl.col("chain_leader").fill_null(False)).then(
        pl.col("founded_on").fill_null(dt.date(1900, 1, 1)))
    same_chain = pl.col("district").is_not_null() & pl.col("chain_layer").is_not_null()
    return pl.when(same_chain).then(
        leader_founded.min().over("district", "chain_layer")).alias("chain_leader_since")


def chain_leader_tie() -> pl.Expr:
    """The firm is a 链主, or a 链主 founded by the quarter's end sits in the same district and
    the same non-null chain layer."""
    return (pl.col("chain_leader").fill_null(False)
            | (pl.col("chain_leader_since") <= pl.col("quarter_end")).fill_null(False)
            ).alias("chain_leader_tie")


def founded_by_quarter_end() -> pl.Expr:
    """The panel keeps a firm from the quarter it was founded in (or always, founding date unknown)."""
    return (pl.col("founded_on") <= pl.col("quarter_end")) | pl.col("founded_on").is_null()


# ── assembly ──────────────────────────────────────────────────────────────────────────────
# Firms are numbered fid = 0..n−1 in uscc order and panel quarters p = 0..W−1, so (firm, quarter)
# has the slot fid × W + p. The panel's rows are the slots of firms founded by then, in slot
# order (= sorted by uscc, quarter); every part is computed straight onto those rows, so the
# assembly needs no join on the big tables and no final sort.

def firm_table(tables: Mapping[str, Table]) -> pl.DataFrame:
    """Enterprises sorted by uscc with fid = their row number (a repeated uscc keeps its first
    row), in one chunk: their columns are gathered onto every panel row, and a gather from a
    frame in many chunks (one per parquet row group) took 7× as long at 1M firms."""
    return (typed_input(tables, "enterprises").sort("uscc", maintain_order=True)
            .filter(pl.col("uscc").is_first_distinct())
            .with_row_index("fid").with_columns(chain_leader_since()).collect().rechunk())


def panel_rows(firms: pl.DataFrame, calendar: pl.DataFrame) -> pl.DataFrame:
    """fid, slot, qpos (the quarter's position in the calendar) and the quarter's columns of
    every (firm, panel quarter) with the firm founded by the quarter's end, in slot order."""
    width = calendar.height
    slot = pl.int_range(firms.height * width, dtype=pl.Int64, eager=True)
    fid, qpos = (slot // width).cast(pl.UInt32), financials.as_row_index(slot % width)
    rows = pl.DataFrame({
        "fid": fid, "slot": slot, "qpos": qpos, "founded_on": firms["founded_on"].gather(fid),
        "quarter_end": calendar["quarter_end"].gather(qpos),
    }).filter(founded_by_quarter_end()).drop("founded_on")
    return rows.hstack(calendar.select("qi", "quarter", "py_year").gather(rows["qpos"]))


def numbered_at(positions: pl.Series, size: int, elsewhere: int | None = None) -> pl.Series:
    """A Series of `size` holding i at positions[i] and `elsewhere` (null if None) at every
    other position, as row numbers (numpy scatters far faster than Polars)."""
    numbers = np.full(size, -1 if elsewhere is None else elsewhere, dtype=np.int64)
    numbers[positions.to_numpy()] = np.arange(len(positions))
    numbered = pl.Series(numbers)
    if elsewhere is None:
        numbered = pl.select(pl.when(numbered >= 0).then(numbered)).to_series()
    return financials.as_row_index(numbered)


def row_of_slot(rows: pl.DataFrame, n_firms: int, width: int) -> pl.Series:
    """Panel row number of every slot fid × width + p (null where the firm was not yet founded)."""
    return numbered_at(rows["slot"], n_firms * width)


def place(features: pl.DataFrame, rows_of_slots: pl.Series, n_rows: int, calendar: pl.DataFrame,
          defaults: Mapping[str, object] | None = None) -> pl.DataFrame:
    """Lay per-(fid, qi) feature rows onto the panel rows; a panel row without one gets the
    column's default (null unless given)."""
    position = calendar.select("qi", pl.int_range(calendar.height, dtype=pl.Int64).alias("qpos"))
    located = features.join(position, on="qi", how="inner").select(
        pl.lit(rows_of_slots).gather(pl.col("fid").cast(pl.Int64) * calendar.height
                                     + pl.col("qpos")).alias("row"),
        pl.exclude("fid", "qi", "qpos"),
    ).filter(pl.col("row").is_not_null())  # e.g. an event dated before the firm's founding
    values = located.drop("row")
    # panel rows without a feature row read one extra row holding the defaults
    fallback = pl.DataFrame({c: [(defaults or {}).get(c)] for c in values.columns},
                            schema=values.schema)
    source = numbered_at(located["row"], n_rows, elsewhere=located.height)
    # one chunk, as for firm_table: the gather is the costly step
    return pl.concat([values, fallback], rechunk=True).select(pl.all().gather(source))


def firm_index(uscc: pl.Series, firm_ids: pl.DataFrame) -> pl.Series:
    """fid of each uscc (null for an unknown firm). Returns come grouped by firm, so each run
    of equal uscc is looked up once rather than every row."""
    runs = uscc.rle()
    heads = runs.struct.field("value").alias("uscc").to_frame()
    fid = heads.join(firm_ids, on="uscc", how="left", maintain_order="left")["fid"]
    run_of_row = np.repeat(np.arange(len(runs), dtype=np.uint32),
                           runs.struct.field("len").to_numpy())
    return fid.gather(financials.as_row_index(pl.Series(run_of_row)))


def period_index(period: pl.Series) -> pl.Series:
    """qi of each `YYYYQn` period, parsed once per distinct period."""
    distinct = period.unique().alias("period").to_frame().with_columns(
        financials.quarter_index(pl.col("period")).alias("qi"))
    # default=None is never taken (every period is among its own distinct ones); without a
    # default, replace_strict hands an empty input back as strings (as in tables._inline_coded)
    return period.replace_strict(distinct["period"], distinct["qi"], default=None,
                                 return_dtype=pl.Int32).alias("qi")


def filings_with_ids(tables: Mapping[str, Table], firm_ids: pl.DataFrame) -> pl.DataFrame:
    """The returns' columns plus fid (null for an unknown firm) and qi; the value columns are
    the input's own buffers, not copies."""
    filings = typed_input(tables, "filings").collect()
    return filings.drop("uscc", "period").with_columns(
        firm_index(filings["uscc"], firm_ids), period_index(filings["period"]))


def financial_columns(tables: Mapping[str, Table], firms: pl.DataFrame,
                      rows: pl.DataFrame, calendar: pl.DataFrame,
                      config: PanelConfig) -> pl.DataFrame:
    """FINANCIAL_FEATURES at the panel rows (flows, prior years, stocks, growth and ratios)."""
    money = financials.financial_features(
        filings_with_ids(tables, firms.select("uscc", "fid")), firms.height, rows["fid"],
        rows["qi"], calendar["qi"].to_list(), config.max_stock_age_quarters)
    founded_year = firms["founded_on"].dt.year().cast(pl.Int32).gather(rows["fid"])
    return (
        money.with_columns(founded_year.alias("founded_year"), rows["py_year"]).lazy()
        .with_columns(*financials.derived_financials())
        .select(FINANCIAL_FEATURES)
        .collect()
    )


class _Taken(Mapping):
    """A dict of tables seen through: each table is taken out of the dict when it is read, so it
    is let go as soon as its features are made (build_panel's `release`). A table read twice is
    an error, not an empty table."""

    def __init__(self, tables: dict[str, Table]) -> None:
        self._tables, self._taken = tables, set()

    def __getitem__(self, name: str) -> Table:
        if name in self._taken:
            raise RuntimeError(f"build_panel: table {name!r} read twice with release=True")
        self._taken.add(name)
        return self._tables.pop(name)

    def __iter__(self):
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)


def build_panel(tables: Mapping[str, Table], quarters: Sequence[Quarter],
                config: PanelConfig | None = None, release: bool = False) -> pl.DataFrame:
    """The point-in-time feature panel: one row per (uscc, quarter) for every enterprise founded
    by the quarter's end (any status), sorted by uscc then quarter; columns KEYS +
    PANEL_FEATURES (units and definitions in features/catalog.yaml).

    `tables` are the typed frames of docs/architecture.md (only `enterprises` is required;
    filings one row per (uscc, period)), eager or lazy: a LazyFrame (e.g. `pl.scan_parquet`)
    is read for the columns the panel needs only. A feature of quarter q reads only rows dated
    by q's end.

    With `release`, `tables` is a dict the panel's tables are taken out of as they are read, so
    that each goes once its features are made, not after the whole panel is built (at a
    province's size the returns and patents, 1.6 GB at 1M firms, sat beside the 4 GB panel).
    """
    config = config or PanelConfig()
    if release:
        tables = _Taken(tables)
    calendar = quarter_calendar(quarters)
    firms = firm_table(tables)
    n, firm_ids = firms.height, firms.select("uscc", "fid")
    rows = panel_rows(firms, calendar)

    # the returns' columns are built beside the other parts (Polars releases the GIL)
    with ThreadPoolExecutor(max_workers=1) as background:
        money = background.submit(financial_columns, tables, firms, rows, calendar, config)
        patents = ip.patent_features(
            typed_input(tables, "patents"), typed_input(tables, "patent_owners"), firm_ids.lazy(),
            n, calendar, config.lapsed_patents).select(
                pl.all().gather(financials.as_row_index(rows["slot"])))
        events, recognitions, investments = pl.collect_all([
            financing.financing_features(typed_input(tables, "financing"), firm_ids.lazy(),
                                         calendar, config.usd_cny),
            honors.honor_features(typed_input(tables, "honors"), firm_ids.lazy(), calendar,
                                  config.honor_default_validity_years),
            projects.project_features(typed_input(tables, "projects"), firm_ids.lazy(), calendar,
                                      config.prorate_completed_investment),
        ])
        firm_columns = firms.drop("fid").select(pl.all().gather(rows["fid"]))
        slots = row_of_slot(rows, n, calendar.height)
        parts = [
            rows.select("quarter", "quarter_end"), firm_columns, money.result(), patents,
            place(events, slots, rows.height, calendar, financing.DEFAULTS),
            place(recognitions, slots, rows.height, calendar, honors.DEFAULTS),
            place(investments, slots, rows.height, calendar, projects.DEFAULTS),
        ]
    return (
        pl.concat(parts, how="horizontal").lazy()
        .with_columns(projects.project_intensity(), age_years(), chain_leader_tie())
        .select(*KEYS, *PANEL_FEATURES)
        .collect()
    )


def financial_panel(tables: Mapping[str, Table], quarters: Sequence[Quarter],
                    config: PanelConfig | None = None) -> pl.DataFrame:
    """uscc, quarter and FINANCIAL_FEATURES: the panel's rows and its financial columns only,
    read from the enterprises and the returns (what bench/pandas_panel.py computes), by the
    same code as build_panel."""
    config = config or PanelConfig()
    calendar = quarter_calendar(quarters)
    firms = firm_table(tables)
    rows = panel_rows(firms, calendar)
    return pl.concat([
        firms.select(pl.col("uscc").gather(rows["fid"])), rows.select("quarter"),
        financial_columns(tables, firms, rows, calendar, config),
    ], how="horizontal")
