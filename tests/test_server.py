"""`smoe serve` with the official `openai` client against the real embedded pool (SmolLM2 and
Gemma-3 through llama.cpp, configs/embedded.toml with small limits). One server for the module.

The run directory is the README example's (tests/test_api.py, fixture `embedded_demo_dir`), so
whichever runs first builds the profiles and the other reuses them and every stored generation."""

from __future__ import annotations

import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from symbolic_moe import Mixture
from symbolic_moe.app.server import MODEL_ID, BackgroundServer, ServerOptions, create_app

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key"
EMBEDDED_POOL = ["smollm2", "gemma3", "smollm2-science", "gemma3-humanities"]
QUESTIONS = [
    "Which gas do plants absorb? The options are: (A) oxygen (B) carbon dioxide (C) helium.",
    "What is 7 * 8?",
]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(embedded_demo_dir):
    out = embedded_demo_dir / "runs" / "api-demo"
    mixture = Mixture.from_config(  # the README example's config, so generations are shared
        ROOT / "configs" / "embedded.toml",
        out=str(out),
        benchmark={"validation_limit": 4},
        aggregator={"model": "smollm2"},
        scheduler={"progress": False},
        # one llama.cpp thread: on a busy machine spinning threads wait on each other (speed only:
        # not part of any stored generation's key)
        pool={name: {"options": {"n_threads": 1}} for name in EMBEDDED_POOL},
        **{"recruit.k": 2},
    )
    app = create_app(mixture, ServerOptions(api_key=KEY, window=0.3))
    with BackgroundServer(app) as url:
        yield url, mixture, app.state.service


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0], api_key=KEY, timeout=1800, max_retries=0)


def chat(client: openai.OpenAI, question: str, **options):
    return client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": question}], **options)


def test_models_and_api_key(server, client):
    assert [m.id for m in client.models.list().data] == [MODEL_ID]
    stranger = openai.OpenAI(base_url=server[0], api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="API key"):
        stranger.models.list()
    with pytest.raises(openai.AuthenticationError):
        chat(stranger, QUESTIONS[0])


def test_answers_with_per_request_usage_in_one_batch(server, client):
    url, mixture, service = server
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda q: chat(client, q, seed=1), QUESTIONS))
    for question, reply in zip(QUESTIONS, replies, strict=True):
        assert reply.object == "chat.completion" and reply.model == MODEL_ID
        assert reply.choices[0].finish_reason == "stop" and isinstance(reply.choices[0].message.content, str)
        details = reply.model_extra["symbolic_moe"]
        assert len(details["experts"]) == 2 and set(details["experts"]) <= set(mixture.run.experts)
        assert [e["model"] for e in details["expert_answers"]] == details["experts"]
        alone = mixture.answer(question, seed=1)[0]  # all stored by now: the same generations
        assert reply.choices[0].message.content == (alone.text or "") and details["experts"] == alone.experts
        usage = reply.usage
        assert usage.prompt_tokens == alone.usage.prompt_tokens > 0
        assert usage.completion_tokens == alone.usage.completion_tokens > 0
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    total = [r.usage.total_tokens for r in replies]
    assert all(t < sum(total) for t in total)  # each its own, not the batch's


def test_stream_matches_the_plain_answer(client):
    plain = chat(client, QUESTIONS[0], seed=1)
    chunks = list(chat(client, QUESTIONS[0], seed=1, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_max_tokens_and_temperature_reach_the_aggregator(server, client):
    url, mixture, _ = server
    reply = chat(client, QUESTIONS[1], seed=2, max_tokens=3, temperature=0.0)
    steps = reply.model_extra["symbolic_moe"]["steps"]
    assert 0 < steps["aggregator"]["completion_tokens"] <= 3
    assert steps["experts"]["completion_tokens"] > 3  # the experts keep their own settings
    with sqlite3.connect(mixture.run.config.store_path()) as db:
        settings = [json.loads(s) for (s,) in db.execute("SELECT settings FROM generations")]
    assert {"max_tokens": 3, "temperature": 0.0, "seed": 2} in [
        {k: s[k] for k in ("max_tokens", "temperature", "seed")} for s in settings
    ]


def test_n_above_one_is_refused(client):
    with pytest.raises(openai.BadRequestError, match="n = 1"):
        chat(client, QUESTIONS[0], n=2)


def test_client_leaving_mid_stream_stops_cleanly(server, client):
    url, mixture, service = server
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": QUESTIONS[1]}], "seed": 3, "stream": True}
    headers = {"authorization": f"Bearer {KEY}"}
    batches = len(service.batches)
    with httpx.stream("POST", f"{url}/chat/completions", json=body, headers=headers, timeout=600) as reply:
        assert reply.status_code == 200
        first = next(reply.iter_lines())
        assert json.loads(first.removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"
    # gone before the answer; the server goes on serving, and the abandoned answer is finished and stored whole
    assert chat(client, QUESTIONS[1], seed=3).choices[0].message.content is not None
    deadline = time.monotonic() + 1800
    while len(service.batches) == batches and time.monotonic() < deadline:
        time.sleep(0.5)
    with sqlite3.connect(mixture.run.config.store_path()) as db:
        rows = db.execute("SELECT text, finish_reason, completion_tokens FROM generations").fetchall()
    assert rows and all(finish is not None and tokens >= 0 for _, finish, tokens in rows)
    assert httpx.get(url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
