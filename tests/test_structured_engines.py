"""Structured generation in the transformers engine (real SmolLM2, lm-format-enforcer), the
vllm engine's guided-decoding parameters (no GPU here: the parameters it builds), and replay,
which answers with its recordings whatever the schema."""

from __future__ import annotations

import importlib.util
import json

import pytest
from test_engine_replay import DATA_DIR, needs_data, raw

from symbolic_moe.engines import create_engine
from symbolic_moe.engines.json_constraint import without_patterns
from symbolic_moe.engines.vllm import sampling_params, with_guided_decoding
from symbolic_moe.errors import EngineError
from symbolic_moe.preprocess.keywords import keyword_schema, parse_json_keywords
from symbolic_moe.prompts import keyword_request
from symbolic_moe.types import ChatRequest, GenerationSettings, Question

SCHEMA = keyword_schema(20)
needs_smol = pytest.mark.usefixtures("smollm2_installed")  # a skip, or a failure under SMOE_REQUIRE=models


@pytest.mark.slow
@needs_smol
def test_transformers_answers_follow_the_schema_batched_and_seeded() -> None:
    engine = create_engine("transformers", "embedded:smollm2", {"n_threads": 1, "batch_size": 2})
    questions = [Question(id=f"q{i}", question=t, answer="A") for i, t in enumerate(["What is 2+2?", "Who was Kant?"])]
    requests = [keyword_request(q, s, structured=True) for q in questions for s in range(2)]
    settings = GenerationSettings(temperature=0.7, max_tokens=96, json_schema=SCHEMA)
    completions = engine.generate(requests, settings)
    for completion in completions:
        assert completion.finish_reason == "stop" and completion.text is not None
        items = json.loads(completion.text)["keywords"]
        # lengths are not enforced on this path (json_constraint.py); the parser drops long ones
        assert 2 <= len(items) <= 5 and all(isinstance(k, str) for k in items)
        assert parse_json_keywords(completion.text) is not None
    again = engine.generate(requests[:1], settings)  # seeded per request: the same text alone
    assert again[0].text == completions[0].text
    with pytest.raises(EngineError, match="smollm2.*JSON schema"):
        engine.generate(requests[:1], GenerationSettings(max_tokens=4, json_schema={"type": "no-such-type"}))
    engine.unload()


def test_transformers_drops_only_string_patterns() -> None:
    schema = {"properties": {"pattern": {"type": "string", "pattern": "^a$", "maxLength": 3}}}
    assert without_patterns(schema) == {"properties": {"pattern": {"type": "string", "maxLength": 3}}}


def test_vllm_passes_the_schema_as_guided_decoding() -> None:
    request = ChatRequest.user("hi", "q", sample=2)
    plain = sampling_params(request, GenerationSettings(seed=5, max_tokens=8))
    assert "json_schema" not in plain and plain["seed"] == 7
    structured = sampling_params(request, GenerationSettings(max_tokens=8, json_schema=SCHEMA))
    assert structured["json_schema"] == SCHEMA
    assert with_guided_decoding(plain) == plain
    if importlib.util.find_spec("vllm") is None:
        return  # building vLLM's own parameter object needs vllm (the vllm extra)
    built = with_guided_decoding(structured)  # pragma: no cover - with the vllm extra only
    guided = built.get("structured_outputs") or built.get("guided_decoding")
    assert guided is not None and guided.json == SCHEMA and "json_schema" not in built


@needs_data
def test_replay_ignores_the_schema() -> None:
    engine = create_engine("replay", "replay/mmlu_pro/Llama-2-7b-hf.jsonl.gz", {"data_dir": str(DATA_DIR)})
    settings = GenerationSettings(max_tokens=8, json_schema=SCHEMA)
    completion = engine.generate([ChatRequest.user("any", question_id="mmlu_pro-test-0007")], settings)[0]
    assert completion.text == raw("Llama-2-7b-hf")["mmlu_pro-test-0007"]["output"]
