"""Live: the embedded pool through a local Ray cluster vs the local executor, same config and seed,
1 and 2 workers with the 2 cores split between them. Measures wall time, Ray's overhead per model
group (group wall time at the driver minus the engine's own load + generate + unload time on the
worker), loads, and whether the stored greedy answers are identical.

    .venv/bin/python benchmarks/bench_ray_live.py [--limit 4] [--validation 6] [--max-tokens 32]

Each mode is a fresh `smoe run configs/embedded.toml` process with an empty run directory:
- local_1: local executor, 1 worker, llama.cpp n_threads 2;
- local_2: local executor, 2 workers (model groups side by side), n_threads 1 each;
- ray_1: private Ray cluster on 127.0.0.1 with 2 CPUs, every model {num_cpus = 2}, n_threads 2;
- ray_2: the same cluster, every model {num_cpus = 1} (2 groups at once), n_threads 1;
- local_1_resident (only with --modes): local_1 plus scheduler.memory_budget_gb = 4, so models
  stay loaded between the pipeline's steps (residency, measured live).
Greedy (temperature 0 everywhere) so that every mode must store the same texts under the same keys.
The machine is shared: the 1-minute load average before and after each mode is recorded.
Writes benchmarks/results/ray_live.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, machine, table, write_result  # noqa: E402

MODES = {
    # name: (executor, workers, n_threads, num_cpus per model group)
    "local_1": ("local", 1, 2, None),
    "local_2": ("local", 2, 1, None),
    "ray_1": ("ray", 1, 2, 2),
    "ray_2": ("ray", 2, 1, 1),
    "local_1_resident": ("local", 1, 2, None),  # + residency: models stay loaded between steps
}


def sets_for(mode: str, a: argparse.Namespace) -> list[str]:
    executor, workers, threads, cpus = MODES[mode]
    threads = min(threads, a.max_threads)
    pool = tomllib.loads((ROOT / a.config).read_text())["pool"]
    sets = [
        f"benchmark.limit={a.limit}",
        f"benchmark.validation_limit={a.validation}",
        "scheduler.progress=false",
        f"scheduler.workers={workers}",
        f"scheduler.executor={executor}",
        "keywords.temperature=0.0",
        f"keywords.samples={a.samples}",
        "keywords.min_count=1",
    ]
    if executor == "ray":
        sets += ["scheduler.ray_address=local", "scheduler.ray_num_cpus=2"]
    if mode.endswith("_resident"):
        sets.append("scheduler.memory_budget_gb=4")  # the embedded GGUFs take < 1 GB together
    for name in pool:
        sets += [
            f"pool.{name}.settings.temperature=0.0",
            f"pool.{name}.settings.max_tokens={a.max_tokens}",
            f"pool.{name}.options.n_threads={threads}",
        ]
        if cpus is not None:
            sets.append(f"pool.{name}.resources.num_cpus={cpus}")
    return sets


def stored(path: Path) -> dict[str, str | None]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, text FROM generations").fetchall())


def run_mode(mode: str, a: argparse.Namespace) -> dict[str, Any]:
    out = Path(a.work) / mode
    subprocess.run(["rm", "-rf", str(out)], check=True)
    command = [
        sys.executable,
        "-c",
        "from symbolic_moe.app.cli import main; main()",
        "run",
        a.config,
        "--out",
        str(out),
    ]
    for item in sets_for(mode, a):
        command += ["--set", item]
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "RAY_ADDRESS": ""})
    process_seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{mode}: smoe run failed ({proc.returncode})")
    results = json.loads((out / "results.json").read_text())
    sched = results.get("scheduler", {})
    return {
        "mode": mode,
        "command": " ".join(command[3:]),
        "process_seconds": process_seconds,
        "wall_seconds": results["wall_seconds"],
        "loads": results["loads"],
        "scheduler": sched,
        "accuracy": {m: r["accuracy"] for m, r in results["methods"].items()},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "answers": stored(out / "generations.sqlite"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/embedded.toml")
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--validation", type=int, default=6)
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--modes", default="local_1,local_2,ray_1,ray_2")
    p.add_argument("--name", default="ray_live")
    p.add_argument(
        "--max-threads",
        type=int,
        default=2,
        help="cap llama.cpp threads per model (1 on a machine busy with other work: 2 threads then stall each other)",
    )
    p.add_argument("--work", default="/tmp/smoe-bench-ray-live")
    a = p.parse_args()
    rows: dict[str, dict[str, Any]] = {}
    for mode in a.modes.split(","):
        rows[mode] = run_mode(mode, a)
        print(f"{mode}: {rows[mode]['wall_seconds']:.1f} s, loads {rows[mode]['loads']}", file=sys.stderr, flush=True)
    reference = rows[next(iter(rows))]["answers"]
    summary: dict[str, Any] = {}
    for row in rows.values():
        answers = row.pop("answers")
        row["generations"] = len(answers)
        row["identical_to_first_mode"] = answers == reference
        row["differing_keys"] = sorted(k for k in set(answers) | set(reference) if answers.get(k) != reference.get(k))
        if row["scheduler"].get("executor") == "ray":
            per_group = row["scheduler"]["overhead_seconds_per_group"]
            groups = row["scheduler"]["groups"]
            row["ray_overhead_seconds_per_group"] = per_group
            row["ray_overhead_share_of_wall"] = (
                per_group * groups / row["wall_seconds"] if row["wall_seconds"] else None
            )
    for ray_mode, local_mode in (("ray_1", "local_1"), ("ray_2", "local_2")):
        if ray_mode in rows and local_mode in rows:
            summary[f"{ray_mode}_over_{local_mode}_wall"] = (
                rows[ray_mode]["wall_seconds"] / rows[local_mode]["wall_seconds"]
            )
    summary["all_identical"] = all(r["identical_to_first_mode"] for r in rows.values())
    result = {
        "command": "python benchmarks/bench_ray_live.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "note": "shared 2-core machine: other sessions ran at the same time (see loadavg per mode)",
        "rows": rows,
        "summary": summary,
    }
    path = write_result(a.name, result)
    lines = [
        [
            m,
            r["wall_seconds"],
            r["process_seconds"],
            r["loads"],
            r.get("ray_overhead_seconds_per_group", ""),
            r["identical_to_first_mode"],
            r["loadavg_before"][0],
        ]
        for m, r in rows.items()
    ]
    print(table(["mode", "wall s", "process s", "loads", "ray s/group", "same answers", "load1"], lines))
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
