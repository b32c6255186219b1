"""What a correctness predictor is (SPEC 10): fitted on labelled questions, it gives per question
the probability that each pool model answers it correctly.

Every predictor sees the same `Signals` (MiniLM question embeddings, and each question's groups:
its category and its skills) and the same labels (a questions x models 0/1 matrix). Predictors
register by name with `@predictor("name")`; `router.kind` picks one. Estimates are shrunk towards
coarser ones (neighbours -> skills/category -> the model's overall accuracy) so that 25 labelled
questions per category, or 20 neighbours, move the estimate only as far as they can be trusted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import Question

EPS = 1e-3  # probabilities stay inside [EPS, 1 - EPS]: log-odds weights stay finite


@dataclass(frozen=True)
class Signals:
    """What a predictor may look at, one row per question."""

    embeddings: np.ndarray  # (n, d) unit-norm MiniLM embeddings of the question texts
    groups: Sequence[Sequence[str]]  # per question: "category:<c>" and "skill:<s>" tokens

    def __len__(self) -> int:
        return len(self.groups)

    def take(self, index: Sequence[int] | np.ndarray) -> Signals:
        index = np.asarray(index, dtype=int)
        return Signals(self.embeddings[index], [self.groups[i] for i in index])

    @staticmethod
    def concat(parts: Sequence[Signals]) -> Signals:
        return Signals(np.concatenate([p.embeddings for p in parts]), [g for p in parts for g in p.groups])


class Predictor(ABC):
    """fit(signals, correct) on labelled questions, then predict(signals) -> (n, models) in (0, 1)."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def fit(self, signals: Signals, correct: np.ndarray) -> Predictor: ...

    @abstractmethod
    def predict(self, signals: Signals) -> np.ndarray: ...


PREDICTORS: dict[str, Callable[..., Predictor]] = {}


def predictor(name: str) -> Callable[[type[Predictor]], type[Predictor]]:
    def wrap(cls: type[Predictor]) -> type[Predictor]:
        PREDICTORS[name] = cls
        return cls

    return wrap


def shrink(successes: np.ndarray, trials: np.ndarray | int, prior: np.ndarray, strength: float) -> np.ndarray:
    """Posterior mean of a rate under a Beta prior with mean `prior` worth `strength` questions."""
    return (successes + strength * prior) / (trials + strength)


def clip(p: np.ndarray) -> np.ndarray:
    return np.clip(p, EPS, 1 - EPS)


def brier(probabilities: np.ndarray, correct: np.ndarray) -> float:
    """Mean squared error of the predicted correctness over every (question, model) pair."""
    return float(np.mean((np.asarray(probabilities, float) - np.asarray(correct, float)) ** 2))


class GroupRates:
    """Per (group, model) correctness, shrunk to the model's overall accuracy; a question's estimate
    is the mean over its known groups (its category, its skills), the overall accuracy when it has
    none. This is the category-level router and the base the finer predictors shrink towards."""

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def fit(self, signals: Signals, correct: np.ndarray) -> GroupRates:
        correct = np.asarray(correct, dtype=float)
        n = len(correct)
        # overall accuracy, smoothed by half a question each way so no model starts at 0 or 1
        self.prior = (correct.sum(axis=0) + 0.5) / (n + 1.0)
        sums: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        for row, groups in zip(correct, signals.groups, strict=True):
            for g in dict.fromkeys(groups):
                sums[g] = sums.get(g, 0.0) + row
                counts[g] = counts.get(g, 0) + 1
        self.rates = {g: shrink(sums[g], counts[g], self.prior, self.strength) for g in sums}
        return self

    def predict(self, signals: Signals) -> np.ndarray:
        rows = []
        for groups in signals.groups:
            known = [self.rates[g] for g in dict.fromkeys(groups) if g in self.rates]
            rows.append(np.mean(known, axis=0) if known else self.prior)
        return np.array(rows).reshape(len(signals), len(self.prior))


def groups_of(questions: Sequence[Question], skills: dict[str, list[str]]) -> list[list[str]]:
    """Per question: its category (when the data has one) and its skills, as group tokens; a skill
    equal to the category (skills from the category field) is not counted twice."""
    rows = []
    for q in questions:
        category = str(q.category).strip().lower() if q.category else None
        tokens = [f"category:{category}"] if category else []
        tokens += [f"skill:{s}" for s in skills.get(q.id, []) if s != category]
        rows.append(list(dict.fromkeys(tokens)))
    return rows


def cross_fit_folds(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold number of each of n questions: a seeded shuffle dealt round-robin."""
    assignment = np.empty(n, dtype=int)
    assignment[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return assignment
