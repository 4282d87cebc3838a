"""Time the whole quarterly run, stage by stage, at several city sizes; append to BENCHMARKS.md.

    .venv/bin/python bench/bench_pipeline.py --sizes 10000 100000 1000000 --quarters 12

Each size: a synthetic drop (parquet, fixed seed), then `tidu run` in a fresh process so that peak
memory (ru_maxrss of the child) belongs to that run alone; its resident memory is also sampled
every 0.5 s into <work>/rss_<n>.csv, and `--kill-above-gb` stops a run that outgrows a shared
machine. The output folder is emptied first. Stage seconds come from the run's manifest; the
commit reads `-dirty` when the working tree had uncommitted changes. Nothing here is asserted:
targets live in the issue, results in BENCHMARKS.md.
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

REPO = Path(__file__).resolve().parents[1]
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
        proc = subprocess.Popen([tidu, "run", str(drop), "--quarter", "2025Q4", "--out", str(out)],
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
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    header = (f"\n### Whole run, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — commit {commit()}\n\n"
              f"Machine: {machine()}. Synthetic drops, {args.quarters} quarters, seed 1, parquet; "
              "`tidu run --quarter 2025Q4` in a fresh process (peak RSS of that process).\n\n")
    results = []
    for n in args.sizes:
        results.append(run_size(n, args.quarters, args.work, args.kill_above_gb))
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)
    text = header + table(results) + "\n"
    print(text)
    with open(args.write, "a", encoding="utf-8") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
