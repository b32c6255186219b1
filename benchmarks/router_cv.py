"""Validation-only choice of the router's settings (issue 10): grid of predictors, 5-fold
out-of-fold Brier score on the validation split (3 fold shuffles), then the cascade's margin and
k_max and the vote's k from the out-of-fold predictions replayed on the stored validation answers.
Used by bench_router.py; never reads the test split."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from symbolic_moe import router_fit
from symbolic_moe.grading import answer_key
from symbolic_moe.routing import PREDICTORS, brier
from symbolic_moe.routing.select import Replay, out_of_fold
from symbolic_moe.run import Run

# every candidate predictor setting: (kind, params)
GRID: list[tuple[str, dict[str, float]]] = (
    [("prior", {})]
    + [("skills", {"strength": s}) for s in (5, 10, 20, 40)]
    + [("knn", {"neighbours": k, "strength": s}) for k in (10, 20, 40) for s in (5, 10, 20)]
    + [("clusters", {"clusters": c, "strength": s}) for c in (4, 8, 16) for s in (5, 10, 20)]
    + [("logistic", {"c": c}) for c in (0.03, 0.1, 0.3, 1.0)]
)
MARGINS = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
K_MAX = [3, 4, 5, 7]
FOLD_SEEDS = [0, 1, 2]
BUDGET = 4.0  # calls per question: the paper's 3 experts + 1 aggregator


def defaults() -> dict[str, float]:
    return {"strength": 10.0, "neighbours": 20, "clusters": 8, "c": 0.1}


def validation_data(run: Run):
    questions = run.validation
    signals = router_fit.signals(run, "validation", questions)
    correct = router_fit.labels(run, "validation", questions)
    outputs = run.validation_outputs()
    replay = Replay(
        answers=[[answer_key(outputs[m].get(q.id), q) for m in run.experts] for q in questions],
        gold=[q.answer for q in questions],
        options=[q.n_options for q in questions],
    )
    return signals, correct, replay


def oof(kind: str, params: dict, signals, correct) -> list[np.ndarray]:
    merged = {**defaults(), **params}
    return [out_of_fold(lambda: PREDICTORS[kind](**merged), signals, correct, 5, s) for s in FOLD_SEEDS]


def cascade_grid(replay: Replay, preds: list[np.ndarray]) -> list[dict[str, float]]:
    rows = []
    for k_max in K_MAX:
        for margin in MARGINS:
            runs = [replay.cascade(p, margin, k_max) for p in preds]
            acc, calls = statistics.fmean(a for a, _ in runs), statistics.fmean(c for _, c in runs)
            rows.append({"k_max": k_max, "margin": margin, "accuracy": acc, "calls": calls})
    return rows


def best_within_budget(rows: list[dict[str, float]]) -> dict[str, float]:
    """The most accurate cascade setting within the budget (ties: fewer calls)."""
    within = [c for c in rows if c["calls"] <= BUDGET]
    return max(within, key=lambda c: (round(c["accuracy"], 6), -c["calls"]))


def choose(run: Run) -> dict[str, Any]:
    """Every grid point's out-of-fold Brier, vote and cascade accuracy; the chosen settings: the
    predictor and cascade setting with the best validation accuracy within BUDGET calls."""
    signals, correct, replay = validation_data(run)
    rows = []
    for kind, params in GRID:
        preds = oof(kind, params, signals, correct)
        grid = cascade_grid(replay, preds)
        rows.append(
            {
                "kind": kind,
                "params": params,
                "brier": statistics.fmean(brier(p, correct) for p in preds),
                "vote": {k: statistics.fmean(replay.vote(p, k) for p in preds) for k in (1, 3, 5, 7)},
                "cascade_best": best_within_budget(grid),
                "cascade_grid": grid,
            }
        )
    best = max(rows, key=lambda r: (round(r["cascade_best"]["accuracy"], 6), -r["brier"]))
    return {
        "grid": rows,
        "prior_brier": rows[0]["brier"],
        "best_brier": min(r["brier"] for r in rows),
        "chosen": {"kind": best["kind"], **{**defaults(), **best["params"]}},
        "chosen_brier": best["brier"],
        "chosen_cascade": best["cascade_best"],
        "vote_by_k": best["vote"],
        "budget_calls": BUDGET,
        "folds": 5,
        "fold_seeds": FOLD_SEEDS,
    }
