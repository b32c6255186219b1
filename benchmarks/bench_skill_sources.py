"""Issue 16: where do the skills come from? Routing on the replay pools with skills from a keyword
LLM (SmolLM2-135M or Gemma-3-270M, structured answers), the category field, no skills at all, and
MiniLM neighbours (`keywords.source = "embedding"`), on the same questions.

    .venv/bin/python benchmarks/bench_skill_sources.py                 # limits from bench_keywords
    .venv/bin/python benchmarks/bench_skill_sources.py --validation-limit 150 --test-limit 100
    .venv/bin/python benchmarks/bench_skill_sources.py --markdown        # BENCHMARKS.md's tables

Questions: the validation questions (profiles, router fitting) and the every-6th test questions
that bench_keywords.py has annotated with every keyword LLM of `--sources`
(benchmarks/results/keywords_<model>.json; at most `--validation-limit` / `--test-limit`), written
as a benchmark folder under --out, so every source sees the same questions; the keyword samples are
read from the store bench_keywords.py filled (a missing one would be generated).
"No skills" is `keywords.skills_from_field=none` (no question has a field of that name, so every
question falls back to global competency). Methods: Symbolic-MoE with majority vote, linear and
greedy weighting (seeds 0-2), and the learned router (`router.kind = "skills"`, router_single;
its signals always include the category, so there it is the category plus the skill tokens).
Each accuracy has its 95% bootstrap interval over questions; each source's paired bootstrap
difference against the category field is on the same questions and resamples.

First, the keyword filter and `min_count` are decided on validation only, for each keyword LLM
(2-fold cross-validation of Symbolic-MoE, linear weighting, on the annotated validation
questions); that LLM's rows then use its winner. Writes benchmarks/results/skill_sources.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from bench_routing_replay import CONFIGS, ROOT, cross_validate, write_split
from rich.console import Console
from rich.table import Table

from symbolic_moe.config import load_config, resolve_data_dir
from symbolic_moe.data import load_split
from symbolic_moe.methods import run_method
from symbolic_moe.run import Run
from symbolic_moe.stats import bootstrap_ci, paired_bootstrap_diff
from symbolic_moe.types import Question

SOURCES = {
    "category": ["keywords.skills_from_field=category"],
    "smollm2": ["keywords.model=smollm2", "keywords.structured=true"],
    "gemma3": ["keywords.model=gemma3", "keywords.structured=true"],
    "none": ["keywords.skills_from_field=none"],
    "embedding": ["keywords.source=embedding", "keywords.embedding_field=category"],
}
METHODS = {
    "symbolic_moe linear": ("symbolic_moe_vote", ["recruit.weighting=linear"]),
    "symbolic_moe greedy": ("symbolic_moe_vote", ["recruit.weighting=greedy"]),
    "router skills": ("router_single", ["router.kind=skills", "router.cost_weight=0"]),
}
FILTERS = {
    f"{mode} min{n}": [f"keywords.filter={mode}", f"keywords.min_count={n}"]
    for mode in ("per_question", "global")
    for n in (1, 2, 3)
}


LLMS = ("smollm2", "gemma3")


def annotated_questions(llms: list[str], limits: tuple[int | None, int | None]) -> dict[str, list[Question]]:
    """The validation and test questions bench_keywords.py has annotated with every one of `llms`
    (benchmarks/results/keywords_<model>.json), at most `limits` of them, in split order."""
    cfg = load_config(ROOT / CONFIGS["small16"])
    out = {}
    for split, limit in zip(("validation", "test"), limits, strict=True):
        questions = load_split(cfg.benchmark.path, split, resolve_data_dir(cfg))
        for llm in llms:
            units = json.loads((ROOT / f"benchmarks/results/keywords_{llm}.json").read_text())["units"]
            annotated = units[f"{split}/structured"]["questions"]
            questions = [q for q in questions if q.id in annotated]
        out[split] = questions[:limit]
    return out


def correctness(pool: str, sets: list[str], method: str, seeds: list[int], out: Path) -> np.ndarray:
    """A seeds x questions 0/1 matrix of `method` on the test questions."""
    cfg = load_config(ROOT / CONFIGS[pool], [*sets, "scheduler.progress=false"], out=out)
    run = Run(cfg)
    rows = []
    for seed in seeds:
        result = run_method(method, run, seed)
        rows.append([float(p.correct) for p in result.predictions])
    return np.array(rows)


def choose_filter(llm: str, questions: list[Question], seeds: list[int]) -> dict[str, Any]:
    """2-fold cross-validation on small16's annotated validation questions, per filter variant."""
    base = SOURCES[llm] + ["recruit.weighting=linear"]
    variants = {name: base + sets for name, sets in FILTERS.items()}
    held_out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scores = cross_validate(CONFIGS["small16"], "keywords", seeds, Path(tmp), variants, held_out, questions)
    best = max(scores, key=lambda name: scores[name])
    # how clear the choice is: the winner minus each other variant, paired over the held-out questions
    margins = {name: paired_bootstrap_diff(held_out[best], held_out[name]) for name in variants if name != best}
    return {"cv_accuracy": scores, "chosen": best, "sets": FILTERS[best], "chosen_minus": margins}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pools", default="small16,all29")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--validation-limit", type=int)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--sources", default=",".join(SOURCES), help="category first (the reference)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-skill-sources")
    parser.add_argument("--markdown", action="store_true", help="print BENCHMARKS.md's tables from the results")
    args = parser.parse_args()
    if args.markdown:
        return markdown(json.loads((ROOT / "benchmarks/results/skill_sources.json").read_text()))
    seeds = [int(s) for s in args.seeds.split(",")]
    sources = {name: SOURCES[name] for name in args.sources.split(",")}
    llms = [name for name in sources if name in LLMS]
    questions = annotated_questions(llms, (args.validation_limit, args.test_limit))
    folder = args.out / "questions"  # exactly the annotated questions, as a benchmark folder
    folder.mkdir(parents=True, exist_ok=True)
    for split, qs in questions.items():
        write_split(folder / f"{split}.jsonl", qs)
    limits = [f"benchmark.path={folder.resolve()}"]
    chosen = {llm: choose_filter(llm, questions["validation"], seeds) for llm in llms}
    print("filter by validation CV:", json.dumps(chosen), flush=True)
    results: dict[str, Any] = {"validation_questions": len(questions["validation"]), "seeds": seeds}
    results["test_questions"] = len(questions["test"])
    results["filter"] = chosen
    for pool in args.pools.split(","):
        table: dict[str, Any] = {}
        for label, (method, method_sets) in METHODS.items():
            matrices = {}
            for source, source_sets in sources.items():
                sets = limits + source_sets + method_sets + (chosen[source]["sets"] if source in chosen else [])
                out = args.out / f"{pool}-{source}-{label.replace(' ', '_')}"
                matrices[source] = correctness(pool, sets, method, seeds, out)
            for source, matrix in matrices.items():
                row = {"accuracy": float(matrix.mean()), "ci95": bootstrap_ci(matrix), "n": matrix.shape[1]}
                if source != "category":
                    row["vs_category"] = paired_bootstrap_diff(matrix, matrices["category"])
                table[f"{label} / {source}"] = row
        results[pool] = table
        show(pool, table)
        path = ROOT / "benchmarks/results/skill_sources.json"
        path.write_text(json.dumps(results, indent=1))
    print(f"wrote {ROOT / 'benchmarks/results/skill_sources.json'}")


def markdown(results: dict[str, Any]) -> None:
    """BENCHMARKS.md's tables: the filter choice per keyword LLM, then each pool's accuracies."""
    print("| keyword LLM | " + " | ".join(FILTERS) + " | chosen | chosen minus runner-up [95% CI] |")
    print("|---|" + "---:|" * len(FILTERS) + "---|---|")
    for llm, choice in results["filter"].items():
        scores = " | ".join(f"{100 * choice['cv_accuracy'][name]:.2f}" for name in FILTERS)
        runner = min(choice["chosen_minus"].items(), key=lambda item: item[1]["diff"])
        d = runner[1]
        margin = f"{100 * d['diff']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}] vs {runner[0]}"
        print(f"| {llm} | {scores} | {choice['chosen']} | {margin} |")
    for pool in ("small16", "all29"):
        print(f"\n| {pool}: method / skills | test accuracy % [95% CI] | n | minus category, points [95% CI] |")
        print("|---|---:|---:|---|")
        for name, row in results.get(pool, {}).items():
            low, high = row["ci95"]
            d = row.get("vs_category")
            vs = f"{100 * d['diff']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]" if d else ""
            vs += "" if not d or d["significant"] else " n.s."
            print(f"| {name} | {100 * row['accuracy']:.2f} [{100 * low:.1f}, {100 * high:.1f}] | {row['n']} | {vs} |")


def show(pool: str, table: dict[str, Any]) -> None:
    out = Table(title=f"replay MMLU-Pro, {pool}: test accuracy % by skill source (95% CI; diff vs category)")
    for column in ("method / skills", "accuracy", "95% CI", "n", "vs category (95% CI)"):
        out.add_column(column)
    for name, row in table.items():
        low, high = row["ci95"]
        diff = row.get("vs_category")
        vs = (
            f"{100 * diff['diff']:+.2f} [{100 * diff['low']:+.2f}, {100 * diff['high']:+.2f}]"
            + ("" if diff["significant"] else " n.s.")
            if diff
            else ""
        )
        out.add_row(name, f"{100 * row['accuracy']:.2f}", f"{100 * low:.1f}-{100 * high:.1f}", str(row["n"]), vs)
    Console().print(out)


if __name__ == "__main__":
    main()
