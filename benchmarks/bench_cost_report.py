"""Tables and the figure of `bench_cost.py` (not a benchmark itself): accuracy against dollars per
question (log scale), per pool, with each single model, the zero router's hull and each router's
sweep and hull.

    .venv/bin/python benchmarks/bench_cost_report.py     # redraw from benchmarks/results/cost_*.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench_common import RESULTS
from matplotlib.figure import Figure

COLOURS = {
    "router_single": "tab:blue",
    "router_vote": "tab:orange",
    "router_cascade": "tab:green",
    "router_frugal": "tab:red",
    "zero_router": "black",
}
TITLES = {
    "routerbench": "RouterBench ARC-Challenge test (440)",
    "all29": "MMLU-Pro test (2100), 29 models",
    "small16": "MMLU-Pro test (2100), small16",
}


def plot(results: dict[str, Any], path: Path) -> None:
    fig = Figure(figsize=(7 * len(results), 6))
    for i, (pool, data) in enumerate(results.items()):
        ax = fig.add_subplot(1, len(results), i + 1)
        t = data["test"]
        for s in t["singles"]:
            ax.plot(1000 * s["cost"], 100 * s["accuracy"], "s", color="gray", ms=4)
            ax.annotate(
                s["model"],
                (1000 * s["cost"], 100 * s["accuracy"]),
                fontsize=6,
                xytext=(3, 2),
                textcoords="offset points",
                color="gray",
            )
        for family, colour in COLOURS.items():
            hull = t["frontier"][family]["hull"]
            ax.plot(
                [1000 * c for c, _ in hull],
                [100 * a for _, a in hull],
                "-",
                color=colour,
                lw=1.2,
                label=f"{family} (AIQ {100 * t['frontier'][family]['aiq']:.2f})",
            )
            pts = [r for r in t["sweep"] if r["family"] == family]
            ax.plot([1000 * r["cost"] for r in pts], [100 * r["accuracy"] for r in pts], ".", color=colour, ms=4)
        measured = t["measured"].get("router_frugal", {})
        if measured.get("cost_per_question") is not None:
            ax.plot(
                1000 * measured["cost_per_question"],
                100 * measured["accuracy"],
                "*",
                color="tab:red",
                ms=14,
                label="router_frugal, config defaults",
            )
        ax.set_xscale("log")
        ax.set_xlabel("USD per 1,000 questions (log scale)")
        ax.set_ylabel("test accuracy %")
        ax.set_title(TITLES.get(pool, pool))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _fmt(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in setting.items())


def table(pool: str, data: dict[str, Any]) -> str:
    """The frontier table of one pool (markdown): AIQ, first match, chosen defaults on test."""
    t, v = data["test"], data["validation"]
    best = next(s for s in t["singles"] if s["model"] == data["best_single_by_validation"])
    lines = [
        f"\n{pool}: best single model by validation: {best['model']} "
        f"{100 * best['accuracy']:.2f}% [{100 * best['accuracy_ci95'][0]:.1f}, {100 * best['accuracy_ci95'][1]:.1f}] "
        f"at ${1000 * best['cost']:.3f} per 1,000 questions",
        "| router | AIQ % | first matches best model at (share of its cost) |",
        "|---|---:|---:|",
    ]
    for family, f in t["frontier"].items():
        share = f.get("first_match_cost_share")
        share_text = "-" if family == "zero_router" else ("never" if share is None else f"{100 * share:.1f}%")
        lines.append(f"| {family} | {100 * f['aiq']:.2f} | {share_text} |")
    lines += [
        "",
        "| chosen on validation | setting | test acc % [95% CI] | USD/1k q | calls/q | vs best (paired) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, row in v["chosen"].items():
        family = "router_frugal" if name.startswith("router_frugal") else name
        test_row = next(r for r in t["sweep"] if r["family"] == family and r["setting"] == row["setting"])
        d = test_row["vs_best"]
        verdict = f"{100 * d['diff']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
        verdict += "" if d["significant"] else " n.s."
        lines.append(
            f"| {name} | {_fmt(row['setting'])} | {100 * test_row['accuracy']:.2f} "
            f"[{100 * test_row['accuracy_ci95'][0]:.1f}, {100 * test_row['accuracy_ci95'][1]:.1f}] | "
            f"{1000 * test_row['cost']:.3f} ({100 * test_row['cost'] / best['cost']:.0f}%) | "
            f"{test_row['calls']:.2f} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    results = {}
    for pool in TITLES:
        path = RESULTS / f"cost_{pool}.json"
        if path.exists():
            results[pool] = json.loads(path.read_text())
            print(table(pool, results[pool]))
    plot(results, RESULTS / "cost_frontier.png")


if __name__ == "__main__":
    main()
