"""Parallel scheduler workers on whole model groups (issue 5, e): 1 worker vs 2.

    .venv/bin/python benchmarks/bench_workers.py [--questions 8] [--max-tokens 96] [--cores 2]

The 4 experts of configs/embedded.toml each answer the same --questions demo test questions
(chain-of-thought prompt, greedy, --max-tokens): 4 model groups. Each setting runs with a fresh
generation store, so everything is generated:
- 1 worker, n_threads = cores (the default);
- 2 workers, n_threads = cores / 2 per engine (cores split between the two groups in flight);
- 2 workers, n_threads = cores per engine (oversubscribed: shows why threads must be split).
On 2 cores, 2 workers cannot beat 2 threads in one engine by 2x: both use the same 2 cores; the
gain can only come from what one engine leaves idle (loads, Python between decode steps, the
serial tail of a batch). Writes benchmarks/results/workers.json and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, CpuMeter, machine, table, under_load, wait_for_quiet, write_result  # noqa: E402

from symbolic_moe.config import load_config  # noqa: E402
from symbolic_moe.data import load_split  # noqa: E402
from symbolic_moe.prompts import cot_request  # noqa: E402
from symbolic_moe.scheduler import Job, ModelPool, Scheduler  # noqa: E402
from symbolic_moe.store import GenerationStore  # noqa: E402


def measure(workers: int, threads: int, a: argparse.Namespace) -> dict[str, Any]:
    config = load_config(ROOT / a.config)
    specs = {
        name: spec.model_copy(update={"options": {**spec.options, "n_threads": threads}})
        for name, spec in config.pool.items()
    }
    questions = load_split(config.benchmark.path, config.benchmark.test, None, limit=a.questions)
    jobs = [
        Job(name, cot_request(q), spec.settings.model_copy(update={"temperature": 0.0, "max_tokens": a.max_tokens}))
        for name, spec in specs.items()
        for q in questions
    ]
    load = wait_for_quiet(a.max_load, a.wait)
    with tempfile.TemporaryDirectory() as tmp:
        scheduler = Scheduler(
            ModelPool(specs), GenerationStore(Path(tmp) / "store.sqlite"), workers=workers, progress=False
        )
        meter = CpuMeter()
        start = time.perf_counter()
        completions = scheduler.run(jobs, label="workers")
        wall = time.perf_counter() - start
        cpu = meter.stop()
        totals = scheduler.report()["totals"]
    return {
        "workers": workers,
        "n_threads": threads,
        "wall_seconds": wall,
        "groups": len(specs),
        "jobs": len(jobs),
        "completion_tokens": sum(c.completion_tokens for c in completions),
        "engine_seconds_summed": totals["load_seconds"] + totals["generate_seconds"] + totals["unload_seconds"],
        "loads": totals["loads"],
        "machine_before": load,
        "under_load": under_load(load),
        "cpu_during": cpu,
        "texts": [c.text for c in completions],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/embedded.toml")
    p.add_argument("--questions", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--max-load", type=float, default=1.5)
    p.add_argument("--wait", type=float, default=1800)
    a = p.parse_args()
    settings = [(1, a.cores), (2, max(1, a.cores // 2)), (2, a.cores)]
    rows = [measure(w, t, a) for w, t in settings]
    base = rows[0]
    for r in rows:
        r["speedup_vs_1_worker"] = base["wall_seconds"] / r["wall_seconds"]
        r["same_texts_as_1_worker"] = sum(x == y for x, y in zip(r["texts"], base["texts"], strict=True))
    for r in rows:
        del r["texts"]
    result = {
        "command": "python benchmarks/bench_workers.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "setup": {"questions": a.questions, "max_tokens": a.max_tokens, "cores": a.cores},
        "rows": rows,
    }
    path = write_result("workers", result)
    print(
        table(
            ["workers", "n_threads", "wall s", "speedup", "jobs", "tokens", "same texts", "others"],
            [
                [
                    r["workers"],
                    r["n_threads"],
                    r["wall_seconds"],
                    r["speedup_vs_1_worker"],
                    r["jobs"],
                    r["completion_tokens"],
                    f"{r['same_texts_as_1_worker']}/{r['jobs']}",
                    r["cpu_during"]["others_normal_cores"],
                ]
                for r in rows
            ],
        )
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
