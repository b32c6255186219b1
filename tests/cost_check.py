"""A check shared by the method tests: a method's reported dollars equal the sum, over every call it
made, of that call's cost worked out here from the price table and the call's tokens (or from the
recording's own cost), and summing per question, per model and per step gives the same total."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from symbolic_moe.methods import MethodResult, run_method
from symbolic_moe.pricing import call_cost
from symbolic_moe.run import Run
from symbolic_moe.scheduler import Job
from symbolic_moe.types import Completion

Recorded = Callable[[Job], float | None]  # a call's recorded cost (replay `cost`), None: none recorded


def run_and_watch(run: Run, name: str, seed: int) -> tuple[MethodResult, list[tuple[Job, Completion]]]:
    """Run a method and keep every (job, completion) the scheduler handed out while it was metered."""
    calls: list[tuple[Job, Completion]] = []
    original = run.scheduler.run

    def watched(jobs: Any, label: str = "generate") -> list[Completion]:
        out = original(jobs, label)
        if run.scheduler.ledger is not None:  # inside run_method's metering, not its preparation
            calls.extend(zip(jobs, out, strict=True))
        return out

    run.scheduler.run = watched  # type: ignore[method-assign]
    try:
        result = run_method(name, run, seed)
    finally:
        del run.scheduler.run
    return result, calls


def assert_costs_add_up(run: Run, name: str, seed: int, recorded: Recorded = lambda job: None) -> MethodResult:
    """Run `name` and check its dollars against each call's cost; returns the result."""
    result, calls = run_and_watch(run, name, seed)
    prices = {model: spec.price for model, spec in run.config.all_models.items()}
    costs = [call_cost(prices[job.model], c.prompt_tokens, c.completion_tokens, recorded(job)) for job, c in calls]
    assert len(costs) == result.calls > 0
    if None in costs:
        unpriced = {job.model for (job, _), cost in zip(calls, costs, strict=True) if cost is None}
        assert result.cost_usd is None and result.spend.unpriced_models == unpriced
        return result
    total = math.fsum(c for c in costs if c is not None)
    assert total > 0 and result.cost_usd == pytest.approx(total, rel=1e-12)
    for what in ("question", "model", "step"):
        parts = result.cost_by(what)
        assert math.fsum(s.priced_usd for s in parts.values()) == pytest.approx(total, rel=1e-12)
        assert sum(s.calls for s in parts.values()) == result.calls
    per_question = result.cost_by("question")
    assert set(per_question) == {p.question_id for p in result.predictions}  # every call is some question's
    return result
