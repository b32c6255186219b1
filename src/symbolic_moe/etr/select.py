"""Choosing a replay router's settings by K-fold cross-validation inside the validation split
("decide on validation, report on test"): fit on K-1 folds, route the held-back fold, score the
routed experts' recorded answers there, rotate. Hidden states are computed once, so each setting
costs only its training runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..voting import leader, tally
from .replay_pool import RouterSettings, fit_router, top_k
from .routing import expert_probabilities
from .train import word_logsumexp
from .whitebox import MetaLM


def routed_accuracy(
    probabilities: np.ndarray,
    models: Sequence[str],
    qids: Sequence[str],
    keys: Mapping[str, Mapping[str, str | None]],
    gold: Mapping[str, str],
    k: int,
) -> float:
    """Accuracy of the k most likely experts' answers (k = 1: that expert's; k > 1: their vote
    weighted by the renormalised probabilities, ties to the most likely expert). `keys` holds each
    model's parsed answer per question (None: unparseable, no vote)."""
    order, weights = top_k(probabilities, k)
    right = []
    for row, w, qid in zip(order, weights, qids, strict=True):
        winner = leader(tally([keys[models[i]].get(qid) for i in row], w))
        right.append(winner is not None and winner == gold[qid])
    return float(np.mean(right))


def folds_of(qids: Sequence[str], n_folds: int) -> list[list[str]]:
    """Interleaved folds: a split stored grouped by category gives every fold the same mix."""
    return [list(qids[i::n_folds]) for i in range(n_folds)]


def cross_validate(
    lm: MetaLM,
    states: Mapping[str, np.ndarray],
    meta_ok: Mapping[str, bool],
    correct: Mapping[str, Mapping[str, bool]],
    keys: Mapping[str, Mapping[str, str | None]],
    gold: Mapping[str, str],
    grid: Sequence[RouterSettings],
    n_folds: int = 5,
    seeds: Sequence[int] = (0,),
    ks: Sequence[int] = (1, 3),
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """For every setting of `grid`: mean held-out accuracy per k over folds and seeds."""
    models, folds = list(correct), folds_of(list(states), n_folds)
    lse = dict(zip(states, word_logsumexp(np.stack(list(states.values())), lm.head), strict=True))
    out = []
    for settings in grid:
        scores: dict[int, list[float]] = {k: [] for k in ks}
        for seed in seeds:
            for held in folds:
                held_set = set(held)
                fit = {q: s for q, s in states.items() if q not in held_set}
                head, _ = fit_router(lm, fit, meta_ok, correct, settings, seed, lse)
                probabilities = expert_probabilities(np.stack([states[q] for q in held]), head)
                for k in ks:
                    scores[k].append(routed_accuracy(probabilities, models, held, keys, gold, k))
        out.append({"settings": settings.to_json(), **{f"k{k}": float(np.mean(v)) for k, v in scores.items()}})
        if progress:
            progress(out[-1])
    return out


def task_best_cv(correct: Mapping[str, Mapping[str, bool]], qids: Sequence[str], n_folds: int = 5) -> float:
    """The reference a router must beat: per fold, the model with the best accuracy on the other
    folds, scored on the held-back fold (same folds as `cross_validate`)."""
    scores = []
    for held in folds_of(list(qids), n_folds):
        rest = [q for q in qids if q not in set(held)]
        best = max(correct, key=lambda m: sum(correct[m][q] for q in rest))
        scores.append(float(np.mean([correct[best][q] for q in held])))
    return float(np.mean(scores))
