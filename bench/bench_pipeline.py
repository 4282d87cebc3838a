"""Time the whole quarterly run, stage by stage, at several city sizes; append to BENCHMARKS.md.

    .venv/bin/python bench/bench_pipeline.py --sizes 10000 100000 1000000 --quarters 12

Each size: a synthetic drop (parquet, fixed seed), then `tidu run` in a fresh process so that peak
memory (ru_maxrss of the child) belongs to that run alone. Stage seconds come from the run's
manifest. Nothing here is asserted: targets live in the issue, results in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("read", "contracts", "warehouse", "features", "rules", "train", "score", "explain", "allocate",
          "report", "pdf")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB RAM, load average {load:.1f} at start"


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def run_size(n: int, quarters: int, work: Path) -> dict:
    drop, out = work / f"drop_{n}", work / f"out_{n}"
    tidu = str(Path(sys.executable).with_name("tidu"))
    t0 = time.perf_counter()
    if not drop.exists():
        subprocess.run([tidu, "synth", "--enterprises", str(n), "--quarters", str(quarters), "--seed", "1",
                        "--format", "parquet", "--out", str(drop)], check=True, capture_output=True)
    synth_s = time.perf_counter() - t0
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([tidu, "run", str(drop), "--quarter", "2025Q4", "--out", str(out)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"enterprises": n, "synth_s": round(synth_s, 1), "wall_s": round(wall, 1), "exit": proc.returncode,
              "peak_mb": round(peak_mb) if peak_mb * 1024 > before else None}
    manifest = out / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        result["seconds"] = data.get("seconds", {})
        result["rows_filings"] = next((i["rows_read"] for i in data.get("inputs", []) if i["table"] == "filings"), None)
    if proc.returncode != 0:
        result["error"] = (proc.stderr or proc.stdout)[-400:]
    return result


def table(results: list[dict]) -> str:
    head = "| enterprises | filing rows | " + " | ".join(STAGES) + " | run wall s | peak RSS MB | exit |"
    sep = "|" + "---:|" * (len(STAGES) + 5)
    rows = [head, sep]
    for r in results:
        s = r.get("seconds", {})
        cells = [f"{r['enterprises']:,}", f"{r.get('rows_filings') or 0:,}"]
        cells += [f"{s[k]:.1f}" if k in s else "–" for k in STAGES]
        cells += [f"{r['wall_s']:.1f}", f"{r['peak_mb'] or '–'}", str(r["exit"])]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--quarters", type=int, default=12)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "results" / "work")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    header = (f"\n### Whole run, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC — commit {commit()}\n\n"
              f"Machine: {machine()}. Synthetic drops, {args.quarters} quarters, seed 1, parquet; "
              "`tidu run --quarter 2025Q4` in a fresh process (peak RSS of that process).\n\n")
    results = []
    for n in args.sizes:
        results.append(run_size(n, args.quarters, args.work))
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)
    text = header + table(results) + "\n"
    print(text)
    with open(args.write, "a", encoding="utf-8") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
