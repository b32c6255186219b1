"""The mixture behind an OpenAI-compatible endpoint, with real tiny models (llama.cpp)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from symbolic_moe.config import parse_config
from symbolic_moe.run import Run
from symbolic_moe.server import create_app

SETTINGS = {"temperature": 0.7, "max_tokens": 24}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve")
    raw = {
        "out": str(out),
        "benchmark": {"path": "demo", "validation_limit": 4},
        "keywords": {"model": "smollm2", "samples": 2, "max_tokens": 16},
        "recruit": {"k": 2},
        "aggregator": {"method": "majority"},
        "scheduler": {"progress": False},
        "pool": {
            "smollm2": {"engine": "llama_cpp", "model": "embedded:smollm2", "settings": SETTINGS},
            "smollm2-science": {
                "engine": "llama_cpp",
                "model": "embedded:smollm2",
                "settings": SETTINGS,
                "options": {"system_prompt": "You are an expert scientist."},
            },
        },
    }
    run = Run(parse_config(raw))
    with TestClient(create_app(run)) as c:
        yield c, run


@pytest.mark.slow
def test_chat_completion_is_answered_by_recruited_experts(client):
    c, run = client
    assert c.get("/v1/models").json()["data"][0]["id"] == "symbolic-moe"
    question = (
        "Which gas do plants absorb for photosynthesis? "
        "The options are: (A) oxygen (B) carbon dioxide (C) helium (D) neon."
    )
    body = {"model": "symbolic-moe", "messages": [{"role": "user", "content": question}], "seed": 1}
    with ThreadPoolExecutor(2) as pool:  # two requests together are answered as one batch
        replies = list(pool.map(lambda _: c.post("/v1/chat/completions", json=body), range(2)))
    for reply in replies:
        assert reply.status_code == 200
        data = reply.json()
        assert data["object"] == "chat.completion"
        assert isinstance(data["choices"][0]["message"]["content"], str)
        experts = data["symbolic_moe"]["experts"]
        assert len(experts) == 2 and set(experts) <= {"smollm2", "smollm2-science"}
    assert replies[0].json()["symbolic_moe"] == replies[1].json()["symbolic_moe"]


def test_request_without_user_message_is_a_400(client):
    c, _ = client
    reply = c.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "hi"}]})
    assert reply.status_code == 400 and "no user message" in reply.text
