"""Issue 10 table: the learned router against fixed ensembles, Symbolic-MoE and oracles on the
replay pools (real recorded outputs), public MMLU-Pro test split, seeds 0, 1, 2, mean +- std and
calls per question on every row; plus an accuracy-vs-calls plot.

    .venv/bin/python benchmarks/bench_router.py                    # both pools, ~10-15 min on 2 busy cores
    .venv/bin/python benchmarks/bench_router.py --pools small16

Every default is chosen on the VALIDATION split only, before any test row is computed:
- the router (predictor, its shrinkage / neighbours / clusters / C, the cascade's k_max and margin):
  5-fold cross-validation on validation (3 fold shuffles), replaying the stored validation answers
  (`router_cv.py`): the setting with the best cascade accuracy within 4 calls per question;
- Symbolic-MoE's weighting and trimming: two-fold cross-validation on validation
  (`bench_routing_replay.cross_validate`), per weighting with trim_share 0.05 and 0.
Writes benchmarks/results/router_<pool>.json and router_accuracy_vs_calls.png. ETR rows are read
from router_etr_<pool>.json when another job has written them.
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
import router_cv
from bench_common import RESULTS, ROOT, machine
from bench_routing_replay import CONFIGS, WEIGHTINGS, cross_validate, run_methods, skill_settings

from symbolic_moe import router_fit
from symbolic_moe.config import load_config
from symbolic_moe.run import Run

SEEDS = [0, 1, 2]
ETR_FILES = {"small16": "router_etr_small16.json", "all29": "router_etr_all29.json"}
TRIMS = [0.05, 0.0]


def router_sets(chosen: dict[str, Any], cascade: dict[str, float]) -> list[str]:
    keys = ("kind", "strength", "neighbours", "clusters", "c")
    sets = [f"router.{k}={chosen[k]}" if k != "kind" else f'router.kind="{chosen[k]}"' for k in keys]
    return sets + [f"router.k_max={cascade['k_max']}", f"router.margin={cascade['margin']}"]


def row(label: str, result: dict[str, Any], family: str, **extra: Any) -> dict[str, Any]:
    return {
        "method": label,
        "family": family,
        "accuracy_mean": result["accuracy"],
        "accuracy_std": result["std"],
        "per_seed": result["per_seed_accuracy"],
        "calls_per_question": result["calls_per_question"],
        "seeds": result["seeds"],
        **extra,
    }


def category_oracle(config: str, sets: list[str], out: Path) -> dict[str, Any]:
    """Best model per category chosen ON TEST (an upper bound for category routing), 1 call/q."""
    run = Run(load_config(ROOT / config, sets + ["scheduler.progress=false"], out=out))
    correct = router_fit.labels(run, "test", run.test)
    categories = np.array([q.category for q in run.test])
    right = sum(correct[categories == c].sum(axis=0).max() for c in sorted(set(categories)))
    accuracy = float(right / len(run.test))
    return {"accuracy": accuracy, "std": 0.0, "per_seed_accuracy": [accuracy], "calls_per_question": 1.0, "seeds": [0]}


def test_brier(config: str, sets: list[str], out: Path) -> dict[str, float]:
    """Brier of the chosen router fitted on validation, and of the prior, on the test questions."""
    from symbolic_moe.routing import brier

    run = Run(load_config(ROOT / config, sets + ["scheduler.progress=false"], out=out))
    y = router_fit.labels(run, "test", run.test)
    prior = Run(load_config(ROOT / config, sets + ['router.kind="prior"', "scheduler.progress=false"], out=out))
    return {
        "router": brier(router_fit.predict_scored(run), y),
        "prior": brier(router_fit.predict_scored(prior), y),
    }


def bench_pool(pool: str, work: Path) -> dict[str, Any]:
    config = CONFIGS[pool]
    base = skill_settings("category")
    started = time.perf_counter()
    # -- decisions, validation only ------------------------------------------------------------
    run = Run(load_config(ROOT / config, base + ["scheduler.progress=false"], out=work / "cv"))
    cv = router_cv.choose(run)
    variants = {
        f"{w} trim={t}": [f"recruit.weighting={w}", f"recruit.trim_share={t}"] for w in WEIGHTINGS for t in TRIMS
    }
    with tempfile.TemporaryDirectory() as tmp:
        trim_cv = cross_validate(config, "category", SEEDS, Path(tmp), variants)
    chosen, cascade = cv["chosen"], cv["chosen_cascade"]
    rsets = base + router_sets(chosen, cascade)
    margins = sorted({max(0.0, cascade["margin"] - 1.0), cascade["margin"], cascade["margin"] + 2.0})
    # -- test rows ------------------------------------------------------------------------------
    rows: list[dict[str, Any]] = []

    def add(label, sets, method, family, **extra):
        name = label.replace(" ", "_").replace("=", "").replace(",", "")
        result = run_methods(config, sets, work / name, [method], SEEDS)[method]
        rows.append(row(label, result, family, **extra))
        return result

    add("task-best single model", base, "task_best", "single")
    for k in (1, 3, 5, 7):
        add(f"top-{k} vote", base + [f"recruit.k={k}"], "top_k_vote", "fixed")
        add(f"top-{k} weighted vote", base + [f"recruit.k={k}", 'router.kind="prior"'], "router_vote", "fixed")
    for w in WEIGHTINGS:
        for t in TRIMS:
            add(
                f"Symbolic-MoE {w}, trim {t}",
                base + [f"recruit.weighting={w}", f"recruit.trim_share={t}"],
                "symbolic_moe_vote",
                "symbolic_moe",
            )
    kind = chosen["kind"]
    add(f"router_single ({kind})", rsets, "router_single", "router")
    for k in (3, 5):
        add(f"router_vote k={k} ({kind})", rsets + [f"recruit.k={k}"], "router_vote", "router")
    for m in margins:
        info = add(
            f"router_cascade margin={m:g} k_max={cascade['k_max']} ({kind})",
            rsets + [f"router.margin={m}"],
            "router_cascade",
            "router",
        )
        rows[-1]["mean_calls_from_info"] = statistics.fmean(i["mean_calls_per_question"] for i in info["info"].values())
    folds = ["router.cross_fit_folds=5"]
    add(
        f"router_vote k=3 ({kind}), cross-fitted +4/5 test labels",
        rsets + ["recruit.k=3"] + folds,
        "router_vote",
        "router_more_labels",
    )
    add(
        f"router_cascade margin={cascade['margin']:g} ({kind}), cross-fitted +4/5 test labels",
        rsets + folds,
        "router_cascade",
        "router_more_labels",
    )
    rows.append(row("per-category oracle (chosen on test)", category_oracle(config, base, work / "cat"), "oracle"))
    add("per-question oracle (any model right)", base, "oracle", "oracle")
    rows.extend(etr_rows(pool))
    return {
        "config": config,
        "skills": "category",
        "seeds": SEEDS,
        "validation_cv": cv,
        "validation_cv_symbolic_moe": trim_cv,
        "test_brier": test_brier(config, rsets, work / "brier"),
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def etr_rows(pool: str) -> list[dict[str, Any]]:
    path = RESULTS / ETR_FILES[pool]
    if not path.exists():
        print(f"{path.name}: absent (ETR rows are written by the ETR job); table without ETR")
        return []
    data = json.loads(path.read_text())
    subset = (
        f" (every {data['test_stride']}th test question, n={data['test_questions']})"
        if data.get("test_stride", 1) > 1
        else ""
    )
    return [
        {**r, "method": r["method"] + subset, "family": "etr"} for r in data["rows"] if r["method"].startswith("etr")
    ]


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pools = list(results)
    fig, axes = plt.subplots(1, len(pools), figsize=(8 * len(pools), 7), squeeze=False)
    colours = {
        "single": "black",
        "fixed": "tab:blue",
        "symbolic_moe": "tab:orange",
        "router": "tab:green",
        "router_more_labels": "tab:olive",
        "oracle": "tab:red",
        "etr": "tab:purple",
    }
    for ax, pool in zip(axes[0], pools, strict=True):
        for r in results[pool]["rows"]:
            x, y = r["calls_per_question"], 100 * r["accuracy_mean"]
            ax.errorbar(x, y, yerr=100 * r["accuracy_std"], fmt="o", color=colours.get(r["family"], "gray"), ms=5)
            ax.annotate(r["method"], (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("LLM calls per question (log scale)")
        ax.set_ylabel("test accuracy % (mean ± std, seeds 0-2)")
        ax.set_title(f"MMLU-Pro test, replay {pool}")
        ax.grid(alpha=0.3)
        for family, colour in colours.items():
            ax.scatter([], [], color=colour, label=family)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pools", default="small16,all29")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-router")
    parser.add_argument(
        "--etr-only", action="store_true", help="refresh only the ETR rows of the written results (and the plot)"
    )
    args = parser.parse_args()
    results = {}
    for pool in [] if args.etr_only else args.pools.split(","):
        data = {"machine": machine(), **bench_pool(pool, args.out / pool)}
        path = RESULTS / f"router_{pool}.json"
        path.write_text(json.dumps(data, indent=1, default=str))
        print(f"wrote {path}")
        show(pool, data)
        results[pool] = data
    for pool in ("small16", "all29"):
        path = RESULTS / f"router_{pool}.json"
        if pool not in results and path.exists():
            results[pool] = json.loads(path.read_text())
            if args.etr_only:
                rows = [r for r in results[pool]["rows"] if r["family"] != "etr"] + etr_rows(pool)
                results[pool]["rows"] = rows
                path.write_text(json.dumps(results[pool], indent=1, default=str))
                show(pool, results[pool])
    png = RESULTS / "router_accuracy_vs_calls.png"
    plot(results, png)
    print(f"wrote {png}")


def show(pool: str, data: dict[str, Any]) -> None:
    print(f"\n{pool}: chosen on validation {data['validation_cv']['chosen']} {data['validation_cv']['chosen_cascade']}")
    print("| method | accuracy % | calls/q |\n|---|---:|---:|")
    for r in data["rows"]:
        print(
            f"| {r['method']} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} | "
            f"{r['calls_per_question']:.2f} |"
        )


if __name__ == "__main__":
    main()
