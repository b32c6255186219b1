"""Turning predicted correctness into decisions: which experts, how much each vote counts, when a
cascade may stop. Pure functions over answers and probabilities, shared by the methods (answers
from the scheduler) and by the validation cross-validation (answers from stored outputs).

Vote weight (Nitzan & Paroush's optimal weights for independent voters): an expert right with
probability p, and wrong uniformly over the other n - 1 options, names the right answer with
likelihood ratio p (n - 1) / (1 - p), so its vote counts log(p (n - 1) / (1 - p)); an expert no
better than chance (p <= 1 / n) counts 0. The sum of weights behind an answer is then its log
posterior odds against "none of them" under independence.

Cascade (best-first): after each expert, the margin is the weight of the leading answer minus the
runner-up's; stop when the margin reaches `margin`, when the experts still allowed (up to `k_max`)
could no longer overturn the leader, or at `k_max`. Ties go to the answer of the most likely
expert (votes are counted best-first and the first of equal totals wins).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..voting import leader, margin, tally
from .base import EPS


def ranking(probabilities: np.ndarray) -> np.ndarray:
    """Model indices per question, most likely correct first (ties: pool order)."""
    return np.argsort(-np.asarray(probabilities), axis=1, kind="stable")


def top_k(probabilities: np.ndarray, k: int) -> np.ndarray:
    """The top-k plan: per question, the k most likely models (at most the pool), best first."""
    return ranking(probabilities)[:, : min(k, np.shape(probabilities)[1])]


def log_odds_weight(p: float | np.ndarray, n_options: int | None) -> float | np.ndarray:
    """log(p (n - 1) / (1 - p)), floored at 0. Open answers (math, no options) use the odds alone,
    log(p / (1 - p)), as if n = 2: a cautious weight, since wrong open answers rarely coincide."""
    p = np.clip(p, EPS, 1 - EPS)
    others = (n_options - 1) if n_options and n_options > 1 else 1
    return np.maximum(np.log(p * others / (1 - p)), 0.0)


def should_stop(totals: dict[str, float], remaining: Sequence[float], threshold: float) -> bool:
    """The cascade's stopping rule after an expert has answered; `remaining` are the weights of the
    experts still allowed to answer (empty at k_max)."""
    if not remaining:
        return True
    lead = margin(totals)
    if totals and lead >= threshold:
        return True
    # the rest could not change the winner even if all of them named the runner-up
    return bool(totals) and lead > sum(remaining)


Ask = Callable[[list[tuple[int, int]]], list[str | None]]  # [(question, model)] -> answers, one batch


@dataclass
class CascadeResult:
    answers: list[str | None]  # the final answer per question
    asked: list[list[int]]  # per question, the models asked, in order
    responses: list[list[str | None]]  # their answers


def cascade(order: np.ndarray, weights: np.ndarray, threshold: float, k_max: int, ask: Ask) -> CascadeResult:
    """Best-first cascade over all questions at once: round r asks the r-th ranked model of every
    question still open, in one batch (so each model loads once per round).

    `order` (n x models) ranks the models; `weights` (n x models) is each model's vote weight."""
    n = len(order)
    k_max = min(k_max, order.shape[1])
    asked: list[list[int]] = [[] for _ in range(n)]
    responses: list[list[str | None]] = [[] for _ in range(n)]
    open_questions = list(range(n))
    for r in range(k_max):
        if not open_questions:
            break
        batch = [(q, int(order[q, r])) for q in open_questions]
        for (q, m), answer in zip(batch, ask(batch), strict=True):
            asked[q].append(m)
            responses[q].append(answer)
        still_open = []
        for q in open_questions:
            totals = tally(responses[q], [weights[q, m] for m in asked[q]])
            remaining = [float(weights[q, int(m)]) for m in order[q, r + 1 : k_max]]
            if not should_stop(totals, remaining, threshold):
                still_open.append(q)
        open_questions = still_open
    finals = [leader(tally(responses[q], [weights[q, m] for m in asked[q]])) for q in range(n)]
    return CascadeResult(finals, asked, responses)


def weights_for(probabilities: np.ndarray, n_options: Sequence[int | None]) -> np.ndarray:
    """Per question and model, the log-odds vote weight of its predicted correctness
    (`n_options`: per question, `Question.n_options`)."""
    return np.stack([log_odds_weight(row, n) for row, n in zip(probabilities, n_options, strict=True)])
