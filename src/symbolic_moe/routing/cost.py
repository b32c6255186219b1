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

Frugal order (`frugal_order`, the default "cheaper"): per question, the most likely model comes last; before it, up to
`k_max - 1` cheaper models, the best by p - `frugal_cost_weight` x cost, asked cheapest first. A
cascade over that order asks cheap experts first and escalates to the strong, dear one only when
they are not confident enough. A cheap model less likely right than another cheap one still earns
its place as a second opinion (their agreement is the signal), which a cost/accuracy frontier of
the models would drop: on both replay pools' validation splits the frontier order reached the best
model's accuracy only at its full price. The "likely" order (`likely_cheapest_first`) asks
router_cascade's own experts, the k_max most likely, cheapest first, under the cascade's stopping
rule: on small16's validation split it reached router_cascade's accuracy at 76% of its cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .decide import top_k

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


def frugal_order(
    probabilities: np.ndarray, expected: np.ndarray, weights: np.ndarray, k_max: int, cost_weight: float
) -> np.ndarray:
    """Per question (padded with NONE): up to k_max - 1 cheaper models with a positive vote weight,
    the best by p - cost_weight x cost (USD per 1,000 questions), asked cheapest first, then the
    most likely model."""
    p = np.asarray(probabilities, dtype=float)
    cost = np.broadcast_to(np.asarray(expected, dtype=float), p.shape)
    width = min(k_max, p.shape[1])
    out = np.full((len(p), width), NONE, dtype=int)
    score = scores(p, cost, cost_weight)
    for q in range(len(p)):
        top = int(np.lexsort((cost[q], -p[q]))[0])  # the most likely (ties: the cheaper)
        cheaper = [int(m) for m in np.lexsort((cost[q], -score[q])) if weights[q, m] > 0 and cost[q, m] < cost[q, top]]
        row = sorted(cheaper[: width - 1], key=lambda m: (cost[q, m], -p[q, m])) + [top]
        out[q, : len(row)] = row
    return out


def likely_cheapest_first(probabilities: np.ndarray, expected: np.ndarray, k_max: int) -> np.ndarray:
    """Per question, the k_max most likely models (router_cascade's experts), cheapest first
    (ties: the more likely)."""
    p = np.asarray(probabilities, dtype=float)
    cost = np.broadcast_to(np.asarray(expected, dtype=float), p.shape)
    return np.array([row[np.lexsort((-p[q, row], cost[q, row]))] for q, row in enumerate(top_k(p, k_max))])


def expert_order(
    probabilities: np.ndarray, costs: Costs | None, cost_weight: float, budget: Budget, k: int
) -> np.ndarray:
    """The experts of `router_single` / `router_vote` / `router_cascade`, up to k per question
    (padded with NONE): by predicted correctness, or, with prices, by p - cost_weight x cost
    within the budget."""
    if costs is None:
        return top_k(probabilities, k)
    return affordable(cost_ranking(probabilities, costs.mean, cost_weight), costs.cap, budget, k)


def frugal_plan(
    probabilities: np.ndarray,
    weights: np.ndarray,
    costs: Costs,
    budget: Budget,
    k_max: int,
    cost_weight: float,
    likely: bool = False,
) -> np.ndarray:
    """`router_frugal`'s order per question among the models whose call fits the budget
    (`frugal_order`, or `likely_cheapest_first` with `likely`), cut where the budget ends."""
    budgets = per_question(budget, len(probabilities))
    limit = np.array([np.inf if b is None else b * (1 + 1e-9) for b in budgets])[:, None]
    fits = costs.cap[None, :] <= limit
    p = np.where(fits, probabilities, 0.0)  # a model whose call never fits is never asked
    if likely:
        order = likely_cheapest_first(p, costs.mean, k_max)
    else:
        order = frugal_order(p, costs.mean, np.where(fits, weights, 0.0), k_max, cost_weight)
    return affordable(order, costs.cap, budgets, k_max)
