"""Batched expert inference (paper 3.3.3, Algorithm 1; SPEC 5.5).

Every (question, slot) becomes one job for its recruited model; the scheduler groups the jobs by
model, loads each model once and generates its whole group. A model recruited twice for the same
question answers twice, as separate samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from ..prompts import cot_request
from ..scheduler import Job, Scheduler
from ..types import ChatRequest, Completion, Question

RequestBuilder = Callable[[Question, int, int], ChatRequest]  # (question, slot, sample) -> request
Seeds = int | Sequence[int]  # one seed for every question, or one per question (online serving)


def per_question(seed: Seeds, n: int) -> list[int]:
    """`seed` as one seed per question: a served batch mixes requests with their own seeds."""
    if isinstance(seed, int):
        return [seed] * n
    seeds = list(seed)
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} questions")
    return seeds


def slot_jobs(
    questions: Sequence[Question],
    experts: Sequence[Sequence[str]],
    scheduler: Scheduler,
    seed: Seeds = 0,
    build: RequestBuilder | None = None,
) -> list[list[Job]]:
    """Per question, one job per slot; repeated models get increasing sample indices."""
    build = build or (lambda q, slot, sample: cot_request(q, sample))
    jobs = []
    for q, models, q_seed in zip(questions, experts, per_question(seed, len(questions)), strict=True):
        seen: Counter[str] = Counter()
        row = []
        for slot, model in enumerate(models):
            settings = scheduler.pool.settings(model).model_copy(update={"seed": q_seed})
            row.append(Job(model, build(q, slot, seen[model]), settings))
            seen[model] += 1
        jobs.append(row)
    return jobs


def run_slots(jobs: Sequence[Sequence[Job]], scheduler: Scheduler, label: str) -> list[list[Completion]]:
    """Run a (question x slot) table of jobs in one scheduler call, so each model loads once."""
    flat = [job for row in jobs for job in row]
    completions = iter(scheduler.run(flat, label=label))
    return [[next(completions) for _ in row] for row in jobs]


def run_experts(
    questions: Sequence[Question],
    experts: Sequence[Sequence[str]],
    scheduler: Scheduler,
    seed: Seeds = 0,
    label: str = "experts",
) -> list[list[Completion]]:
    """Zero-shot CoT answers of each question's recruited experts."""
    return run_slots(slot_jobs(questions, experts, scheduler, seed), scheduler, label)
