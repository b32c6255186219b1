"""Choosing the router's settings by cross-validation on labelled questions only (the validation
split): out-of-fold predictions, their Brier score, and the accuracy and calls the vote and the
cascade would reach with them, replayed from the stored answers (no generation needed).

The same `decide` functions the methods use make the decisions here, so what is chosen is what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..voting import leader, tally
from .base import Predictor, Signals, cross_fit_folds
from .decide import cascade, ranking, top_k, weights_for


def out_of_fold(
    make: Callable[[], Predictor], signals: Signals, correct: np.ndarray, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Every question's predicted correctness from a predictor fitted on the other folds."""
    fold = cross_fit_folds(len(signals), folds, seed)
    out = np.zeros(correct.shape)
    for f in range(folds):
        held, rest = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        out[held] = make().fit(signals.take(rest), correct[rest]).predict(signals.take(held))
    return out


@dataclass
class Outcome:
    """Per question: right or not, USD spent (0 without costs), experts asked."""

    correct: np.ndarray
    spent: np.ndarray
    calls: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def cost(self) -> float:
        """USD per question."""
        return float(self.spent.mean())


@dataclass
class Replay:
    """Stored answers of every pool model to labelled questions: answers[q][m] is the extracted
    option (None when unparseable), gold[q] the right one, options[q] the number of options;
    costs[q, m] the USD of that stored call (cost-aware replays)."""

    answers: Sequence[Sequence[str | None]]
    gold: Sequence[str]
    options: Sequence[int | None]
    costs: np.ndarray | None = None

    def outcome(self, asked: Sequence[Sequence[int]], finals: Sequence[str | None]) -> Outcome:
        costs = np.zeros((len(self.gold), 1 + max((m for row in asked for m in row), default=0)))
        costs = costs if self.costs is None else self.costs
        correct = np.array([f is not None and f == g for f, g in zip(finals, self.gold, strict=True)], dtype=float)
        spent = np.array([float(costs[q, list(row)].sum()) for q, row in enumerate(asked)])
        return Outcome(correct, spent, np.array([len(row) for row in asked], dtype=float))

    def voted(self, probabilities: np.ndarray, order: np.ndarray) -> Outcome:
        """The weighted vote of each question's experts in `order` (negative entries end a list)."""
        weights = weights_for(probabilities, self.options)
        asked = [[int(m) for m in row if m >= 0] for row in order]
        finals = [
            leader(tally([self.answers[q][m] for m in row], [float(weights[q, m]) for m in row]))
            for q, row in enumerate(asked)
        ]
        return self.outcome(asked, finals)

    def cascaded(
        self, probabilities: np.ndarray, order: np.ndarray, margin: float, k_max: int, frugal: bool = False
    ) -> Outcome:
        """The cascade (decide.cascade) over `order`, answered from the stored answers."""

        def ask(batch: list[tuple[int, int]]) -> list[str | None]:
            return [self.answers[q][m] for q, m in batch]

        weights = weights_for(probabilities, self.options)
        result = cascade(order, weights, margin, k_max, ask, frugal)
        return self.outcome(result.asked, result.answers)

    def accuracy(self, finals: Sequence[str | None]) -> float:
        return float(np.mean([f is not None and f == g for f, g in zip(finals, self.gold, strict=True)]))

    def vote(self, probabilities: np.ndarray, k: int) -> float:
        """Accuracy of the top-k confidence-weighted vote."""
        return self.voted(probabilities, top_k(probabilities, k)).accuracy

    def cascade(self, probabilities: np.ndarray, margin: float, k_max: int) -> tuple[float, float]:
        """(accuracy, mean calls per question) of the best-first cascade."""
        done = self.cascaded(probabilities, ranking(probabilities), margin, k_max)
        return done.accuracy, float(done.calls.mean())
