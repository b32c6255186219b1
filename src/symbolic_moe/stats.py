"""Intervals for accuracy figures: a seeded percentile bootstrap over questions, alone or paired.

One place for every interval the project prints (results.json, `smoe compare`, the report and the
benchmark scripts), so a table's "95% interval" always means the same resampling. Questions are
the unit: on replay pools with deterministic routers the spread over seeds is zero by
construction, and what varies is which questions a benchmark happens to hold.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
SEED = 0


def per_question(correct: np.ndarray) -> np.ndarray:
    """A seeds x questions 0/1 matrix (or one row) as each question's mean over seeds."""
    return np.asarray(correct, dtype=float).reshape(-1, np.shape(correct)[-1]).mean(axis=0)


def _resample_index(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_ci(correct: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> list[float]:
    """95% percentile interval of accuracy, resampling questions (columns of a seeds x questions
    0/1 matrix; each question counts with its mean over seeds)."""
    scores = per_question(correct)
    if scores.size == 0:
        return [0.0, 0.0]
    means = scores[_resample_index(scores.size, resamples, seed)].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def paired_bootstrap_diff(
    correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, float | bool]:
    """A minus B on the same questions: the difference of accuracies, its 95% interval from the
    same resamples of questions for both, and whether the interval excludes zero."""
    a, b = per_question(correct_a), per_question(correct_b)
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs the same questions: {a.size} vs {b.size}")
    if a.size == 0:
        return {"diff": 0.0, "low": 0.0, "high": 0.0, "significant": False}
    diffs = (a - b)[_resample_index(a.size, resamples, seed)].mean(axis=1)
    low, high = float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))
    return {"diff": float((a - b).mean()), "low": low, "high": high, "significant": low > 0 or high < 0}
