"""Run methods over seeds and write what happened: results.json, predictions.jsonl, a table."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .methods import MethodResult, run_method
from .run import Run


def evaluate(run: Run, methods: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """Run every method for every seed; write results.json and predictions.jsonl; return results."""
    start = time.perf_counter()
    results: list[MethodResult] = []
    try:
        for name in methods:
            for seed in seeds:
                results.append(run_method(name, run, seed))
    finally:
        run.scheduler.release_all()  # resident models (scheduler.memory_budget_gb)
    wall = time.perf_counter() - start
    summary = summarise(run, results, wall)
    write_predictions(run, results)
    (run.out / "results.json").write_text(json.dumps(summary, indent=1))
    return summary


def summarise(run: Run, results: Sequence[MethodResult], wall_seconds: float) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    for name in dict.fromkeys(r.name for r in results):
        runs = [r for r in results if r.name == name]
        accuracies = [r.accuracy for r in runs]
        n_questions = max(runs[0].n, 1)
        methods[name] = {
            "accuracy": statistics.fmean(accuracies),
            "std": statistics.pstdev(accuracies) if len(accuracies) > 1 else 0.0,
            "n": runs[0].n,
            "seeds": [r.seed for r in runs],
            "per_seed_accuracy": accuracies,
            "calls_per_question": statistics.fmean(r.calls for r in runs) / n_questions,
            "tokens_per_question": statistics.fmean(r.prompt_tokens + r.completion_tokens for r in runs) / n_questions,
            "loads_per_seed": [r.loads for r in runs],
            "info": {str(r.seed): r.info for r in runs},
        }
    usage = run.scheduler.report()
    totals = usage["totals"]
    return {
        "config": run.config.name,
        "benchmark": run.config.benchmark.path,
        "methods": methods,
        "loads": int(totals["loads"]),
        "wall_seconds": wall_seconds,
        "scheduler": run.scheduler.describe(),
        "tokens": {
            "prompt": int(totals["prompt_tokens"]),
            "completion": int(totals["completion_tokens"]),
            "generated_requests": int(totals["generated"]),
            "reused_requests": int(totals["reused"]),
        },
        "usage": usage,
    }


def write_predictions(run: Run, results: Sequence[MethodResult]) -> None:
    with (run.out / "predictions.jsonl").open("w") as f:
        for r in results:
            for p in r.predictions:
                row = {
                    "method": r.name,
                    "seed": r.seed,
                    "id": p.question_id,
                    "answer": p.answer,
                    "correct": p.correct,
                    **p.detail,
                    "text": p.text,
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{summary['config']} on {summary['benchmark']}")
    for column in ("method", "accuracy", "n", "calls/q", "tokens/q"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, m in summary["methods"].items():
        acc = f"{100 * m['accuracy']:.2f}" + (f" ± {100 * m['std']:.2f}" if len(m["seeds"]) > 1 else "")
        table.add_row(name, acc, str(m["n"]), f"{m['calls_per_question']:.1f}", f"{m['tokens_per_question']:.0f}")
    console.print(table)
    console.print(
        f"loads: {summary['loads']}   wall: {summary['wall_seconds']:.1f} s   "
        f"tokens: {summary['tokens']['prompt']} prompt + {summary['tokens']['completion']} completion   "
        f"requests: {summary['tokens']['generated_requests']} generated, "
        f"{summary['tokens']['reused_requests']} reused from the store"
    )
