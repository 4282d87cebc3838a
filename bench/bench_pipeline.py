"""Time the whole quarterly run, stage by stage, at several city sizes, and its two baselines on
the same data; append to BENCHMARKS.md.

    .venv/bin/python bench/bench_pipeline.py --sizes 10000 100000 1000000 --quarters 12

Each size: a synthetic drop (parquet, fixed seed), then `tidu run` in a fresh process so that peak
memory (ru_maxrss of the child) belongs to that run alone; its resident memory is also sampled
every 0.5 s into <work>/rss_<n>.csv, and `--kill-above-gb` stops a run that outgrows a shared
machine. The output folder is emptied first. Stage seconds come from the run's manifest; the
commit reads `-dirty` when the working tree had uncommitted changes.

Then, unless `--no-baselines`, the baselines on that run's own data, each side in a fresh process:
- the feature panel: the run's checked tables (its warehouse's latest values, as parquet) through
  `build_panel` and through bench/pandas_panel.py's `pandas_panel`, the last `--quarters`
  quarters; every column of every quarter is asserted equal (bench/bench_features.py's compare);
- the explanations: `--shap-rows` of the run's scored rows (a seeded sample of candidates.csv,
  with their panel row) explained with the run's saved model by tidu's TreeSHAP and by
  shap.TreeExplainer (the same blend of the pooled and the tier's booster); the values are
  asserted equal to 1e-9. TreeExplainer's time for all scored rows is that sample's, scaled, and
  is set against the run's whole explain stage (TreeSHAP on every scored row, the reasons texts,
  the global importance): the sample's own ratio carries tidu's per-model set-up on 20,000 rows
  only, which a run spreads over all its rows.
Each measurement runs once; the speed targets live in the issue, not here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_features import compare, in_child, pandas_side, polars_side
from bench.pandas_panel import PANEL_INPUTS
from data_contracts.periods import Quarter, quarter_range

SCORED = "2025Q4"    # the quarter every benchmark run scores (the drops end there)
SHAP_ROWS = 20_000   # scored rows both explainers explain; TreeExplainer's cost grows with the rows
SHAP_TOLERANCE = 1e-9
STAGES = ("read", "contracts", "warehouse", "features", "rules", "train", "explain", "allocate",
          "report", "pdf")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB RAM, load average {load:.1f} at start"


def commit() -> str:
    """Short commit of HEAD, `-dirty` when the working tree has uncommitted changes (then the
    measured code is not that commit alone)."""
    out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], check=False, cwd=REPO,
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def run_size(n: int, quarters: int, work: Path, kill_above_gb: float | None = None) -> dict:
    """Synthesise (if absent) and run one size. The child's resident memory is sampled every
    0.5 s into work/rss_<n>.csv (seconds since start, MB); above `kill_above_gb` the run is
    killed and the result says so (the timeline and the files already written tell the stage)."""
    drop, out = work / f"drop_{n}", work / f"out_{n}"
    tidu = str(Path(sys.executable).with_name("tidu"))
    t0 = time.perf_counter()
    if not drop.exists():
        subprocess.run([tidu, "synth", "--enterprises", str(n), "--quarters", str(quarters), "--seed", "1",
                        "--format", "parquet", "--out", str(drop)], check=True, capture_output=True)
    synth_s = time.perf_counter() - t0
    if out.exists():  # a fresh folder: an old warehouse.duckdb would hold a second copy of the drop
        shutil.rmtree(out)
    load_start = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    killed, sampled_peak = False, 0.0
    with open(work / f"rss_{n}.csv", "w") as timeline, tempfile.TemporaryFile("w+") as log:
        timeline.write("seconds,rss_mb,load1\n")
        proc = subprocess.Popen([tidu, "run", str(drop), "--quarter", SCORED, "--out", str(out)],
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        while proc.poll() is None:
            mb = rss_mb(proc.pid)
            if mb is not None:
                sampled_peak = max(sampled_peak, mb)
                timeline.write(f"{time.perf_counter() - t0:.1f},{mb:.0f},{os.getloadavg()[0]:.2f}\n")
                timeline.flush()
                if kill_above_gb and mb > kill_above_gb * 1024:
                    proc.kill()
                    killed = True
            time.sleep(0.5)
        log.seek(0)
        output = log.read()
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"enterprises": n, "synth_s": round(synth_s, 1), "wall_s": round(wall, 1), "exit": proc.returncode,
              "peak_mb": round(peak_mb) if peak_mb * 1024 > before else round(sampled_peak),
              "load_start": round(load_start[0], 1), "load_end": round(os.getloadavg()[0], 1)}
    if killed:
        result["error"] = f"killed: resident memory above {kill_above_gb} GB after {wall:.0f} s"
    manifest = out / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        result["seconds"] = data.get("seconds", {})
        result["rows_filings"] = next((i["rows_read"] for i in data.get("inputs", []) if i["table"] == "filings"), None)
    if proc.returncode != 0 and not killed:
        result["error"] = output[-400:]
    return result


# ── the baselines, on the run's own data ──────────────────────────────────────────────────

def export_tables(warehouse: Path, folder: Path) -> None:
    """The run's checked tables (the warehouse's latest value per key) as folder/<table>.parquet,
    the input both panel implementations read."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for name in PANEL_INPUTS:
            con.execute(f"COPY (SELECT * FROM {name}) TO '{folder / name}.parquet' (FORMAT parquet)")


def panel_baseline(out: Path, work: Path, quarters: list[Quarter]) -> dict:
    """build_panel against pandas_panel on the run's tables, each in a fresh process; asserts that
    every column of every quarter is equal. Returns bench_features' timings and the panel's file."""
    tables, pandas_folder = work / "tables", work / "panel_pandas"
    polars_file = work / "panel_polars.parquet"
    export_tables(out / "warehouse.duckdb", tables)
    row = in_child(polars_side, tables, quarters, polars_file)
    row |= in_child(pandas_side, tables, quarters, pandas_folder)
    compare(polars_file, pandas_folder, quarters)
    shutil.rmtree(pandas_folder)
    return row | {"panel_file": str(polars_file)}


def tree_explainer(booster, x: np.ndarray) -> np.ndarray:
    """One booster's SHAP values by shap.TreeExplainer, (n, F+1) with the base value last (the
    layout of scoring.explain.contributions)."""
    import warnings

    import shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(booster)
        values = np.asarray(explainer.shap_values(x)).reshape(len(x), -1)
    base = float(np.ravel(explainer.expected_value)[0])
    return np.hstack([values, np.full((len(x), 1), base)])


def shap_side(out: Path, panel_file: Path, n_rows: int, seed: int = 1) -> dict:
    """tidu's TreeSHAP against shap.TreeExplainer on a seeded sample of the run's scored rows,
    with the run's saved model; asserts the values equal to SHAP_TOLERANCE."""
    from scoring.model import PromotionModel
    from scoring.tiers import TIERS

    model = PromotionModel.load(out / "model")
    scored = pl.read_csv(out / "candidates.csv", columns=["uscc", "tier"], infer_schema=False)
    pick = np.sort(np.random.default_rng(seed).choice(scored.height, min(n_rows, scored.height),
                                                      replace=False))
    key_of = {zh: key for key, zh in TIERS.items()}
    panel = pl.scan_parquet(panel_file).filter(pl.col("quarter") == SCORED).collect()
    rows = (scored[pick].with_columns(pl.col("tier").replace_strict(key_of))
            .sort("tier", maintain_order=True)   # tier by tier, as the run's rows come
            .join(panel, on="uscc", how="left", maintain_order="left"))
    model.contributions(rows.head(64))                          # numba's cache load, not timed
    model.contributions(rows.head(64), explain=tree_explainer)  # shap's import, not timed
    t0 = time.perf_counter()
    ours, _, _ = model.contributions(rows)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs, _, _ = model.contributions(rows, explain=tree_explainer)
    theirs_s = time.perf_counter() - t0
    diff = float(np.abs(ours - theirs).max())
    assert diff <= SHAP_TOLERANCE, f"TreeSHAP and shap.TreeExplainer differ by {diff:.3g}"
    return {"shap_rows": rows.height, "scored_rows": scored.height, "tidu_shap_s": ours_s,
            "explainer_s": theirs_s, "shap_max_diff": diff,
            "trees": sum(model.rounds_.values())}


def baselines(n: int, quarters: int, work: Path, shap_rows: int) -> dict:
    out, folder = work / f"out_{n}", work / f"baselines_{n}"
    if folder.exists():
        shutil.rmtree(folder)
    scored = Quarter.parse(SCORED)
    panel_quarters = quarter_range(scored - (quarters - 1), scored)
    row = panel_baseline(out, folder, panel_quarters)
    row |= in_child(shap_side, out, Path(row.pop("panel_file")), shap_rows)
    shutil.rmtree(folder)
    return row


def baseline_table(results: list[dict]) -> str:
    head = ("| enterprises | panel rows | panel: Polars s (CPU) | pandas s (CPU) | ratio | peak MB Polars / pandas "
            "| SHAP rows (of scored) | TreeSHAP s | TreeExplainer s | ratio | max abs diff "
            "| TreeExplainer for all scored rows, s (scaled) | the run's explain stage s | ratio |")
    rows = [head, "|" + "---:|" * 14]
    for r in results:
        b = r.get("baselines")
        if not b:
            continue
        scale = b["scored_rows"] / b["shap_rows"]
        explain_s = r.get("seconds", {}).get("explain", float("nan"))
        rows.append("| " + " | ".join([
            f"{r['enterprises']:,}", f"{b['panel_rows']:,}",
            f"{b['polars_s']:.2f} ({b['polars_cpu']:.2f})", f"{b['pandas_s']:.2f} ({b['pandas_cpu']:.2f})",
            f"{b['pandas_s'] / b['polars_s']:.1f}×", f"{b['polars_peak_mb']:,.0f} / {b['pandas_peak_mb']:,.0f}",
            f"{b['shap_rows']:,} ({b['scored_rows']:,})", f"{b['tidu_shap_s']:.2f}", f"{b['explainer_s']:.2f}",
            f"{b['explainer_s'] / b['tidu_shap_s']:.0f}×", f"{b['shap_max_diff']:.1e}",
            f"{b['explainer_s'] * scale:,.0f}", f"{explain_s:.1f}", f"{b['explainer_s'] * scale / explain_s:.0f}×",
        ]) + " |")
    return "\n".join(rows)


def table(results: list[dict]) -> str:
    head = ("| enterprises | filing rows | " + " | ".join(STAGES)
            + " | run wall s | peak RSS MB | load avg (start → end) | exit |")
    sep = "|" + "---:|" * (len(STAGES) + 6)
    rows = [head, sep]
    for r in results:
        s = r.get("seconds", {})
        cells = [f"{r['enterprises']:,}", f"{r.get('rows_filings') or 0:,}"]
        cells += [f"{s[k]:.1f}" if k in s else "–" for k in STAGES]
        cells += [f"{r['wall_s']:.1f}", f"{r['peak_mb'] or '–'}",
                  f"{r.get('load_start', '–')} → {r.get('load_end', '–')}", str(r["exit"])]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--quarters", type=int, default=12)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "results" / "work")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--kill-above-gb", type=float, default=None,
                        help="kill a run whose resident memory exceeds this (the machine is shared)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="time the runs only, not the pandas panel and shap.TreeExplainer beside them")
    parser.add_argument("--shap-rows", type=int, default=SHAP_ROWS,
                        help=f"scored rows both explainers explain (default {SHAP_ROWS:,})")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    header = (f"\n### Whole run, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — commit {commit()}\n\n"
              f"Machine: {machine()}. Synthetic drops, {args.quarters} quarters, seed 1, parquet; "
              f"`tidu run --quarter {SCORED}` in a fresh process (peak RSS of that process).\n\n")
    results = []
    for n in args.sizes:
        results.append(run_size(n, args.quarters, args.work, args.kill_above_gb))
        if not args.no_baselines and results[-1]["exit"] == 0:
            results[-1]["baselines"] = baselines(n, args.quarters, args.work, args.shap_rows)
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)
    text = header + table(results) + "\n"
    if any("baselines" in r for r in results):
        text += ("\nBaselines on each run's own data (fresh processes; the panel asserted equal to "
                 f"pandas' in every column of the last {args.quarters} quarters, the SHAP values to "
                 f"shap.TreeExplainer's to {SHAP_TOLERANCE:g}; ratios are the baseline's time ÷ tidu's):\n\n"
                 + baseline_table(results) + "\n")
    print(text)
    with open(args.write, "a", encoding="utf-8") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
