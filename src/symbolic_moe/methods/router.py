"""Learned routing methods (SPEC 10, issue 10): the router predicts, per question, how likely each
pool model is to answer correctly (`routing/`); these methods spend expert calls on that ranking.

- `router_single`: the most likely model answers (1 call per question; a model switch);
- `router_vote`: the `recruit.k` most likely models answer; a confidence-weighted vote (log-odds
  weights from the predicted probabilities and the number of options, ties to the most likely
  expert) decides, or the task aggregator synthesizes with `aggregator.method = "llm"` (k + 1 calls);
- `router_cascade`: models answer best-first, one round per rank, until the weighted margin of the
  leading answer reaches `router.margin` or `router.k_max` experts have answered; the mean calls
  per question it spent is reported in the result info;
- `router_frugal` (issue 18): a cost-aware cascade: per question up to `router.frugal_k_max` - 1
  cheaper models (the best by p - `router.frugal_cost_weight` x cost), cheapest first, then the
  most likely model (`routing.cost.frugal_order`), until the weighted margin reaches
  `router.frugal_margin`; a question that never gets there takes the last expert's answer. With
  `router.frugal_order = "likely"`: the `frugal_k_max` most likely models, cheapest first, under
  router_cascade's stopping rule and weighted vote (`frugal_rule`).
With `router.cost_weight` (lambda) the experts of the first two are ranked by p - lambda x
expected cost (USD per 1,000 questions); with `router.budget` no question's calls may cost more
than the budget (each model's largest validation call counted in advance).
Each is a plain function of (run, questions, probabilities, seed) behind its registered name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import router_fit as fit
from ..grading import answer_key
from ..pipeline import cascade_experts, routed_plan, synthesize
from ..routing.cost import Budget, expert_order, frugal_plan, per_question
from ..routing.decide import weights_for
from ..types import Question
from ..voting import answer_as_text
from .base import Prediction, method

if TYPE_CHECKING:
    from ..run import Run


def route_vote(
    run: Run, questions: Sequence[Question], probabilities: np.ndarray, k: int, seed: int, aggregation: str = "vote"
) -> tuple[list[Prediction], dict[str, Any]]:
    """The k most likely models per question answer (one batch); weighted vote or LLM synthesis.
    With `router.cost_weight` or `router.budget`: the k best by p - cost_weight x cost that fit
    the budget (routing.cost.expert_order)."""
    method = "router_single" if k == 1 else "router_vote"
    plan = routed_plan(run, questions, probabilities, k, plan_order(run, method, probabilities, questions, k=k))
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
    cfg = run.config.router
    info: dict[str, Any] = {"aggregator": aggregator, "k": min(k, len(run.experts)), "router": cfg.kind}
    if fit.cost_aware(run):
        info |= {"cost_weight": cfg.cost_weight, "budget": cfg.budget}
    return predictions, info


def plan_order(
    run: Run,
    method: str,
    probabilities: np.ndarray,
    questions: Sequence[Question],
    budgets: Budget = None,
    k: int | None = None,
) -> np.ndarray | None:
    """The experts each question may ask, in order (negative entries end a list): for
    `router_frugal` the cheapest-first frontier, else the k (default: the method's) best by
    p - cost_weight x cost; each within its budget (`budgets`: per question, default
    `router.budget`). None: best-first, when no cost-aware setting applies. Shared by the methods
    and the Python API (per-request budgets); a budget too small for any call is an error here."""
    cfg = run.config.router
    budgets = per_question(cfg.budget if budgets is None else budgets, len(questions))
    if method != "router_frugal" and not fit.cost_aware(run) and all(b is None for b in budgets):
        return None
    costs = fit.costs(run)
    for budget in set(budgets):
        costs.check_budget(budget)
    if method == "router_frugal":
        weights = weights_for(probabilities, [q.n_options for q in questions])
        likely = cfg.frugal_order == "likely"
        return frugal_plan(probabilities, weights, costs, budgets, cfg.frugal_k_max, cfg.frugal_cost_weight, likely)
    width = k or {"router_single": 1, "router_cascade": cfg.k_max}.get(method, run.config.recruit.k)
    # the cost weight is router_single's and router_vote's; the best-first cascade only keeps to budgets
    cost_weight = 0.0 if method == "router_cascade" else cfg.cost_weight
    return expert_order(probabilities, costs, cost_weight, budgets, width)


def frugal_rule(run: Run, method: str) -> bool:
    """Whether a cascade stops by the frugal rule (margin only, else the last answer): router_frugal's
    "cheaper" order; its "likely" order and router_cascade use the best-first rule."""
    return method == "router_frugal" and run.config.router.frugal_order == "cheaper"


def route_cascade(
    run: Run,
    questions: Sequence[Question],
    probabilities: np.ndarray,
    margin: float,
    k_max: int,
    seed: int,
    order: np.ndarray | None = None,
    frugal: bool = False,
) -> tuple[list[Prediction], dict[str, Any]]:
    """A cascade: round r asks the r-th model of `order` (default: the r-th most likely) of every
    open question; `frugal`: the cost-aware cascade's stopping rule and final answer."""
    models = run.experts
    label = "router frugal" if frugal else "router cascade"
    result = cascade_experts(run, questions, probabilities, margin, k_max, seed, label, order, frugal)
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
    info: dict[str, Any] = {
        "router": run.config.router.kind,
        "margin": margin,
        "k_max": k_max,
        "mean_calls_per_question": float(np.mean(spent)) if spent else 0.0,
        "experts_asked_histogram": {str(n): spent.count(n) for n in sorted(set(spent))},
    }
    if all(c.cost_usd is not None for row in result.completions for c in row):
        dollars = [sum(c.cost_usd or 0.0 for c in row) for row in result.completions]
        info |= {"budget": run.config.router.budget, "max_cost_per_question": max(dollars, default=0.0)}
    return predictions, info


def _prepare(run: Run) -> None:
    """Fit the router and predict the scored split before metering starts (labels, embeddings;
    with cost-aware settings the prices, so an unpriced model fails before any call)."""
    fit.predict_scored(run)
    if fit.cost_aware(run):
        fit.costs(run)


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
    probabilities = fit.predict_scored(run)
    order = plan_order(run, "router_cascade", probabilities, run.test)
    return route_cascade(run, run.test, probabilities, cfg.margin, cfg.k_max, seed, order)


def _prepare_frugal(run: Run) -> None:
    _prepare(run)
    fit.costs(run)  # every pool model's price: an unpriced one is an error before any call


@method("router_frugal", prepare=_prepare_frugal)
def router_frugal(run: Run, seed: int):
    cfg = run.config.router
    probabilities = fit.predict_scored(run)
    order = plan_order(run, "router_frugal", probabilities, run.test)
    frugal = frugal_rule(run, "router_frugal")
    return route_cascade(run, run.test, probabilities, cfg.frugal_margin, cfg.frugal_k_max, seed, order, frugal)
