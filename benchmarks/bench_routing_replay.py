"""Issue 3 table: Symbolic-MoE routing on the replay pools (real recorded outputs), mean +- std
over seeds and the 95% bootstrap interval over questions, against the task-best model, a fixed
top-3 vote, a random-3 vote and the oracle; "A beats B" claims as paired bootstrap intervals of
the difference (`symbolic_moe.stats`: same questions, same resamples).

    .venv/bin/python benchmarks/bench_routing_replay.py --skills category
    .venv/bin/python benchmarks/bench_routing_replay.py --skills keywords --stride 6   # keyword LLM, subset

Also decides the default weighting on the VALIDATION split only: two-fold cross-validation
(profiles on one half of validation, routing scored on the other half, then swapped); the
held-out predictions of both folds cover all validation questions, so weightings are compared
there with the same paired bootstrap.
Writes benchmarks/results/routing_replay_<skills>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import machine
from rich.console import Console
from rich.table import Table

from symbolic_moe.app.report import evaluate
from symbolic_moe.config import load_config, resolve_data_dir
from symbolic_moe.data import load_split
from symbolic_moe.run import Run
from symbolic_moe.stats import bootstrap_ci, paired_bootstrap_diff
from symbolic_moe.types import Question

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"small16": "configs/replay-mmlu-pro-small16.toml", "all29": "configs/replay-mmlu-pro.toml"}
BASELINES = ["task_best", "top_k_vote", "random_k_vote", "oracle"]
ROUTED = ["symbolic_moe_vote", "symbolic_moe_weighted"]
WEIGHTINGS = ["softmax", "linear", "greedy"]


def skill_settings(skills: str) -> list[str]:
    return ["keywords.skills_from_field=category"] if skills == "category" else []


def run_methods(config: str, sets: list[str], out: Path, methods: list[str], seeds: list[int]) -> dict:
    """results.json's per-method summaries (accuracy, std over seeds, ci95 over questions, ...),
    each with `correct`: its seeds x questions 0/1 matrix, questions in id order."""
    cfg = load_config(ROOT / config, sets + ["scheduler.progress=false"], out=out)
    methods_summary = evaluate(Run(cfg), methods, seeds)["methods"]
    for name, matrix in correctness(out).items():
        methods_summary[name]["correct"] = matrix
    return methods_summary


def correctness(out: Path) -> dict[str, np.ndarray]:
    """Each method's seeds x questions 0/1 matrix from a run's predictions.jsonl (questions in id
    order, so runs over the same questions pair up)."""
    found: dict[str, dict[int, dict[str, bool]]] = {}
    with (out / "predictions.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            found.setdefault(row["method"], {}).setdefault(row["seed"], {})[row["id"]] = row["correct"]
    return {
        method: np.array([[by_id[q] for q in sorted(by_id)] for _, by_id in sorted(seeds.items())], dtype=float)
        for method, seeds in found.items()
    }


def paired(table: dict[str, Any], pairs: list[tuple[str, str]]) -> dict[str, dict[str, float | bool]]:
    """ "A - B" with its paired 95% bootstrap interval, for each pair of rows present in `table`."""
    return {
        f"{a} - {b}": paired_bootstrap_diff(table[a]["correct"], table[b]["correct"])
        for a, b in pairs
        if a in table and b in table
    }


def claims(weightings: list[str]) -> list[tuple[str, str]]:
    """The comparisons BENCHMARKS.md states: routing against the fixed and random ensembles,
    the weightings against each other, the weighted vote against the plain one."""
    pairs = [("top_k_vote", "task_best")]
    for w in weightings:
        pairs += [(f"symbolic_moe_vote ({w})", "top_k_vote"), (f"symbolic_moe_weighted ({w})", "top_k_vote")]
        pairs += [(f"symbolic_moe_vote ({w})", "random_k_vote"), (f"symbolic_moe_vote ({w})", "task_best")]
        pairs += [(f"symbolic_moe_weighted ({w})", f"symbolic_moe_vote ({w})")]
    for method in ROUTED:
        pairs += [(f"{method} (linear)", f"{method} (softmax)"), (f"{method} (greedy)", f"{method} (linear)")]
    return pairs


def cross_validate(
    config: str,
    skills: str,
    seeds: list[int],
    work: Path,
    variants: dict[str, list[str]] | None = None,
    held_out: dict[str, np.ndarray] | None = None,
    questions: list[Question] | None = None,
) -> dict[str, float]:
    """Routing accuracy per variant (default: per weighting; a variant is a list of `--set`s) with
    profiles from one half of validation (or of `questions`), scored on the other half, then
    swapped. `held_out`, when given, receives each variant's seeds x questions 0/1 matrix (both
    folds' held-out halves side by side) for paired comparisons."""
    variants = variants or {w: [f"recruit.weighting={w}"] for w in WEIGHTINGS}
    cfg = load_config(ROOT / config)
    if questions is None:
        questions = load_split(cfg.benchmark.path, "validation", resolve_data_dir(cfg))
    halves = [questions[0::2], questions[1::2]]
    scores: dict[str, list[float]] = {v: [] for v in variants}
    parts: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    for fold in (0, 1):
        folder = work / f"fold{fold}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, part in (("validation", halves[fold]), ("test", halves[1 - fold])):
            write_split(folder / f"{name}.jsonl", part)
        for name, extra in variants.items():
            sets = skill_settings(skills) + [f"benchmark.path={folder}"] + extra
            result = run_methods(config, sets, work / f"fold{fold}-{name}", ["symbolic_moe_vote"], seeds)
            scores[name].append(result["symbolic_moe_vote"]["accuracy"])
            parts[name].append(result["symbolic_moe_vote"]["correct"])
    if held_out is not None:
        held_out.update({name: np.concatenate(matrices, axis=1) for name, matrices in parts.items()})
    return {w: statistics.fmean(v) for w, v in scores.items()}


def write_split(path: Path, questions: list[Question]) -> None:
    """A benchmark split file holding exactly `questions` (ids kept, so stored answers match)."""
    with path.open("w") as f:
        for q in questions:
            f.write(json.dumps({**q.extra, **q.model_dump(exclude={"extra"})}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skills", choices=["category", "keywords"], default="category")
    parser.add_argument("--pools", default="small16,all29")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--stride", type=int, default=1, help="every N-th test question (keyword LLM is slow)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-routing")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict = {"machine": machine(), "skills": args.skills, "seeds": seeds, "stride": args.stride, "pools": {}}
    for pool in args.pools.split(","):
        started = time.perf_counter()
        config = CONFIGS[pool]
        base_sets = skill_settings(args.skills) + [f"benchmark.stride={args.stride}"]
        out = args.out / f"{pool}-{args.skills}-s{args.stride}"
        table = run_methods(config, base_sets, out / "baselines", BASELINES, seeds)
        for weighting in WEIGHTINGS:
            routed = run_methods(config, base_sets + [f"recruit.weighting={weighting}"], out / weighting, ROUTED, seeds)
            table.update({f"{name} ({weighting})": value for name, value in routed.items()})
        results["pools"][pool] = {
            "test": {
                m: {k: v[k] for k in ("accuracy", "std", "ci95", "n", "per_seed_accuracy")} for m, v in table.items()
            },
            "test_paired": paired(table, claims(WEIGHTINGS)),
            **decide_weighting(config, args.skills, seeds),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        show(pool, args.skills, table, results["pools"][pool])
    path = ROOT / "benchmarks" / "results" / f"routing_replay_{args.skills}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")


def decide_weighting(config: str, skills: str, seeds: list[int]) -> dict[str, Any]:
    """The default weighting on validation (two-fold CV): the better of the paper's two
    behaviours (softmax, linear) on the point estimate, with paired intervals beside it."""
    held_out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        accuracy = cross_validate(config, skills, seeds, Path(tmp), held_out=held_out)
    pairs = [("linear", "softmax"), ("greedy", "linear"), ("greedy", "softmax")]
    return {
        "validation_2fold_symbolic_moe_vote": accuracy,
        "validation_2fold_ci95": {w: bootstrap_ci(m) for w, m in held_out.items()},
        "validation_2fold_paired": {f"{a} - {b}": paired_bootstrap_diff(held_out[a], held_out[b]) for a, b in pairs},
        "chosen_weighting": max(("softmax", "linear"), key=accuracy.__getitem__),
    }


def show(pool: str, skills: str, table: dict, result: dict) -> None:
    out = Table(title=f"replay MMLU-Pro, {pool} pool, skills from {skills}: test accuracy % (mean +- std, 95% CI)")
    out.add_column("method")
    out.add_column("accuracy", justify="right")
    out.add_column("95% interval", justify="right")
    out.add_column("n", justify="right")
    for name, m in table.items():
        low, high = m["ci95"]
        out.add_row(
            name, f"{100 * m['accuracy']:.2f} +- {100 * m['std']:.2f}", f"{100 * low:.1f}-{100 * high:.1f}", str(m["n"])
        )
    Console().print(out)
    for claim, d in result["test_paired"].items():
        verdict = "" if d["significant"] else "  not significant"
        print(f"test  {claim}: {100 * d['diff']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]{verdict}")
    cv = result["validation_2fold_symbolic_moe_vote"]
    print("validation 2-fold (symbolic_moe_vote):", {w: round(100 * a, 2) for w, a in cv.items()})
    for claim, d in result["validation_2fold_paired"].items():
        print(f"validation  {claim}: {100 * d['diff']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]")
    print("chosen weighting (validation):", result["chosen_weighting"])


if __name__ == "__main__":
    main()
