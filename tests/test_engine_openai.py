"""The `openai` engine: against a real llama.cpp server (SmolLM2), and against a tiny scripted
HTTP server on 127.0.0.1 used only to inject faults (503s, 400s, slow answers) and to watch
how many requests are in flight at once."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fault_server import FaultServer, Reply, echo, wait_for_arrivals

from symbolic_moe.engines import create_engine
from symbolic_moe.engines.openai import OpenAIEngine
from symbolic_moe.errors import ConfigError, EngineError
from symbolic_moe.types import ChatRequest, GenerationSettings


@pytest.fixture
def fault_server() -> Iterator[Callable[[Callable[[int, dict[str, Any]], Reply]], FaultServer]]:
    servers: list[FaultServer] = []

    def start(script: Callable[[int, dict[str, Any]], Reply]) -> FaultServer:
        servers.append(FaultServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def engine_for(url: str, **options: Any) -> OpenAIEngine:
    engine = create_engine("openai", "fake-model", {"base_url": url, "data_dir": None, "backoff": 0.01, **options})
    assert isinstance(engine, OpenAIEngine)
    return engine


SETTINGS = GenerationSettings(temperature=0.0, max_tokens=16, seed=11)


# -- real llama.cpp server --------------------------------------------------------------------


@pytest.mark.server
def test_real_server_batch(llama_server: str) -> None:
    engine = create_engine("openai", "smollm2", {"base_url": llama_server, "concurrency": 4})
    questions = ["What is 2+2?", "Name a color.", "What is the capital of France?", "Say hello."]
    requests = [ChatRequest.user(q, question_id=f"q{i}") for i, q in enumerate(questions)]
    completions = engine.generate(requests, GenerationSettings(temperature=0.0, max_tokens=16))
    assert len(completions) == 4
    for completion in completions:
        assert completion.text and completion.text.strip()
        assert 0 < completion.completion_tokens <= 16
        assert completion.prompt_tokens > 10  # the chat template adds a system turn
        assert completion.finish_reason in {"stop", "length"}
        assert completion.seconds > 0
    assert engine.stats.requests == 4
    assert engine.stats.completion_tokens == sum(c.completion_tokens for c in completions)
    engine.unload()


@pytest.mark.server
def test_real_server_honours_max_tokens_and_stop(llama_server: str) -> None:
    engine = create_engine("openai", "smollm2", {"base_url": llama_server})
    request = ChatRequest.user("Count from 1 to 20, separated by commas.")
    short = engine.generate([request], GenerationSettings(temperature=0.0, max_tokens=3))[0]
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    stopped = engine.generate([request], GenerationSettings(temperature=0.0, max_tokens=16, stop=("5",)))[0]
    assert "5" not in (stopped.text or "")
    engine.unload()


# -- fault injection --------------------------------------------------------------------------


def test_order_kept_when_answers_finish_out_of_order(fault_server: Callable[..., FaultServer]) -> None:
    # Earlier requests answer later, so completion order is the reverse of request order.
    server = fault_server(lambda call, body: (*echo(call, body)[:2], 0.05 * (5 - int(body["messages"][0]["content"]))))
    engine = engine_for(server.url, concurrency=6)
    requests = [ChatRequest.user(str(i), sample=i) for i in range(6)]
    completions = engine.generate(
        requests, GenerationSettings(temperature=0.3, top_p=0.9, max_tokens=5, seed=100, stop=("\n\n",))
    )
    assert [c.text for c in completions] == [f"echo: {i}" for i in range(6)]
    assert [(c.prompt_tokens, c.completion_tokens) for c in completions] == [(7, 3)] * 6
    by_content = {b["messages"][0]["content"]: b for b in server.bodies}
    for i in range(6):
        body = by_content[str(i)]
        assert body["seed"] == 100 + i  # settings.seed + request.sample
        assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == ("fake-model", 0.3, 0.9, 5)
        assert body["stop"] == ["\n\n"]


def test_concurrency_is_bounded_and_overlaps(fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda call, body: (*echo(call, body)[:2], 0.3))
    engine = engine_for(server.url, concurrency=3)
    engine.generate([ChatRequest.user(str(i)) for i in range(9)], SETTINGS)
    assert server.max_in_flight == 3  # overlapped, and never more than the bound

    serial = fault_server(lambda call, body: (*echo(call, body)[:2], 0.05))
    engine_for(serial.url, concurrency=1).generate([ChatRequest.user(str(i)) for i in range(4)], SETTINGS)
    assert serial.max_in_flight == 1


def test_retries_503_then_succeeds(fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda call, body: (503, {"error": "busy"}, 0.0) if call < 2 else echo(call, body))
    completions = engine_for(server.url).generate([ChatRequest.user("hi")], SETTINGS)
    assert completions[0].text == "echo: hi"
    assert len(server.bodies) == 3


def test_retries_429_and_timeouts(fault_server: Callable[..., FaultServer]) -> None:
    def script(call: int, body: dict[str, Any]) -> Reply:
        if call == 0:
            return 429, {"error": "rate limited"}, 0.0
        if call == 1:
            return *echo(call, body)[:2], 2.0  # longer than the client's timeout
        return echo(call, body)

    server = fault_server(script)
    completions = engine_for(server.url, timeout=0.5).generate([ChatRequest.user("slow")], SETTINGS)
    assert completions[0].text == "echo: slow"
    assert len(server.bodies) == 3


def test_gives_up_after_max_retries(fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda call, body: (500, {"error": "boom"}, 0.0))
    with pytest.raises(EngineError, match=r"fake-model.*after 3 attempts.*HTTP 500"):
        engine_for(server.url, max_retries=2).generate([ChatRequest.user("x")], SETTINGS)
    assert len(server.bodies) == 3


def test_400_is_not_retried(fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda call, body: (400, {"error": {"message": "max_tokens too large"}}, 0.0))
    with pytest.raises(EngineError, match=r"'fake-model'.*HTTP 400.*max_tokens too large"):
        engine_for(server.url).generate([ChatRequest.user("x")], SETTINGS)
    assert len(server.bodies) == 1


def test_one_failure_fails_the_batch(fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(
        lambda call, body: (
            (404, {"error": "no such model"}, 0.0) if body["messages"][0]["content"] == "bad" else echo(call, body)
        )
    )
    requests = [ChatRequest.user(t) for t in ("a", "bad", "c")]
    with pytest.raises(EngineError, match="HTTP 404"):
        engine_for(server.url, concurrency=1).generate(requests, SETTINGS)
    assert len(server.bodies) <= 3


def test_api_key_from_env(fault_server: Callable[..., FaultServer], monkeypatch: pytest.MonkeyPatch) -> None:
    server = fault_server(echo)
    monkeypatch.setenv("SMOE_TEST_KEY", "secret-123")
    engine_for(server.url, api_key_env="SMOE_TEST_KEY").generate([ChatRequest.user("a")], SETTINGS)
    monkeypatch.delenv("SMOE_TEST_KEY")
    engine_for(server.url, api_key_env="SMOE_TEST_KEY").generate([ChatRequest.user("b")], SETTINGS)
    assert [h["Authorization"] for h in server.headers] == ["Bearer secret-123", "Bearer EMPTY"]


def test_missing_usage_and_null_content(fault_server: Callable[..., FaultServer]) -> None:
    reply = {"choices": [{"message": {"role": "assistant", "content": None}, "finish_reason": "length"}]}
    server = fault_server(lambda call, body: (200, reply, 0.0))
    completion = engine_for(server.url).generate([ChatRequest.user("a")], SETTINGS)[0]
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ("", 0, 0)
    assert completion.finish_reason == "length"


def test_unreachable_server_names_url() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this socket closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    engine = engine_for(url)
    start = time.perf_counter()
    with pytest.raises(EngineError, match=rf"cannot reach OpenAI-compatible server at {url} for model 'fake-model'"):
        engine.load()
    assert time.perf_counter() - start < 60  # a few quick tries, not minutes of backoff (generous under load)
    assert not engine.loaded


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"model 'm'.*options.base_url"):
        create_engine("openai", "m", {"data_dir": "/x"})
    with pytest.raises(ConfigError, match=r"options.concurency"):
        create_engine("openai", "m", {"base_url": "http://127.0.0.1:1/v1", "concurency": 4})
    with pytest.raises(ConfigError, match=r"options.concurrency"):
        create_engine("openai", "m", {"base_url": "http://127.0.0.1:1/v1", "concurrency": 0})


def test_empty_choices_and_malformed_answers_are_retried(fault_server: Callable[..., FaultServer]) -> None:
    bad_answers = [
        (200, {"choices": []}, 0.0),  # empty choices
        (200, b'{"choices": [{"message": ', 0.0),  # cut-off JSON
        (200, {"choices": [{"message": "not an object"}]}, 0.0),  # malformed message
        (200, {"object": "error"}, 0.0),  # no choices at all
    ]
    server = fault_server(lambda call, body: bad_answers[call] if call < len(bad_answers) else echo(call, body))
    [completion] = engine_for(server.url, max_retries=5).generate([ChatRequest.user("hi")], SETTINGS)
    assert completion.text == "echo: hi"
    assert len(server.bodies) == len(bad_answers) + 1


def test_retry_after_is_honoured(fault_server: Callable[..., FaultServer]) -> None:
    limited = (429, {"error": "slow down"}, 0.0, {"Retry-After": "1"})
    server = fault_server(lambda call, body: limited if call == 0 else echo(call, body))
    [completion] = engine_for(server.url, backoff=0.01).generate([ChatRequest.user("a")], SETTINGS)
    assert completion.text == "echo: a"
    # The client waited as told (a lower bound, which load can only lengthen), not its 0.01 s backoff.
    assert server.arrivals[1] - server.arrivals[0] >= 0.9


def test_retry_after_is_capped(fault_server: Callable[..., FaultServer]) -> None:
    limited = (503, {"error": "maintenance"}, 0.0, {"Retry-After": "86400"})  # a day
    server = fault_server(lambda call, body: limited if call == 0 else echo(call, body))
    engine = engine_for(server.url, backoff=0.01, max_backoff=0.2)
    [completion] = engine.generate([ChatRequest.user("a")], SETTINGS)
    assert completion.text == "echo: a" and len(server.bodies) == 2
    assert server.arrivals[1] - server.arrivals[0] < 60  # capped at max_backoff, not a day


def test_retry_after_http_date() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from symbolic_moe.engines.openai import retry_after_seconds

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 20 < (retry_after_seconds(later) or 0) <= 30
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None


def test_answers_in_flight_beside_a_failure_are_handed_back(fault_server: Callable[..., FaultServer]) -> None:
    ref: list[FaultServer] = []

    def script(call: int, body: dict[str, Any]) -> Reply:
        wait_for_arrivals(ref, 3)  # all three in flight before any answer
        if body["messages"][0]["content"] == "bad":
            return 400, {"error": "rejected"}, 0.0
        return *echo(call, body)[:2], 0.3

    server = fault_server(script)
    ref.append(server)
    engine = engine_for(server.url, concurrency=3)
    got = {}
    with pytest.raises(EngineError, match="HTTP 400"):
        for index, completion in engine.generate_each([ChatRequest.user(t) for t in ("a", "bad", "c")], SETTINGS):
            got[index] = completion.text
    assert got == {0: "echo: a", 2: "echo: c"}
    assert engine.stats.requests == 2
