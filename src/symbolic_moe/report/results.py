"""Run methods over seeds and write what happened: results.json, predictions.jsonl, a table.

results.json (FORMAT) holds, per method, the accuracy (mean and std over seeds, and a 95%
interval from a seeded bootstrap over questions), calls, tokens, loads and wall time, plus where
it came from (provenance.py): effective config, package version, data dir, input file hashes,
and the hashes of the run-directory artifacts it was computed with.
"""

from __future__ import annotations

import datetime
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ..methods import MethodResult, run_method
from ..run import Run
from .provenance import artifact_hashes, provenance

FORMAT = 2  # results.json and compare.json layout; the report refuses other versions
BOOTSTRAP = {"resamples": 2000, "seed": 0}


def evaluate(run: Run, methods: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """Run every method for every seed; write results.json and predictions.jsonl; return results."""
    start = time.perf_counter()
    results: list[MethodResult] = []
    walls: dict[tuple[str, int], float] = {}
    for name in methods:
        for seed in seeds:
            began = time.perf_counter()
            results.append(run_method(name, run, seed))
            walls[name, seed] = time.perf_counter() - began
    wall = time.perf_counter() - start
    summary = summarise(run, results, wall, walls)
    write_predictions(run, results)
    summary["artifacts"] = artifact_hashes(run.out)
    write_json_atomic(run.out / "results.json", summary)
    return summary


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    tmp.replace(path)


def bootstrap_ci(correct: np.ndarray, resamples: int, seed: int) -> list[float]:
    """95% percentile interval of accuracy, resampling questions (columns of a seeds x questions
    0/1 matrix; each question counts with its mean over seeds)."""
    per_question = np.asarray(correct, dtype=float).reshape(-1, np.shape(correct)[-1]).mean(axis=0)
    if per_question.size == 0:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, per_question.size, size=(resamples, per_question.size))
    means = per_question[idx].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(
    run: Run,
    results: Sequence[MethodResult],
    wall_seconds: float,
    walls: dict[tuple[str, int], float] | None = None,
) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    for name in dict.fromkeys(r.name for r in results):
        runs = [r for r in results if r.name == name]
        accuracies = [r.accuracy for r in runs]
        n_questions = max(runs[0].n, 1)
        correct = np.array([[p.correct for p in r.predictions] for r in runs], dtype=float)
        methods[name] = {
            "accuracy": statistics.fmean(accuracies),
            "std": statistics.pstdev(accuracies) if len(accuracies) > 1 else 0.0,
            "ci95": bootstrap_ci(correct, **BOOTSTRAP),
            "n": runs[0].n,
            "seeds": [r.seed for r in runs],
            "per_seed_accuracy": accuracies,
            "calls_per_question": statistics.fmean(r.calls for r in runs) / n_questions,
            "tokens_per_question": statistics.fmean(r.prompt_tokens + r.completion_tokens for r in runs) / n_questions,
            "loads_per_seed": [r.loads for r in runs],
            "wall_seconds_per_seed": [(walls or {}).get((name, r.seed)) for r in runs],
            "info": {str(r.seed): r.info for r in runs},
        }
    usage = run.scheduler.report()
    totals = usage["totals"]
    return {
        "format": FORMAT,
        "run_id": uuid.uuid4().hex,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "bootstrap": BOOTSTRAP,
        **provenance(run),
        "config": run.config.name,
        "benchmark": run.config.benchmark.path,
        "methods": methods,
        "loads": int(totals["loads"]),
        "wall_seconds": wall_seconds,
        "tokens": {
            "prompt": int(totals["prompt_tokens"]),
            "completion": int(totals["completion_tokens"]),
            "generated_requests": int(totals["generated"]),
            "reused_requests": int(totals["reused"]),
        },
        "usage": usage,
    }


def write_predictions(run: Run, results: Sequence[MethodResult]) -> None:
    """One line per method, seed and question; the question's category rides along (when it has
    one) so per-category accuracy needs nothing but this file."""
    category = {q.id: q.category for q in run.test}
    path = run.out / "predictions.jsonl"
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        for r in results:
            for p in r.predictions:
                row = {
                    "method": r.name,
                    "seed": r.seed,
                    "id": p.question_id,
                    "category": category.get(p.question_id),
                    "answer": p.answer,
                    "correct": p.correct,
                    **p.detail,
                    "text": p.text,
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def interval(ci95: Sequence[float]) -> str:
    """A 95% interval in percent, as the tables show it."""
    return f"{100 * ci95[0]:.1f}-{100 * ci95[1]:.1f}"


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{summary['config']} on {summary['benchmark']}")
    for column in ("method", "accuracy", "95% interval", "n", "calls/q", "tokens/q"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, m in summary["methods"].items():
        acc = f"{100 * m['accuracy']:.2f}" + (f" ± {100 * m['std']:.2f}" if len(m["seeds"]) > 1 else "")
        table.add_row(
            name,
            acc,
            interval(m["ci95"]),
            str(m["n"]),
            f"{m['calls_per_question']:.1f}",
            f"{m['tokens_per_question']:.0f}",
        )
    console.print(table)
    console.print(
        f"loads: {summary['loads']}   wall: {summary['wall_seconds']:.1f} s   "
        f"tokens: {summary['tokens']['prompt']} prompt + {summary['tokens']['completion']} completion   "
        f"requests: {summary['tokens']['generated_requests']} generated, "
        f"{summary['tokens']['reused_requests']} reused from the store"
    )
