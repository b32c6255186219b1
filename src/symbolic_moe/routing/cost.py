"""Cost-aware decisions (issue 18): what a call to each pool model is expected to cost, and the
orders and limits built on it. Pure functions over probabilities and dollars, shared by the
methods (`methods/router.py`), the Python API and the validation cross-validation.

Expected cost: per model, the mean dollar cost of its calls on the labelled (validation) questions
(`Costs.fit`; a recorded price, or the price table times the tokens). The *cap* of a model is the
largest cost of one of those calls: a budget admits a call only when the cap still fits, so a
question never spends more than its budget on questions like the labelled ones.

`cost_weight` (lambda) trades predicted correctness against expected cost in USD per 1,000
questions: a model is ranked by p - lambda * 1000 * cost, so lambda = 0.01 means one more dollar
per 1,000 questions must buy at least one point of predicted accuracy.

Frugal order (`frugal_order`): per question, the models on the upper convex hull of the
(expected cost, predicted correctness) points, cheapest first (RouterBench's efficient frontier,
per question): a cascade asks cheap experts first and escalates only to models more likely right
than every cheaper one and worth their price against a mix of the others (a dear model barely
better than a cheap one is left out); the most likely model comes last. `k_max` keeps the dearest
`k_max` models of that frontier (cheap models are dropped from the cheap end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

PER = 1000.0  # cost_weight reads costs in USD per 1,000 questions
NONE = -1  # an order's padding: no further model for that question
Budget = float | None | Sequence[float | None]  # one for every question, or one per question


def per_question(budget: Budget, n: int) -> list[float | None]:
    if budget is None or isinstance(budget, int | float):
        return [budget] * n
    budgets = list(budget)
    if len(budgets) != n:
        raise ValueError(f"{len(budgets)} budgets for {n} questions")
    return budgets


@dataclass(frozen=True)
class Costs:
    """Per pool model: expected USD of one call (`mean`) and the largest one seen (`cap`)."""

    models: tuple[str, ...]
    mean: np.ndarray
    cap: np.ndarray

    @classmethod
    def fit(cls, models: Sequence[str], costs: np.ndarray, what: str = "cost-aware routing") -> Costs:
        """From a questions x models matrix of call costs (NaN: unpriced). A model with an
        unpriced call cannot be routed by cost: one error naming it."""
        costs = np.asarray(costs, dtype=float)
        if costs.ndim != 2 or costs.shape[1] != len(models) or costs.shape[0] == 0:
            raise ValueError(f"costs: expected a (questions x {len(models)}) matrix, got shape {costs.shape}")
        unpriced = [m for m, column in zip(models, costs.T, strict=True) if np.isnan(column).any()]
        if unpriced:
            raise ConfigError(
                f"{what} needs every pool model's price: model '{unpriced[0]}' is unpriced"
                f"{f' (and {len(unpriced) - 1} more)' if len(unpriced) > 1 else ''}; "
                f'set [pool."{unpriced[0]}"] price = {{ input = ..., output = ... }} or {{ per_call = ... }}'
            )
        return cls(tuple(models), costs.mean(axis=0), costs.max(axis=0))

    def check_budget(self, budget: float | None, field: str = "router.budget") -> None:
        """A budget must admit at least the cheapest model's call (its cap), before any generation."""
        if budget is None:
            return
        cheapest = int(np.argmin(self.cap))
        if not budget > 0 or budget < self.cap[cheapest]:
            raise ConfigError(
                f"{field}: ${budget:g} per question is below the cheapest model's expected cost: "
                f"'{self.models[cheapest]}' costs up to ${self.cap[cheapest]:.6g} per call (mean "
                f"${self.mean[cheapest]:.6g}, over the labelled questions)"
            )


def check_cost_weight(cost_weight: float, field: str = "router.cost_weight") -> None:
    if not cost_weight >= 0:
        raise ConfigError(f"{field}: must be >= 0 (got {cost_weight})")


def scores(probabilities: np.ndarray, expected: np.ndarray, cost_weight: float) -> np.ndarray:
    """Predicted correctness minus cost_weight x expected cost (USD per 1,000 questions)."""
    return np.asarray(probabilities, dtype=float) - cost_weight * PER * np.asarray(expected, dtype=float)


def cost_ranking(probabilities: np.ndarray, expected: np.ndarray, cost_weight: float) -> np.ndarray:
    """Model indices per question by score, best first (ties: the cheaper, then pool order)."""
    p = np.asarray(probabilities, dtype=float)
    cost = np.broadcast_to(np.asarray(expected, dtype=float), p.shape)
    return np.array([np.lexsort((c, -s)) for s, c in zip(scores(p, cost, cost_weight), cost, strict=True)])


def affordable(order: np.ndarray, caps: np.ndarray, budget: Budget, k: int) -> np.ndarray:
    """Per question, the first `k` models of `order` (padded with NONE) whose caps still fit the
    budget when taken in that order; a model that does not fit is skipped for cheaper ones."""
    order = np.asarray(order, dtype=int)
    out = np.full((len(order), min(k, order.shape[1])), NONE, dtype=int)
    for q, (row, limit) in enumerate(zip(order, per_question(budget, len(order)), strict=True)):
        spent, taken = 0.0, 0
        for m in row:
            if taken == out.shape[1] or m == NONE:
                break
            if limit is not None and spent + caps[m] > limit * (1 + 1e-9):
                continue
            out[q, taken], spent, taken = m, spent + caps[m], taken + 1
    return out


def frugal_order(probabilities: np.ndarray, expected: np.ndarray, weights: np.ndarray, k_max: int) -> np.ndarray:
    """Per question, the models on the upper convex hull of (expected cost, p) with a positive
    vote weight, cheapest first, at most `k_max` of them (the dearest), padded with NONE."""
    p = np.asarray(probabilities, dtype=float)
    cost = np.broadcast_to(np.asarray(expected, dtype=float), p.shape)
    width = min(k_max, p.shape[1])
    out = np.full((len(p), width), NONE, dtype=int)
    for q in range(len(p)):
        useful = [int(m) for m in np.lexsort((-p[q], cost[q])) if weights[q, m] > 0]
        kept = _hull(useful, cost[q], p[q])[-width:] or [int(np.argmax(p[q]))]
        out[q, : len(kept)] = kept
    return out


def _hull(models: Sequence[int], cost: np.ndarray, p: np.ndarray) -> list[int]:
    """The models (given cheapest first) on the rising part of the upper convex hull of their
    (cost, p) points: each is more likely right than every cheaper one, and buys its gain at no
    better a rate than the models before it (a model a mix of its neighbours beats is dropped)."""
    hull: list[int] = []
    for m in models:
        if hull and p[m] <= p[hull[-1]]:
            continue  # no more likely right than a cheaper model
        if hull and cost[m] == cost[hull[-1]]:
            hull.pop()  # as cheap and more likely right: replaces it
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b lies on or under the segment from a to m: drop it
            if (p[b] - p[a]) * (cost[m] - cost[a]) <= (p[m] - p[a]) * (cost[b] - cost[a]):
                hull.pop()
            else:
                break
        hull.append(m)
    return hull


def expert_order(
    probabilities: np.ndarray, costs: Costs | None, cost_weight: float, budget: Budget, k: int
) -> np.ndarray:
    """The experts of `router_single` / `router_vote` / `router_cascade`, up to k per question
    (padded with NONE): by predicted correctness, or, with prices, by p - cost_weight x cost
    within the budget."""
    if costs is None:
        order = np.argsort(-np.asarray(probabilities), axis=1, kind="stable")
        return order[:, : min(k, order.shape[1])]
    return affordable(cost_ranking(probabilities, costs.mean, cost_weight), costs.cap, budget, k)


def frugal_plan(probabilities: np.ndarray, weights: np.ndarray, costs: Costs, budget: Budget, k_max: int) -> np.ndarray:
    """`router_frugal`'s order per question: the frontier of the models whose call fits the budget
    (`frugal_order`), cheapest first, cut where the budget ends."""
    budgets = per_question(budget, len(probabilities))
    limit = np.array([np.inf if b is None else b * (1 + 1e-9) for b in budgets])[:, None]
    fits = costs.cap[None, :] <= limit
    p = np.where(fits, probabilities, 0.0)  # a model whose call never fits is never asked
    order = frugal_order(p, costs.mean, np.where(fits, weights, 0.0), k_max)
    return affordable(order, costs.cap, budgets, k_max)
