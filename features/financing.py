"""Financing features (融资): equity raised in recent windows, the last valuation, rounds.

Each event is paired with every panel quarter whose end is on or after its date, so a feature of
quarter q reads only events dated by q's end. Amounts are 万元 in the event's currency in the
typed table; US-dollar amounts are converted at `usd_cny` (PanelConfig). An undisclosed amount
(null) adds 0 to the sums and is counted in `financing_undisclosed_2y`. Windows are
(quarter_end − N years, quarter_end].
"""

from __future__ import annotations

import polars as pl

USD = ("美元", "USD", "usd", "美金")


def is_usd() -> pl.Expr:
    """The event is in US dollars (人民币 when the currency is missing)."""
    return pl.col("currency").is_in(USD).fill_null(False)


def amount_rmb(usd_cny: float) -> pl.Expr:
    """The amount raised in 万元 RMB (null when undisclosed)."""
    return (pl.when(is_usd()).then(pl.col("amount") * usd_cny)
            .otherwise(pl.col("amount")).alias("amount_rmb"))


def post_money_rmb_yi(usd_cny: float) -> pl.Expr:
    """Post-money valuation in 亿元 (post_money is 万 of the event's currency)."""
    scale = pl.when(is_usd()).then(pl.lit(usd_cny)).otherwise(pl.lit(1.0))
    return (pl.col("post_money") * scale / 1e4).alias("post_money_rmb_yi")


def post_money_usd_yi(usd_cny: float) -> pl.Expr:
    """Post-money valuation in 亿美元."""
    scale = pl.when(is_usd()).then(pl.lit(1.0)).otherwise(pl.lit(1 / usd_cny))
    return (pl.col("post_money") * scale / 1e4).alias("post_money_usd_yi")


def _in_last(years: int) -> pl.Expr:
    return pl.col("financed_on") > pl.col({2: "two_years_before", 3: "three_years_before"}[years])


def equity_raised_2y() -> pl.Expr:
    """Equity raised in the two years up to the quarter's end (万元 RMB; undisclosed = 0)."""
    return pl.col("amount_rmb").filter(_in_last(2)).sum().alias("equity_raised_2y")


def equity_raised_3y() -> pl.Expr:
    """Equity raised in the three years up to the quarter's end (万元 RMB; undisclosed = 0)."""
    return pl.col("amount_rmb").filter(_in_last(3)).sum().alias("equity_raised_3y")


def financing_undisclosed_2y() -> pl.Expr:
    """Events of the last two years whose amount is undisclosed (个)."""
    return (pl.col("amount").is_null() & _in_last(2)).sum().cast(pl.Int32).alias(
        "financing_undisclosed_2y")


def financing_rounds() -> pl.Expr:
    """Financing events dated by the quarter's end (个)."""
    return pl.len().cast(pl.Int32).alias("financing_rounds")


def _last_disclosed(column: str) -> pl.Expr:
    # rows arrive sorted by (financed_on, valuation): the last non-null is the latest event
    # stating a valuation, a same-day tie going to the higher valuation
    return pl.col(column).drop_nulls().last()


def post_money_last_yi() -> pl.Expr:
    """Post-money valuation of the latest event that states one (亿元)."""
    return _last_disclosed("post_money_rmb_yi").alias("post_money_last_yi")


def post_money_last_usd_yi() -> pl.Expr:
    """Post-money valuation of the latest event that states one (亿美元)."""
    return _last_disclosed("post_money_usd_yi").alias("post_money_last_usd_yi")


def months_since_last_round() -> pl.Expr:
    """Calendar months from the latest event's month to the quarter-end month (月)."""
    last, end = pl.col("financed_on").max(), pl.col("quarter_end").first()
    months = (end.dt.year() * 12 + end.dt.month()) - (last.dt.year() * 12 + last.dt.month())
    return months.cast(pl.Int32).alias("months_since_last_round")


FINANCING_FEATURES = (
    "equity_raised_2y", "equity_raised_3y", "financing_undisclosed_2y", "post_money_last_yi",
    "post_money_last_usd_yi", "financing_rounds", "months_since_last_round",
)
# A firm with no event by the quarter's end raised 0 in 0 rounds; valuation and months are null.
DEFAULTS = {"equity_raised_2y": 0.0, "equity_raised_3y": 0.0, "financing_undisclosed_2y": 0,
            "financing_rounds": 0}


def financing_features(financing: pl.LazyFrame, firm_ids: pl.LazyFrame, calendar: pl.DataFrame,
                       usd_cny: float) -> pl.LazyFrame:
    """Per (fid, qi) with at least one event dated by the quarter's end: the financing features.
    Events without a matched uscc cannot be attributed and are left out."""
    events = (
        financing.select("uscc", "financed_on", "amount", "currency", "post_money")
        .join(firm_ids, on="uscc", how="inner")
        .filter(pl.col("financed_on") <= calendar["quarter_end"].max())
        .with_columns(amount_rmb(usd_cny), post_money_rmb_yi(usd_cny), post_money_usd_yi(usd_cny))
    )
    return (
        events.join(calendar.lazy().select("qi", "quarter_end", "two_years_before",
                                           "three_years_before"), how="cross")
        .filter(pl.col("financed_on") <= pl.col("quarter_end"))
        .sort("financed_on", "post_money_rmb_yi", nulls_last=False)
        .group_by("fid", "qi")
        .agg(equity_raised_2y(), equity_raised_3y(), financing_undisclosed_2y(),
             post_money_last_yi(), post_money_last_usd_yi(), financing_rounds(),
             months_since_last_round())
    )
