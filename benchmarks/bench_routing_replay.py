"""Issue 3 table: Symbolic-MoE routing on the replay pools (real recorded outputs), mean +- std
over seeds, against the task-best model, a fixed top-3 vote, a random-3 vote and the oracle.

    .venv/bin/python benchmarks/bench_routing_replay.py --skills category
    .venv/bin/python benchmarks/bench_routing_replay.py --skills keywords --stride 6   # keyword LLM, subset

Also decides the default weighting on the VALIDATION split only: two-fold cross-validation
(profiles on one half of validation, routing scored on the other half, then swapped).
Writes benchmarks/results/routing_replay_<skills>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from symbolic_moe.app.report import evaluate
from symbolic_moe.config import load_config
from symbolic_moe.data import load_split
from symbolic_moe.run import Run
from symbolic_moe.types import Question

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"small16": "configs/replay-mmlu-pro-small16.toml", "all29": "configs/replay-mmlu-pro.toml"}
BASELINES = ["task_best", "top_k_vote", "random_k_vote", "oracle"]
ROUTED = ["symbolic_moe_vote", "symbolic_moe_weighted"]
WEIGHTINGS = ["softmax", "linear", "greedy"]


def skill_settings(skills: str) -> list[str]:
    return ["keywords.skills_from_field=category"] if skills == "category" else []


def run_methods(config: str, sets: list[str], out: Path, methods: list[str], seeds: list[int]) -> dict:
    cfg = load_config(ROOT / config, sets + ["scheduler.progress=false"], out=out)
    return evaluate(Run(cfg), methods, seeds)["methods"]


def cross_validate(
    config: str,
    skills: str,
    seeds: list[int],
    work: Path,
    variants: dict[str, list[str]] | None = None,
    questions: list[Question] | None = None,
) -> dict[str, float]:
    """Routing accuracy per variant (default: per weighting; a variant is a list of `--set`s) with
    profiles from one half of validation (or of `questions`), scored on the other half, then
    swapped."""
    variants = variants or {w: [f"recruit.weighting={w}"] for w in WEIGHTINGS}
    cfg = load_config(ROOT / config)
    from symbolic_moe.config import resolve_data_dir

    if questions is None:
        questions = load_split(cfg.benchmark.path, "validation", resolve_data_dir(cfg))
    halves = [questions[0::2], questions[1::2]]
    scores: dict[str, list[float]] = {v: [] for v in variants}
    for fold in (0, 1):
        folder = work / f"fold{fold}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, part in (("validation", halves[fold]), ("test", halves[1 - fold])):
            write_split(folder / f"{name}.jsonl", part)
        for name, extra in variants.items():
            sets = skill_settings(skills) + [f"benchmark.path={folder}"] + extra
            result = run_methods(config, sets, work / f"fold{fold}-{name}", ["symbolic_moe_vote"], seeds)
            scores[name].append(result["symbolic_moe_vote"]["accuracy"])
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
    results: dict = {"skills": args.skills, "seeds": seeds, "stride": args.stride, "pools": {}}
    for pool in args.pools.split(","):
        config = CONFIGS[pool]
        base_sets = skill_settings(args.skills) + [f"benchmark.stride={args.stride}"]
        out = args.out / f"{pool}-{args.skills}-s{args.stride}"
        table = run_methods(config, base_sets, out / "baselines", BASELINES, seeds)
        for weighting in WEIGHTINGS:
            routed = run_methods(config, base_sets + [f"recruit.weighting={weighting}"], out / weighting, ROUTED, seeds)
            table.update({f"{name} ({weighting})": value for name, value in routed.items()})
        with tempfile.TemporaryDirectory() as tmp:
            validation_cv = cross_validate(config, args.skills, seeds, Path(tmp))
        results["pools"][pool] = {
            "test": {m: {k: v[k] for k in ("accuracy", "std", "n", "per_seed_accuracy")} for m, v in table.items()},
            "validation_2fold_symbolic_moe_vote": validation_cv,
        }
        show(pool, args.skills, table, validation_cv)
    path = ROOT / "benchmarks" / "results" / f"routing_replay_{args.skills}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")


def show(pool: str, skills: str, table: dict, validation_cv: dict) -> None:
    out = Table(title=f"replay MMLU-Pro, {pool} pool, skills from {skills}: test accuracy % (mean +- std)")
    out.add_column("method")
    out.add_column("accuracy", justify="right")
    out.add_column("n", justify="right")
    for name, m in table.items():
        out.add_row(name, f"{100 * m['accuracy']:.2f} +- {100 * m['std']:.2f}", str(m["n"]))
    Console().print(out)
    print("validation 2-fold (symbolic_moe_vote):", {w: round(100 * a, 2) for w, a in validation_cv.items()})


if __name__ == "__main__":
    main()
