"""Aggregation (paper 3.3.2, SPEC 5.6): turn k expert answers into one.

- `llm`: the task aggregator answers the aggregator prompt holding the k answer parts;
- `majority`: the most common extracted answer (ties: the one seen first);
- `weighted`: votes weighted by each expert's recruitment probability for the question
(both votes: `voting.vote`).
An optional discussion round first lets each expert see the others' answers and answer again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..grading import answer_part
from ..prompts import aggregate_request, discuss_request
from ..scheduler import Job, Scheduler
from ..types import Completion, GenerationSettings, Question
from .experts import Seeds, per_question, run_slots, slot_jobs


def llm_aggregate(
    questions: Sequence[Question],
    expert_texts: Sequence[Sequence[str | None]],
    aggregator: str,
    scheduler: Scheduler,
    seed: Seeds = 0,
    label: str = "aggregate",
    settings: Sequence[Mapping[str, Any]] | None = None,
) -> list[Completion]:
    """The aggregator's synthesis of each question's expert answers (answer parts only).
    `settings`: per question, generation settings that replace the aggregator's own (a served
    request's `max_tokens` / `temperature`); they are part of each generation's store key."""
    base = scheduler.pool.settings(aggregator)
    seeds = per_question(seed, len(questions))
    updates = settings if settings is not None else [{}] * len(questions)
    jobs = [
        Job(
            aggregator,
            aggregate_request(q, [answer_part(t) for t in texts]),
            # validated, so an override has the same type (and store key) as a config value
            GenerationSettings.model_validate({**base.model_dump(), **update, "seed": s}),
        )
        for q, texts, s, update in zip(questions, expert_texts, seeds, updates, strict=True)
    ]
    return scheduler.run(jobs, label=f"{label} ({aggregator})")


def discussion_round(
    questions: Sequence[Question],
    experts: Sequence[Sequence[str]],
    expert_texts: Sequence[Sequence[str | None]],
    scheduler: Scheduler,
    seed: Seeds = 0,
    round_index: int = 1,
    suffix: str = "",
) -> list[list[Completion]]:
    """Each expert answers again, seeing the other experts' answers (batched per model)."""
    by_id = {q.id: texts for q, texts in zip(questions, expert_texts, strict=True)}

    def build(q: Question, slot: int, sample: int):
        texts = by_id[q.id]
        others = [answer_part(t) for i, t in enumerate(texts) if i != slot]
        return discuss_request(q, others, sample=sample, suffix=suffix)

    jobs = slot_jobs(questions, experts, scheduler, seed, build)
    return run_slots(jobs, scheduler, label=f"discussion round {round_index}")
