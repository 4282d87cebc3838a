"""Benchmark: read and validate a quarterly drop (`check_drop`: read + contracts incl. GX and Data Docs).

Synthesizes clean drops (parquet at the full size, csv up to `--csv-max` firms), then runs
`pipelines.run.check_drop` on each in a fresh subprocess and measures wall seconds per Timer stage,
the process's whole wall time and its peak RSS (os.wait4 rusage of the child). Inside the child,
the main steps of `data_contracts.validate` are wrapped (not changed) to attribute seconds and peak
RSS to them; a sampler thread reads /proc/self/statm every 50 ms. A watchdog kills a child whose
RSS passes `--rss-cap-gb`, so a run cannot take the shared machine down. The markdown table is
printed and appended to bench/results/ingest.md with date, machine and git commit.

    .venv/bin/python bench/bench_ingest.py --enterprises 1000000 --quarters 12
    .venv/bin/python bench/bench_ingest.py --enterprises 10000 --no-append
    .venv/bin/python bench/bench_ingest.py --enterprises 100000 --profile   # + cProfile of the check

Target (issue): 1,000,000 enterprises x 12 quarters ingested and validated in < 60 s, < 4 GB peak.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import inspect
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "ingest.md"
TARGET_SECONDS = 60.0
TARGET_RSS_MB = 4096.0
_PAGE = os.sysconf("SC_PAGE_SIZE")


# --- in the child: RSS sampling and spans -----------------------------------------------------

class _Spans:
    """Seconds and peak RSS per wrapped step; a sampler thread keeps the peaks of open steps."""

    def __init__(self, progress: Path | None = None) -> None:
        self.progress = progress    # one JSON line per step start and end: survives a killed child
        self.rows: dict[str, dict] = {}
        self.open: list[str] = []
        self.peak = 0.0
        self._lock = threading.Lock()
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20

    def _note(self, rss: float) -> None:
        with self._lock:
            self.peak = max(self.peak, rss)
            for name in self.open:
                row = self.rows[name]
                row["peak_rss_mb"] = max(row["peak_rss_mb"], rss)

    def log(self, **event) -> None:
        if self.progress is not None:
            with self.progress.open("a", encoding="utf-8") as f:
                f.write(json.dumps({**event, "rss_mb": round(self.rss_mb()), "peak_mb": round(self.peak)},
                                   ensure_ascii=False) + "\n")

    def _sample(self) -> None:
        while True:
            self._note(self.rss_mb())
            time.sleep(0.05)

    def wrap(self, owner, attr: str, label=None) -> None:
        """Replace owner.attr by a timed copy; `label(args, kwargs)` names the span (default: attr)."""
        static = inspect.getattr_static(owner, attr)
        is_classmethod = isinstance(static, classmethod)
        original = static.__func__ if is_classmethod else getattr(owner, attr)
        spans = self

        @functools.wraps(original)
        def timed(*args, **kw):
            name = label(args, kw) if label else attr
            row = spans.rows.setdefault(name, {"calls": 0, "seconds": 0.0, "cpu_seconds": 0.0,
                                               "peak_rss_mb": 0.0, "rss_before_mb": None})
            rss = spans.rss_mb()
            row["rss_before_mb"] = row["rss_before_mb"] or round(rss, 0)
            with spans._lock:
                spans.open.append(name)
            spans._note(rss)
            spans.log(start=name)
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kw)
            finally:
                row["seconds"] += time.perf_counter() - start
                row["cpu_seconds"] += time.process_time() - cpu
                row["calls"] += 1
                spans._note(spans.rss_mb())
                with spans._lock:
                    spans.open.remove(name)
                spans.log(end=name, seconds=round(time.perf_counter() - start, 2),
                          step_peak_mb=round(row["peak_rss_mb"]))

        setattr(owner, attr, classmethod(timed) if is_classmethod else timed)


def _instrument(spans: _Spans) -> None:
    """Wrap the steps of read_drop / validate / check_drop (their code is untouched)."""
    import great_expectations as gx  # imported here so its import time is a span of its own

    from data_contracts import derive, gx_runner, validate
    from data_contracts.entity import NameIndex
    from pipelines import ingest, run

    spans.wrap(ingest, "read_table", lambda a, k: f"read {a[1].name}")
    spans.wrap(validate, "coerce", lambda a, k: f"coerce {a[0].name}")
    spans.wrap(derive, "duplicates", lambda a, k: f"duplicates {a[1].name}")
    for fn in ("enterprise_checks", "registration", "filing_checks", "patent_checks",
               "project_checks", "financing_checks", "honor_checks"):
        spans.wrap(derive, fn)
    spans.wrap(NameIndex, "build", lambda a, k: f"NameIndex.build {a[1].height:,} firms")
    spans.wrap(gx_runner.ContractRun, "__init__", lambda a, k: "GX context + data source")
    spans.wrap(gx_runner, "_to_pandas", lambda a, k: f"to_pandas {a[0].height:,} rows")
    spans.wrap(gx.ValidationDefinition, "run", lambda a, k: f"GX validate {a[0].name}")
    spans.wrap(gx_runner.ContractRun, "build_docs", lambda a, k: "GX build Data Docs")
    spans.wrap(validate, "_findings", lambda a, k: "findings frames")
    spans.wrap(validate, "_split", lambda a, k: "split accepted / quarantine")
    spans.wrap(run, "write_csv", lambda a, k: f"write {Path(a[1]).name}")


def child_check(drop: Path, out: Path, result_file: Path, profile: Path | None) -> None:
    started = time.perf_counter()
    spans = _Spans(result_file.with_suffix(".progress.jsonl"))
    import_start = time.perf_counter()
    from pipelines.run import Timer, check_drop

    tidu_import = time.perf_counter() - import_start
    gx_start = time.perf_counter()
    _instrument(spans)  # imports great_expectations
    gx_import = time.perf_counter() - gx_start
    timer = Timer()
    if profile is not None:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    _, result = check_drop(drop, out, None, timer)
    if profile is not None:
        prof.disable()
        prof.dump_stats(str(profile))
    payload = {
        "stages": timer.seconds, "import_tidu": round(tidu_import, 2), "import_gx": round(gx_import, 2),
        "child_wall": round(time.perf_counter() - started, 2), "counts": result.counts,
        "error_rows": result.error_rows, "peak_sampled_mb": round(spans.peak, 0),
        "spans": {k: {**v, "seconds": round(v["seconds"], 2), "cpu_seconds": round(v["cpu_seconds"], 2),
                      "peak_rss_mb": round(v["peak_rss_mb"], 0)}
                  for k, v in spans.rows.items()},
    }
    result_file.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")


def child_synth(drop: Path, enterprises: int, quarters: int, seed: int, fmt: str,
                result_file: Path) -> None:
    from pipelines.synth import synthesize

    start = time.perf_counter()
    summary = synthesize(drop, enterprises=enterprises, quarters=quarters, seed=seed, fmt=fmt)
    size = sum(p.stat().st_size for p in summary.files.values())
    result_file.write_text(json.dumps({"seconds": round(time.perf_counter() - start, 1),
                                       "rows": summary.rows, "bytes": size}, ensure_ascii=False))


# --- in the parent: subprocesses, watchdog, tables --------------------------------------------

def _child(args: list[str], rss_cap_mb: float, timeout: float) -> tuple[float, float, int, str, float]:
    """Run `python bench_ingest.py <args>`; (wall s, peak RSS MB, status, why killed, CPU s) by wait4."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO)
    killed = []

    def watch() -> None:
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/statm") as f:
                    rss = int(f.read().split()[1]) * _PAGE / 2**20
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                return
            late = time.perf_counter() - start > timeout
            if rss > rss_cap_mb or late:
                killed.append(f"RSS {rss:,.0f} MB > cap {rss_cap_mb:,.0f} MB" if not late
                              else f"timeout {timeout:.0f} s")
                os.kill(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    watcher.join(timeout=1)
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode, "; ".join(killed), cpu


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu}, {mem_kb / 2**20:.1f} GiB RAM"


def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    dirty = " (uncommitted changes present)" if git("status", "--porcelain") else ""
    return f"{git('rev-parse', '--short=12', 'HEAD')}{dirty}"


def _commit_note(at_start: str) -> str:
    """The commit the run started on; says so when HEAD moved while it ran (children import late)."""
    now = _commit()
    return at_start if now == at_start else f"{at_start} at start, {now} at the end (HEAD moved during the run)"


def _versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("polars", "pandas", "pyarrow", "great_expectations"))


def _rows_text(rows: dict[str, int]) -> str:
    return " / ".join(f"{rows.get(s, 0):,}" for s in ("企业登记", "财务快报", "专利", "融资", "资质荣誉", "重点项目"))


def _run_one(fmt: str, firms: int, opts, work: Path) -> dict:
    drop, out = work / f"drop_{fmt}_{firms}", work / f"out_{fmt}_{firms}"
    synth_json, check_json = work / f"synth_{fmt}_{firms}.json", work / f"check_{fmt}_{firms}.json"
    shutil.rmtree(out, ignore_errors=True)
    cap = opts.rss_cap_gb * 1024
    print(f"[{fmt} {firms:,}] synthesizing …", flush=True)
    wall, rss, status, why, _ = _child(["--child-synth", str(drop), str(firms), str(opts.quarters), str(opts.seed),
                                     fmt, str(synth_json)], cap, opts.timeout)
    if status != 0:
        raise SystemExit(f"synthesis failed ({status}) {why}")
    synth = json.loads(synth_json.read_text(encoding="utf-8"))
    synth["rss"] = rss
    print(f"[{fmt} {firms:,}] synthesized in {synth['seconds']} s, peak {rss:,.0f} MB; checking …", flush=True)
    out.mkdir(parents=True)
    args = ["--child-check", str(drop), str(out), str(check_json)]
    check_json.with_suffix(".progress.jsonl").unlink(missing_ok=True)
    wall, rss, status, why, cpu = _child(args, cap, opts.timeout)
    row = {"fmt": fmt, "firms": firms, "synth": synth, "wall": wall, "rss": rss, "cpu": cpu,
           "status": status, "killed": why}
    if status == 0:
        row["check"] = json.loads(check_json.read_text(encoding="utf-8"))
    else:
        row["killed"] = f"{why}; {_last_step(check_json.with_suffix('.progress.jsonl'))}"
    if opts.profile and status == 0:
        prof = work / f"check_{fmt}_{firms}.prof"
        print(f"[{fmt} {firms:,}] profiling (cProfile, separate run) …", flush=True)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        _child([*args[:-1], str(work / "profiled.json"), "--profile-to", str(prof)], cap, opts.timeout)
        row["profile"] = _profile_text(prof)
    if not opts.keep:
        shutil.rmtree(drop, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return row


def _last_step(progress: Path) -> str:
    """Where a killed child was: the steps it had started and not finished, and its last RSS."""
    if not progress.exists():
        return "no progress written"
    events = [json.loads(line) for line in progress.read_text(encoding="utf-8").splitlines() if line]
    started = [e["start"] for e in events if "start" in e]
    for e in events:
        if "end" in e and e["end"] in started:
            started.remove(e["end"])
    last = events[-1] if events else {}
    done = [f"{e['end']} {e['seconds']} s" for e in events if "end" in e]
    return (f"inside: {' > '.join(started) or '-'}; last RSS {last.get('rss_mb')} MB; "
            f"finished steps: {', '.join(done[-6:])}")


def _profile_text(path: Path, top: int = 30) -> str:
    import io
    import pstats

    if not path.exists():
        return "(no profile written)"
    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def _table(rows: list[dict]) -> str:
    head = ("| drop | firms | rows: 企业/财务/专利/融资/荣誉/项目 | size MB | synth s (peak MB) | read s | contracts s "
            "| check_drop s | process wall s (CPU s) | peak RSS MB | < 60 s & < 4 GB |\n"
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
    lines = []
    for r in rows:
        s = r["synth"]
        if r["status"] != 0:
            lines.append(f"| {r['fmt']} | {r['firms']:,} | {_rows_text(s['rows'])} | {s['bytes'] / 2**20:,.0f} "
                         f"| {s['seconds']} ({s['rss']:,.0f}) | – | – | – | {r['wall']:.1f} ({r['cpu']:.0f}) | {r['rss']:,.0f} "
                         f"| failed: exit {r['status']} {r['killed']} |")
            continue
        c = r["check"]
        check = sum(c["stages"].values())
        ok = r["wall"] < TARGET_SECONDS and r["rss"] < TARGET_RSS_MB
        lines.append(f"| {r['fmt']} | {r['firms']:,} | {_rows_text(s['rows'])} | {s['bytes'] / 2**20:,.0f} "
                     f"| {s['seconds']} ({s['rss']:,.0f}) | {c['stages'].get('read', 0):.1f} | {c['stages'].get('contracts', 0):.1f} "
                     f"| {check:.1f} | {r['wall']:.1f} ({r['cpu']:.0f}) | {r['rss']:,.0f} | {'yes' if ok else 'no'} |")
    return head + "\n".join(lines) + "\n"


def _breakdown(r: dict) -> str:
    c = r["check"]
    intro = (f"Steps of the {r['fmt']} {r['firms']:,} check (wrapped, seconds summed over calls; "
             f"imports before check_drop: tidu {c['import_tidu']} s, great_expectations {c['import_gx']} s; "
             f"Timer stages {c['stages']}):")
    lines = [intro, "",
             "| step | calls | seconds | CPU s (all threads) | RSS before MB | peak RSS during MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, v in sorted(c["spans"].items(), key=lambda kv: -kv[1]["seconds"]):
        lines.append(f"| {name} | {v['calls']} | {v['seconds']:.2f} | {v['cpu_seconds']:.2f} "
                     f"| {v['rss_before_mb'] or 0:,.0f} | {v['peak_rss_mb']:,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--enterprises", type=int, default=1_000_000)
    p.add_argument("--quarters", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--formats", default="parquet,csv", help="comma-separated: parquet, csv")
    p.add_argument("--csv-max", type=int, default=100_000,
                   help="csv drops are written for at most this many firms (0: no cap)")
    p.add_argument("--work", type=Path, default=Path("/tmp/tidu-bench-ingest"))
    p.add_argument("--rss-cap-gb", type=float, default=12.0, help="kill a child above this RSS")
    p.add_argument("--timeout", type=float, default=1800.0, help="kill a child after this many seconds")
    p.add_argument("--profile", action="store_true", help="also run each check under cProfile")
    p.add_argument("--keep", action="store_true", help="keep the drops and output folders")
    p.add_argument("--no-append", action="store_true", help=f"do not append to {RESULTS.name}")
    p.add_argument("--child-synth", nargs=6, help=argparse.SUPPRESS)
    p.add_argument("--child-check", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.child_synth:
        d, n, q, s, fmt, res = opts.child_synth
        return child_synth(Path(d), int(n), int(q), int(s), fmt, Path(res))
    if opts.child_check:
        d, o, res = opts.child_check
        return child_check(Path(d), Path(o), Path(res), opts.profile_to)

    opts.work.mkdir(parents=True, exist_ok=True)
    commit_at_start = _commit()
    rows = []
    for fmt in opts.formats.split(","):
        firms = opts.enterprises
        if fmt == "csv" and opts.csv_max:
            firms = min(firms, opts.csv_max)
        rows.append(_run_one(fmt, firms, opts, opts.work))
    table = _table(rows)
    details = "\n".join(_breakdown(r) for r in rows if r["status"] == 0)
    print("\n" + table + "\n" + details)
    for r in rows:
        if "profile" in r:
            print(f"--- cProfile {r['fmt']} {r['firms']:,} ---\n{r['profile']}")
    if not opts.no_append:
        header = (f"\n## {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} — `bench_ingest.py --enterprises "
                  f"{opts.enterprises} --quarters {opts.quarters}`\n\n"
                  f"- machine: {_machine()}; shared with other engineers (timings vary with their load)\n"
                  f"- commit: {_commit_note(commit_at_start)}; Python {platform.python_version()}; {_versions()}\n"
                  f"- check_drop ran in a fresh subprocess per drop; *process wall* includes interpreter start "
                  f"and imports (GX alone takes seconds); peak RSS is the child's ru_maxrss; synthetic clean "
                  f"drops, seed {opts.seed}, {opts.quarters} quarters\n\n")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        if not RESULTS.exists():
            RESULTS.write_text("# Ingest benchmark: read + validate a drop (`check_drop`)\n\n"
                               "Target: 1,000,000 enterprises × 12 quarters in < 60 s and < 4 GB peak RSS "
                               "on the 2-core machine.\n", encoding="utf-8")
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write(header + table + "\n" + details)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
