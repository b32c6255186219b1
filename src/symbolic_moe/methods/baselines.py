"""Single-model and task-level baselines (paper 4.1, Tables 1 and 4): fixed models, no routing.

- `single:<model>`: zero-shot CoT of any named model (1 call per question);
- `task_best`: zero-shot CoT of the model with the best validation accuracy (1 call);
- `self_consistency`: task-best sampled 5 times, majority vote (5 calls; Wang et al. 2023);
- `self_refine`: task-best answers, gives itself feedback, refines (3 calls; Madaan et al. 2023);
- `top_k_vote`: the top-k models by validation accuracy, majority vote (k calls);
- `random_k_vote`: k models drawn uniformly per question (seeded), majority vote (k calls);
- `oracle`: right when any pool model is right (an upper bound for routing, not a method).
Repeated samples of one model differ by their sample index (which offsets the seed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from ..errors import ConfigError
from ..grading import extract_answer, is_correct
from ..inference.experts import run_experts
from ..prompts import feedback_request, refine_request
from ..voting import answer_as_text, vote
from .base import FAMILIES, MethodOptions, MethodSpec, Prediction, method
from .rounds import cot_round, followup_round, part, prepare_ranked, require_generators, task_best

if TYPE_CHECKING:
    from ..run import Run


class SelfConsistencyOptions(MethodOptions):
    samples: int = Field(5, ge=1, description="samples of the task-best model (odd avoids ties)")


def _voted(run: Run, experts: list[list[str]], seed: int) -> list[Prediction]:
    outputs = run_experts(run.test, experts, run.scheduler, seed)
    return [
        Prediction.grade(q, answer_as_text(vote(q, [c.text for c in row]), q), experts=models)
        for q, row, models in zip(run.test, outputs, experts, strict=True)
    ]


def zero_shot(run: Run, seed: int, model: str):
    """Zero-shot CoT of one model on every test question."""
    if model not in run.config.all_models:
        raise ConfigError(f"method 'single:{model}': no model '{model}' in [pool] or [models]")
    outputs = run_experts(run.test, [[model]] * len(run.test), run.scheduler, seed, label=f"zero-shot ({model})")
    predictions = [Prediction.grade(q, row[0].text, experts=[model]) for q, row in zip(run.test, outputs, strict=True)]
    return predictions, {"model": model}


FAMILIES["single"] = lambda model: MethodSpec(lambda run, seed: zero_shot(run, seed, model))


@method("task_best", prepare=prepare_ranked)
def task_best_cot(run: Run, seed: int):
    return zero_shot(run, seed, task_best(run))


@method("self_consistency", prepare=prepare_ranked, options=SelfConsistencyOptions)
def self_consistency(run: Run, seed: int):
    """Task-best x `samples` (default 5, odd to avoid ties), majority over the sampled answers."""
    best, n = task_best(run), SelfConsistencyOptions.of(run, "self_consistency").samples
    samples = cot_round(run.test, [[best] * n] * len(run.test), run.scheduler, seed, f"self-consistency ({best})")
    predictions = [
        Prediction.grade(q, answer_as_text(vote(q, row), q), sample_answers=[extract_answer(t, q) for t in row])
        for q, row in zip(run.test, samples, strict=True)
    ]
    return predictions, {"model": best, "samples": n}


@method("self_refine", prepare=prepare_ranked)
def self_refine(run: Run, seed: int):
    """Answer, self-feedback, refined answer: three rounds of the task-best model."""
    best = task_best(run)
    require_generators(run, [best], "self_refine")
    questions, scheduler = run.test, run.scheduler
    first = cot_round(questions, [[best]] * len(questions), scheduler, seed, f"self-refine answer ({best})")
    answers = {q.id: part(row[0]) for q, row in zip(questions, first, strict=True)}

    def feedback_to(q):
        return feedback_request(q, answers[q.id])

    feedback = followup_round(questions, best, feedback_to, scheduler, seed, f"self-refine feedback ({best})")
    notes = {q.id: part(text) for q, text in zip(questions, feedback, strict=True)}

    def refinement_of(q):
        return refine_request(q, answers[q.id], notes[q.id])

    refined = followup_round(questions, best, refinement_of, scheduler, seed, f"self-refine refinement ({best})")
    predictions = [
        Prediction.grade(q, text, first_answer=extract_answer(row[0], q))
        for q, text, row in zip(questions, refined, first, strict=True)
    ]
    return predictions, {"model": best}


@method("top_k_vote", prepare=prepare_ranked)
def top_k_vote(run: Run, seed: int):
    top = run.ranked_models()[: run.config.recruit.k]
    return _voted(run, [top] * len(run.test), seed), {"models": top}


@method("random_k_vote")
def random_k_vote(run: Run, seed: int):
    rng = np.random.default_rng(seed)
    experts = [[run.experts[i] for i in rng.integers(len(run.experts), size=run.config.recruit.k)] for _ in run.test]
    return _voted(run, experts, seed)


@method("oracle")
def oracle(run: Run, seed: int):
    """Right when any pool model answers right: how far perfect per-question routing could go."""
    outputs = run_experts(run.test, [run.experts] * len(run.test), run.scheduler, seed)
    predictions = []
    for q, row in zip(run.test, outputs, strict=True):
        right = [m for m, c in zip(run.experts, row, strict=True) if is_correct(c.text, q)]
        predictions.append(Prediction(q.id, None, q.answer if right else None, bool(right), {"right": right}))
    return predictions
