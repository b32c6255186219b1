"""Issue 16: skills from a tiny keyword LLM, structured (JSON schema) vs free-form answers.

    nice -n 10 .venv/bin/python benchmarks/bench_keywords.py                # generate + summarise
    .venv/bin/python benchmarks/bench_keywords.py --summarise-only          # re-read what is stored
    .venv/bin/python benchmarks/bench_keywords.py --markdown                # BENCHMARKS.md's tables

For each keyword LLM (SmolLM2-135M, Gemma-3-270M; `[models.*]` of the small16 replay config) and
each mode (structured: `keywords.structured=true`; free: the authors' `Keywords:` line, parsed
leniently): keyword samples (5 per question, temperature 0.7) for the 350 MMLU-Pro validation
questions and every 6th test question (350). Every generation goes to the config's store
(runs/replay-mmlu-pro.sqlite, shared with `smoe annotate`), so a restart loses nothing and the
annotate command reuses them. Keywords per question go to benchmarks/results/keywords_<model>.json
after every unit of work, with:

- share of questions keeping >= 1 keyword after the paper's repeated-keyword filter (per question,
  min_count 2), with a 95% bootstrap interval over questions; distinct kept keywords;
- agreement across the 5 samples: mean pairwise Jaccard similarity of the samples' keyword sets;
- unusable structured answers (questions falling back to no skills because of them);
- time per question, structured vs free, on the same questions: wall seconds and this process's
  CPU seconds (the machine is shared, so CPU time is the fairer figure), counted only for
  generations made by this process (`timing` keeps the first measurement of each unit).

Free-form answers for every question are optional: `--free` picks which questions get them
(default: only the timing subsample of `--time-questions` validation questions, every k-th;
`validation`: all validation questions too). Timing is fair only on a quiet machine and with
generations not yet stored: `--timing-only --seed N` makes fresh ones (the seed is in the store
key) and records only the timing pairs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import RESULTS, ROOT, machine

from symbolic_moe.config import load_config
from symbolic_moe.preprocess.keywords import filter_keywords
from symbolic_moe.run import Run
from symbolic_moe.stats import bootstrap_ci
from symbolic_moe.types import Question

CONFIG = ROOT / "configs/replay-mmlu-pro-small16.toml"


def open_run(model: str, structured: bool, seed: int | None = None) -> Run:
    sets = [
        f"keywords.model={model}",
        f"keywords.structured={str(structured).lower()}",
        "benchmark.stride=6",
        "scheduler.progress=false",
    ]
    if seed is not None:  # another sampling seed: fresh generations (the seed is in the store key)
        sets.append(f"models.{model}.settings.seed={seed}")
    cfg = load_config(CONFIG, sets, out=ROOT / "runs/bench-keywords")
    return Run(cfg)


def subsample(questions: list[Question], n: int) -> list[Question]:
    step = max(1, len(questions) // n)
    return questions[step // 2 :: step][:n]  # off the multiples of step: never generated before


def generate(run: Run, questions: list[Question]) -> tuple[dict[str, Any], dict[str, float]]:
    """Annotate `questions`; the rows and this process's cost (generations made, wall, CPU)."""
    usage = run.scheduler.usage[run.config.keywords.model]
    made_before = usage.generated
    wall, cpu = time.perf_counter(), time.process_time()
    rows = run.annotate(questions)
    cost = {
        "questions": len(questions),
        "generated": usage.generated - made_before,
        "wall_seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
    }
    return rows, cost


def agreement(samples: list[list[str]]) -> float:
    """Mean pairwise Jaccard similarity of the samples' keyword sets (empty pairs count 0)."""
    sets = [set(s) for s in samples]
    pairs = [len(a & b) / len(a | b) if a | b else 0.0 for a, b in itertools.combinations(sets, 2)]
    return float(np.mean(pairs)) if pairs else 0.0


def summarise(rows: dict[str, Any], min_count: int = 2) -> dict[str, Any]:
    samples = {qid: row["samples"] for qid, row in rows.items()}
    kept = filter_keywords(samples, "per_question", min_count)
    has = np.array([[1.0 if kept[q] else 0.0 for q in rows]])
    return {
        "n": len(rows),
        "keep_share": float(has.mean()),
        "keep_ci95": bootstrap_ci(has),
        "distinct_kept": len({k for ks in kept.values() for k in ks}),
        "distinct_raw": len({k for s in samples.values() for ks in s for k in ks}),
        "agreement": float(np.mean([agreement(s) for s in samples.values()])),
        "mean_kept": float(np.mean([len(k) for k in kept.values()])),
        "unusable_answers": sum(row.get("invalid", 0) for row in rows.values()),
        "questions_with_unusable": sum(1 for row in rows.values() if row.get("invalid", 0)),
        "questions_all_unusable": sum(1 for row in rows.values() if row.get("invalid", 0) == len(row["samples"])),
        "keep_share_by_filter": {
            f"{mode} min{n}": float(np.mean([bool(k) for k in filter_keywords(samples, mode, n).values()]))
            for mode in ("per_question", "global")
            for n in (1, 2, 3)
        },
    }


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"units": {}, "timing": {}}


def save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    tmp.replace(path)


def plan(args: argparse.Namespace, runs: dict[str, Run]) -> list[tuple[str, str, bool, list[Question]]]:
    """(model, unit, structured, questions) in the order they run, most needed first: the first
    model's timing pair, its first `--validation-first` validation and `--test-first` test
    questions, the other models' timing pairs (`--time-questions-other`), the rest of the first
    model's test and validation splits, then the other models' splits. Splits grow in chunks of `--chunk`
    questions and results are written after each, so a stop keeps every finished chunk."""
    first, rest = args.models[0], args.models[1:]
    runs_first = runs[first]
    sample = subsample(runs_first.validation, args.time_questions)
    order = [(first, "time", True, sample), (first, "time", False, sample)]
    validation = chunks(first, "validation", runs_first.validation, args.chunk)
    test = chunks(first, "test", runs_first.test, args.chunk)
    val_head, test_head = args.validation_first // args.chunk, args.test_first // args.chunk
    order += validation[:val_head] + test[:test_head]
    for model in rest:
        sample = subsample(runs[model].validation, args.time_questions_other)
        order += [(model, "time", True, sample), (model, "time", False, sample)]
    order += test[test_head:] + validation[val_head:]
    for model in rest:
        order += chunks(model, "validation", runs[model].validation, args.chunk)
        order += chunks(model, "test", runs[model].test, args.chunk)
    if args.free != "timing":
        for model in args.models:
            splits = ["validation"] + (["test"] if args.free == "all" else [])
            for split in splits:
                qs = getattr(runs[model], split)
                order += [(m, u, False, q) for m, u, _, q in chunks(model, split, qs, args.chunk)]
    return order


def chunks(model: str, split: str, questions: list[Question], size: int) -> list[tuple[str, str, bool, list[Question]]]:
    """Growing sets of a split's questions (each unit re-reads the stored ones and adds `size`
    more), spread over the split: MMLU-Pro files are sorted by category, so chunk j takes every
    s-th question from offset j, and any number of finished chunks covers every category."""
    step = -(-len(questions) // size)
    spread = [q for offset in range(step) for q in questions[offset::step]]
    return [(model, split, True, spread[: end + size]) for end in range(0, len(spread), size)]


def run_unit(data: dict[str, Any], run: Run, unit: str, structured: bool, questions: list[Question]) -> None:
    mode = "structured" if structured else "free"
    print(f"{run.config.keywords.model} {unit} {mode}: {len(questions)} questions", flush=True)
    rows, cost = generate(run, questions)
    entry: dict[str, Any] = {"summary": summarise(rows)}
    if unit != "time":
        entry["questions"] = rows
    data["units"][f"{unit}/{mode}"] = entry
    if unit == "time" and cost["generated"] == len(questions) * run.config.keywords.samples:
        seed = run.config.spec(run.config.keywords.model).settings.seed
        data["timing"][mode] = {**cost, "seed": seed, "machine": machine()}  # all made here: a clean measurement
    if "structured" in data["timing"] and "free" in data["timing"]:
        s, f = data["timing"]["structured"], data["timing"]["free"]
        data["timing"]["ratio_cpu"] = s["cpu_seconds"] / f["cpu_seconds"]
        data["timing"]["ratio_wall"] = s["wall_seconds"] / f["wall_seconds"]
    print(json.dumps(entry["summary"]), flush=True)


UNITS = {"time": "timing subsample (validation)", "validation": "validation", "test": "test (every 6th)"}


def markdown(models: list[str]) -> None:
    """BENCHMARKS.md's three tables (keep share, filters, time) from keywords_<model>.json."""
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    data = {m: load(RESULTS / f"keywords_{m}.json") for m in models}
    print(
        "| keyword LLM | questions | mode | n | keep >= 1 keyword % [95% CI] (per question, min 2) "
        "| distinct kept | distinct raw | agreement (Jaccard) | unusable answers |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    rows = [(m, unit, entry["summary"]) for m in models for unit, entry in data[m]["units"].items()]
    for m, unit, s in rows:
        split, mode = unit.split("/")
        low, high = s["keep_ci95"]
        print(
            f"| {m} | {UNITS[split]} | {mode} | {s['n']} | {pct(s['keep_share'])} [{pct(low)}, {pct(high)}] "
            f"| {s['distinct_kept']} | {s['distinct_raw']} | {s['agreement']:.3f} | {s['unusable_answers']} |"
        )
    names = list(rows[0][2]["keep_share_by_filter"])
    print("\n| keyword LLM | questions | mode | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---:|" * len(names))
    for m, unit, s in rows:
        split, mode = unit.split("/")
        shares = " | ".join(pct(s["keep_share_by_filter"][name]) for name in names)
        print(f"| {m} | {UNITS[split]} | {mode} | {shares} |")
    print("\n| keyword LLM | mode | questions | seed | CPU s / q | wall s / q | load average (1, 5, 15 min) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for m in models:
        timing = data[m]["timing"]
        for mode in ("structured", "free"):
            t = timing[mode]
            n = t["questions"]
            print(
                f"| {m} | {mode} | {n} | {t.get('seed', 0)} | {t['cpu_seconds'] / n:.2f} "
                f"| {t['wall_seconds'] / n:.2f} | {t['machine']['loadavg']} |"
            )
        print(f"| {m} | structured / free | | | **{timing['ratio_cpu']:.2f}x** | **{timing['ratio_wall']:.2f}x** | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2", "gemma3"])
    parser.add_argument("--time-questions", type=int, default=35, help="timing subsample, first model")
    parser.add_argument("--time-questions-other", type=int, default=5, help="timing subsample, other models")
    parser.add_argument("--validation-first", type=int, default=100, help="validation questions before test")
    parser.add_argument("--test-first", type=int, default=50, help="test questions before other models")
    parser.add_argument("--free", choices=["timing", "validation", "all"], default="timing")
    parser.add_argument("--chunk", type=int, default=25, help="questions added per unit of a split")
    parser.add_argument("--summarise-only", action="store_true", help="only re-read units already measured")
    parser.add_argument("--timing-only", action="store_true", help="only the timing pairs (with --seed: fresh ones)")
    parser.add_argument("--seed", type=int, help="the keyword LLMs' sampling seed (default: the config's)")
    parser.add_argument("--markdown", action="store_true", help="print BENCHMARKS.md's tables from the results")
    args = parser.parse_args()
    if args.markdown:
        return markdown(args.models)
    runs = {(m, mode): open_run(m, mode, args.seed) for m in args.models for mode in (True, False)}
    data = {m: load(RESULTS / f"keywords_{m}.json") for m in args.models}
    measured = {(m, unit): entry["summary"]["n"] for m in args.models for unit, entry in data[m]["units"].items()}
    for model, unit, structured, questions in plan(args, {m: runs[m, True] for m in args.models}):
        mode = "structured" if structured else "free"
        if args.summarise_only and measured.get((model, f"{unit}/{mode}"), 0) < len(questions):
            continue
        if args.timing_only and unit != "time":
            continue
        run_unit(data[model], runs[model, structured], unit, structured, questions)
        data[model]["model"] = model
        save(RESULTS / f"keywords_{model}.json", data[model])


if __name__ == "__main__":
    main()
