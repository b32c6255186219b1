"""SIMULATED paper-scale efficiency (paper Table 2): 16 models of 3.8-12B on 1 and 4 A6000 GPUs,
GPQA-sized (198 test questions), k = 3 experts + 1 aggregator; sequential per question vs
Symbolic-MoE batched vs MoA; plus prefetch and residency (beyond the paper).

    .venv/bin/python benchmarks/bench_scale_sim.py [--time-scale 500] [--questions 198] \\
        [--rows all] [--executor local|ray]

Every model is a `simulated` engine charging time from the cost table `a6000_vllm` (packaged,
src/symbolic_moe/engines/sim/a6000_vllm.toml, with its sources). The REAL scheduler runs the jobs the
methods build (the project's run_experts / llm_aggregate / MoA rounds) on the real GPQA test
questions; engines sleep the charged time divided by --time-scale, and every figure here is the
measured wall time multiplied back by it: SIMULATED seconds, not a measurement of any GPU.
Workers stand for GPUs (threads for the local executor, a custom resource `sim_gpu` for Ray).

Recruitment (no recorded GPQA outputs exist here, so no profiles can be built from them):
- `concentrated`: the project's recruit() over one-skill profiles from the paper's Table 8 GPQA
  validation accuracies (score = correct - wrong of 249), linear weighting, 5% trimming: only the
  models above 50% get picked (LlamaR1, QwenR1), as the paper's Fig. 4 says GPQA recruitment is
  "dominated by a few models";
- `uniform`: each slot drawn uniformly from the 16 models (then the same trimming): every model
  loads, the loading-heavy extreme.
The aggregator is the paper's GPQA task aggregator (Table 9: QwenR1). MoA: the top-3 of Table 8
(LlamaR1, QwenR1, Phi3.5-mini) propose, QwenR1 synthesises x3. Writes benchmarks/results/scale_sim.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, table, write_result  # noqa: E402

PAPER = {"sequential_1": 196.92, "moa_1": 45.98, "moa_4": 21.66, "batched_1": 25.76, "batched_4": 10.85}
# Paper Table 8 (GPQA validation accuracy, %) and Table 9 (GPQA aggregator accuracy, %).
GPQA_ACCURACY = {
    "BioLlama": 27.31, "DeepSeekMath": 28.11, "Exaone": 32.13, "Gemma2": 36.95, "GLM4": 30.92,
    "Granite": 34.14, "InternLM3": 36.14, "Llama3.1": 33.73, "LlamaR1": 56.22, "Mathstral": 36.55,
    "Mistral": 33.73, "Phi3.5-mini": 47.79, "Qwen2.5": 37.35, "Qwen2.5-Coder": 30.52,
    "Qwen2.5-Math": 28.51, "QwenR1": 51.41,
}  # fmt: skip
AGGREGATOR = "QwenR1"
REASONING = {"LlamaR1", "QwenR1"}  # max_tokens 32768 in the paper, 4096 for the others
VALIDATION_N = 249
ROWS = {
    # name: (method, gpus, prefetch, memory budget GB per GPU or None, split groups)
    "sequential_1": ("sequential", 1, False, None, False),
    "batched_1": ("batched", 1, False, None, False),
    "batched_4": ("batched", 4, False, None, False),
    "moa_1": ("moa", 1, False, None, False),
    "moa_4": ("moa", 4, False, None, False),
    "batched_1_prefetch": ("batched", 1, True, None, False),
    "batched_1_residency": ("batched", 1, False, 48.0, False),
    "batched_1_prefetch_residency": ("batched", 1, True, 48.0, False),
    "batched_4_split": ("batched", 4, False, None, True),
    "moa_4_split": ("moa", 4, False, None, True),
    "batched_4_split_prefetch_residency": ("batched", 4, True, 48.0, True),
}


def pool_specs(time_scale: float) -> dict[str, Any]:
    from symbolic_moe.config import ModelSpec
    from symbolic_moe.types import GenerationSettings

    return {
        name: ModelSpec(
            engine="simulated",
            model=name,
            settings=GenerationSettings(temperature=0.7, max_tokens=32768 if name in REASONING else 4096),
            options={"cost_table": "a6000_vllm", "time_scale": time_scale},
            resources={"sim_gpu": 1},
        )
        for name in GPQA_ACCURACY
    }


def plan(kind: str, questions: list, seed: int) -> list[list[str]]:
    import numpy as np

    from symbolic_moe.inference.recruit import recruit, trim

    models = list(GPQA_ACCURACY)
    ids = [q.id for q in questions]
    if kind == "concentrated":
        profiles = {m: {"gpqa": round((2 * acc / 100 - 1) * VALIDATION_N)} for m, acc in GPQA_ACCURACY.items()}
        return recruit(ids, [["gpqa"]] * len(ids), profiles, models, k=3, weighting="linear", seed=seed).experts
    rng = np.random.default_rng(seed)
    picks, _ = trim(rng.integers(0, len(models), size=(len(ids), 3)), len(models), 0.05, rng)
    return [[models[i] for i in row] for row in picks]


def run_row(row: str, kind: str, a: argparse.Namespace, questions: list, experts: list[list[str]]) -> dict[str, Any]:
    from symbolic_moe.inference.aggregate import llm_aggregate
    from symbolic_moe.inference.experts import run_experts
    from symbolic_moe.methods.rounds import aggregate_round, cot_round
    from symbolic_moe.scheduler import ModelPool, Scheduler
    from symbolic_moe.store import GenerationStore

    method, gpus, prefetch, budget, split = ROWS[row]
    with tempfile.TemporaryDirectory(prefix="smoe-sim-") as tmp:
        store = GenerationStore(Path(tmp) / "generations.sqlite")
        executor = None
        if a.executor == "ray":
            from symbolic_moe.executors.ray import RayExecutor

            executor = RayExecutor("local", max_retries=0, chunk_size=1024, cluster_resources={"sim_gpu": gpus})
        scheduler = Scheduler(
            ModelPool(pool_specs(a.time_scale)),
            store,
            mode="sequential" if method == "sequential" else "batched",
            workers=gpus,
            chunk_size=1024,  # vLLM gets a model's whole group and batches it continuously
            progress=False,
            prefetch=prefetch,
            memory_budget_gb=budget,
            split_groups=split,
            executor=executor,
        )
        makespan = track_makespan(scheduler)
        start = time.perf_counter()
        if method == "moa":
            proposers = sorted(GPQA_ACCURACY, key=lambda m: -GPQA_ACCURACY[m])[:3]
            texts = cot_round(questions, [proposers] * len(questions), scheduler, a.seed, "moa proposals")
            aggregate_round(questions, [[AGGREGATOR] * 3] * len(questions), texts, scheduler, a.seed, "moa synth")
        else:
            outputs = run_experts(questions, experts, scheduler, a.seed)
            llm_aggregate(questions, [[c.text for c in r] for r in outputs], AGGREGATOR, scheduler, a.seed)
        scheduler.release_all()
        wall = time.perf_counter() - start
        store.close()
    report = scheduler.report()["totals"]
    engines = scheduler.pool._engines.values()
    charged = {k: sum(e.simulated[k] for e in engines) for k in ("load", "prefetch", "generate", "unload")}
    if a.executor == "ray":
        charged = {}  # the engines ran in Ray workers; the driver's copies only named the models
    n = len(questions)
    return {
        "row": row,
        "plan": kind,
        "method": method,
        "gpus": gpus,
        "prefetch": prefetch,
        "memory_budget_gb": budget,
        "split_groups": split,
        "executor": a.executor,
        "simulated_seconds": wall * a.time_scale,
        # The cost model's exact time for the real scheduler's decisions: per scheduler call, the
        # busiest worker's charged seconds (prefetch overlapped, so not in it); wall x time_scale
        # adds the real scheduler's overhead x time_scale and the shared machine's jitter.
        "charged_seconds_per_question": makespan[0] / n if a.executor == "local" else None,
        "simulated_seconds_per_question": wall * a.time_scale / n,
        "real_wall_seconds": wall,
        "loads": int(report["loads"]),
        "requests": int(report["generated"]),
        "completion_tokens": int(report["completion_tokens"]),
        "charged_simulated_seconds": charged,
        "scheduler": scheduler.describe(),
    }


def ratios(s: dict[str, float]) -> dict[str, Any]:
    def ratio(a: str, b: str) -> float | None:
        return s[a] / s[b] if a in s and b in s else None

    def gain(a: str, b: str = "batched_1") -> float | None:
        r = ratio(a, b)
        return None if r is None else 1 - r

    return {
        "sequential_over_batched": ratio("sequential_1", "batched_1"),
        "moa_over_batched": ratio("moa_1", "batched_1"),
        "gpu1_over_gpu4": ratio("batched_1", "batched_4"),
        "gpu1_over_gpu4_split": ratio("batched_1", "batched_4_split"),
        "moa1_over_moa4": ratio("moa_1", "moa_4"),
        "moa_4_split_over_batched_4_split": ratio("moa_4_split", "batched_4_split"),
        "prefetch_gain": gain("batched_1_prefetch"),
        "residency_gain": gain("batched_1_residency"),
        "prefetch_residency_gain": gain("batched_1_prefetch_residency"),
        "prefetch_residency_split_gain_4gpu": gain("batched_4_split_prefetch_residency", "batched_4_split"),
        "prefetch_residency_vs_paper_batched_1": (
            1 - s["batched_1_prefetch_residency"] / PAPER["batched_1"] if "batched_1_prefetch_residency" in s else None
        ),
    }


def track_makespan(scheduler: Any) -> list[float]:
    """Wrap `scheduler.run` to add up, per call, the most any one worker thread was charged."""
    from symbolic_moe.engines import simulated

    total = [0.0]
    run = scheduler.run

    def timed(jobs, label="generate"):
        before = dict(simulated.CHARGES)
        try:
            return run(jobs, label)
        finally:
            deltas = [v - before.get(k, 0.0) for k, v in simulated.CHARGES.items()]
            total[0] += max(deltas, default=0.0)

    scheduler.run = timed
    return total


def summary(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Two views, each like for like: the cost model's exact time for the scheduler's decisions
    (per call, the busiest worker's charged seconds), and wall time x time_scale (the real
    scheduler's overhead x time_scale and the shared machine's jitter included: conservative)."""
    wall = {r: x["simulated_seconds_per_question"] for r, x in rows.items()}
    exact = {r: x["charged_seconds_per_question"] for r, x in rows.items() if x["charged_seconds_per_question"]}
    return {"cost_model": {"seconds_per_question": exact, **ratios(exact)}, "wall_x_scale": {**ratios(wall)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time-scale", type=float, default=500.0)
    p.add_argument("--questions", type=int, default=198)
    p.add_argument("--plans", default="concentrated,uniform")
    p.add_argument("--rows", default="all", help="comma-separated rows of: " + ", ".join(ROWS))
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="scale_sim")
    p.add_argument("--summarise", action="store_true", help="recompute the summaries of the result file only")
    a = p.parse_args()
    if a.summarise:
        path = Path(__file__).resolve().parent / "results" / f"{a.name}.json"
        data = json.loads(path.read_text())
        for plan_data in data["plans"].values():
            plan_data["summary"] = summary(plan_data["rows"])
        write_result(a.name, data)
        print(json.dumps({k: v["summary"] for k, v in data["plans"].items()}, indent=1, default=lambda v: round(v, 3)))
        return
    from symbolic_moe.config import default_data_dir
    from symbolic_moe.data import load_split

    questions = load_split("benchmarks/gpqa", "test", default_data_dir())[: a.questions]
    rows_wanted = list(ROWS) if a.rows == "all" else a.rows.split(",")
    result: dict[str, Any] = {
        "SIMULATED": "all times below are simulated (cost table a6000_vllm x the real scheduler), not GPU measurements",
        "command": "python benchmarks/bench_scale_sim.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "setup": {"questions": len(questions), "k": 3, "aggregator": AGGREGATOR, "time_scale": a.time_scale},
        "paper_table2_seconds_per_question": PAPER,
        "plans": {},
    }
    for kind in a.plans.split(","):
        experts = plan(kind, questions, a.seed)
        counts: dict[str, int] = {}
        for row in experts:
            for m in row:
                counts[m] = counts.get(m, 0) + 1
        rows: dict[str, dict[str, Any]] = {}
        for row in rows_wanted:
            rows[row] = run_row(row, kind, a, questions, experts)
            print(f"{kind} {row}: {rows[row]['simulated_seconds_per_question']:.2f} simulated s/question", flush=True)
        result["plans"][kind] = {"expert_counts": counts, "rows": rows, "summary": summary(rows)}
        result["machine_after"] = machine()
        write_result(a.name, result)
    for kind, data in result["plans"].items():
        lines = [
            [r, x["gpus"], x["loads"], x["simulated_seconds_per_question"], x["charged_seconds_per_question"] or ""]
            + [PAPER.get(r, "")]
            for r, x in data["rows"].items()
        ]
        print(f"SIMULATED, plan {kind}")
        print(table(["row", "GPUs", "loads", "wall x scale s/q", "cost-model s/q", "paper s/q"], lines))
        print(json.dumps(data["summary"], indent=1, default=lambda v: round(v, 3)))


if __name__ == "__main__":
    main()
