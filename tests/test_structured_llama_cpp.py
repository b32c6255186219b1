"""Structured generation in the llama_cpp engine: a JSON schema becomes a llama.cpp grammar that
every batched sequence follows (real SmolLM2 and Gemma-3 in-process)."""

from __future__ import annotations

import json

import pytest
from test_engine_llama_cpp import GEMMA, SMOL, _engine, gemma, needs_smol, smol  # noqa: F401

from symbolic_moe.engines import llama_sequences
from symbolic_moe.engines.llama_cpp import LlamaCppEngine
from symbolic_moe.engines.llama_sequences import check_grammar
from symbolic_moe.errors import EngineError
from symbolic_moe.preprocess.keywords import keyword_schema, parse_json_keywords
from symbolic_moe.prompts import keyword_request
from symbolic_moe.types import ChatRequest, GenerationSettings, Question

QUESTIONS = [
    "What is the derivative of x^2 sin x?",
    "Which court decided Marbury v. Madison?",
    "What causes the seasons on Earth?",
]
SCHEMA = keyword_schema(20)


def _keyword_requests(samples: int) -> list[ChatRequest]:
    qs = [Question(id=f"q{i}", question=t, answer="A") for i, t in enumerate(QUESTIONS)]
    return [keyword_request(q, s, structured=True) for q in qs for s in range(samples)]


def _check_keywords(text: str | None) -> None:
    assert text is not None
    data = json.loads(text)  # valid JSON, whatever the model chose to say
    assert set(data) == {"keywords"}
    assert 2 <= len(data["keywords"]) <= 5
    assert all(isinstance(k, str) and 1 <= len(k) <= 20 for k in data["keywords"])
    assert parse_json_keywords(text) is not None


@pytest.mark.slow
@pytest.mark.parametrize("model", [SMOL, GEMMA])  # the smol / gemma fixtures check their package
def test_batched_sampled_answers_follow_the_schema(model: str, request: pytest.FixtureRequest) -> None:
    engine: LlamaCppEngine = request.getfixturevalue("smol" if model == SMOL else "gemma")
    # Room beyond the keyword step's 96 tokens: the grammar allows whitespace between JSON tokens and
    # one-character tokens, so a sampled answer on another CPU may rarely need more (2 in 3,500 did).
    settings = GenerationSettings(temperature=0.7, max_tokens=192, json_schema=SCHEMA)
    requests = _keyword_requests(samples=3)  # 9 sequences through 3 slots, prompts shared
    for completion in engine.generate(requests, settings):
        assert completion.finish_reason == "stop"
        _check_keywords(completion.text)


@pytest.mark.slow
@needs_smol
def test_greedy_structured_repeats_and_follows_the_schema(smol: LlamaCppEngine) -> None:  # noqa: F811
    # (batched and one-at-a-time greedy texts of these longer prompts can differ with or without a
    # schema: llama.cpp's batch kernels round differently, see llama_batch.py)
    settings = GenerationSettings(temperature=0.0, max_tokens=96, json_schema=SCHEMA)
    requests = _keyword_requests(samples=1)
    first = [c.text for c in smol.generate(requests, settings)]
    assert [c.text for c in smol.generate(requests, settings)] == first
    alone = smol.generate(requests[:1], settings)[0].text
    assert smol.generate(requests[:1], settings)[0].text == alone
    for text in [*first, alone]:
        _check_keywords(text)


@pytest.mark.slow
@pytest.mark.parametrize("model", [SMOL, GEMMA])
def test_redraw_shortcuts_keep_the_masked_distribution(
    model: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rejected draw is redrawn from the grammar-masked distribution; remembering each grammar
    state's allowed tokens must not change it (seeded draws equal), and the likely-token
    shortlists are exact under greedy decoding (texts equal with both shortcuts off)."""
    engine: LlamaCppEngine = request.getfixturevalue("smol" if model == SMOL else "gemma")
    requests = _keyword_requests(samples=2)
    sampled = GenerationSettings(temperature=0.7, max_tokens=192, json_schema=SCHEMA)
    greedy = GenerationSettings(temperature=0.0, max_tokens=192, json_schema=SCHEMA)

    def texts(settings: GenerationSettings) -> list[str | None]:
        return [c.text for c in engine.generate(requests, settings)]

    greedy_fast = texts(greedy)
    monkeypatch.setattr(llama_sequences, "SHORTLISTS", ())
    sampled_remembered = texts(sampled)
    monkeypatch.setattr(llama_sequences, "REMEMBERED", 0)
    assert texts(sampled) == sampled_remembered
    assert texts(greedy) == greedy_fast
    for text in greedy_fast + sampled_remembered:
        _check_keywords(text)


@pytest.mark.slow
@needs_smol
def test_a_schema_constrains_even_an_unrelated_prompt(smol: LlamaCppEngine) -> None:  # noqa: F811
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    settings = GenerationSettings(temperature=0.7, max_tokens=32, json_schema=schema)
    texts = [c.text for c in smol.generate([ChatRequest.user("Write a poem about the sea.", "p")], settings)]
    data = json.loads(texts[0] or "")
    assert isinstance(data["n"], int)


@pytest.mark.slow
@needs_smol
def test_a_cut_answer_is_reported_as_length_not_repaired(smol: LlamaCppEngine) -> None:  # noqa: F811
    settings = GenerationSettings(temperature=0.7, max_tokens=4, json_schema=SCHEMA)
    completion = smol.generate(_keyword_requests(samples=1)[:1], settings)[0]
    assert completion.finish_reason == "length"
    assert parse_json_keywords(completion.text or "") is None


@needs_smol
def test_a_schema_the_converter_rejects_is_an_engine_error_naming_the_model(smol: LlamaCppEngine) -> None:  # noqa: F811
    bad = GenerationSettings(max_tokens=8, json_schema={"type": "string", "pattern": "no anchors"})
    with pytest.raises(EngineError, match="smollm2.*grammar"):
        smol.generate([ChatRequest.user("hi", "q")], bad)


@needs_smol
def test_a_grammar_llama_cpp_cannot_compile_is_an_engine_error(smol: LlamaCppEngine) -> None:  # noqa: F811
    smol.load()
    assert smol.llm is not None
    with pytest.raises(EngineError, match="could not compile the grammar"):
        check_grammar('root ::= "a" undefined-rule', smol.llm.vocab)
