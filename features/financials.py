"""Financial features from the quarterly returns (财务快报).

Returns are year-to-date, so flows are first de-cumulated into single quarters, then summed over
the trailing four quarters (`_ttm`); prior calendar years (`_py`, `_py2`, `_py3`) come from the
Q4 year-to-date figures; stocks (assets, staff) come from the latest return.

The returns are laid out on a dense grid, one row per (firm, quarter) from the first quarter any
panel row needs to the last panel quarter, row = fid × T + (qi − first_qi), null where no return
exists. "The same firm k quarters earlier" is then simply k rows up: de-cumulation and trailing
sums are shifts on the grid, and the panel's values are gathers from it at the panel's rows, so
no join or sort touches the big table. A panel row only ever reads grid rows at or before its
own quarter. Money in 万元, ratios and growth as fractions, null when unknown (a missing
quarter, a base ≤ 0).
"""

from __future__ import annotations

import polars as pl

FLOWS = ("revenue", "main_revenue", "profit", "net_profit", "rd_expense")
STOCKS = ("total_assets", "total_liabilities", "employees", "rd_staff")
ANNUAL = ("revenue", "main_revenue", "rd_expense", "net_profit", "profit")
PY2 = ("revenue", "main_revenue", "rd_expense", "net_profit")  # net_profit_py2: growth base only
PY3 = ("revenue", "main_revenue", "rd_expense")


# ── quarters and grid geometry ────────────────────────────────────────────────────────────

def quarter_index(period: pl.Expr) -> pl.Expr:
    """`YYYYQn` → quarters since year 0 (the same integer as `Quarter.index`)."""
    return period.str.slice(0, 4).cast(pl.Int32) * 4 + period.str.slice(5, 1).cast(pl.Int32) - 1


def first_grid_quarter(panel_qis: list[int], max_stock_age: int) -> int:
    """The earliest quarter any panel row reads: revenue_ttm a year earlier needs the return
    eight quarters back, py3 the Q4 three years before the quarter's prior year."""
    qmin = min(panel_qis)
    py_min = qmin // 4 if qmin % 4 == 3 else qmin // 4 - 1
    return min(qmin - 8, 4 * (py_min - 2) + 3, qmin - max_stock_age)


def returns_grid(filings: pl.DataFrame, n_firms: int, first_qi: int, last_qi: int) -> pl.DataFrame:
    """Dense grid of the returns: row fid × T + (qi − first_qi), T = last_qi − first_qi + 1,
    with the `_ytd` flows and `return_row` (the return's row in `filings`), null where the firm
    has no return for the quarter; plus qi and qpos (the quarter's position in the firm's block).

    `filings` has fid (null for an unknown firm), qi and the `_ytd` flows, one row per
    (fid, qi) — a repeated (fid, qi) would keep only one of its rows; returns outside
    [first_qi, last_qi] are left out.
    """
    width, size = last_qi - first_qi + 1, n_firms * (last_qi - first_qi + 1)
    inside = pl.col("fid").is_not_null() & pl.col("qi").is_between(first_qi, last_qi)
    # returns left out are written to one spare cell past the end, then cut off
    cells = filings.select(pl.when(inside).then(
        pl.col("fid").cast(pl.Int64) * width + pl.col("qi") - first_qi).otherwise(size)).to_series()

    def scattered(values: pl.Series) -> pl.Series:
        empty = pl.repeat(None, size + 1, dtype=values.dtype, eager=True)
        return empty.scatter(cells, values).head(size).alias(values.name)

    qpos = pl.int_range(size, dtype=pl.Int64, eager=True) % width
    return_row = pl.int_range(filings.height, dtype=pl.Int64, eager=True).alias("return_row")
    return pl.DataFrame([scattered(filings[f"{n}_ytd"]) for n in FLOWS]).with_columns(
        scattered(return_row),
        qpos.cast(pl.Int32).alias("qpos"),
        (qpos + first_qi).cast(pl.Int32).alias("qi"),
    )


# ── on the grid (whole-column shifts; rows near a firm's first quarter are masked) ────────

def quarterly_flow(name: str) -> pl.Expr:
    """`<name>_q`: the quarter's own flow (万元): Q1 = YTD, Qn = YTD_n − YTD_{n−1};
    null when Q_{n−1} is missing."""
    ytd = pl.col(f"{name}_ytd")
    return (
        pl.when(pl.col("qi") % 4 == 0).then(ytd)
        .when(pl.col("qpos") >= 1).then(ytd - ytd.shift(1))
        .alias(f"{name}_q")
    )


def trailing_four_quarters(name: str) -> pl.Expr:
    """`<name>_ttm`: the quarter's flow plus the three before it (万元); null if any is missing."""
    flow = pl.col(f"{name}_q")
    total = flow + flow.shift(1) + flow.shift(2) + flow.shift(3)
    return pl.when(pl.col("qpos") >= 3).then(total).alias(f"{name}_ttm")


def latest_return_row(max_age: int) -> pl.Expr:
    """`return_row` of the firm's latest return at most `max_age` quarters old (internal)."""
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    latest = (pl.when(pl.col("return_row").is_not_null()).then(row)
              .fill_null(strategy="forward", limit=max_age))
    same_firm = latest >= row - pl.col("qpos")
    return pl.col("return_row").gather(pl.when(same_firm).then(latest)).alias("latest_return_row")


# ── at the panel rows (gathers from the grid) ─────────────────────────────────────────────

def _at(column: str, rows: pl.Series, quarters_back: int = 0) -> pl.Expr:
    """`column` of the same firm `quarters_back` quarters before the given grid rows."""
    return pl.col(column).gather(pl.lit(rows) - quarters_back)


def revenue_ttm_year_before(rows: pl.Series) -> pl.Expr:
    """revenue_ttm four quarters earlier (万元), the base of revenue_growth_yoy (internal)."""
    return _at("revenue_ttm", rows, 4).alias("revenue_ttm_prev")


def prior_year_end_rows(grid: pl.DataFrame, rows: pl.Series) -> pl.Series:
    """For each panel row, the grid row of the Q4 of its prior year (itself for a Q4 row)."""
    return rows - (grid["qi"].gather(rows).cast(pl.Int64) + 1) % 4


def _from_return(values: pl.Series, return_rows: pl.Expr) -> pl.Expr:
    """A column of the returns table at the given return rows (null where there is none)."""
    return pl.lit(values).gather(return_rows).alias(values.name)


def prior_year_features(filings: pl.DataFrame, py_rows: pl.Series) -> list[pl.Expr]:
    """`_py` of every annual flow, `_py2`/`_py3` of revenue, main revenue, R&D (and net profit
    for py2), from the Q4 year-to-date returns; the prior year-end assets and liabilities (万元)."""
    exprs = [_at(f"{n}_ytd", py_rows).alias(f"{n}_py") for n in ANNUAL]
    exprs += [_at(f"{n}_ytd", py_rows, 4).alias(f"{n}_py2") for n in PY2]
    exprs += [_at(f"{n}_ytd", py_rows, 8).alias(f"{n}_py3") for n in PY3]
    year_end = _at("return_row", py_rows)
    exprs += [_from_return(filings[s], year_end).alias(f"{s}_ye")
              for s in ("total_assets", "total_liabilities")]
    return exprs


def latest_stocks(filings: pl.DataFrame, rows: pl.Series) -> list[pl.Expr]:
    """Assets, liabilities and staff from the latest return ≤ the quarter (at most
    max_stock_age quarters old)."""
    latest = _at("latest_return_row", rows)
    return [_from_return(filings[s], latest) for s in STOCKS]


def grid_features(grid: pl.DataFrame, filings: pl.DataFrame, rows: pl.Series,
                  max_stock_age: int) -> pl.DataFrame:
    """Flows, prior years and stocks at the given grid rows (one output row per entry)."""
    py_rows = prior_year_end_rows(grid, rows)
    return (
        grid.with_columns(*[quarterly_flow(n) for n in FLOWS], latest_return_row(max_stock_age))
        .with_columns(*[trailing_four_quarters(n) for n in FLOWS])
        .select(
            *[_at(f"{n}_ttm", rows).alias(f"{n}_ttm") for n in FLOWS],
            revenue_ttm_year_before(rows),
            *prior_year_features(filings, py_rows),
            *latest_stocks(filings, rows),
        )
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
                       panel_qis: list[int], max_stock_age: int) -> pl.DataFrame:
    """Flows, prior years and stocks for the panel rows (fid, qi) given, in their order. Reads
    only returns with period ≤ the row's quarter. `filings`: fid, qi, `_ytd` flows, stocks."""
    first, last = first_grid_quarter(panel_qis, max_stock_age), max(panel_qis)
    grid = returns_grid(filings, n_firms, first, last)
    rows = fid.cast(pl.Int64) * (last - first + 1) + (qi.cast(pl.Int64) - first)
    return grid_features(grid, filings, rows, max_stock_age)
