"""Solver time of scoring.allocation.allocate at 1k, 10k and 100k candidate rows (firm × tier).

Run: ``.venv/bin/python bench/bench_allocation.py [--sizes 1000 10000 100000] [--budget-per-firm 0.5]
[--compare-full]`` (the last also times one solve of the whole MILP without decomposition: minutes at 100k).
Prints a Markdown table (date, machine) with, per size: firms, MILP options (columns of y),
the main solve's seconds, the whole allocate() call's seconds (main solve + sensitivity re-solves +
tie rule + rationale + KPIs), lines funded and the MIP gap. The synthetic city: 8 tiers per firm,
eligibility ~45 %, probabilities Beta(1, 6), five districts, the packaged default policy with the
budget scaled to the number of firms (default 0.5 万元 per firm: 3000 万元 at 6,000 firms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.allocation import allocate
from scoring.policy import load_policy
from scoring.tiers import TIERS

DISTRICTS = ["宜城街道", "丁蜀镇", "环科园", "经济技术开发区", "新街街道"]
LAYERS = ["基础支撑层", "技术产品层", "应用示范层", None]


def synthetic_city(n_candidates: int, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Candidates (n rows: n/8 firms × 8 tiers) and the matching firm panel."""
    rng = np.random.default_rng(seed)
    n_firms = max(1, n_candidates // len(TIERS))
    uscc = [f"91320282MA{i:08d}" for i in range(n_firms)]
    firms = pl.DataFrame(
        {
            "uscc": uscc,
            "name": [f"合成企业{i:06d}" for i in range(n_firms)],
            "district": rng.choice(DISTRICTS, n_firms).tolist(),
            "chain_layer": rng.choice(np.array(LAYERS, dtype=object), n_firms).tolist(),
            "chain_leader_tie": rng.random(n_firms) < 0.2,
            "revenue_ttm": rng.lognormal(7.5, 1.2, n_firms),
            "revenue_growth_yoy": rng.normal(0.12, 0.2, n_firms),
            "revenue_py3": rng.lognormal(7.2, 1.2, n_firms),
            "rd_expense_py": rng.lognormal(4.5, 1.0, n_firms),
            "age_years": rng.uniform(0.5, 20, n_firms),
            "employees": rng.integers(5, 800, n_firms),
            "holds_high_tech_enterprise": rng.random(n_firms) < 0.3,
            "holds_specialised_sme": rng.random(n_firms) < 0.1,
            "holds_tech_sme": rng.random(n_firms) < 0.4,
            "holds_little_giant": rng.random(n_firms) < 0.02,
            "quarter": ["2025Q4"] * n_firms,
        }
    )
    tiers = list(TIERS)
    firm_idx = np.repeat(np.arange(n_firms), len(tiers))
    eligible = rng.random(len(firm_idx)) < 0.3
    candidates = pl.DataFrame(
        {
            "uscc": [uscc[i] for i in firm_idx],
            "name": [f"合成企业{i:06d}" for i in firm_idx],
            "district": firms["district"].gather(firm_idx).to_list(),
            "tier": [TIERS[t] for t in tiers] * n_firms,
            "tier_key": tiers * n_firms,
            "eligible": eligible,
            "eligible_if_unknowns_hold": eligible | (rng.random(len(firm_idx)) < 0.2),
            "points": rng.uniform(40, 100, len(firm_idx)),
            "probability": np.round(
                rng.beta(1, 6, len(firm_idx)), 4
            ),  # rounded: ties, as a calibrated model gives
            "rank": np.ones(len(firm_idx), dtype=np.int64),
        }
    )
    return candidates, firms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--budget-per-firm", type=float, default=0.5)
    parser.add_argument(
        "--compare-full",
        action="store_true",
        help="also time one solve of the whole MILP (no decomposition) and compare objectives",
    )
    args = parser.parse_args()
    policy = load_policy()
    print(
        f"allocation benchmark — {dt.datetime.now():%Y-%m-%d %H:%M}; {platform.platform()}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"scipy {scipy.__version__} (HiGHS), polars {pl.__version__}\n"
    )
    print(
        "| candidates | firms | budget 万元 | MILP options | main solve s | allocate() s | solves | lines | MIP gap |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    compared: list[str] = []
    for n in args.sizes:
        candidates, firms = synthetic_city(n)
        budget = round(args.budget_per_firm * firms.height)
        started = time.perf_counter()
        result = allocate(candidates, firms, policy.with_budget(budget))
        total = time.perf_counter() - started
        solves = next(
            (s.split("的 ")[1].split(" 次")[0] for s in result.notes if "次求解" in s), "?"
        )
        if args.compare_full:
            full_s, same = _full_milp(candidates, firms, policy.with_budget(budget), result)
            compared.append(f"{n:,} candidates: whole MILP {full_s:.1f} s, same objective: {same}")
        print(
            f"| {n:,} | {firms.height:,} | {budget:,} | {result.options_considered:,} | "
            f"{result.solver_seconds:.2f} | {total:.2f} | {solves} | {result.allocation.height:,} | "
            f"{(result.mip_gap or 0):.1e} |"
        )
    if compared:
        print("\n" + "\n".join(f"- {line}" for line in compared))


def _full_milp(candidates, firms, policy, result) -> tuple[float, bool]:
    """One solve of the whole program by HiGHS, without the Lagrangian decomposition."""
    from scoring import allocation as a

    solver = policy.solver.model_copy(update={"decompose_above_options": 10**12})
    policy = policy.model_copy(update={"solver": solver})
    firms_ = a._prepare_firms(firms, policy, [])
    options = a._build_options(a._fundable_rows(candidates, firms_, policy), firms_, policy)
    started = time.perf_counter()
    solution = a._Problem(options, policy).solve(policy.budget.total_wan)
    seconds = time.perf_counter() - started
    return seconds, abs(solution.value - result.expected_value) <= 1e-6 * max(1.0, solution.value)


if __name__ == "__main__":
    main()
