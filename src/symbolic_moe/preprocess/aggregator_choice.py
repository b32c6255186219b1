"""Step 3 of preprocessing (paper 3.2.2, SPEC 4.3): which model aggregates best for this task?

A synthetic benchmark from the profiling outputs: for each validation question with at least one
correct and two incorrect pool outputs, one correct and two incorrect outputs are drawn (seeded)
and shuffled into the aggregator prompt. Every candidate answers; the best accuracy wins, ties
going to the higher validation accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..grading import answer_part, is_correct
from ..prompts import aggregate_request
from ..scheduler import Job, Scheduler
from ..types import Question


@dataclass(frozen=True)
class AggregationItem:
    question_id: str
    responses: tuple[str, ...]
    sources: tuple[str, ...]  # which model wrote each response
    correct_position: int


def build_benchmark(
    questions: Sequence[Question],
    outputs: dict[str, dict[str, str | None]],
    correct: dict[str, dict[str, bool]],
    seed: int = 0,
) -> list[AggregationItem]:
    rng = np.random.default_rng(seed)
    models = sorted(outputs)
    items = []
    for q in questions:
        right = [m for m in models if correct[m].get(q.id) and outputs[m].get(q.id)]
        wrong = [m for m in models if not correct[m].get(q.id) and outputs[m].get(q.id)]
        if not right or len(wrong) < 2:
            continue
        chosen = [right[rng.integers(len(right))], *rng.choice(wrong, size=2, replace=False).tolist()]
        order = rng.permutation(3)
        sources = tuple(chosen[i] for i in order)
        items.append(
            AggregationItem(
                question_id=q.id,
                responses=tuple(answer_part(outputs[m][q.id]) for m in sources),
                sources=sources,
                correct_position=int(np.flatnonzero(order == 0)[0]),
            )
        )
    return items


def score_candidates(
    items: Sequence[AggregationItem],
    questions: Sequence[Question],
    candidates: Sequence[str],
    scheduler: Scheduler,
) -> dict[str, float]:
    """Accuracy of each candidate aggregator on the synthetic benchmark."""
    if not items:
        return {c: 0.0 for c in candidates}
    by_id = {q.id: q for q in questions}
    jobs = [Job(c, aggregate_request(by_id[item.question_id], item.responses)) for c in candidates for item in items]
    completions = scheduler.run(jobs, label="aggregator benchmark")
    scores = {c: 0 for c in candidates}
    for job, completion in zip(jobs, completions, strict=True):
        scores[job.model] += is_correct(completion.text, by_id[job.question_id])
    return {c: scores[c] / len(items) for c in candidates}


def pick(scores: dict[str, float], validation_accuracy: dict[str, float]) -> str:
    """Best aggregation accuracy; ties go to the higher validation accuracy, then the name."""
    return max(sorted(scores), key=lambda m: (scores[m], validation_accuracy.get(m, 0.0)))


def items_to_json(items: Sequence[AggregationItem]) -> list[dict]:
    return [asdict(item) for item in items]


def items_from_json(rows: Sequence[dict]) -> list[AggregationItem]:
    return [
        AggregationItem(
            question_id=r["question_id"],
            responses=tuple(r["responses"]),
            sources=tuple(r["sources"]),
            correct_position=r["correct_position"],
        )
        for r in rows
    ]
