"""The sequential (model-swapping) baseline of the scheduler loads each model a question needs
once per question, also when recruitment picked it twice (replay engine on tiny recordings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symbolic_moe.config import ModelSpec
from symbolic_moe.scheduler import Job, ModelPool, Scheduler
from symbolic_moe.store import GenerationStore
from symbolic_moe.types import ChatRequest


def _pool(tmp_path: Path) -> ModelPool:
    specs = {}
    for name in ("a", "b"):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"id": q, "output": f"{name} on {q}"}) + "\n" for q in ("q1", "q2")))
        specs[name] = ModelSpec(engine="replay", model=str(path))
    return ModelPool(specs)


def _jobs() -> list[Job]:
    # q1 recruited a, a, b (a twice: two samples); q2 recruited b only.
    return [
        Job("a", ChatRequest.user("x", "q1", sample=0)),
        Job("b", ChatRequest.user("x", "q2", sample=0)),
        Job("a", ChatRequest.user("x", "q1", sample=1)),
        Job("b", ChatRequest.user("x", "q1", sample=0)),
    ]


@pytest.mark.parametrize(("mode", "loads"), [("sequential", 3), ("batched", 2)])
def test_loads_per_mode(tmp_path: Path, mode: str, loads: int) -> None:
    scheduler = Scheduler(_pool(tmp_path), GenerationStore(tmp_path / "s.sqlite"), mode=mode, progress=False)
    texts = [c.text for c in scheduler.run(_jobs())]
    assert texts == ["a on q1", "b on q2", "a on q1", "b on q1"]  # results come back in job order
    assert scheduler.loads == loads
    assert scheduler.usage["a"].loads == 1  # recruited twice for q1, loaded once
    assert scheduler.usage["b"].loads == (2 if mode == "sequential" else 1)
