"""Symbolic-MoE (paper Fig. 2b): recruit k experts per question by skill, run them batched per
model, aggregate. Variants differ only in the aggregator, weighting and the discussion round.
The steps after recruitment are `pipeline.synthesize`, shared with the Python API and
`smoe serve`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..grading import extract_answer
from ..pipeline import synthesize
from .base import Prediction, method

if TYPE_CHECKING:
    from ..run import Run


def symbolic_moe(
    run: Run, seed: int, aggregation: str | None = None, discussion: bool | None = None, **recruit: Any
) -> tuple[list[Prediction], dict[str, Any]]:
    cfg = run.config.aggregator
    aggregation = aggregation or cfg.method
    discussion = cfg.discussion if discussion is None else discussion
    plan = run.recruitment(seed, **recruit)
    result = synthesize(run, run.test, plan, seed, aggregation, discussion)
    predictions = [
        Prediction.grade(q, final, experts=experts, expert_answers=[extract_answer(t, q) for t in row])
        for q, final, experts, row in zip(run.test, result.finals, plan.experts, result.texts, strict=True)
    ]
    info = {
        "aggregator": result.aggregator,
        "selection_counts_before_trimming": plan.counts_before,
        "selection_counts_after_trimming": plan.counts_after,
        "trimmed": plan.trimmed,
    }
    return predictions, info


def _prepare(aggregation: str | None = None):
    """Preprocessing a variant needs: profiles and mapped keywords, plus the aggregator choice
    when an LLM aggregates."""

    def prepare(run: Run) -> None:
        run.mapped_keywords()
        if (aggregation or run.config.aggregator.method) == "llm":
            run.aggregator()

    return prepare


@method("symbolic_moe", prepare=_prepare())
def default(run: Run, seed: int):
    return symbolic_moe(run, seed)


@method("symbolic_moe_llm", prepare=_prepare("llm"))
def with_llm_aggregator(run: Run, seed: int):
    return symbolic_moe(run, seed, aggregation="llm")


@method("symbolic_moe_vote", prepare=_prepare("majority"))
def with_majority_vote(run: Run, seed: int):
    return symbolic_moe(run, seed, aggregation="majority")


@method("symbolic_moe_weighted", prepare=_prepare("weighted"))
def with_weighted_vote(run: Run, seed: int):
    return symbolic_moe(run, seed, aggregation="weighted")


@method("symbolic_moe_linear", prepare=_prepare())
def with_linear_weighting(run: Run, seed: int):
    return symbolic_moe(run, seed, weighting="linear")


@method("symbolic_moe_discussion", prepare=_prepare())
def with_discussion(run: Run, seed: int):
    return symbolic_moe(run, seed, discussion=True)


@method("symbolic_moe_greedy", prepare=_prepare())
def with_greedy_recruitment(run: Run, seed: int):
    return symbolic_moe(run, seed, weighting="greedy")


@method("symbolic_moe_softmax", prepare=_prepare())
def with_softmax_weighting(run: Run, seed: int):
    return symbolic_moe(run, seed, weighting="softmax")
