"""Benchmark: build_panel (Polars) vs a plain pandas implementation of the whole feature panel.

Generates simple synthetic typed tables itself (independent of pipelines/synth.py) for 10k, 100k
and 1M enterprises, 12 panel quarters (2022Q1–2024Q4) with returns from 2019Q1, and writes them
to parquet. Each measurement then runs in its own fresh process, starting from those files:

- polars: `build_panel` on parquet scans (it reads only the columns it needs), the full panel;
- pandas: `pd.read_parquet` of the columns `bench.pandas_panel.PANEL_INPUTS` names, then
  `pandas_panel`, the full panel (like for like with polars);
- polars fin: `financial_panel` on scans of the enterprises and returns — uscc, quarter and the
  financial features only;
- pandas fin: `pd.read_parquet` of the enterprises' and returns' columns, then
  `pandas_financial_panel` (like for like with polars fin).

It checks that pandas and Polars agree on every column of the full panel (KEYS +
PANEL_FEATURES) and prints both ratios. Times are wall seconds with the process's CPU seconds
(all threads, user + system) in brackets, since the machine is shared and wall time moves with
its load; memory is the peak RSS of each full-panel process by the end of its timed work.
With `--repeat N` each side runs in N fresh processes and the least time is reported.
`--scored-quarters` builds only the 9 quarters a scored run needs (the 8 with a complete
four-quarter outcome window, 2022Q1–2023Q4, and the scored quarter 2024Q4).

    .venv/bin/python bench/bench_features.py              # 10k, 100k, 1M
    .venv/bin/python bench/bench_features.py 10000 100000 # chosen sizes
    .venv/bin/python bench/bench_features.py --no-pandas --scored-quarters 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
from polars.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pandas_panel import PANEL_INPUTS, pandas_financial_panel, pandas_panel
from data_contracts.periods import Quarter, quarter_range
from features.panel import build_panel, financial_panel

PANEL_QUARTERS = quarter_range(Quarter(2022, 1), Quarter(2024, 4))
FIRST_FILING = Quarter(2019, 1)
DISTRICTS = ["环科园", "经开区", "宜城街道", "万石镇", "丁蜀镇", "和桥镇", "新街街道", "屺亭街道"]
LAYERS = [None, None, None, "基础支撑层", "技术产品层", "应用示范层"]
HONORS = ["高新技术企业", "科技型中小企业", "创新型中小企业", "专精特新中小企业", "专精特新小巨人",
          "雏鹰企业", "瞪羚企业", "准独角兽企业", "省级研发机构"]
EPOCH = dt.date(1970, 1, 1)


def _days(d: dt.date) -> int:
    return (d - EPOCH).days


def _dates(days: np.ndarray) -> pl.Series:
    return pl.Series(days.astype("int32")).cast(pl.Date)


def synthetic_tables(n: int, seed: int = 7) -> dict[str, pl.DataFrame]:
    """Typed tables of docs/architecture.md for n enterprises (random but plausible)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    uscc = "91320200" + pl.Series(ids).cast(pl.Utf8).str.zfill(10)
    founded = rng.integers(_days(dt.date(1995, 1, 1)), _days(dt.date(2024, 9, 30)), n)
    enterprises = pl.DataFrame({
        "uscc": uscc,
        "name": "企业" + pl.Series(ids).cast(pl.Utf8) + "有限公司",
        "founded_on": _dates(founded),
        "registered_capital": rng.gamma(2, 500, n),
        "industry_code": pl.Series(rng.choice(["C3963", "C3976", "I6513", "M7320"], n)),
        "district": pl.Series(rng.choice(DISTRICTS, n)),
        "status": pl.Series(rng.choice(["存续", "在业", "注销"], n, p=[0.7, 0.25, 0.05])),
        "chain_layer": pl.Series(LAYERS, dtype=pl.Utf8).gather(rng.integers(0, len(LAYERS), n)),
        "chain_leader": rng.random(n) < 0.002,
        "former_names": pl.Series([None] * n, dtype=pl.Utf8),
    })

    periods = quarter_range(FIRST_FILING, PANEL_QUARTERS[-1])
    t = len(periods)
    base = rng.lognormal(7, 1.2, n)[:, None]                     # quarterly revenue, 万元
    trend = np.cumprod(1 + rng.normal(0.02, 0.08, (n, t)), axis=1)
    rev_q = base * trend * rng.uniform(0.8, 1.2, (n, t))
    q_of = np.array([p.q for p in periods])

    def ytd(flow: np.ndarray) -> np.ndarray:
        out = np.empty_like(flow)
        for j in range(t):                                       # over 24 periods, not firms
            out[:, j] = flow[:, j] + (out[:, j - 1] if q_of[j] > 1 else 0)
        return out

    main_share = rng.uniform(0.4, 1.0, (n, 1))
    margin = rng.normal(0.06, 0.08, (n, t))
    rd_share = rng.uniform(0, 0.12, (n, 1))
    assets = base * rng.uniform(2, 8, (n, 1)) * trend
    staff = np.maximum(1, (base / 30 * rng.uniform(0.5, 2, (n, 1)) * trend)).astype(np.int64)
    qend = np.array([_days(p.end) for p in periods])
    keep = (qend[None, :] >= founded[:, None]) & (rng.random((n, t)) > 0.03)
    firm_idx, per_idx = np.nonzero(keep)

    def flat(a: np.ndarray) -> np.ndarray:
        return a[firm_idx, per_idx]

    filings = pl.DataFrame({
        "uscc": uscc.gather(firm_idx),
        "period": pl.Series([str(p) for p in periods]).gather(per_idx),
        "revenue_ytd": flat(ytd(rev_q)),
        "main_revenue_ytd": flat(ytd(rev_q * main_share)),
        "profit_ytd": flat(ytd(rev_q * (margin + 0.02))),
        "net_profit_ytd": flat(ytd(rev_q * margin)),
        "rd_expense_ytd": flat(ytd(rev_q * rd_share)),
        "total_assets": flat(assets),
        "total_liabilities": flat(assets * rng.uniform(0.1, 0.95, (n, 1))),
        "employees": flat(staff),
        "rd_staff": flat((staff * rd_share * 3).astype(np.int64)),
        "export_ytd": pl.Series([None] * len(firm_idx), dtype=pl.Float64),
        "drop_id": pl.Series(["2024Q4"] * len(firm_idx)),
    })
    del rev_q, trend, margin, assets, staff, keep

    m = int(n * 1.5)                                             # patents
    p_firm = rng.integers(0, n, m)
    kind = rng.choice(["发明", "实用新型", "外观设计"], m, p=[0.4, 0.45, 0.15])
    filed = rng.integers(_days(dt.date(2008, 1, 1)), _days(dt.date(2024, 12, 31)), m)
    granted = filed + rng.integers(120, 1200, m)
    has_grant = rng.random(m) < 0.75
    status = np.where(has_grant, np.where(rng.random(m) < 0.9, "有效", "失效"),
                      np.where(rng.random(m) < 0.7, "审中", "失效"))
    app_no = "2000" + pl.Series(np.arange(m)).cast(pl.Utf8).str.zfill(8) + ".X"
    patents = pl.DataFrame({
        "application_no": app_no, "title": pl.Series(["专利"] * m), "patent_type": kind,
        "filed_on": _dates(filed),
        "granted_on": _dates(granted).scatter(np.nonzero(~has_grant)[0], None),
        "legal_status": status, "applicants": pl.Series(["申请人"] * m),
        "ipc": pl.Series([None] * m, dtype=pl.Utf8),
    })
    second = rng.random(m) < 0.05
    owners = pl.concat([
        pl.DataFrame({"application_no": app_no, "uscc": uscc.gather(p_firm)}),
        pl.DataFrame({"application_no": app_no.filter(second),
                      "uscc": uscc.gather(rng.integers(0, n, int(second.sum())))}),
    ]).unique()

    k = max(1, n // 10)                                          # financing events
    f_firm = rng.integers(0, n, k)
    usd = rng.random(k) < 0.2
    amount = rng.lognormal(7.5, 1.2, k)
    amount[rng.random(k) < 0.15] = np.nan
    financing = pl.DataFrame({
        "uscc": uscc.gather(f_firm), "company_name": pl.Series(["企业"] * k),
        "financed_on": _dates(rng.integers(_days(dt.date(2015, 1, 1)), _days(dt.date(2024, 12, 31)), k)),
        "round": pl.Series(rng.choice(["天使", "A", "B", "C", "战略"], k)),
        "amount": pl.Series(amount).fill_nan(None), "amount_text": pl.Series([None] * k, dtype=pl.Utf8),
        "currency": np.where(usd, "美元", "人民币"),
        "post_money": pl.Series(np.where(rng.random(k) < 0.6, amount * rng.uniform(4, 12, k), np.nan)).fill_nan(None),
        "investors": pl.Series([None] * k, dtype=pl.Utf8),
    })

    h = max(1, n // 4)                                           # honors
    recognized = rng.integers(_days(dt.date(2012, 1, 1)), _days(dt.date(2024, 12, 31)), h)
    honors = pl.DataFrame({
        "uscc": uscc.gather(rng.integers(0, n, h)),
        "honor": pl.Series(rng.choice(HONORS, h)), "level": pl.Series(["省级"] * h),
        "recognized_on": _dates(recognized),
        "valid_until": _dates(recognized + 3 * 365).scatter(np.nonzero(rng.random(h) < 0.3)[0], None),
    })

    j = max(1, n // 100)                                         # key projects, one row per year
    pj = np.repeat(np.arange(j), 3)
    projects = pl.DataFrame({
        "project_name": "项目" + pl.Series(pj).cast(pl.Utf8), "company_name": pl.Series(["企业"] * (3 * j)),
        "uscc": uscc.gather(rng.integers(0, n, j)[pj]),
        "span_start": np.full(3 * j, 2022), "span_end": np.full(3 * j, 2024),
        "planned_total": np.repeat(rng.uniform(1, 20, j), 3),
        "year": np.tile([2022, 2023, 2024], j),
        "planned_year": rng.uniform(0.2, 5, 3 * j),
        "completed_year": pl.Series(rng.uniform(0.1, 5, 3 * j)),
        "district": pl.Series(rng.choice(DISTRICTS, 3 * j)),
    })
    return {"enterprises": enterprises, "filings": filings, "patents": patents,
            "patent_owners": owners, "financing": financing, "honors": honors,
            "projects": projects}


def timed(fn, *args):
    """(result, wall seconds, CPU seconds of this process — all threads, user + system)."""
    w0, c0 = time.perf_counter(), _cpu_seconds()
    result = fn(*args)
    return result, time.perf_counter() - w0, _cpu_seconds() - c0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Each step runs in a fresh process (its own memory peak; at 1M firms the inputs and the panel
# together would not fit beside the other work on the machine) and reads the tables from parquet.

def write_tables(n: int, folder: Path) -> int:
    """Synthetic tables for n firms as folder/<table>.parquet; returns the number of returns."""
    tables = synthetic_tables(n)
    for name, frame in tables.items():
        frame.write_parquet(folder / f"{name}.parquet")
    return tables["filings"].height


def scans(folder: Path, names: tuple[str, ...] | None = None) -> dict[str, pl.LazyFrame]:
    return {p.stem: pl.scan_parquet(p) for p in sorted(folder.glob("*.parquet"))
            if names is None or p.stem in names}


def polars_side(folder: Path, quarters: list[Quarter], out: Path) -> dict[str, float]:
    panel, wall, cpu = timed(build_panel, scans(folder), quarters)
    row = {"panel_rows": panel.height, "panel_mb": panel.estimated_size() / 1e6,
           "polars_s": wall, "polars_cpu": cpu, "polars_peak_mb": peak_rss_mb()}
    panel.write_parquet(out)
    del panel
    _, row["polars_fin_s"], row["polars_fin_cpu"] = timed(
        financial_panel, scans(folder, ("enterprises", "filings")), quarters)
    return row


def pandas_side(folder: Path, quarters: list[Quarter], out: Path) -> dict[str, float]:
    """The full pandas panel, timed from reading the parquet files; written to out/<quarter>.parquet
    a quarter at a time, so the copy for writing stays small (at 1M firms the panel is 13 GB)."""
    baseline, wall, cpu = timed(read_and_run_pandas, folder, quarters)
    row = {"pandas_s": wall, "pandas_cpu": cpu, "pandas_peak_mb": peak_rss_mb()}
    out.mkdir(exist_ok=True)
    for quarter in quarters:
        rows = baseline[baseline["quarter"] == str(quarter)]
        pl.from_pandas(rows).write_parquet(out / f"{quarter}.parquet")
    return row


def pandas_fin_side(folder: Path, quarters: list[Quarter]) -> dict[str, float]:
    _, wall, cpu = timed(read_and_run_pandas_fin, folder, quarters)
    return {"pandas_fin_s": wall, "pandas_fin_cpu": cpu}


def read_pandas(folder: Path, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """The columns the pandas baseline uses of the named tables."""
    return {name: pd.read_parquet(folder / f"{name}.parquet", columns=PANEL_INPUTS[name])
            for name in names}


def read_and_run_pandas(folder: Path, quarters: list[Quarter]) -> pd.DataFrame:
    return pandas_panel(read_pandas(folder, tuple(PANEL_INPUTS)), quarters)


def read_and_run_pandas_fin(folder: Path, quarters: list[Quarter]) -> pd.DataFrame:
    tables = read_pandas(folder, ("enterprises", "filings"))
    return pandas_financial_panel(tables["enterprises"], tables["filings"], quarters)


def as_panel_types(baseline: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """The pandas baseline (as Polars) in the panel's column order and dtypes: NaN → null,
    datetimes → dates, counts → their integer types."""
    return baseline.select(
        (pl.col(c).fill_nan(None) if baseline.schema[c].is_float() else pl.col(c)).cast(dtype)
        for c, dtype in schema.items())


def assert_same_panel(baseline: pl.DataFrame, panel: pl.DataFrame) -> None:
    """The pandas baseline equals the Polars panel: same rows in the same order, numbers to
    rtol 1e-9, nulls where the panel has nulls."""
    assert_frame_equal(as_panel_types(baseline, panel.schema),
                       panel.with_columns(pl.col(pl.Float64).fill_nan(None)),
                       check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def compare(polars_file: Path, pandas_folder: Path, quarters: list[Quarter]) -> None:
    """Assert the pandas baseline equals the panel on every column (per quarter, to keep memory
    low)."""
    def one(path: Path, quarter: Quarter) -> pl.DataFrame:
        return pl.scan_parquet(path).filter(pl.col("quarter") == str(quarter)).sort("uscc").collect()

    for quarter in quarters:
        assert_same_panel(one(pandas_folder / "*.parquet", quarter), one(polars_file, quarter))


def in_child(fn, *args):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def best_of(repeat: int, fn, *args) -> dict[str, float]:
    """fn's measurements over `repeat` fresh processes: the least time, the largest peak."""
    runs = [in_child(fn, *args) for _ in range(repeat)]
    return {key: (max if key.endswith("_mb") else min)(r[key] for r in runs) for key in runs[0]}


def run(n: int, quarters: list[Quarter], with_pandas: bool, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        polars_file, pandas_folder = folder / "polars.out", folder / "pandas.out"
        row = {"firms": n, "filings": in_child(write_tables, n, folder)}
        row |= best_of(repeat, polars_side, folder, quarters, polars_file)
        if with_pandas:
            row |= best_of(repeat, pandas_side, folder, quarters, pandas_folder)
            row |= best_of(repeat, pandas_fin_side, folder, quarters)
            compare(polars_file, pandas_folder, quarters)
    return row


def scored_quarters() -> list[Quarter]:
    """The quarters a scored run at the last panel quarter needs: those whose four-quarter
    outcome window is complete, and the scored quarter itself."""
    last = PANEL_QUARTERS[-1]
    return [q for q in PANEL_QUARTERS if q.index + 4 <= last.index] + [last]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--no-pandas", action="store_true")
    parser.add_argument("--scored-quarters", action="store_true")
    parser.add_argument("--repeat", type=int, default=1,
                        help="fresh processes per measurement; report the least time and the "
                             "largest peak (the machine is shared)")
    args = parser.parse_args(argv)
    quarters = scored_quarters() if args.scored_quarters else PANEL_QUARTERS
    print(f"{len(quarters)} panel quarters ({quarters[0]}–{quarters[-1]}); polars = build_panel, "
          f"pandas = pandas_panel (full panel, from reading parquet); polars fin = "
          f"financial_panel, pandas fin = pandas_financial_panel (financial features only); "
          f"wall s (CPU s); ratios pandas ÷ polars; peak MB of the full-panel processes; load "
          f"average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'firms':>9} {'filings':>11} {'panel rows':>11} {'panel MB':>8} {'polars':>15} "
          f"{'pandas':>15} {'ratio':>6} {'CPU':>6} {'polars fin':>15} {'pandas fin':>15} "
          f"{'ratio':>6} {'CPU':>6} {'peak MB polars/pandas':>22}")

    def cell(r: dict[str, float], key: str) -> str:
        return f"{r[key + '_s']:6.2f} ({r[key + '_cpu']:6.2f})" if key + "_s" in r else "-"

    def ratio(r: dict[str, float], slow: str, fast: str, unit: str) -> str:
        return f"{r[slow + unit] / r[fast + unit]:5.1f}x" if slow + unit in r else "-"

    for n in args.sizes:
        r = run(n, quarters, not args.no_pandas, args.repeat)
        print(f"{r['firms']:>9,} {r['filings']:>11,} {r['panel_rows']:>11,} "
              f"{r['panel_mb']:>8,.0f} {cell(r, 'polars'):>15} {cell(r, 'pandas'):>15} "
              f"{ratio(r, 'pandas', 'polars', '_s'):>6} {ratio(r, 'pandas', 'polars', '_cpu'):>6} "
              f"{cell(r, 'polars_fin'):>15} {cell(r, 'pandas_fin'):>15} "
              f"{ratio(r, 'pandas_fin', 'polars_fin', '_s'):>6} "
              f"{ratio(r, 'pandas_fin', 'polars_fin', '_cpu'):>6} "
              f"{r['polars_peak_mb']:>10,.0f}/{r.get('pandas_peak_mb', float('nan')):<,.0f} "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)

if __name__ == "__main__":
    main()
