"""Intervals for the learned-routing headline rows, without re-running the whole of
bench_router.py (its validation search takes most of an hour on 2 busy cores): the settings it
chose on validation are read from benchmarks/results/router_<pool>.json, and the rows the issue-10
targets compare are run again on the 2100 test questions with seed 0 (every one of them is
deterministic: fixed models or a fitted router over replayed outputs, so other seeds give the same
answers). Each row gets its 95% bootstrap interval over questions and each comparison a paired
interval (`symbolic_moe.stats`).

    .venv/bin/python benchmarks/bench_router_intervals.py      # writes benchmarks/results/router_intervals.json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench_common import RESULTS, ROOT, machine
from bench_router import router_sets
from bench_routing_replay import CONFIGS, run_methods, skill_settings

from symbolic_moe.stats import bootstrap_ci, paired_bootstrap_diff

SEEDS = [0]
REFERENCES = ["task-best single model", "top-3 vote", "top-5 weighted vote"]


def rows_of(pool: str) -> dict[str, tuple[list[str], str]]:
    """label -> (--set list, method) for the headline rows, with the settings validation chose."""
    chosen = json.loads((RESULTS / f"router_{pool}.json").read_text())["validation_cv"]
    kind, cascade = chosen["chosen"]["kind"], chosen["chosen_cascade"]
    base = skill_settings("category")
    routed = base + router_sets(chosen["chosen"], cascade)
    return {
        "task-best single model": (base, "task_best"),
        "top-3 vote": (base + ["recruit.k=3"], "top_k_vote"),
        "top-5 weighted vote": (base + ["recruit.k=5", 'router.kind="prior"'], "router_vote"),
        f"router_single ({kind})": (routed, "router_single"),
        f"router_vote k=3 ({kind})": (routed + ["recruit.k=3"], "router_vote"),
        f"router_cascade margin={cascade['margin']:g} k_max={cascade['k_max']} ({kind})": (routed, "router_cascade"),
    }


def bench_pool(pool: str) -> dict[str, Any]:
    started = time.perf_counter()
    rows, correct = {}, {}
    for label, (sets, method) in rows_of(pool).items():
        name = label.replace(" ", "_").replace("=", "").replace(",", "")
        result = run_methods(
            CONFIGS[pool], sets, ROOT / "runs" / "bench-router-intervals" / pool / name, [method], SEEDS
        )
        m = result[method]
        correct[label] = m["correct"]
        rows[label] = {
            "accuracy": m["accuracy"],
            "ci95": bootstrap_ci(m["correct"]),
            "calls_per_question": m["calls_per_question"],
            "n": m["n"],
        }
    routers = [label for label in rows if label.startswith("router_")]
    paired = {
        f"{a} - {b}": paired_bootstrap_diff(correct[a], correct[b])
        for a in routers + ["top-5 weighted vote"]
        for b in REFERENCES
        if a != b
    }
    return {"rows": rows, "paired": paired, "wall_seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pools", default="small16,all29")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "seeds": SEEDS, "pools": {}}
    for pool in args.pools.split(","):
        results["pools"][pool] = bench_pool(pool)
        for label, r in results["pools"][pool]["rows"].items():
            low, high = r["ci95"]
            cell = f"{100 * r['accuracy']:.2f} [{100 * low:.1f}, {100 * high:.1f}]"
            print(f"{pool} | {label} | {cell} | {r['calls_per_question']:.2f}")
        for claim, d in results["pools"][pool]["paired"].items():
            verdict = "" if d["significant"] else " not significant"
            print(f"{pool} {claim}: {100 * d['diff']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]{verdict}")
    path = RESULTS / "router_intervals.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
