"""Honor features (资质荣誉): which recognitions a firm holds at the quarter's end, and how long ago
it was last recognised at each.

Each recognition is paired with every panel quarter whose end is on or after `recognized_on`, so
a feature of quarter q reads only recognitions dated by q's end. Held = recognised by q's end and
`valid_until` on or after q's end. Where `valid_until` is missing, a title with a statutory term
(`data_contracts.honors.TITLE_TERM_YEARS`: 创新型 and 科技和创新型, 专精特新, 小巨人, 高企 — 3 years) is
held for that term; any other is held indefinitely unless `PanelConfig.honor_default_validity_years`
sets a term. 科技和创新型中小企业 also counts as innovative_sme (`data_contracts.honors.TIER_TITLES`).
"""

from __future__ import annotations

import polars as pl

from data_contracts.honors import TIER_TITLES, TITLE_TERM_YEARS, honor_key_expr

# The honor keys of docs/architecture.md, in the order of the panel's columns.
HONOR_FEATURE_KEYS = (
    "high_tech_enterprise", "tech_sme", "innovative_sme", "tech_innovative_sme", "specialised_sme",
    "little_giant", "single_champion", "eaglet", "gazelle", "quasi_unicorn", "unicorn",
    "rd_institution_provincial",
)
DAYS_PER_YEAR = 365.25


def honor_key() -> pl.Expr:
    """The honor key of the 资质名称 (`data_contracts.honors.honor_key_expr`: the one reading of honor
    names that the contracts, the labels and the panel share)."""
    return honor_key_expr(pl.col("honor")).alias("key")


def statutory_valid_until() -> pl.Expr:
    """The end of the title's statutory term (`TITLE_TERM_YEARS`: the same day that many years
    after recognition); null for a title without one."""
    years = pl.col("key").replace_strict(TITLE_TERM_YEARS, default=None, return_dtype=pl.Int32)
    return pl.col("recognized_on").dt.offset_by(pl.format("{}y", years))


def held_at_quarter_end(default_validity_years: float | None) -> pl.Expr:
    """Recognised by the quarter's end and still valid then (valid_until ≥ quarter_end); without
    valid_until, the title's statutory term, else `default_validity_years`, else held."""
    valid_until = pl.col("valid_until").fill_null(statutory_valid_until())
    if default_validity_years is not None:
        days = round(default_validity_years * DAYS_PER_YEAR)
        valid_until = valid_until.fill_null(pl.col("recognized_on") + pl.duration(days=days))
    return ((pl.col("recognized_on") <= pl.col("quarter_end"))
            & (valid_until >= pl.col("quarter_end")).fill_null(True)).alias("held")


def _is(key: str) -> pl.Expr:
    """The recognition is of this honor, or of a title that counts as it (`TIER_TITLES`: 科技和创新型
    中小企业 counts as innovative_sme)."""
    return pl.col("key").is_in(TIER_TITLES.get(key, (key,)))


def holds(key: str) -> pl.Expr:
    """holds_<key>: the firm holds a valid recognition of this honor at the quarter's end."""
    return (_is(key) & pl.col("held")).any().alias(f"holds_{key}")


def last_recognized(key: str) -> pl.Expr:
    """Date of the latest recognition of this honor on or before the quarter's end (internal)."""
    return pl.col("recognized_on").filter(_is(key)).max().alias(f"last_{key}")


DEFAULTS = {f"holds_{k}": False for k in HONOR_FEATURE_KEYS}


def years_since(key: str) -> pl.Expr:
    """years_since_<key>: years from the latest recognition to the quarter's end; null if never."""
    days = (pl.col("quarter_end") - pl.col(f"last_{key}")).dt.total_days()
    return (days / DAYS_PER_YEAR).alias(f"years_since_{key}")


HONOR_FEATURES = tuple(
    name for key in HONOR_FEATURE_KEYS for name in (f"holds_{key}", f"years_since_{key}"))


def honor_features(honors: pl.LazyFrame, firm_ids: pl.LazyFrame, calendar: pl.DataFrame,
                   default_validity_years: float | None) -> pl.LazyFrame:
    """Per (fid, qi) with a recognition dated by the quarter's end: holds_<key> and
    years_since_<key>. Honor names that map to no key are ignored."""
    recognitions = (
        honors.select("uscc", "honor", "recognized_on", "valid_until")
        .join(firm_ids, on="uscc", how="inner")
        .with_columns(honor_key())
        .filter(pl.col("key").is_not_null()
                & (pl.col("recognized_on") <= calendar["quarter_end"].max()))
    )
    return (
        recognitions.join(calendar.lazy().select("qi", "quarter_end"), how="cross")
        .filter(pl.col("recognized_on") <= pl.col("quarter_end"))
        .with_columns(held_at_quarter_end(default_validity_years))
        .group_by("fid", "qi")
        .agg(pl.col("quarter_end").first(), *[holds(k) for k in HONOR_FEATURE_KEYS],
             *[last_recognized(k) for k in HONOR_FEATURE_KEYS])
        .select("fid", "qi", *[e for k in HONOR_FEATURE_KEYS
                               for e in (pl.col(f"holds_{k}"), years_since(k))])
    )
