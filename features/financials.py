"""Financial features from the quarterly returns (财务快报).

Returns are year-to-date, so flows are first de-cumulated into single quarters, then summed over
the trailing four quarters (`_ttm`); prior calendar years (`_py`, `_py2`, `_py3`) come from the
Q4 year-to-date figures; stocks (assets, staff) come from the latest return.

The returns are laid out on a dense grid, one row per (firm, quarter) from the first quarter any
panel row needs to the last panel quarter, row = fid × T + (qi − first_qi): `return_row` says
which return (row of the filings) fills each cell, null where none exists. "The same firm k
quarters earlier" is then simply k rows up: de-cumulation and trailing sums are arithmetic on
zero-copy slices of the grid, flow by flow (two at once), and the panel's values are filtered
(a fixed lag) or gathered (a prior year's end) from it at the panel's cells, so no join or sort
touches the big table. A panel row only ever reads grid rows at or before its own quarter and
after its firm's first grid quarter. Money in 万元, ratios and growth as fractions, null when
unknown (a missing quarter, a base ≤ 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

FLOWS = ("revenue", "main_revenue", "profit", "net_profit", "rd_expense")
STOCKS = ("total_assets", "total_liabilities", "employees", "rd_staff")
ANNUAL = ("revenue", "main_revenue", "rd_expense", "net_profit", "profit")
PY2 = ("revenue", "main_revenue", "rd_expense", "net_profit")  # net_profit_py2: growth base only
PY3 = ("revenue", "main_revenue", "rd_expense")
YEAR_END_STOCKS = ("total_assets", "total_liabilities")  # debt_ratio_py


# ── quarters and grid geometry ────────────────────────────────────────────────────────────

def quarter_index(period: pl.Expr) -> pl.Expr:
    """`YYYYQn` → quarters since year 0 (the same integer as `Quarter.index`)."""
    return period.str.slice(0, 4).cast(pl.Int32) * 4 + period.str.slice(5, 1).cast(pl.Int32) - 1


def as_row_index(rows: pl.Series) -> pl.Series:
    """Row numbers in Polars' own index type (UInt32 with polars-runtime-32), so that a gather
    reusing them across many columns does not convert and bounds-check them once per column
    (a strict cast: a number past the type's range raises)."""
    return rows.cast(pl.get_index_type())


def first_grid_quarter(panel_qis: Sequence[int], max_stock_age: int) -> int:
    """The earliest quarter any panel row reads: revenue_ttm a year earlier needs the return
    eight quarters back, py3 the Q4 three years before the quarter's prior year."""
    qmin = min(panel_qis)
    py_min = qmin // 4 if qmin % 4 == 3 else qmin // 4 - 1
    return min(qmin - 8, 4 * (py_min - 2) + 3, qmin - max_stock_age)


def returns_grid(filings: pl.DataFrame, n_firms: int, first_qi: int, last_qi: int) -> pl.DataFrame:
    """Dense grid of the returns: row fid × T + (qi − first_qi), T = last_qi − first_qi + 1,
    with `return_row` (the return's row in `filings`, null where the firm has no return for the
    quarter) and `starts_year` (the quarter is a Q1).

    `filings` has fid (null for an unknown firm) and qi, one row per (fid, qi) — a repeated
    (fid, qi) would keep only one of its rows; returns outside [first_qi, last_qi] are left out.
    """
    width = last_qi - first_qi + 1
    located = (
        filings.lazy().select("fid", "qi").with_row_index("return_row")
        .filter(pl.col("fid").is_not_null() & pl.col("qi").is_between(first_qi, last_qi))
        .select("return_row", (pl.col("fid").cast(pl.Int64) * width + pl.col("qi") - first_qi)
                .alias("cell"))
        .collect()
    )
    cells = np.full(n_firms * width, -1, dtype=np.int64)
    cells[located["cell"].to_numpy()] = located["return_row"].to_numpy()  # numpy: a fast scatter
    grid = pl.DataFrame({"return_row": cells})
    return grid.select(
        pl.when(pl.col("return_row") >= 0).then(pl.col("return_row"))
        .cast(pl.get_index_type()).alias("return_row"),   # as_row_index, in an expression
        ((pl.int_range(pl.len(), dtype=pl.Int64) % width + first_qi) % 4 == 0).alias("starts_year"),
    )


def panel_cells(fid: pl.Series, qi: pl.Series, first_qi: int, last_qi: int) -> pl.Series:
    """Grid row of each panel row (fid, qi); ascending, as the panel is sorted by (fid, qi)."""
    return fid.cast(pl.Int64) * (last_qi - first_qi + 1) + (qi.cast(pl.Int64) - first_qi)


def marked(cells: pl.Series, size: int) -> pl.Series:
    """`size` booleans, true at the given positions."""
    marks = np.zeros(size, dtype=bool)
    marks[cells.to_numpy()] = True
    return pl.Series(marks)


def prior_year_end_cells(cells: pl.Series, qi: pl.Series) -> pl.Series:
    """For each panel cell, the grid row of the Q4 of its prior year (itself for a Q4 row)."""
    return cells - (qi.cast(pl.Int64) + 1) % 4


# ── on the grid ───────────────────────────────────────────────────────────────────────────
# "k quarters earlier" is the grid read k rows up, done with zero-copy slices: a column computed
# from row `start` on is held as a Series whose position i is grid row start + i. Near a firm's
# first grid quarter a lagged read reaches into the previous firm's rows; no panel cell reads
# those rows, since the grid starts early enough for every feature (first_grid_quarter), so they
# are left as they fall rather than masked.

@dataclass(frozen=True)
class GridColumn:
    """A column of the grid from row `start` on (position i holds grid row start + i)."""

    values: pl.Series
    start: int = 0

    @property
    def stop(self) -> int:
        return self.start + len(self.values)

    def lag(self, quarters: int, start: int) -> pl.Series:
        """The value `quarters` rows up, for the grid rows from `start` on (zero-copy)."""
        return self.values.slice(start - quarters - self.start, max(self.stop - start, 0))

    def at(self, cells: pl.Series, quarters_back: int = 0) -> pl.Series:
        """The values `quarters_back` quarters before the given grid rows."""
        return self.values.gather(cells - (quarters_back + self.start))

    def at_panel(self, panel: pl.Series, quarters_back: int = 0) -> pl.Series:
        """The values `quarters_back` quarters before each panel cell, in panel order; `panel`
        marks the grid rows that are panel cells (a filter, cheaper than a gather)."""
        marks = panel.slice(quarters_back + self.start)
        return self.values.head(len(marks)).filter(marks)


def quarterly_flow(ytd: GridColumn, starts_year: pl.Series) -> GridColumn:
    """The quarter's own flow (万元): Q1 = YTD, Qn = YTD_n − YTD_{n−1}; null when Q_{n−1} is
    missing (from the grid's second row on)."""
    now, before = ytd.lag(0, 1), ytd.lag(1, 1)
    flow = pl.select(pl.when(starts_year.slice(1)).then(now).otherwise(now - before))
    return GridColumn(flow.to_series(), start=1)


def trailing_four_quarters(flow: GridColumn) -> GridColumn:
    """The quarter's flow plus the three before it (万元); null if any is missing (from the
    grid's fifth row on)."""
    start = flow.start + 3
    total = flow.lag(0, start) + flow.lag(1, start) + flow.lag(2, start) + flow.lag(3, start)
    return GridColumn(total, start=start)


# ── at the panel cells ────────────────────────────────────────────────────────────────────

def flow_features(grid: pl.DataFrame, filings: pl.DataFrame, name: str, py_cells: pl.Series
                  ) -> pl.DataFrame:
    """`<name>_ttm` and the prior years' `<name>_py`, `_py2`, `_py3` (those the panel has) at
    the panel cells; for revenue also revenue_ttm four quarters earlier (`revenue_ttm_prev`,
    the base of revenue_growth_yoy)."""
    ytd = GridColumn(filings[f"{name}_ytd"].gather(grid["return_row"]))
    ttm = trailing_four_quarters(quarterly_flow(ytd, grid["starts_year"]))
    features = [ttm.at_panel(grid["panel"]).alias(f"{name}_ttm")]
    if name == "revenue":
        features.append(ttm.at_panel(grid["panel"], 4).alias("revenue_ttm_prev"))
    for back, suffix, names in ((0, "py", ANNUAL), (4, "py2", PY2), (8, "py3", PY3)):
        if name in names:
            features.append(ytd.at(py_cells, back).alias(f"{name}_{suffix}"))
    return pl.DataFrame(features)


def stock_features(grid: pl.DataFrame, filings: pl.DataFrame, py_cells: pl.Series,
                   max_stock_age: int) -> pl.DataFrame:
    """Assets, liabilities and staff from the latest return ≤ the quarter (at most
    max_stock_age quarters old), and assets and liabilities at the prior year's end (its Q4
    return, `_ye`)."""
    return_row = grid["return_row"]
    latest = GridColumn(return_row.fill_null(strategy="forward", limit=max_stock_age))
    rows = pl.DataFrame([latest.at_panel(grid["panel"]).alias("latest"),
                         GridColumn(return_row).at(py_cells).alias("year_end")])
    return filings.select(
        *[pl.col(s).gather(rows["latest"]) for s in STOCKS],
        *[pl.col(s).gather(rows["year_end"]).alias(f"{s}_ye") for s in YEAR_END_STOCKS],
    )


# ── growth and ratios (on the panel) ──────────────────────────────────────────────────────

def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator ÷ denominator; null when the denominator is missing or ≤ 0."""
    return pl.when(denominator > 0).then(numerator / denominator)


def growth(current: pl.Expr, base: pl.Expr) -> pl.Expr:
    """current ÷ base − 1; null when the base is missing or ≤ 0."""
    return ratio(current, base) - 1


def cagr(current: pl.Expr, base: pl.Expr, years: int) -> pl.Expr:
    """Compound annual growth over `years` steps; null when the base is ≤ 0 or current < 0."""
    return pl.when((base > 0) & (current >= 0)).then((current / base) ** (1 / years) - 1)


def revenue_growth_yoy() -> pl.Expr:
    """Trailing-four-quarter revenue vs the same a year earlier, minus one (fraction)."""
    return growth(pl.col("revenue_ttm"), pl.col("revenue_ttm_prev")).alias("revenue_growth_yoy")


def main_revenue_growth_py() -> pl.Expr:
    """Prior-year main-business revenue growth (py vs py2, fraction)."""
    return growth(pl.col("main_revenue_py"), pl.col("main_revenue_py2")).alias(
        "main_revenue_growth_py")


def main_revenue_growth_2y_avg() -> pl.Expr:
    """Mean of the main-revenue growth py/py2 and py2/py3 (fraction); null if either is null."""
    g1 = growth(pl.col("main_revenue_py"), pl.col("main_revenue_py2"))
    g2 = growth(pl.col("main_revenue_py2"), pl.col("main_revenue_py3"))
    return ((g1 + g2) / 2).alias("main_revenue_growth_2y_avg")


def revenue_cagr_3y() -> pl.Expr:
    """Compound annual revenue growth from py3 to py (two annual steps, fraction)."""
    return cagr(pl.col("revenue_py"), pl.col("revenue_py3"), years=2).alias("revenue_cagr_3y")


def net_profit_growth_py() -> pl.Expr:
    """Prior-year net profit growth (py vs py2, fraction); null when py2 net profit ≤ 0."""
    return growth(pl.col("net_profit_py"), pl.col("net_profit_py2")).alias("net_profit_growth_py")


def rd_intensity_py() -> pl.Expr:
    """Prior-year R&D expense ÷ revenue (fraction)."""
    return ratio(pl.col("rd_expense_py"), pl.col("revenue_py")).alias("rd_intensity_py")


def rd_intensity_py2() -> pl.Expr:
    """R&D expense ÷ revenue of the year before the prior year (fraction)."""
    return ratio(pl.col("rd_expense_py2"), pl.col("revenue_py2")).alias("rd_intensity_py2")


def rd_intensity_3y() -> pl.Expr:
    """Three-year R&D ÷ three-year revenue (py..py3), counting only years from the founding year
    on (高企 rule: a firm younger than three years uses its actual years); null if a needed year
    is missing."""
    founded = pl.col("founded_year")
    needs_py2 = (founded <= pl.col("py_year") - 1).fill_null(True)
    needs_py3 = (founded <= pl.col("py_year") - 2).fill_null(True)

    def three_year_sum(name: str) -> pl.Expr:
        return (pl.col(f"{name}_py")
                + pl.when(needs_py2).then(pl.col(f"{name}_py2")).otherwise(0.0)
                + pl.when(needs_py3).then(pl.col(f"{name}_py3")).otherwise(0.0))

    return ratio(three_year_sum("rd_expense"), three_year_sum("revenue")).alias("rd_intensity_3y")


def rd_staff_share() -> pl.Expr:
    """R&D staff ÷ employees of the latest return (fraction)."""
    return ratio(pl.col("rd_staff"), pl.col("employees")).alias("rd_staff_share")


def debt_ratio() -> pl.Expr:
    """Liabilities ÷ assets of the latest return (fraction)."""
    return ratio(pl.col("total_liabilities"), pl.col("total_assets")).alias("debt_ratio")


def debt_ratio_py() -> pl.Expr:
    """Liabilities ÷ assets at the prior year's end (its Q4 return, fraction)."""
    return ratio(pl.col("total_liabilities_ye"), pl.col("total_assets_ye")).alias("debt_ratio_py")


def net_margin_py() -> pl.Expr:
    """Prior-year net profit ÷ revenue (fraction)."""
    return ratio(pl.col("net_profit_py"), pl.col("revenue_py")).alias("net_margin_py")


def main_business_share_py() -> pl.Expr:
    """Prior-year main-business revenue ÷ revenue (fraction)."""
    return ratio(pl.col("main_revenue_py"), pl.col("revenue_py")).alias("main_business_share_py")


def derived_financials() -> list[pl.Expr]:
    """Growth and ratio features, evaluated on the panel once flows, years and stocks are there."""
    return [
        revenue_growth_yoy(), main_revenue_growth_py(), main_revenue_growth_2y_avg(),
        revenue_cagr_3y(), net_profit_growth_py(), rd_intensity_py(), rd_intensity_py2(),
        rd_intensity_3y(), rd_staff_share(), debt_ratio(), debt_ratio_py(), net_margin_py(),
        main_business_share_py(),
    ]


def financial_features(filings: pl.DataFrame, n_firms: int, fid: pl.Series, qi: pl.Series,
                       panel_qis: Sequence[int], max_stock_age: int) -> pl.DataFrame:
    """Flows, prior years and stocks for the panel rows (fid, qi) given, in their order. Reads
    only returns with period ≤ the row's quarter. `filings`: fid, qi, `_ytd` flows, stocks."""
    first, last = first_grid_quarter(panel_qis, max_stock_age), max(panel_qis)
    cells = panel_cells(fid, qi, first, last)
    grid = returns_grid(filings, n_firms, first, last).with_columns(
        marked(cells, n_firms * (last - first + 1)).alias("panel"))
    py_cells = prior_year_end_cells(cells, qi)
    # two flows at a time (Polars releases the GIL), so that the grid holds only their columns
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(lambda name: flow_features(grid, filings, name, py_cells), FLOWS))
    parts.append(stock_features(grid, filings, py_cells, max_stock_age))
    return pl.concat(parts, how="horizontal")
