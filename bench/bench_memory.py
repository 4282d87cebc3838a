"""Benchmark of the machine, not of tidu: what it costs to touch memory the process has not used
recently. Every large run's system time depends on it.

Fills a block of memory three times in one process: first (pages the process never had),
again at once after freeing it (pages the kernel hands straight back), and again after a pause
(pages that sat free for a while). On a virtual machine whose kernel reports free pages to the
host (Firecracker / KVM with `page_reporting`, see `page_reporting.page_reporting_order` on the
kernel command line), the host takes such pages back within seconds, and touching them again
costs a fault in the host: the first and the paused fill then cost far more than the second.

    .venv/bin/python bench/bench_memory.py            # 4 GiB, 5 s pause
    .venv/bin/python bench/bench_memory.py --gib 1 --pause 2
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np


def _times() -> tuple[float, float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), usage.ru_utime, usage.ru_stime


def fill(gib: float) -> tuple[float, float, float]:
    """Wall, user and system seconds to allocate and write `gib` GiB (then freed)."""
    wall, user, system = _times()
    block = np.ones(int(gib * 2**30) // 8)
    wall_end, user_end, system_end = _times()
    del block
    return wall_end - wall, user_end - user, system_end - system


def kernel_command_line() -> str:
    path = Path("/proc/cmdline")
    return path.read_text().strip() if path.exists() else "(unknown)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="size of the block (GiB)")
    parser.add_argument("--pause", type=float, default=5.0,
                        help="seconds to wait before the third fill")
    args = parser.parse_args(argv)
    reporting = [w for w in kernel_command_line().split() if w.startswith("page_reporting")]
    print(f"kernel: {' '.join(reporting) or 'no page_reporting option on the command line'}")
    for label, pause in (("first fill", 0.0), ("again at once", 0.0),
                         (f"again after {args.pause:g} s", args.pause)):
        time.sleep(pause)
        wall, user, system = fill(args.gib)
        print(f"{label:>20}: {args.gib:g} GiB in {wall:5.2f} s (user {user:4.2f} s, "
              f"system {system:5.2f} s) = {wall / args.gib:5.2f} s per GiB", flush=True)


if __name__ == "__main__":
    main()
