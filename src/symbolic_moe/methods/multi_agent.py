"""Multi-agent baselines (paper 4.1, Table 1), each round batched per model (see rounds.py).

| method     | agents       | rounds                                          | final            | calls/q |
|------------|--------------|-------------------------------------------------|------------------|---------|
| debate     | task-best x3 | CoT, then 1 debate round (Du et al. 2023)       | majority         | 6       |
| self_moa   | task-best x3 | 3 proposals, then task-best synthesises x3      | majority         | 6       |
| moa        | top-3        | 3 proposals, then the task aggregator synth. x3 | majority         | 6       |
| reconcile  | top-3        | CoT + confidence, then 2 discussion rounds      | confidence vote  | 9       |

The paper counts "three agents, two rounds" as 6 calls for Debate, Self-MoA and MoA. For the MoA
family that leaves no room for an extra single aggregator call, so the second round IS the
aggregation layer: three aggregator samples (MoA's aggregate-and-synthesize prompt over the three
proposals), whose answers are then voted - the aggregator (task-best for Self-MoA, the task
aggregator chosen on the validation split for MoA) does all the synthesis, and the count holds.
Agents, rounds and samples are settable under `[method_options.<method>]`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field

from ..grading import extract_answer
from ..inference.aggregate import discussion_round
from ..prompts import CONFIDENCE
from ..voting import answer_as_text, vote
from .base import MethodOptions, Prediction, method
from .rounds import (
    Texts,
    aggregate_round,
    cot_round,
    prepare_ranked,
    require_generators,
    task_best,
    texts_of,
)

if TYPE_CHECKING:
    from ..run import Run


class DebateOptions(MethodOptions):
    agents: int = Field(3, ge=1, description="copies of the task-best model")
    rounds: int = Field(2, ge=1, description="round 1 answers, later rounds discuss")


class MixtureOptions(MethodOptions):
    agents: int = Field(3, ge=1, description="proposers (top-k models, or task-best copies for self_moa)")
    samples: int | None = Field(None, ge=1, description="aggregator syntheses; default: as many as proposers")


class ReconcileOptions(MethodOptions):
    agents: int = Field(3, ge=1, description="top-k models")
    rounds: int = Field(3, ge=1)


def _voted(run: Run, finals: Texts, agents: list[list[str]], weights: list[list[float]] | None = None):
    predictions = []
    for i, (q, row, models) in enumerate(zip(run.test, finals, agents, strict=True)):
        answer = answer_as_text(vote(q, row, weights[i] if weights else None), q)
        answers = [extract_answer(t, q) for t in row]
        predictions.append(Prediction.grade(q, answer, experts=models, agent_answers=answers))
    return predictions


def _discuss(run: Run, agents: list[list[str]], texts: Texts, seed: int, rounds: int, suffix: str = "") -> Texts:
    """Rounds 2..`rounds`: every agent sees the others' latest answers and answers again."""
    for r in range(2, rounds + 1):
        rows = discussion_round(run.test, agents, texts, run.scheduler, seed, round_index=r - 1, suffix=suffix)
        texts = texts_of(rows)
    return texts


@method("debate", prepare=prepare_ranked, options=DebateOptions)
def debate(run: Run, seed: int):
    """Multi-agent debate with one model: task-best x3, 2 rounds, majority of the last round."""
    best = task_best(run)
    opts = DebateOptions.of(run, "debate")
    n, rounds = opts.agents, opts.rounds
    require_generators(run, [best] if rounds > 1 else [], "debate")
    agents = [[best] * n] * len(run.test)
    texts = cot_round(run.test, agents, run.scheduler, seed, f"debate round 1 ({best})")
    texts = _discuss(run, agents, texts, seed, rounds)
    return _voted(run, texts, agents), {"model": best, "agents": n, "rounds": rounds}


def mixture_of_agents(run: Run, seed: int, proposers: list[str], aggregator: str, name: str):
    """Proposals from `proposers`, then `aggregator` synthesises them `samples` times (default:
    as many as proposers), majority over the syntheses."""
    samples = MixtureOptions.of(run, name).samples or len(proposers)
    require_generators(run, [aggregator], f"{name} aggregator")
    proposals = cot_round(run.test, [proposers] * len(run.test), run.scheduler, seed, f"{name} proposals")
    synthesizers = [[aggregator] * samples] * len(run.test)
    label = f"{name} aggregation ({aggregator})"
    finals = aggregate_round(run.test, synthesizers, proposals, run.scheduler, seed, label)
    predictions = _voted(run, finals, [proposers] * len(run.test))
    for p, q, row in zip(predictions, run.test, proposals, strict=True):
        p.detail["proposal_answers"] = [extract_answer(t, q) for t in row]
    return predictions, {"proposers": proposers, "aggregator": aggregator, "samples": samples}


@method("self_moa", prepare=prepare_ranked, options=MixtureOptions)
def self_moa(run: Run, seed: int):
    """Self-MoA (Li et al. 2025): the task-best model proposes x3 and aggregates."""
    best = task_best(run)
    return mixture_of_agents(run, seed, [best] * MixtureOptions.of(run, "self_moa").agents, best, "self_moa")


def _prepare_moa(run: Run) -> None:
    run.ranked_models()
    run.aggregator()


@method("moa", prepare=_prepare_moa, options=MixtureOptions)
def moa(run: Run, seed: int):
    """MoA (Wang et al. 2024): the top-3 validation models propose, the task aggregator synthesises."""
    top = run.ranked_models()[: MixtureOptions.of(run, "moa").agents]
    return mixture_of_agents(run, seed, top, run.aggregator(), "moa")


# ReConcile's recalibration of stated confidences (Chen et al. 2024, section 2.3): raw
# self-reported confidences are over-confident, so they are mapped onto a coarse scale.
_CONFIDENCE = re.compile(
    r"confidence\W{0,4}(?:level|score)?\W{0,4}(?:is\W{0,4})?(\d+(?:\.\d+)?|\.\d+)\s*(%?)", re.IGNORECASE
)


def stated_confidence(text: str | None) -> float | None:
    """The last "Confidence: X" of an output, as 0..1 (percentages accepted); None if absent."""
    found = _CONFIDENCE.findall(text or "")
    if not found:
        return None
    number, percent = found[-1]
    value = float(number)
    if percent or value > 1.0:  # "90%" or "90" out of 100
        value /= 100
    return min(max(value, 0.0), 1.0)


def recalibrate(confidence: float | None) -> float:
    """ReConcile's vote weight of a stated confidence; no stated confidence weighs least."""
    if confidence is None:
        return 0.1
    if confidence >= 1.0:
        return 1.0
    if confidence >= 0.9:
        return 0.8
    if confidence >= 0.8:
        return 0.5
    if confidence > 0.6:
        return 0.3
    return 0.1


@method("reconcile", prepare=prepare_ranked, options=ReconcileOptions)
def reconcile(run: Run, seed: int):
    """ReConcile: the top-3 models answer with confidences and discuss for 3 rounds in all;
    the last round's answers are voted, weighted by recalibrated confidence."""
    opts = ReconcileOptions.of(run, "reconcile")
    top, rounds = run.ranked_models()[: opts.agents], opts.rounds
    require_generators(run, top if rounds > 1 else [], "reconcile")
    agents = [top] * len(run.test)
    texts = cot_round(run.test, agents, run.scheduler, seed, "reconcile round 1", suffix=CONFIDENCE)
    texts = _discuss(run, agents, texts, seed, rounds, suffix=CONFIDENCE)
    weights = [[recalibrate(stated_confidence(t)) for t in row] for row in texts]
    predictions = _voted(run, texts, agents, weights)
    for p, row in zip(predictions, weights, strict=True):
        p.detail["weights"] = row
    return predictions, {"models": top, "rounds": rounds}
