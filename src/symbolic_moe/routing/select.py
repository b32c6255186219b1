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
class Replay:
    """Stored answers of every pool model to labelled questions: answers[q][m] is the extracted
    option (None when unparseable), gold[q] the right one, options[q] the number of options."""

    answers: Sequence[Sequence[str | None]]
    gold: Sequence[str]
    options: Sequence[int | None]

    def accuracy(self, finals: Sequence[str | None]) -> float:
        return float(np.mean([f is not None and f == g for f, g in zip(finals, self.gold, strict=True)]))

    def vote(self, probabilities: np.ndarray, k: int) -> float:
        """Accuracy of the top-k confidence-weighted vote."""
        order = top_k(probabilities, k)
        weights = weights_for(probabilities, self.options)
        finals = [
            leader(tally([self.answers[q][m] for m in order[q]], weights[q, order[q]])) for q in range(len(order))
        ]
        return self.accuracy(finals)

    def cascade(self, probabilities: np.ndarray, margin: float, k_max: int) -> tuple[float, float]:
        """(accuracy, mean calls per question) of the best-first cascade."""

        def ask(batch: list[tuple[int, int]]) -> list[str | None]:
            return [self.answers[q][m] for q, m in batch]

        result = cascade(ranking(probabilities), weights_for(probabilities, self.options), margin, k_max, ask)
        return self.accuracy(result.answers), float(np.mean([len(a) for a in result.asked]))
