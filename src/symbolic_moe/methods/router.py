"""Learned routing methods (SPEC 10, issue 10): the router predicts, per question, how likely each
pool model is to answer correctly (`routing/`); these methods spend expert calls on that ranking.

- `router_single`: the most likely model answers (1 call per question; a model switch);
- `router_vote`: the `recruit.k` most likely models answer; a confidence-weighted vote (log-odds
  weights from the predicted probabilities and the number of options, ties to the most likely
  expert) decides, or the task aggregator synthesizes with `aggregator.method = "llm"` (k + 1 calls);
- `router_cascade`: models answer best-first, one round per rank, until the weighted margin of the
  leading answer reaches `router.margin` or `router.k_max` experts have answered; the mean calls
  per question it spent is reported in the result info.
Each is a plain function of (run, questions, probabilities, seed) behind its registered name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import router_fit as fit
from ..grading import answer_key
from ..pipeline import cascade_experts, routed_plan, synthesize
from ..types import Question
from ..voting import answer_as_text
from .base import Prediction, method

if TYPE_CHECKING:
    from ..run import Run


def route_vote(
    run: Run, questions: Sequence[Question], probabilities: np.ndarray, k: int, seed: int, aggregation: str = "vote"
) -> tuple[list[Prediction], dict[str, Any]]:
    """The k most likely models per question answer (one batch); weighted vote or LLM synthesis."""
    plan = routed_plan(run, questions, probabilities, k)
    aggregate = "llm" if aggregation == "llm" else "weighted"
    result = synthesize(run, questions, plan, seed, aggregate, write=False, label="router ")
    index = {m: i for i, m in enumerate(run.experts)}
    predictions = [
        Prediction.grade(
            q,
            final,
            experts=names,
            expert_answers=[answer_key(t, q) for t in row],
            predicted_correct=[round(float(probabilities[i, index[m]]), 4) for m in names],
        )
        for i, (q, final, names, row) in enumerate(
            zip(questions, result.finals, plan.experts, result.texts, strict=True)
        )
    ]
    aggregator = result.aggregator if aggregation == "llm" else "confidence-weighted vote"
    return predictions, {"aggregator": aggregator, "k": min(k, len(run.experts)), "router": run.config.router.kind}


def route_cascade(
    run: Run, questions: Sequence[Question], probabilities: np.ndarray, margin: float, k_max: int, seed: int
) -> tuple[list[Prediction], dict[str, Any]]:
    """Best-first cascade: round r asks the r-th most likely model of every open question."""
    models = run.experts
    result = cascade_experts(run, questions, probabilities, margin, k_max, seed)
    predictions = [
        Prediction.grade(
            q,
            answer_as_text(final, q),
            experts=[models[m] for m in asked],
            expert_answers=answers,
            predicted_correct=[round(float(probabilities[i, m]), 4) for m in asked],
        )
        for i, (q, final, asked, answers) in enumerate(
            zip(questions, result.answers, result.asked, result.responses, strict=True)
        )
    ]
    spent = [len(a) for a in result.asked]
    info = {
        "router": run.config.router.kind,
        "margin": margin,
        "k_max": k_max,
        "mean_calls_per_question": float(np.mean(spent)) if spent else 0.0,
        "experts_asked_histogram": {str(n): spent.count(n) for n in sorted(set(spent))},
    }
    return predictions, info


def _prepare(run: Run) -> None:
    """Fit the router and predict the scored split before metering starts (labels, embeddings)."""
    fit.predict_scored(run)


def _prepare_vote(run: Run) -> None:
    _prepare(run)
    if run.config.aggregator.method == "llm":
        run.aggregator()


@method("router_single", prepare=_prepare)
def router_single(run: Run, seed: int):
    return route_vote(run, run.test, fit.predict_scored(run), 1, seed)


@method("router_vote", prepare=_prepare_vote)
def router_vote(run: Run, seed: int):
    aggregation = "llm" if run.config.aggregator.method == "llm" else "vote"
    return route_vote(run, run.test, fit.predict_scored(run), run.config.recruit.k, seed, aggregation)


@method("router_cascade", prepare=_prepare)
def router_cascade(run: Run, seed: int):
    cfg = run.config.router
    return route_cascade(run, run.test, fit.predict_scored(run), cfg.margin, cfg.k_max, seed)
