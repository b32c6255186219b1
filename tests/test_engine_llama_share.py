"""Prompt sharing in the llama_cpp engine: samples of one prompt prefill it once (KV copy), and
the texts stay exactly those of the unshared path (real SmolLM2)."""

from __future__ import annotations

import pytest

from symbolic_moe.engines.llama_cpp import LlamaCppEngine
from symbolic_moe.types import ChatRequest, GenerationSettings

pytestmark = pytest.mark.usefixtures("smollm2_installed")

PROMPTS = [
    "List three skills needed to compute 7 times 8, comma separated.",
    "List three skills needed to explain why the sky is blue, comma separated.",
]


def _run(
    requests: list[ChatRequest], settings: GenerationSettings, share: bool, n_seq: int, unified: bool = False
) -> tuple[list[str], int, int]:
    """Texts, prompt tokens copied instead of prefilled, and how many could be (the prompts of
    every sample after a question's first)."""
    engine = LlamaCppEngine(
        model="embedded:smollm2",
        options={"n_threads": 1, "n_seq_max": n_seq, "share_prompts": share, "kv_unified": unified},
    )
    try:
        completions = engine.generate(requests, settings)
        assert engine.llm is not None
        sizes = {r.question_id: c.prompt_tokens for r, c in zip(requests, completions, strict=True)}
        shareable = sum(c.prompt_tokens for c in completions) - sum(sizes.values())
        return [c.text for c in completions], engine.llm.shared_prompt_tokens, shareable
    finally:
        engine.unload()


# 8 slots: all samples enter together; 3 slots: later samples enter while their donor generates
# or after it has finished, and take the prompt's cells from a stream that still holds them.
@pytest.mark.parametrize("n_seq", [8, 3])
def test_shared_prompts_give_the_same_greedy_texts(n_seq: int) -> None:
    requests = [ChatRequest.user(p, f"q{i}", sample=s) for i, p in enumerate(PROMPTS) for s in range(4)]
    settings = GenerationSettings(temperature=0.0, max_tokens=16)
    plain, copied_plain, _ = _run(requests, settings, share=False, n_seq=n_seq)
    shared, copied, shareable = _run(requests, settings, share=True, n_seq=n_seq)
    assert shared == plain
    assert copied_plain == 0
    assert copied == shareable > 0  # every later sample copied its prompt instead of prefilling it


@pytest.mark.parametrize("unified", [False, True])  # one KV stream per sequence, or one for all
def test_late_samples_keep_their_seeded_draws(unified: bool) -> None:
    # 2 slots for 6 samples of one prompt: four samples enter after the first ones have decoded
    # the prompt; each keeps the draws of its own seed. Compared with one-at-a-time decoding,
    # which also prefills the prompt alone (a unified cache would prefill two unshared prompts
    # in one micro-batch, which rounds differently: see llama_batch.py).
    requests = [ChatRequest.user(PROMPTS[1], "q1", sample=s) for s in range(6)]
    settings = GenerationSettings(temperature=0.8, max_tokens=12, seed=5)
    plain, _, _ = _run(requests, settings, share=False, n_seq=1, unified=unified)
    shared, copied, shareable = _run(requests, settings, share=True, n_seq=2, unified=unified)
    assert shared == plain
    assert len(set(shared)) > 1
    assert copied == shareable


def test_shared_prompts_keep_seeded_samples() -> None:
    # Same prompt, five samples (the keyword step): each sample keeps its own seeded draws.
    requests = [ChatRequest.user(PROMPTS[0], "q0", sample=s) for s in range(5)]
    settings = GenerationSettings(temperature=0.7, max_tokens=16, seed=3)
    plain, _, _ = _run(requests, settings, share=False, n_seq=8)
    shared, copied, _ = _run(requests, settings, share=True, n_seq=8)
    assert shared == plain
    assert len(set(shared)) > 1  # the samples differ from each other
    prompt_tokens = copied // 4
    assert copied == 4 * prompt_tokens > 0  # four followers copied the leader's prompt
