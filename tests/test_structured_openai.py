"""Structured generation in the openai engine: response_format against the real llama.cpp
OpenAI server (the conftest fixture), and the step-down when a server refuses it (a fault server
on 127.0.0.1 that answers like one that does not support response_format)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fault_server import FaultServer, Reply, chat_reply
from test_engine_openai import engine_for, fault_server  # noqa: F401

from symbolic_moe.engines import create_engine
from symbolic_moe.engines.openai import OpenAIEngine
from symbolic_moe.errors import EngineError, StructuredOutputWarning
from symbolic_moe.preprocess.keywords import keyword_schema, parse_json_keywords
from symbolic_moe.prompts import keyword_request
from symbolic_moe.types import ChatRequest, GenerationSettings, Question

SCHEMA = keyword_schema(20)
STRUCTURED = GenerationSettings(temperature=0.7, max_tokens=96, json_schema=SCHEMA)


@pytest.mark.server
def test_real_server_answers_follow_the_schema(llama_server: str) -> None:
    engine = create_engine("openai", "smollm2", {"base_url": llama_server, "concurrency": 2})
    assert isinstance(engine, OpenAIEngine)
    questions = [Question(id=f"q{i}", question=t, answer="A") for i, t in enumerate(["What is 2+2?", "Who was Kant?"])]
    requests = [keyword_request(q, s, structured=True) for q in questions for s in range(2)]
    with pytest.warns(StructuredOutputWarning, match="smollm2.*json_schema"):  # this server knows json_object only
        completions = engine.generate(requests, STRUCTURED)
    assert engine.format_mode == "json_object_schema"  # remembered: the schema still constrains
    for completion in completions:
        assert completion.text is not None
        assert parse_json_keywords(completion.text) is not None, completion.text
        items = json.loads(completion.text)["keywords"]
        assert 2 <= len(items) <= 5
    engine.unload()


def _refusing(accepts: set[str]) -> Callable[[int, dict[str, Any]], Reply]:
    """A server that refuses (HTTP 400 naming it) every response_format type not in `accepts`."""

    def script(call: int, body: dict[str, Any]) -> Reply:
        sent = body.get("response_format")
        kind = None if sent is None else ("json_object_schema" if "schema" in sent else sent["type"])
        if kind is not None and kind not in accepts:
            error = {"error": {"message": f"response_format {kind} is not supported", "type": "invalid_request"}}
            return 400, error, 0.0
        return 200, chat_reply('{"keywords": ["law", "ethics"]}' if kind else "Keywords: law, ethics"), 0.0

    return script


def test_refusing_server_steps_down_to_plain_text_once_per_model(fault_server: Callable[..., FaultServer]) -> None:  # noqa: F811
    server = fault_server(_refusing(accepts=set()))
    engine = engine_for(server.url, concurrency=1)
    requests = [ChatRequest.user(f"q{i}", f"q{i}") for i in range(3)]
    with pytest.warns(StructuredOutputWarning) as caught:
        texts = [c.text for c in engine.generate(requests, STRUCTURED)]
    assert texts == ["Keywords: law, ethics"] * 3
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3 and all("fake-model" in m for m in messages)  # one per step down
    assert "free text" in messages[-1]
    sent = [b.get("response_format", {}).get("type") for b in server.bodies]
    assert sent[:4] == ["json_schema", "json_object", "json_object", None]
    assert sent[4:] == [None, None]  # remembered: later requests go straight to plain text
    assert engine.format_mode == "text"


def test_server_accepting_json_object_keeps_it(fault_server: Callable[..., FaultServer]) -> None:  # noqa: F811
    server = fault_server(_refusing(accepts={"json_object"}))
    engine = engine_for(server.url)
    with pytest.warns(StructuredOutputWarning):
        texts = [c.text for c in engine.generate([ChatRequest.user("a", "q")], STRUCTURED)]
    assert texts == ['{"keywords": ["law", "ethics"]}'] and engine.format_mode == "json_object"


def test_requests_without_schema_send_no_response_format(fault_server: Callable[..., FaultServer]) -> None:  # noqa: F811
    server = fault_server(_refusing(accepts=set()))
    engine_for(server.url).generate([ChatRequest.user("a", "q")], GenerationSettings(max_tokens=4))
    assert "response_format" not in server.bodies[0]


def test_a_400_unrelated_to_the_format_is_still_an_error(fault_server: Callable[..., FaultServer]) -> None:  # noqa: F811
    server = fault_server(lambda call, body: (400, {"error": {"message": "context length exceeded"}}, 0.0))
    engine = engine_for(server.url)
    with pytest.raises(EngineError, match="HTTP 400"):
        engine.generate([ChatRequest.user("a", "q")], STRUCTURED)
    assert engine.format_mode == "json_schema"
