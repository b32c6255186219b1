"""The rounds multi-round methods are built from. Each round is ONE scheduler call over a
(question x slot) table of jobs, so every model loads once per round however many questions and
slots it serves; that is what makes the cost of the baselines comparable (issue 4, item 3).

- `cot_round`: each slot's model answers with zero-shot CoT (`suffix` appends to the instruction);
- `aggregate_round`: each slot's model answers the aggregator prompt over the question's texts;
- `followup_round`: one free-form request per question, built from its previous text(s).
A model in several slots of one question answers as separate samples (sample index 0, 1, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..grading import answer_part
from ..inference.experts import run_slots, slot_jobs
from ..prompts import aggregate_request, cot_request
from ..scheduler import Scheduler
from ..types import ChatRequest, Completion, Question

if TYPE_CHECKING:
    from ..run import Run

Texts = list[list[str | None]]  # per question, one text per slot


def texts_of(rows: Sequence[Sequence[Completion]]) -> Texts:
    return [[c.text for c in row] for row in rows]


def part(text: str | None) -> str:
    """The answer part of an output (after a reasoning model's </think>); '' when there is none."""
    return answer_part(text or "") or ""


def cot_round(
    questions: Sequence[Question],
    agents: Sequence[Sequence[str]],
    scheduler: Scheduler,
    seed: int,
    label: str,
    suffix: str = "",
) -> Texts:
    build = (lambda q, slot, sample: cot_request(q, sample, suffix)) if suffix else None
    return texts_of(run_slots(slot_jobs(questions, agents, scheduler, seed, build), scheduler, label))


def aggregate_round(
    questions: Sequence[Question],
    synthesizers: Sequence[Sequence[str]],
    texts: Sequence[Sequence[str | None]],
    scheduler: Scheduler,
    seed: int,
    label: str,
) -> Texts:
    """Each synthesizer slot answers the aggregator prompt (paper Appendix G, the MoA prompt)
    over its question's texts (answer parts only). Slot 0 of a question is the same request as
    `llm_aggregate`'s, so the store shares them."""
    parts = {q.id: [part(t) for t in row] for q, row in zip(questions, texts, strict=True)}

    def build(q: Question, slot: int, sample: int) -> ChatRequest:
        return aggregate_request(q, parts[q.id], sample)

    return texts_of(run_slots(slot_jobs(questions, synthesizers, scheduler, seed, build), scheduler, label))


def followup_round(
    questions: Sequence[Question],
    model: str,
    build: Callable[[Question], ChatRequest],
    scheduler: Scheduler,
    seed: int,
    label: str,
) -> list[str | None]:
    """One request per question to `model` (e.g. Self-Refine's feedback and refinement)."""
    jobs = slot_jobs(questions, [[model]] * len(questions), scheduler, seed, lambda q, slot, sample: build(q))
    rows = run_slots(jobs, scheduler, label)
    return [row[0].text for row in rows]


def task_best(run: Run) -> str:
    """The pool model with the best validation accuracy (SPEC 6, "task-best")."""
    return run.ranked_models()[0]


def prepare_ranked(run: Run) -> None:
    """Preprocessing of the task-level baselines: every pool model's validation answers."""
    run.ranked_models()


def require_generators(run: Run, models: Sequence[str], role: str) -> None:
    """Fail early, naming the model, when a role needs new text from a recorded (replay) model."""
    for model in dict.fromkeys(models):
        spec = run.config.spec(model)
        if spec.engine == "replay":
            raise ConfigError(
                f"{role}: model '{model}' uses the replay engine, which only returns recorded zero-shot "
                "answers and cannot take part in this round; use an LLM engine for it"
            )
