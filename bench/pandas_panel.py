"""A straightforward pandas version of the panel's financial features, written the way a data
analyst would (groupby-shift, merges of shifted copies, merge_asof), as the benchmark's baseline
and as an independent second implementation to check `features.financials` against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_contracts.periods import Quarter

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
