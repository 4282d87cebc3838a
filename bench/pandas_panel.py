"""A straightforward pandas version of the feature panel, written the way a data analyst would
(groupby, merges of shifted copies, merge_asof, a loop over the panel's quarters for the dated
events), as the benchmark's baseline and as an independent second implementation to check
`features.panel.build_panel` against. It follows the definitions of features/catalog.yaml and
takes only constants, the configuration and the column names from features/.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from data_contracts.honors import (
    HONOR_KEYS,
    HONOR_NAME_NOISE,
    HONOR_NAME_NOTES,
    TIER_TITLES,
    TITLE_TERM_YEARS,
)
from data_contracts.periods import Quarter
from features.financing import USD
from features.honors import HONOR_FEATURE_KEYS
from features.ip import DESIGN, DESIGN_TERM_15Y_FROM, INVENTION, LAPSED, PATENT_FEATURES, UTILITY
from features.panel import (
    DAYS_PER_YEAR,
    ENTERPRISE_FEATURES,
    FINANCIAL_FEATURES,
    KEYS,
    PANEL_FEATURES,
    PROJECT_FEATURES,
    PanelConfig,
)

FLOWS = ["revenue", "main_revenue", "profit", "net_profit", "rd_expense"]
ANNUAL = ["revenue", "main_revenue", "rd_expense", "net_profit", "profit"]


def _div(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a / b).where(b > 0)


def _spine(enterprises: pd.DataFrame, quarters: list[Quarter]) -> pd.DataFrame:
    cal = pd.DataFrame({
        "qi": [q.index for q in quarters],
        "quarter": [str(q) for q in quarters],
        "quarter_end": pd.to_datetime([q.end for q in quarters]),
        "py_year": [q.year if q.q == 4 else q.year - 1 for q in quarters],
    })
    firms = enterprises[["uscc", "founded_on"]].copy()
    firms["founded_on"] = pd.to_datetime(firms["founded_on"])
    spine = firms.merge(cal, how="cross")
    spine = spine[spine["founded_on"].isna() | (spine["founded_on"] <= spine["quarter_end"])]
    spine["founded_year"] = spine["founded_on"].dt.year
    return spine.drop(columns=["founded_on"])


def _quarterly(f: pd.DataFrame) -> pd.DataFrame:
    """Single-quarter flows from YTD, then trailing sums over four consecutive quarters."""
    g = f.groupby("uscc", sort=False)
    qi_back = {k: g["qi"].shift(k) for k in (1, 3, 4)}
    for n in FLOWS:
        prev = g[f"{n}_ytd"].shift(1)
        f[f"{n}_q"] = np.where(f["q"] == 1, f[f"{n}_ytd"],
                               np.where(qi_back[1] == f["qi"] - 1, f[f"{n}_ytd"] - prev, np.nan))
    g = f.groupby("uscc", sort=False)
    four_in_a_row = qi_back[3] == f["qi"] - 3          # rows are unique per (uscc, quarter)
    out = f[["uscc", "qi"]].copy()
    for n in FLOWS:
        flow = g[f"{n}_q"]
        total = f[f"{n}_q"] + flow.shift(1) + flow.shift(2) + flow.shift(3)
        out[f"{n}_ttm"] = total.where(four_in_a_row)
    out["revenue_ttm_prev"] = out.groupby("uscc", sort=False)["revenue_ttm"].shift(4).where(
        qi_back[4] == f["qi"] - 4)
    return out


def _annual(f: pd.DataFrame) -> pd.DataFrame:
    q4 = f[f["q"] == 4][["uscc", "year", *[f"{n}_ytd" for n in ANNUAL],
                         "total_assets", "total_liabilities"]]
    q4 = q4.rename(columns={f"{n}_ytd": n for n in ANNUAL})
    py = q4.rename(columns={**{n: f"{n}_py" for n in ANNUAL}, "year": "py_year",
                            "total_assets": "total_assets_ye",
                            "total_liabilities": "total_liabilities_ye"})
    for lag, suffix in ((1, "_py2"), (2, "_py3")):
        back = q4[["uscc", "year", *ANNUAL]].rename(columns={n: f"{n}{suffix}" for n in ANNUAL})
        back["py_year"] = back.pop("year") + lag
        py = py.merge(back, on=["uscc", "py_year"], how="outer")
    return py


def _latest_stocks(f: pd.DataFrame, spine: pd.DataFrame, max_age: int) -> pd.DataFrame:
    stocks = f[["uscc", "qi", "total_assets", "total_liabilities", "employees", "rd_staff"]]
    left = spine[["uscc", "qi"]].sort_values("qi")
    return pd.merge_asof(left, stocks.sort_values("qi"), on="qi", by="uscc",
                         direction="backward", tolerance=max_age)


def pandas_financial_panel(enterprises: pd.DataFrame, filings: pd.DataFrame,
                           quarters: list[Quarter], max_stock_age: int = 3) -> pd.DataFrame:
    """Financial features per (uscc, quarter), same names and meaning as features.panel."""
    f = filings[["uscc", "period", *[f"{n}_ytd" for n in FLOWS], "total_assets",
                 "total_liabilities", "employees", "rd_staff"]].copy()
    f["year"] = f["period"].str[:4].astype(int)
    f["q"] = f["period"].str[5].astype(int)
    f["qi"] = f["year"] * 4 + f["q"] - 1
    f = f[f["qi"] <= max(q.index for q in quarters)].sort_values(["uscc", "qi"])

    spine = _spine(enterprises, quarters)
    out = (spine.merge(_quarterly(f), on=["uscc", "qi"], how="left")
           .merge(_annual(f), on=["uscc", "py_year"], how="left")
           .merge(_latest_stocks(f, spine, max_stock_age), on=["uscc", "qi"], how="left"))

    def growth(a, b):
        return _div(out[a], out[b]) - 1

    out["revenue_growth_yoy"] = growth("revenue_ttm", "revenue_ttm_prev")
    out["main_revenue_growth_py"] = growth("main_revenue_py", "main_revenue_py2")
    out["main_revenue_growth_2y_avg"] = (out["main_revenue_growth_py"]
                                         + growth("main_revenue_py2", "main_revenue_py3")) / 2
    ok = (out["revenue_py3"] > 0) & (out["revenue_py"] >= 0)
    out["revenue_cagr_3y"] = ((out["revenue_py"] / out["revenue_py3"]) ** 0.5 - 1).where(ok)
    out["net_profit_growth_py"] = growth("net_profit_py", "net_profit_py2")
    out["rd_intensity_py"] = _div(out["rd_expense_py"], out["revenue_py"])
    out["rd_intensity_py2"] = _div(out["rd_expense_py2"], out["revenue_py2"])
    needs2 = ~(out["founded_year"] > out["py_year"] - 1)   # NaN founding year → needs all
    needs3 = ~(out["founded_year"] > out["py_year"] - 2)
    rd = (out["rd_expense_py"] + out["rd_expense_py2"].where(needs2, 0.0)
          + out["rd_expense_py3"].where(needs3, 0.0))
    rev = (out["revenue_py"] + out["revenue_py2"].where(needs2, 0.0)
           + out["revenue_py3"].where(needs3, 0.0))
    out["rd_intensity_3y"] = _div(rd, rev)
    out["rd_staff_share"] = _div(out["rd_staff"], out["employees"])
    out["debt_ratio"] = _div(out["total_liabilities"], out["total_assets"])
    out["debt_ratio_py"] = _div(out["total_liabilities_ye"], out["total_assets_ye"])
    out["net_margin_py"] = _div(out["net_profit_py"], out["revenue_py"])
    out["main_business_share_py"] = _div(out["main_revenue_py"], out["revenue_py"])
    return out.sort_values(["uscc", "qi"]).reset_index(drop=True)


# ── the whole panel ───────────────────────────────────────────────────────────────────────

# What pandas_panel reads of each table (the benchmark reads only these columns).
PANEL_INPUTS: dict[str, list[str]] = {
    "enterprises": ["uscc", "name", "founded_on", "industry_code", "district", "status",
                    "chain_layer", "chain_leader"],
    "filings": ["uscc", "period", *[f"{n}_ytd" for n in FLOWS], "total_assets",
                "total_liabilities", "employees", "rd_staff"],
    "patents": ["application_no", "patent_type", "filed_on", "granted_on", "legal_status"],
    "patent_owners": ["application_no", "uscc"],
    "financing": ["uscc", "financed_on", "amount", "currency", "post_money"],
    "honors": ["uscc", "honor", "recognized_on", "valid_until"],
    "projects": ["uscc", "year", "planned_year", "completed_year"],
}
DATES = ("founded_on", "filed_on", "granted_on", "financed_on", "recognized_on", "valid_until")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its date columns as datetime64 (parquet dates arrive as Python objects)."""
    return frame.assign(**{c: pd.to_datetime(frame[c]) for c in DATES if c in frame.columns})


def _calendar(quarters: list[Quarter]) -> pd.DataFrame:
    rows = sorted(set(quarters))
    ends = [q.end for q in rows]
    return pd.DataFrame({
        "qi": [q.index for q in rows],
        "q": [q.q for q in rows],
        "year": [q.year for q in rows],
        "quarter_end": pd.to_datetime(ends),
        "two_years_before": pd.to_datetime([e.replace(year=e.year - 2) for e in ends]),
        "three_years_before": pd.to_datetime([e.replace(year=e.year - 3) for e in ends]),
    })


def _per_quarter(calendar: pd.DataFrame, features: Callable[[object], pd.DataFrame]
                 ) -> pd.DataFrame:
    """features(quarter) — a frame indexed by uscc — for every panel quarter, stacked with qi."""
    parts = [features(q).assign(qi=q.qi) for q in calendar.itertuples()]
    return pd.concat(parts).rename_axis("uscc").reset_index()


def _enterprise_columns(firms: pd.DataFrame, panel: pd.DataFrame) -> pd.DataFrame:
    """The registry's current values, the firm's age and its tie to a 链主 in the same district
    and (non-null) chain layer founded by the quarter's end (unknown founding: always)."""
    leader = firms["chain_leader"].fillna(False).astype(bool)
    leaders = firms[leader & firms["district"].notna() & firms["chain_layer"].notna()]
    since = (leaders["founded_on"].fillna(pd.Timestamp("1900-01-01"))
             .groupby([leaders["district"], leaders["chain_layer"]]).min()
             .rename("leader_since").reset_index())
    firms = firms.assign(is_leader=leader).merge(since, on=["district", "chain_layer"], how="left")
    out = panel[["uscc", "quarter_end"]].merge(firms, on="uscc", how="left")
    out["age_years"] = (out["quarter_end"] - out["founded_on"]).dt.days / DAYS_PER_YEAR
    out["chain_leader_tie"] = out["is_leader"] | (out["leader_since"] <= out["quarter_end"])
    return out[[*ENTERPRISE_FEATURES, "chain_leader_tie"]]


def _patent_counts(patents: pd.DataFrame, owners: pd.DataFrame, firms: pd.DataFrame,
                   calendar: pd.DataFrame, lapsed: str) -> pd.DataFrame:
    """Per (uscc, qi): the patent counts; a co-owned patent counts for each owner."""
    links = (owners[["application_no", "uscc"]].drop_duplicates()
             .merge(firms[["uscc"]], on="uscc")
             .merge(patents, on="application_no"))
    links = links[links["filed_on"].notna()].reset_index(drop=True)
    kind, filed, granted = links["patent_type"], links["filed_on"], links["granted_on"]
    term = pd.Series(np.where(kind == INVENTION, 20, np.where(
        (kind == DESIGN) & (filed >= pd.Timestamp(DESIGN_TERM_15Y_FROM)), 15, 10)))
    in_force = granted.notna()
    if lapsed == "never_valid":
        in_force &= links["legal_status"] != LAPSED

    def counts(q) -> pd.DataFrame:
        end, two_years = q.quarter_end, q.two_years_before
        by_end = filed <= end
        recent = by_end & (filed > two_years)
        # in term at the quarter's end ⇔ filed after the quarter's end less the term
        term_start = term.map({n: end - pd.DateOffset(years=n) for n in (10, 15, 20)})
        valid = in_force & by_end & (granted <= end) & (filed > term_start)
        flags = pd.DataFrame({
            "invention_granted_valid": valid & (kind == INVENTION),
            "utility_valid": valid & (kind == UTILITY),
            "design_valid": valid & (kind == DESIGN),
            "patents_filed_2y": recent,
            "invention_filed_2y": recent & (kind == INVENTION),
            "patents_total": by_end,
            "ip_class_2": valid & kind.isin([UTILITY, DESIGN]) & (granted < two_years),
        })
        return flags.groupby(links["uscc"]).sum()

    out = _per_quarter(calendar, counts)
    out["ip_class_1"] = out["invention_granted_valid"]
    return out


def _financing(financing: pd.DataFrame, firms: pd.DataFrame, calendar: pd.DataFrame,
               usd_cny: float) -> pd.DataFrame:
    """Per (uscc, qi) with an event by the quarter's end: sums, counts, the latest valuation."""
    events = financing.merge(firms[["uscc"]], on="uscc")
    usd = events["currency"].isin(USD)
    events["amount_rmb"] = np.where(usd, events["amount"] * usd_cny, events["amount"])
    events["post_money_last_yi"] = events["post_money"] * np.where(usd, usd_cny, 1.0) / 1e4
    events["post_money_last_usd_yi"] = events["post_money"] * np.where(usd, 1.0, 1 / usd_cny) / 1e4
    # the latest event stating a valuation; on the same day the higher valuation
    events = events.sort_values(["financed_on", "post_money_last_yi"], na_position="first")

    def summary(q) -> pd.DataFrame:
        e = events[events["financed_on"] <= q.quarter_end]
        in_2y, in_3y = e["financed_on"] > q.two_years_before, e["financed_on"] > q.three_years_before
        sums = pd.DataFrame({
            "equity_raised_2y": e["amount_rmb"].where(in_2y),
            "equity_raised_3y": e["amount_rmb"].where(in_3y),
            "financing_undisclosed_2y": e["amount"].isna() & in_2y,
        }).groupby(e["uscc"]).sum()
        g = e.groupby("uscc")
        last = g["financed_on"].max()
        valued = e[e["post_money"].notna()].groupby("uscc")
        months = ((q.quarter_end.year - last.dt.year) * 12
                  + q.quarter_end.month - last.dt.month)
        return sums.assign(
            post_money_last_yi=valued["post_money_last_yi"].last(),
            post_money_last_usd_yi=valued["post_money_last_usd_yi"].last(),
            financing_rounds=g.size(), months_since_last_round=months)

    return _per_quarter(calendar, summary)


def _honor_status(honors: pd.DataFrame, firms: pd.DataFrame, calendar: pd.DataFrame,
                  default_years: float | None) -> pd.DataFrame:
    """Per (uscc, qi) with a recognition by the quarter's end: holds_<key>, years_since_<key>."""
    names = HONOR_KEYS | {k: k for k in HONOR_FEATURE_KEYS}
    h = honors.merge(firms[["uscc"]], on="uscc")
    cleaned = h["honor"].str.replace(HONOR_NAME_NOISE, "", regex=True)
    for note in HONOR_NAME_NOTES:
        cleaned = cleaned.str.replace(note, "", regex=True)
    h["key"] = cleaned.map(names)
    h = h[h["key"].notna() & h["recognized_on"].notna()].copy()
    for key, years in TITLE_TERM_YEARS.items():   # a statutory term where valid_until is missing
        blank = (h["key"] == key) & h["valid_until"].isna()
        h.loc[blank, "valid_until"] = h.loc[blank, "recognized_on"] + pd.DateOffset(years=years)
    if default_years is not None:
        term = pd.Timedelta(days=round(default_years * DAYS_PER_YEAR))
        h = h.assign(valid_until=h["valid_until"].fillna(h["recognized_on"] + term))

    def status(q) -> pd.DataFrame:
        e = h[h["recognized_on"] <= q.quarter_end]
        held = e["valid_until"].isna() | (e["valid_until"] >= q.quarter_end)
        by_key = [e["uscc"], e["key"]]
        holds = held.groupby(by_key).any().unstack(fill_value=False).reindex(
            columns=HONOR_FEATURE_KEYS, fill_value=False)
        days = (q.quarter_end - e["recognized_on"]).dt.days     # the latest: the fewest days
        years = (days.groupby(by_key).min().unstack() / DAYS_PER_YEAR).reindex(columns=HONOR_FEATURE_KEYS)
        for tier, titles in TIER_TITLES.items():   # a title that counts as the tier
            holds[tier] = holds[list(titles)].any(axis=1)
            years[tier] = years[list(titles)].min(axis=1)
        return pd.concat([
            holds.add_prefix("holds_"),
            years.add_prefix("years_since_"),
        ], axis=1)

    return _per_quarter(calendar, status)


def _project_investment(projects: pd.DataFrame, firms: pd.DataFrame, calendar: pd.DataFrame,
                        prorate: bool) -> pd.DataFrame:
    """Per (uscc, qi) with a key project in the quarter's year: planned and completed (亿元)."""
    p = projects.merge(firms[["uscc"]], on="uscc").dropna(subset=["year"])
    g = p.groupby(["uscc", p["year"].astype(int)])
    yearly = pd.DataFrame({
        "project_planned_year_yi": g["planned_year"].sum(),
        "project_completed_year_yi": g["completed_year"].sum(min_count=1),  # none reported: null
    }).reset_index()
    out = yearly.merge(calendar[["qi", "q", "year"]], on="year")
    if prorate:
        out["project_completed_year_yi"] *= out["q"] / 4
    return out.drop(columns=["year", "q"])


def _placed(keys: pd.DataFrame, part: pd.DataFrame, defaults: dict[str, object]) -> pd.DataFrame:
    """part's columns on the panel's rows (uscc, qi); rows without a row of part get the
    defaults (a null within part stays null)."""
    placed = keys.merge(part, on=["uscc", "qi"], how="left", indicator=True)
    absent = placed.pop("_merge") == "left_only"
    for column, default in defaults.items():
        placed[column] = placed[column].mask(absent, default).astype(part[column].dtype)
    return placed.drop(columns=["uscc", "qi"])


def pandas_panel(tables: dict[str, pd.DataFrame], quarters: list[Quarter],
                 config: PanelConfig | None = None) -> pd.DataFrame:
    """uscc, quarter, quarter_end and every panel feature per (uscc, quarter) for each firm
    founded by the quarter's end, same names and meaning as features.panel.build_panel.
    `tables`: the typed tables with at least the columns of PANEL_INPUTS."""
    config = config or PanelConfig()
    t = {name: _typed(tables[name][columns]) for name, columns in PANEL_INPUTS.items()}
    firms = t["enterprises"].drop_duplicates("uscc")    # a repeated uscc keeps its first row
    calendar = _calendar(quarters)
    money = pandas_financial_panel(firms, t["filings"], quarters, config.max_stock_age_quarters)
    keys = money[["uscc", "qi"]]
    zero_honors = {f"holds_{k}": False for k in HONOR_FEATURE_KEYS}
    zero_financing = {"equity_raised_2y": 0.0, "equity_raised_3y": 0.0,
                      "financing_undisclosed_2y": 0, "financing_rounds": 0}
    panel = pd.concat([
        money[["uscc", "quarter", "quarter_end", *FINANCIAL_FEATURES]],
        _enterprise_columns(firms, money),
        _placed(keys, _patent_counts(t["patents"], t["patent_owners"], firms, calendar,
                                     config.lapsed_patents), dict.fromkeys(PATENT_FEATURES, 0)),
        _placed(keys, _financing(t["financing"], firms, calendar, config.usd_cny),
                zero_financing),
        _placed(keys, _honor_status(t["honors"], firms, calendar,
                                    config.honor_default_validity_years), zero_honors),
        _placed(keys, _project_investment(t["projects"], firms, calendar,
                                          config.prorate_completed_investment),
                dict.fromkeys(PROJECT_FEATURES[:2], 0.0)),
    ], axis=1)
    revenue = panel["revenue_ttm"]
    panel["project_intensity"] = (panel["project_planned_year_yi"] * 1e4 / revenue).where(
        revenue > 0)
    return panel[[*KEYS, *PANEL_FEATURES]]
