"""The keyword step's structured answers: schema, strict parsing, the lenient fallback, store keys."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from pydantic import ValidationError

from symbolic_moe.config import KeywordConfig
from symbolic_moe.inference.keyword_mapping import nearest_labels
from symbolic_moe.preprocess.keywords import keyword_schema, parse_json_keywords, read_answer
from symbolic_moe.prompts import KEYWORDS, KEYWORDS_FORMAT_JSON, KEYWORDS_TASK, keyword_request
from symbolic_moe.store import generation_key
from symbolic_moe.types import ChatRequest, Completion, GenerationSettings, Question

Q = Question(id="q1", question="What is {x}? A {b} c", answer="A")


def test_free_prompt_is_the_authors_text_and_structured_one_swaps_only_the_format_line() -> None:
    free = keyword_request(Q, 0).prompt_text
    assert free == KEYWORDS.format(question=Q.question)  # unchanged: old store keys stay valid
    structured = keyword_request(Q, 0, structured=True).prompt_text
    assert structured.startswith(KEYWORDS_TASK.format(question=Q.question))
    assert structured.endswith(KEYWORDS_FORMAT_JSON) and "Keywords:" not in structured


def test_strict_parser_reads_the_object_and_rejects_everything_else() -> None:
    assert parse_json_keywords('{"keywords": ["Organic Chemistry", "law", "law"]}') == ["organic chemistry", "law"]
    assert parse_json_keywords('{"keywords": ["a, b", "c"]}') == ["a, b", "c"]  # one item stays one keyword
    for bad in ['{"keywords": ["law", "eth', '{"skills": ["law"]}', '["law"]', '{"keywords": [1, 2]}', "null"]:
        assert parse_json_keywords(bad) is None


def test_read_answer_falls_back_to_the_lenient_parser_only_for_free_text() -> None:
    refused = Completion(text="Keywords: law, ethics", finish_reason="stop")
    assert read_answer(refused, structured=True, max_length=20) == (["law", "ethics"], None)
    cut = Completion(text='{"keywords": ["law", "eth', finish_reason="length")
    keywords, problem = read_answer(cut, structured=True, max_length=20)
    assert keywords == [] and problem is not None and "cut at max_tokens" in problem
    keywords, problem = read_answer(Completion(text=None, finish_reason="error"), structured=True, max_length=20)
    assert keywords == [] and problem is not None and "no answer" in problem
    assert read_answer(refused, structured=False, max_length=20) == (["law", "ethics"], None)


def test_schema_bounds_count_and_length() -> None:
    schema = keyword_schema(12)
    items = schema["properties"]["keywords"]
    assert (items["minItems"], items["maxItems"]) == (2, 5)
    assert items["items"]["pattern"].endswith("{0,11}$")


def test_token_limit_defaults_by_mode_and_an_explicit_one_wins() -> None:
    assert KeywordConfig().token_limit == 96
    assert KeywordConfig(structured=False).token_limit == 40
    assert KeywordConfig(max_tokens=50).token_limit == 50


def test_settings_without_schema_keep_their_old_store_key() -> None:
    request = ChatRequest.user("hi", "q1")
    settings = GenerationSettings(temperature=0.7, max_tokens=40)
    # the key exactly as it was computed before settings could carry a schema
    old_payload = {
        "engine": "llama_cpp",
        "model": "m",
        "identity": {},
        "messages": list(request.messages),
        "question_id": "q1",
        "sample": 0,
        "settings": {"temperature": 0.7, "top_p": 1.0, "max_tokens": 40, "seed": 0, "stop": []},
    }
    old = hashlib.sha256(json.dumps(old_payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert generation_key("llama_cpp", "m", request, settings) == old
    with_schema = settings.model_copy(update={"json_schema": json.dumps(keyword_schema(20))})
    assert generation_key("llama_cpp", "m", request, with_schema) != old


def test_schema_is_canonical_and_validated() -> None:
    a = GenerationSettings(json_schema={"type": "object", "required": ["x"]})
    b = GenerationSettings(json_schema='{ "required": ["x"],  "type": "object" }')
    assert a == b and a.json_schema is not None and a.response_schema == {"type": "object", "required": ["x"]}
    assert hash(a) == hash(b)  # the executor groups requests by settings
    for bad in ["{not json", "[1, 2]"]:
        with pytest.raises(ValidationError, match="json_schema"):
            GenerationSettings(json_schema=bad)


def _unit(rows: list[list[float]]) -> np.ndarray:
    array = np.array(rows)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_nearest_labels_vote_among_neighbours() -> None:
    labelled = _unit([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.8, 0.2]])
    labels = ["law", "law", "math", "math", "history"]
    queries = _unit([[1.0, 0.05], [0.05, 1.0], [0.7, 0.7]])
    # third query: law, history, math once each among its 3 nearest -> the nearest one's label
    assert nearest_labels(queries, labelled, labels, k=3) == [["law"], ["math"], ["history"]]
    assert nearest_labels(queries, labelled, labels, k=5) == [["law", "math"], ["math", "law"], ["law", "math"]]
