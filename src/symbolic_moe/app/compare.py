"""`smoe compare`: several methods on one run (one pool, one benchmark, one store), over seeds.

`report.evaluate` runs them and writes results.json and predictions.jsonl; this adds
`compare.json` ({"format", "run_id", "methods": {method: {mean, std, ci95, calls_per_question,
tokens_per_question, category, label, models}}}; `run_id` is the one of the results.json written
with it) and a table laid out like the paper's Table 1 (category, method, models, accuracy, cost). Methods share stored
generations: a Debate's first round is Self-Consistency's first three samples, MoA's proposals
are top-k's answers, so the comparison costs little more than its most expensive method. The
cost columns count every call a method makes, whether generated now or reused from the store.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..methods import method_spec
from ..run import Run
from .report import FORMAT, evaluate, write_json_atomic
from .report.results import accuracy_text, interval

# method -> (Table 1 category, method, models): how the paper labels each row.
ROWS: dict[str, tuple[str, str, str]] = {
    "task_best": ("Single model", "Zero-shot CoT", "Task-Best"),
    "self_refine": ("Advanced single model", "Self-Refine", "Task-Best"),
    "self_consistency": ("Advanced single model", "Self-Consistency", "Task-Best x5"),
    "debate": ("Single-model multi-agent", "Debate", "Task-Best x3"),
    "self_moa": ("Single-model multi-agent", "Self-MoA", "Task-Best x3"),
    "moa": ("Multi-model multi-agent", "MoA", "Top-3"),
    "reconcile": ("Multi-model multi-agent", "ReConcile", "Top-3"),
    "symbolic_moe": ("Multi-model multi-agent", "Symbolic-MoE", "Adaptive"),
    "symbolic_moe_llm": ("Multi-model multi-agent", "Symbolic-MoE (task aggregator)", "Adaptive"),
    "symbolic_moe_vote": ("Multi-model multi-agent", "Symbolic-MoE (majority)", "Adaptive"),
    "symbolic_moe_weighted": ("Multi-model multi-agent", "Symbolic-MoE (weighted vote)", "Adaptive"),
    "symbolic_moe_linear": ("Multi-model multi-agent", "Symbolic-MoE (linear weighting)", "Adaptive"),
    "symbolic_moe_softmax": ("Multi-model multi-agent", "Symbolic-MoE (softmax weighting)", "Adaptive"),
    "symbolic_moe_greedy": ("Multi-model multi-agent", "Symbolic-MoE (greedy top-k, ours)", "Adaptive"),
    "symbolic_moe_discussion": ("Multi-model multi-agent", "Symbolic-MoE + discussion", "Adaptive"),
    "top_k_vote": ("Recruitment ablation", "Top-k, majority", "Top-k"),
    "random_k_vote": ("Recruitment ablation", "Random-k, majority", "Random-k"),
    "top_k_llm": ("Recruitment ablation", "Top-k, task aggregator", "Top-k"),
    "random_k_llm": ("Recruitment ablation", "Random-k, task aggregator", "Random-k"),
    "router_single": ("Learned routing", "Router, most likely model", "Routed"),
    "router_vote": ("Learned routing", "Router, top-k confidence-weighted vote", "Routed top-k"),
    "router_cascade": ("Learned routing", "Router, best-first cascade", "Routed cascade"),
    "oracle": ("Upper bound", "Oracle (any pool model right)", "All"),
}
for _agg, _label in (
    ("random", "random"),
    ("adaptive", "adaptive"),
    ("task_best", "task-best"),
    ("task_specific", "task-specific"),
):
    ROWS[f"symbolic_moe_agg_{_agg}"] = ("Aggregator ablation", f"Symbolic-MoE, {_label} aggregator", "Adaptive")
    ROWS[f"symbolic_moe_agg_{_agg}_discussion"] = (
        "Aggregator ablation",
        f"Symbolic-MoE + discussion, {_label} aggregator",
        "Adaptive",
    )


def describe(name: str, info: dict[str, Any]) -> tuple[str, str, str]:
    """(category, method, models) of a row; the concrete model is added when the method names one."""
    if name.startswith("single:"):
        return ("Single model", "Zero-shot CoT", name.split(":", 1)[1])
    category, label, models = ROWS.get(name, ("Other", name, ""))
    model = info.get("model")
    return category, label, f"{models} ({model})" if model and models.startswith("Task-Best") else models


def compare(run: Run, methods: Sequence[str], seeds: Sequence[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run `methods` x `seeds`; write results.json, predictions.jsonl and compare.json into the run
    directory. Returns (the compare table, the full summary)."""
    for name in methods:
        method_spec(name)  # an unknown name fails now, not after the methods before it ran
    summary = evaluate(run, methods, seeds)
    rows = {}
    for name, m in summary["methods"].items():
        category, label, models = describe(name, next(iter(m["info"].values()), {}))
        rows[name] = {
            "mean": m["accuracy"],
            "std": m["std"],
            "ci95": m["ci95"],
            "calls_per_question": m["calls_per_question"],
            "tokens_per_question": m["tokens_per_question"],
            "category": category,
            "label": label,
            "models": models,
        }
    table = {"format": FORMAT, "run_id": summary["run_id"], "methods": rows}
    write_json_atomic(run.out / "compare.json", table)
    return table, summary


def print_compare(summary: dict[str, Any], console: Console | None = None) -> None:
    """The Table-1-style view: rows grouped by category in the order given."""
    # Piped to a file, rich would wrap the table at 80 columns: give it room instead.
    console = console or Console(width=None if sys.stdout.isatty() else 170)
    table = Table(title=f"{summary['config']} on {summary['benchmark']}")
    columns = ("category", "method", "models", "accuracy %", "95% interval", "n", "calls/q", "tokens/q", "loads/seed")
    for column in columns:
        table.add_column(column, justify="left" if column in ("category", "method", "models") else "right")
    last = None
    for name, m in summary["methods"].items():
        first_info: dict[str, Any] = next(iter(m["info"].values()), {})
        category, label, models = describe(name, first_info)
        loads = sum(m["loads_per_seed"]) / max(len(m["loads_per_seed"]), 1)
        table.add_row(
            category if category != last else "",
            escape(f"{label} [{name}]"),
            models,
            accuracy_text(m),
            interval(m["ci95"]),
            str(m["n"]),
            f"{m['calls_per_question']:.1f}",
            f"{m['tokens_per_question']:.0f}",
            f"{loads:.1f}",
        )
        last = category
    console.print(table)
    tokens = summary["tokens"]
    console.print(
        f"wall: {summary['wall_seconds']:.1f} s   requests: {tokens['generated_requests']} generated, "
        f"{tokens['reused_requests']} reused from the store"
    )
