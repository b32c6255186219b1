"""`smoe serve` isolation on the real replay pool (16 recorded MMLU-Pro models, answers in
milliseconds): every request validated on its own, hostile requests in the same batch as good
ones, per-request seed and usage inside one micro-batch, recruitment independent of the batch."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from symbolic_moe import Mixture
from symbolic_moe.app.server import BackgroundServer, ServerOptions, create_app
from symbolic_moe.config import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = default_data_dir()
pytestmark = pytest.mark.usefixtures("shared_data")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve-replay")
    mixture = Mixture.from_config(
        ROOT / "configs" / "replay-mmlu-pro-small16.toml",
        data_dir=DATA,
        out=str(out),
        store=str(out / "generations.sqlite"),
        keywords={"skills_from_field": "category"},
        scheduler={"progress": False},
    )
    # a long window, so requests sent together surely share a micro-batch
    app = create_app(mixture, ServerOptions(window=0.5, max_body_bytes=64 * 1024))
    with BackgroundServer(app) as url:
        yield url, mixture, app.state.service


def ask(url: str, question: str, **fields) -> httpx.Response:
    body = {"model": "symbolic-moe", "messages": [{"role": "user", "content": question}], **fields}
    return httpx.post(f"{url}/chat/completions", json=body, timeout=300)


def send(url: str, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/chat/completions", content=content, headers={"content-type": "application/json"}, timeout=300
    )


def test_each_bad_request_gets_its_own_clear_4xx_and_spoils_no_other(served):
    url, mixture, service = served
    good = [q.question for q in mixture.run.test[:6]]
    message = {"role": "user", "content": good[0]}
    hostile = {
        "1 MB body": (b'{"messages": [{"role": "user", "content": "' + b"x" * 2**20 + b'"}]}', 413, "limit"),
        "bad JSON": (b'{"messages": [', 400, "not valid JSON"),
        "seed type": (json.dumps({"messages": [message], "seed": "seven"}).encode(), 400, "seed"),
        "float seed": (json.dumps({"messages": [message], "seed": 1.5}).encode(), 400, "seed"),
        "n = 2": (json.dumps({"messages": [message], "n": 2}).encode(), 400, "n = 1"),
        "no user": (json.dumps({"messages": [{"role": "system", "content": "x"}]}).encode(), 400, "no user"),
        "no messages": (b'{"model": "symbolic-moe"}', 400, "messages"),
        "long question": (json.dumps({"messages": [{"role": "user", "content": "y" * 40000}]}).encode(), 400, "bytes"),
        "array body": (b"[1, 2]", 400, "JSON object"),
        "unknown model": (json.dumps({"model": "gpt-4", "messages": [message]}).encode(), 404, "gpt-4"),
        "max_tokens": (json.dumps({"messages": [message], "max_tokens": 0}).encode(), 400, "max_tokens"),
    }
    with ThreadPoolExecutor(len(good) + len(hostile)) as pool:
        good_replies = [pool.submit(ask, url, q, seed=i) for i, q in enumerate(good)]
        bad_replies = {name: pool.submit(send, url, body) for name, (body, _, _) in hostile.items()}
        good_replies = [f.result() for f in good_replies]
        bad_replies = {name: f.result() for name, f in bad_replies.items()}
    for i, (q, reply) in enumerate(zip(good, good_replies, strict=True)):
        assert reply.status_code == 200, reply.text
        alone = mixture.answer(q, seed=i)[0]
        assert reply.json()["choices"][0]["message"]["content"] == alone.text
        assert reply.json()["symbolic_moe"]["experts"] == alone.experts
    for name, (_, status, words) in hostile.items():
        reply = bad_replies[name]
        assert reply.status_code == status, (name, reply.text)
        error = reply.json()["error"]
        assert words in error["message"] and error["type"] == "invalid_request_error", (name, error)


def test_seed_usage_and_experts_are_per_request_in_one_batch(served):
    url, mixture, service = served
    questions = [q.question for q in mixture.run.test[20:28]]
    requests = [(q, seed) for q in questions for seed in (11, 12)]
    before = len(service.batches)
    with ThreadPoolExecutor(len(requests)) as pool:
        replies = list(pool.map(lambda r: ask(url, r[0], seed=r[1]).json(), requests))
    assert max(service.batches[before:]) > 1  # some requests really shared a micro-batch
    for (q, seed), reply in zip(requests, replies, strict=True):
        alone = mixture.answer(q, seed=seed)[0]
        assert reply["symbolic_moe"]["experts"] == alone.experts and reply["symbolic_moe"]["seed"] == seed
        assert reply["choices"][0]["message"]["content"] == alone.text
        usage = reply["usage"]  # this request's generations only, not the batch's
        assert usage["completion_tokens"] == alone.usage.completion_tokens > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert any(replies[i]["symbolic_moe"]["experts"] != replies[i + 1]["symbolic_moe"]["experts"] for i in (0, 2, 4))


def test_a_request_that_fails_alone_does_not_fail_its_batch(served):
    """A question no recording answers fails (the replay engine has no output for it) in the
    same micro-batch as answerable ones: only it gets an error; the batch is split, not failed."""
    url, mixture, service = served
    good = [q.question for q in mixture.run.test[30:33]]
    unknown = "A question no recorded model has seen. The options are: (A) yes (B) no."
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda q: ask(url, q), [*good, unknown]))
    assert [r.status_code for r in replies[:3]] == [200, 200, 200]
    assert replies[3].status_code == 500 and "no recording" in replies[3].json()["error"]["message"]
    assert httpx.get(f"{url.removesuffix('/v1')}/health").json() == {"status": "ok"}
