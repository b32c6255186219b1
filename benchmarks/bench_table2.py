"""Table 2 analog (paper: GPQA time per question, one GPU): sequential model swapping vs
Symbolic-MoE batched vs MoA, same pool, same questions, k = 3. Also measures, from the same runs:
(b) scheduler overhead, (d) re-running a finished run from the store, (f) peak RSS.

    .venv/bin/python benchmarks/bench_table2.py [--questions 30] [--max-tokens 128] [--threads 2] \\
        [--cold | --warm] [--work /tmp/smoe-bench-table2] [--max-load 1.5]

Pool: configs/embedded.toml (4 experts: SmolLM2-135M and Gemma-3-270M, each also with a system
prompt), its demo test split (first --questions), every model's max_tokens set to --max-tokens.
Preprocessing (keywords, profiles, aggregator choice, recruitment) runs once, untimed, in
<work>/prep; each measured mode then runs in its own process on a copy of those artifacts with
its own empty generation store, so nothing is reused between modes and sequential and batched
follow the same recruitment plan (its hash is recorded per mode).
- sequential: Symbolic-MoE with the scheduler's sequential mode: per question, each recruited
  model (and then the aggregator) is loaded, generates that question's requests, is unloaded;
- batched: Symbolic-MoE as shipped: jobs grouped by model, each model loaded once;
- moa: MoA (top-3 validation models propose, the task aggregator synthesises x3, majority),
  batched per model and round by the same scheduler;
- rerun: the batched run again in a new process, from its finished store (target >= 100x).
--cold (default): models load with use_mmap=False after `sync; echo 3 > /proc/sys/vm/drop_caches`
before every load (root only; the drop itself is timed apart and taken out of the wall time).
The projection rows replace the measured load time by 20 s or 40 s per load (a 7B model onto a
GPU) and keep the measured generation time: clearly a projection, not a measurement.
Writes benchmarks/results/table2.json and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    ROOT,
    CpuMeter,
    drop_page_cache,
    machine,
    peak_rss_mib,
    table,
    under_load,
    wait_for_quiet,
    write_result,
)

MODES = ["sequential", "batched", "moa", "rerun"]
GPU_LOAD_SECONDS = [20.0, 40.0]


def make_config(a: argparse.Namespace, out: Path):
    from symbolic_moe.config import load_config

    sets = [f"benchmark.limit={a.questions}", "scheduler.progress=false"]
    if a.validation:
        sets.append(f"benchmark.validation_limit={a.validation}")
    raw = __import__("tomllib").loads((ROOT / a.config).read_text())
    sets += [f"pool.{m}.settings.max_tokens={a.max_tokens}" for m in raw["pool"]]
    return load_config(ROOT / a.config, sets, out=out)


def open_run(a: argparse.Namespace, out: Path, cold: bool):
    """A Run whose engines get n_threads (and use_mmap=False when cold) without changing the
    config, so the artifact fingerprints of the prep run still match."""
    from symbolic_moe.run import Run

    run = Run(make_config(a, out))
    for name, spec in run.pool.specs.items():
        options = {**spec.options, "n_threads": a.threads}
        if cold:
            options["use_mmap"] = False
        run.pool.specs[name] = spec.model_copy(update={"options": options})
    return run


def plan_hash(plan: Any) -> str:
    return hashlib.sha256(json.dumps(plan.experts).encode()).hexdigest()[:16]


def patch_cold_loads(counter: dict[str, float]) -> None:
    """Drop the page cache before every model load, outside the engine's timed load."""
    from symbolic_moe.engines.llama_cpp import LlamaCppEngine

    load = LlamaCppEngine.load

    def cold_load(self: LlamaCppEngine) -> None:
        if not self.loaded:
            start = time.perf_counter()
            counter["ok"] = float(drop_page_cache())
            counter["drops"] += 1
            counter["seconds"] += time.perf_counter() - start
        load(self)

    LlamaCppEngine.load = cold_load  # type: ignore[method-assign]


def child(mode: str, a: argparse.Namespace) -> dict[str, Any]:
    from symbolic_moe.engines.embedded import embedded_gguf
    from symbolic_moe.methods import base as methods

    work = Path(a.work)
    out = work / ("batched" if mode == "rerun" else mode)
    if mode in ("sequential", "batched", "moa"):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for f in (work / "prep").iterdir():
            if f.suffix in (".json", ".npz"):
                shutil.copy(f, out / f.name)
    run = open_run(a, out, a.cold and mode != "prep")
    if mode == "prep":
        start = time.perf_counter()
        run.mapped_keywords()
        run.aggregator()
        ranked = run.ranked_models()
        plan = run.recruitment(run.config.seed)
        return {
            "seconds": time.perf_counter() - start,
            "plan": plan_hash(plan),
            "ranked": ranked,
            "scheduler": run.scheduler.report(),
        }
    if mode == "sequential":
        run.scheduler.mode = "sequential"
    name = "moa" if mode == "moa" else "symbolic_moe"
    spec = methods.method_spec(name)
    assert spec.prepare is not None
    spec.prepare(run)  # artifacts only: nothing may be generated here
    assert run.scheduler.loads == 0 and run.scheduler.calls == 0, "prep artifacts did not match"
    for model in ("smollm2", "gemma3-270m"):
        embedded_gguf(model)  # locating Gemma re-hashes its file once per process: not a load
    drops = {"drops": 0, "seconds": 0.0, "ok": 0.0}
    if a.cold and mode != "rerun":
        patch_cold_loads(drops)
    load_before = [round(x, 2) for x in __import__("os").getloadavg()]
    meter = CpuMeter()
    start = time.perf_counter()
    result = methods.run_method(name, run, run.config.seed)
    wall = time.perf_counter() - start
    cpu = meter.stop()
    report = run.scheduler.report()
    totals = report["totals"]
    engine = totals["load_seconds"] + totals["unload_seconds"] + totals["generate_seconds"]
    return {
        "mode": mode,
        "method": name,
        "wall_seconds": wall,
        "page_cache_drops": drops,
        "wall_minus_drops": wall - drops["seconds"],
        "engine_seconds": engine,
        "overhead_share": (wall - drops["seconds"]) / engine - 1 if engine else None,
        "questions": result.n,
        "accuracy": result.accuracy,
        "calls": result.calls,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "loads": totals["loads"],
        "load_seconds": totals["load_seconds"],
        "generate_seconds": totals["generate_seconds"],
        "unload_seconds": totals["unload_seconds"],
        "per_model": report["per_model"],
        "plans": report["plans"],
        "recruitment": plan_hash(run.recruitment(run.config.seed)) if name == "symbolic_moe" else None,
        "peak_rss_mib": peak_rss_mib(),
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in __import__("os").getloadavg()],
        "cpu_during": cpu,
    }


def spawn(mode: str, argv: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, *argv, "--child", mode]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{mode}: child failed with code {proc.returncode}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["process_seconds"] = time.perf_counter() - start
    return data


def summarise(rows: dict[str, dict[str, Any]], n: int) -> list[list[Any]]:
    lines = []
    for mode, r in rows.items():
        if mode == "prep":
            continue
        wall = r["wall_minus_drops"]
        lines.append(
            [
                mode,
                wall / n,
                r["loads"],
                r["load_seconds"] / n,
                r["generate_seconds"] / n,
                r["calls"],
                r["prompt_tokens"] + r["completion_tokens"],
                r["peak_rss_mib"],
                f"{r['loadavg_before'][0]:.2f}",
                r["cpu_during"]["others_normal_cores"],
            ]
        )
    return lines


def projection(rows: dict[str, dict[str, Any]], n: int) -> dict[str, Any]:
    """PROJECTION, not measured: measured generation + scheduler time, loads x GPU load time."""
    out: dict[str, Any] = {}
    for load in GPU_LOAD_SECONDS:
        per_mode = {}
        for mode in ("sequential", "batched", "moa"):
            if mode in rows:
                r = rows[mode]
                rest = r["wall_minus_drops"] - r["load_seconds"]
                per_mode[mode] = (rest + r["loads"] * load) / n
        ratios = {}
        if "sequential" in per_mode and "batched" in per_mode:
            ratios["sequential_over_batched"] = per_mode["sequential"] / per_mode["batched"]
        if "moa" in per_mode and "batched" in per_mode:
            ratios["moa_over_batched"] = per_mode["moa"] / per_mode["batched"]
        out[f"{load:g}s_per_load"] = {"seconds_per_question": per_mode, **ratios}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/embedded.toml")
    p.add_argument("--questions", type=int, default=30)
    p.add_argument("--validation", type=int, default=None, help="validation questions (default: all)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--work", default="/tmp/smoe-bench-table2")
    p.add_argument("--modes", nargs="*", default=MODES, choices=MODES)
    p.add_argument("--max-load", type=float, default=1.5, help="wait until the 1-min load is below this")
    p.add_argument("--wait", type=float, default=1800, help="seconds to wait for a quiet machine at most")
    p.add_argument("--name", default="table2")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a), default=str))
        return
    argv = [x for x in sys.argv[1:]]
    prep_dir = Path(a.work) / "prep"
    rows: dict[str, dict[str, Any]] = {"prep": spawn("prep", argv)}
    print(f"prep (untimed for the table): {rows['prep']['seconds']:.1f} s in {prep_dir}", file=sys.stderr)
    for mode in a.modes:
        if mode == "rerun" and "batched" not in a.modes and not (Path(a.work) / "batched").exists():
            continue
        state = wait_for_quiet(a.max_load, a.wait)
        rows[mode] = spawn(mode, argv)
        rows[mode]["machine_before"] = state
        print(f"{mode}: {rows[mode]['wall_seconds']:.1f} s", file=sys.stderr)
        write_result(a.name + "_partial", {"rows": rows})  # survives an interrupted run
    n = a.questions
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_table2.py " + " ".join(argv),
        "machine": machine(a.threads),
        "setup": {
            "questions": n,
            "max_tokens": a.max_tokens,
            "k": 3,
            "cold_loads": a.cold,
            "config": a.config,
            "threads": a.threads,
        },
        "rows": rows,
    }
    summary: dict[str, Any] = {}
    if "batched" in rows:
        b = rows["batched"]
        summary["per_question_seconds"] = {m: rows[m]["wall_minus_drops"] / n for m in rows if m != "prep"}
        if "sequential" in rows:
            summary["sequential_over_batched"] = rows["sequential"]["wall_minus_drops"] / b["wall_minus_drops"]
            plans = {rows["sequential"]["recruitment"], b["recruitment"], rows["prep"]["plan"]}
            summary["same_recruitment_plan"] = len(plans) == 1
        if "moa" in rows:
            summary["moa_over_batched"] = rows["moa"]["wall_minus_drops"] / b["wall_minus_drops"]
        summary["overhead_share"] = b["overhead_share"]
        summary["peak_rss_mib_batched"] = b["peak_rss_mib"]
        if "rerun" in rows:
            summary["rerun_speedup"] = b["wall_seconds"] / rows["rerun"]["wall_seconds"]
            summary["rerun_speedup_whole_process"] = b["process_seconds"] / rows["rerun"]["process_seconds"]
        summary["projection_gpu_load_times"] = projection(rows, n)
        timed = [m for m in rows if m != "prep"]
        summary["under_load"] = any(under_load(rows[m]["machine_before"]) for m in timed)
        summary["others_normal_cores_max"] = max(rows[m]["cpu_during"]["others_normal_cores"] for m in timed)
    result["summary"] = summary
    path = write_result(a.name, result)
    headers = ["mode", "s/question", "loads", "load s/q", "gen s/q", "calls", "tokens", "peak MiB", "load1", "others"]
    print(table(headers, summarise(rows, n)))
    for key in (
        "sequential_over_batched",
        "moa_over_batched",
        "overhead_share",
        "rerun_speedup",
        "under_load",
        "others_normal_cores_max",
    ):
        if key in summary:
            print(f"{key}: {summary[key]}")
    for load, proj in summary.get("projection_gpu_load_times", {}).items():
        print(f"PROJECTION ({load}, measured generation): {json.dumps(proj, default=lambda x: round(x, 2))}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
