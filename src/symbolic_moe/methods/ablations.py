"""Ablations of Symbolic-MoE (paper Tables 3, 4 and 5): the same recruited experts with another
aggregator, or another recruitment with the task aggregator. Each is k expert calls + 1 aggregator
call per question (+ k with a discussion round).

Aggregators (Table 5): `random` - per question a random aggregator candidate (seeded);
`adaptive` - per question the recruited expert with the best profile score S(i, q) for the
question's mapped keywords (ties: better validation accuracy); `task_best` - the model with the
best validation accuracy; `task_specific` - the aggregator chosen on the validation split (SPEC 4.3,
the default of `symbolic_moe_llm`). Recruitment (Table 4): `top_k_llm` and `random_k_llm` feed the
top-k / random-k experts to the task aggregator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..grading import extract_answer
from ..inference.aggregate import discussion_round
from ..inference.recruit import Recruitment, score_matrix
from .base import Prediction, method
from .rounds import Texts, aggregate_round, cot_round, require_generators, task_best, texts_of

if TYPE_CHECKING:
    from ..run import Run

Chooser = Callable[["Run", Recruitment, int], list[str]]  # per test question, its aggregator


def random_aggregators(run: Run, plan: Recruitment, seed: int) -> list[str]:
    candidates = run.aggregator_candidates()
    rng = np.random.default_rng(seed)
    return [candidates[i] for i in rng.integers(len(candidates), size=len(run.test))]


def adaptive_aggregators(run: Run, plan: Recruitment, seed: int) -> list[str]:
    mapped = run.mapped_keywords()
    scores = score_matrix(run.profiles()["profiles"], plan.models, [mapped[q.id] for q in run.test])
    accuracy = run.validation_accuracy()
    index = {m: i for i, m in enumerate(plan.models)}

    def best(experts: list[str], row: np.ndarray) -> str:
        return max(experts, key=lambda m: (row[index[m]], accuracy.get(m, 0.0)))

    return [best(experts, row) for experts, row in zip(plan.experts, scores, strict=True)]


def task_best_aggregator(run: Run, plan: Recruitment, seed: int) -> list[str]:
    return [task_best(run)] * len(run.test)


def task_specific_aggregator(run: Run, plan: Recruitment, seed: int) -> list[str]:
    return [run.aggregator()] * len(run.test)


def aggregate_experts(
    run: Run, seed: int, experts: list[list[str]], texts: Texts, aggregators: list[str], discussion: bool
) -> list[Prediction]:
    """Optional discussion round, then one aggregator call per question (batched per aggregator)."""
    require_generators(run, aggregators, "aggregator")
    if discussion:
        require_generators(run, [m for row in experts for m in row], "discussion")
        texts = texts_of(discussion_round(run.test, experts, texts, run.scheduler, seed))
    finals = aggregate_round(run.test, [[a] for a in aggregators], texts, run.scheduler, seed, "aggregation")
    return [
        Prediction.grade(q, row[0], experts=models, aggregator=agg, expert_answers=[extract_answer(t, q) for t in ts])
        for q, row, models, agg, ts in zip(run.test, finals, experts, aggregators, texts, strict=True)
    ]


def with_aggregator(run: Run, seed: int, choose: Chooser, discussion: bool = False):
    plan = run.recruitment(seed)
    texts = texts_of(run.expert_outputs(plan, seed))
    aggregators = choose(run, plan, seed)
    predictions = aggregate_experts(run, seed, plan.experts, texts, aggregators, discussion)
    counts = {m: aggregators.count(m) for m in dict.fromkeys(aggregators)}
    return predictions, {"aggregator_counts": counts, "discussion": discussion}


def _prepare_recruited(run: Run) -> None:
    run.mapped_keywords()
    run.ranked_models()


def _prepare_task(run: Run) -> None:
    _prepare_recruited(run)
    run.aggregator()


def _register(name: str, choose: Chooser, prepare: Callable[[Run], None]) -> None:
    method(f"symbolic_moe_agg_{name}", prepare=prepare)(lambda run, seed: with_aggregator(run, seed, choose))
    method(f"symbolic_moe_agg_{name}_discussion", prepare=prepare)(
        lambda run, seed: with_aggregator(run, seed, choose, discussion=True)
    )


_register("random", random_aggregators, _prepare_recruited)
_register("adaptive", adaptive_aggregators, _prepare_recruited)
_register("task_best", task_best_aggregator, _prepare_recruited)
_register("task_specific", task_specific_aggregator, _prepare_task)


def _fixed_experts(run: Run, seed: int, experts: list[list[str]]):
    texts = cot_round(run.test, experts, run.scheduler, seed, "experts")
    aggregator = run.aggregator()
    return aggregate_experts(run, seed, experts, texts, [aggregator] * len(run.test), False), {"aggregator": aggregator}


def _prepare_fixed(run: Run) -> None:
    run.ranked_models()
    run.aggregator()


@method("top_k_llm", prepare=_prepare_fixed)
def top_k_llm(run: Run, seed: int):
    """Table 4 "top-k": the k best validation models for every question, task aggregator."""
    return _fixed_experts(run, seed, [run.ranked_models()[: run.config.recruit.k]] * len(run.test))


@method("random_k_llm", prepare=_prepare_fixed)
def random_k_llm(run: Run, seed: int):
    """Table 4 "random-k": k uniformly drawn models per question (seeded), task aggregator."""
    rng = np.random.default_rng(seed)
    k, pool = run.config.recruit.k, run.experts
    return _fixed_experts(run, seed, [[pool[i] for i in rng.integers(len(pool), size=k)] for _ in run.test])
