"""The answering steps after recruitment (paper 3.3.2-3.3.3, SPEC 5.5-5.6): the recruited experts
(batched per model), an optional discussion round, then aggregation (LLM or vote).

One function for every caller that answers with the mixture: the `symbolic_moe*` methods on the
test split (`smoe run`), and the Python API (`api.Mixture`), which `smoe serve` calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .grading import answer_key
from .inference.aggregate import discussion_round, llm_aggregate
from .inference.experts import Seeds, per_question, run_experts
from .inference.recruit import Recruitment
from .routing.decide import cascade, ranking, top_k, weights_for
from .run import Run
from .types import Completion, Question
from .voting import answer_as_text, vote


@dataclass
class Synthesis:
    """Per question: the final text, the expert answers the aggregation saw, and every generation
    each step used (`{"experts": [...], "discussion": [...], "aggregator": [...]}`, for usage)."""

    finals: list[str | None]
    texts: list[list[str | None]]
    aggregator: str
    completions: list[dict[str, list[Completion]]]


def synthesize(
    run: Run,
    questions: Sequence[Question],
    plan: Recruitment,
    seed: Seeds,
    aggregation: str,
    discussion: bool = False,
    write: bool = True,
    aggregator_settings: Sequence[Mapping[str, Any]] | None = None,
    label: str = "",
) -> Synthesis:
    """Run the recruited experts and aggregate. `seed`: one for all questions or one per question;
    `aggregator_settings`: per question, settings replacing the LLM aggregator's (max_tokens, ...);
    `label`: a prefix of the scheduler labels (results.json `plans`), e.g. "router "."""
    outputs = run.expert_outputs(plan, seed, list(questions), write=write, label=f"{label}experts")
    steps: list[dict[str, list[Completion]]] = [{"experts": list(row)} for row in outputs]
    texts = [[c.text for c in row] for row in outputs]
    if discussion:
        rounds = discussion_round(questions, plan.experts, texts, run.scheduler, seed)
        texts = [[c.text for c in row] for row in rounds]
        for step, row in zip(steps, rounds, strict=True):
            step["discussion"] = list(row)
    if aggregation == "llm":
        aggregator = run.aggregator()
        completions = llm_aggregate(
            questions, texts, aggregator, run.scheduler, seed, f"{label}aggregate", settings=aggregator_settings
        )
        for step, completion in zip(steps, completions, strict=True):
            step["aggregator"] = [completion]
        return Synthesis([c.text for c in completions], texts, aggregator, steps)
    index = {m: i for i, m in enumerate(plan.models)}
    finals = []
    for q, answers, experts, probs in zip(questions, texts, plan.experts, plan.probabilities, strict=True):
        weights = [float(probs[index[m]]) for m in experts] if aggregation == "weighted" else None
        finals.append(answer_as_text(vote(q, answers, weights), q))
    return Synthesis(finals, texts, aggregation, steps)


def routed_plan(run: Run, questions: Sequence[Question], probabilities: Any, k: int) -> Recruitment:
    """The learned routers' top-k plan: per question the k most likely correct pool models, best
    first; their log-odds vote weights stand where a recruitment keeps its probabilities, so the
    weighted vote of `synthesize` counts them (ties to the most likely expert)."""
    order = top_k(probabilities, k)
    return Recruitment(
        models=run.experts,
        question_ids=[q.id for q in questions],
        experts=[[run.experts[m] for m in row] for row in order],
        probabilities=weights_for(probabilities, [q.n_options for q in questions]),
    )


@dataclass
class CascadeAnswers:
    """Per question: the final answer key, the pool-model indices asked (best first), their answer
    keys, and their generations."""

    answers: list[str | None]
    asked: list[list[int]]
    responses: list[list[str | None]]
    completions: list[list[Completion]]


def cascade_experts(
    run: Run,
    questions: Sequence[Question],
    probabilities: Any,
    margin: float,
    k_max: int,
    seed: Seeds,
    label: str = "router cascade",
) -> CascadeAnswers:
    """Ask pool models best-first by predicted correctness (routing.decide.cascade), one batched
    round per rank, until each question's weighted margin passes `margin` or `k_max` answered.
    `seed`: one for all questions or one per question (a served batch)."""
    models, seeds = run.experts, per_question(seed, len(questions))
    completions: list[list[Completion]] = [[] for _ in questions]

    def ask(batch: list[tuple[int, int]]) -> list[str | None]:
        subset = [questions[q] for q, _ in batch]
        rows = run_experts(subset, [[models[m]] for _, m in batch], run.scheduler, [seeds[q] for q, _ in batch], label)
        for (q, _), row in zip(batch, rows, strict=True):
            completions[q].append(row[0])
        return [answer_key(row[0].text, question) for question, row in zip(subset, rows, strict=True)]

    options = [q.n_options for q in questions]
    result = cascade(ranking(probabilities), weights_for(probabilities, options), margin, k_max, ask)
    return CascadeAnswers(result.answers, result.asked, result.responses, completions)
