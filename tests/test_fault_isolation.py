"""Fault isolation (issue 11): a model whose server fails for good is isolated, the run completes
the other models and methods, results.json says what is missing, the exit status says "partial",
and running again generates only what is missing. The failing model sits behind a real HTTP
server on 127.0.0.1 (fault_server.py); the other models replay small recordings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_server import FaultServer, Reply, chat_reply, wait_for_arrivals
from typer.testing import CliRunner

from symbolic_moe.app.cli import EXIT_PARTIAL, app
from symbolic_moe.config import ModelSpec
from symbolic_moe.data import load_split
from symbolic_moe.scheduler import Job, ModelPool, Scheduler
from symbolic_moe.store import GenerationStore
from symbolic_moe.types import ChatRequest, GenerationSettings

QUESTIONS = load_split("demo", "validation", None) + load_split("demo", "test", None)


def write_recording(path: Path, right: bool) -> str:
    """A replay file answering every demo question, right or always "(A)"."""
    lines = [json.dumps({"id": q.id, "output": f"The answer is ({q.answer if right else 'A'})"}) for q in QUESTIONS]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def write_config(tmp_path: Path, url: str) -> Path:
    good = write_recording(tmp_path / "good.jsonl", right=True)
    weak = write_recording(tmp_path / "weak.jsonl", right=False)
    text = f"""
name = "fault"
out = "{tmp_path / "run"}"
store = "{tmp_path / "store.sqlite"}"
methods = ["symbolic_moe", "top_k_vote"]
[benchmark]
path = "demo"
limit = 6
validation_limit = 8
[keywords]
skills_from_field = "category"
[aggregator]
method = "majority"
[scheduler]
progress = false
[pool.good]
engine = "replay"
model = "{good}"
[pool.weak]
engine = "replay"
model = "{weak}"
[pool.remote]
engine = "openai"
model = "m"
options = {{ base_url = "{url}", max_retries = 1, backoff = 0.01 }}
"""
    path = tmp_path / "fault.toml"
    path.write_text(text)
    return path


@pytest.fixture
def switchable() -> Iterator[tuple[FaultServer, dict[str, bool]]]:
    """A server that answers 500 to everything until `state["healthy"]` is set."""
    state = {"healthy": False}

    def script(call: int, body: dict[str, Any]) -> Reply:
        if not state["healthy"]:
            return 500, {"error": "permanently broken"}, 0.0
        return 200, chat_reply("The answer is (B)"), 0.0

    server = FaultServer(script)
    yield server, state
    server.close()


def test_failing_model_is_isolated_and_rerun_fills_in(tmp_path: Path, switchable) -> None:
    server, state = switchable
    config = write_config(tmp_path, server.url)
    first = CliRunner().invoke(app, ["run", str(config)])
    assert first.exit_code == EXIT_PARTIAL, first.output
    results = json.loads((tmp_path / "run/results.json").read_text())
    assert results["status"] == "partial"
    [failure] = results["failed"]
    assert failure["model"] == "remote" and "HTTP 500" in failure["error"]
    assert failure["generations_missing"] > 0 and failure["questions"]
    for name in ("symbolic_moe", "top_k_vote"):  # every method still ran on every question
        assert results["methods"][name]["n"] == 6
    assert results["tokens"]["generated_requests"] > 0  # the replay models' answers are stored
    # The failed model is tried once per run, not again in every later step.
    sent_in_first = len(server.bodies)
    assert sent_in_first <= 2 * 16  # one chunk of its first group, each tried max_retries + 1 = 2 times

    state["healthy"] = True
    second = CliRunner().invoke(app, ["run", str(config)])
    assert second.exit_code == 0, second.output
    again = json.loads((tmp_path / "run/results.json").read_text())
    assert again["status"] == "complete" and again["failed"] == []
    # Only what was missing is generated: the replay models' answers all come from the store.
    assert again["usage"]["per_model"]["remote"]["generated"] >= failure["generations_missing"]
    for model in ("good", "weak"):
        assert again["usage"]["per_model"][model]["generated"] == 0
    assert again["tokens"]["reused_requests"] > 0


def test_finished_answers_of_a_batch_survive_a_failing_request(tmp_path: Path) -> None:
    ref: list[FaultServer] = []

    def script(call: int, body: dict[str, Any]) -> Reply:
        content = body["messages"][-1]["content"]
        wait_for_arrivals(ref, 4)  # all four in flight before any answer
        if content == "bad":
            return 400, {"error": "rejected"}, 0.0
        return 200, chat_reply("ok " + content), 0.2  # slower than the failure: still in flight

    server = FaultServer(script)
    ref.append(server)
    try:
        spec = ModelSpec(engine="openai", model="m", options={"base_url": server.url, "concurrency": 4})
        store = GenerationStore(tmp_path / "s.sqlite")
        scheduler = Scheduler(ModelPool({"m": spec}), store, progress=False)
        texts = ["a", "bad", "c", "d"]
        jobs = [Job("m", ChatRequest.user(t, f"q-{t}"), GenerationSettings(max_tokens=4)) for t in texts]
        out = scheduler.run(jobs)
    finally:
        server.close()
    assert out[1].text is None and out[1].finish_reason == "error"
    # The three answers in flight beside the failure are kept and stored, not thrown away.
    assert [c.text for i, c in enumerate(out) if i != 1] == ["ok a", "ok c", "ok d"]
    assert store.count() == 3
    failure = scheduler.failures["m"]
    assert failure.question_ids == {"q-bad"} and "HTTP 400" in failure.error
    report = scheduler.report()
    assert report["failed"][0]["generations_missing"] == 1


@pytest.mark.slow  # every method over a local HTTP server: about a minute on a loaded machine
def test_every_method_copes_with_a_missing_expert(tmp_path: Path, switchable) -> None:
    """Each method runs with one pool model failing for good: its answers count as unparseable,
    later rounds (discussion, aggregation, refinement) get no text for them, nothing crashes."""
    from symbolic_moe.methods import METHODS

    server, _ = switchable  # always 500
    answering = FaultServer(lambda call, body: (200, chat_reply("Reasoning... The answer is (C)"), 0.0))
    try:
        config = write_config(tmp_path, server.url)
        text = config.read_text()
        for name in ("good", "weak"):  # LLMs instead of recordings: every method can use them
            text = text.replace(f'[pool.{name}]\nengine = "replay"', f'[pool.{name}]\nengine = "openai"')
            text = text.replace(
                f'model = "{tmp_path / name}.jsonl"', f'model = "{name}"\noptions = {{ base_url = "{answering.url}" }}'
            )
        for name in ("good", "weak", "remote"):  # priced, so the cost-aware router_frugal runs too
            text = text.replace(f"[pool.{name}]\n", f"[pool.{name}]\nprice = {{ per_call = 0.001 }}\n")
        config.write_text(text.replace('method = "majority"', 'method = "llm"\nmodel = "good"'))
        names = sorted(name for name in METHODS if name != "etr")
        result = CliRunner().invoke(app, ["compare", str(config), "--methods", ",".join(names)])
    finally:
        answering.close()
    assert result.exit_code == EXIT_PARTIAL, result.output
    results = json.loads((tmp_path / "run/results.json").read_text())
    assert [f["model"] for f in results["failed"]] == ["remote"]
    assert set(results["methods"]) == set(names)
    for name, method in results["methods"].items():
        assert method["n"] == 6, name
