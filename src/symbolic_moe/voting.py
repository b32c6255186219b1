"""The vote: how a set of expert answers becomes one, for every caller (Symbolic-MoE's majority and
weighted aggregation, the router methods, ETR's top-k vote, the Python API and the server).

Unparseable answers do not vote; the answer with the most weight wins and ties go to the answer
seen first (callers list experts best-first, so a tie goes to the most likely expert).
"""

from __future__ import annotations

from collections.abc import Sequence

from .grading import answer_key
from .types import Question


def tally(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> dict[str, float]:
    """Weight behind each answer, in order of first appearance (unparseable answers do not vote;
    no weights: one vote each)."""
    weights = weights if weights is not None else [1.0] * len(answers)
    totals: dict[str, float] = {}
    for answer, weight in zip(answers, weights, strict=True):
        if answer is not None:
            totals[answer] = totals.get(answer, 0.0) + float(weight)
    return totals


def leader(totals: dict[str, float]) -> str | None:
    """The answer with the most weight; ties: the first seen."""
    return max(totals, key=lambda a: totals[a]) if totals else None


def margin(totals: dict[str, float]) -> float:
    """Leading weight minus the runner-up's (0 for a runner-up that nobody named)."""
    ranked = sorted(totals.values(), reverse=True) + [0.0, 0.0]
    return ranked[0] - ranked[1]


def vote(question: Question, texts: Sequence[str | None], weights: Sequence[float] | None = None) -> str | None:
    """The (weighted) vote of expert texts on `question`, as an answer key (None: nobody answered)."""
    return leader(tally([answer_key(t, question) for t in texts], weights))


def answer_as_text(key: str | None, question: Question) -> str | None:
    """A voted answer written the way the grader reads answers."""
    if key is None:
        return None
    return f"The answer is \\boxed{{{key}}}" if question.is_math else f"The answer is ({key})"
