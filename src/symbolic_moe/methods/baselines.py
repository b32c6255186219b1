"""Task-level baselines (paper 4.1, Table 1 and 4): the same questions to fixed models.

- `task_best`: zero-shot CoT of the model with the best validation accuracy;
- `top_k_vote`: the top-k models by validation accuracy, majority vote;
- `random_k_vote`: k models drawn uniformly per question (seeded), majority vote;
- `oracle`: right when any pool model is right (an upper bound for routing, not a method).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..grading import is_correct
from ..inference.aggregate import answer_as_text, vote
from ..inference.experts import run_experts
from .base import Prediction, method

if TYPE_CHECKING:
    from ..run import Run


def _ranked(run: Run) -> None:
    run.ranked_models()


def _voted(run: Run, experts: list[list[str]], seed: int) -> list[Prediction]:
    outputs = run_experts(run.test, experts, run.scheduler, seed)
    return [
        Prediction.grade(q, answer_as_text(vote(q, [c.text for c in row]), q), experts=models)
        for q, row, models in zip(run.test, outputs, experts, strict=True)
    ]


@method("task_best", prepare=_ranked)
def task_best(run: Run, seed: int):
    best = run.ranked_models()[0]
    outputs = run_experts(run.test, [[best]] * len(run.test), run.scheduler, seed)
    return [Prediction.grade(q, row[0].text, experts=[best]) for q, row in zip(run.test, outputs, strict=True)], {
        "model": best
    }


@method("top_k_vote", prepare=_ranked)
def top_k_vote(run: Run, seed: int):
    top = run.ranked_models()[: run.config.recruit.k]
    return _voted(run, [top] * len(run.test), seed), {"models": top}


@method("random_k_vote")
def random_k_vote(run: Run, seed: int):
    rng = np.random.default_rng(seed)
    experts = [[run.experts[i] for i in rng.integers(len(run.experts), size=run.config.recruit.k)] for _ in run.test]
    return _voted(run, experts, seed)


@method("oracle")
def oracle(run: Run, seed: int):
    """Right when any pool model answers right: how far perfect per-question routing could go."""
    outputs = run_experts(run.test, [run.experts] * len(run.test), run.scheduler, seed)
    predictions = []
    for q, row in zip(run.test, outputs, strict=True):
        right = [m for m, c in zip(run.experts, row, strict=True) if is_correct(c.text, q)]
        predictions.append(Prediction(q.id, None, q.answer if right else None, bool(right), {"right": right}))
    return predictions
