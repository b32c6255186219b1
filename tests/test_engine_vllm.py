"""The `vllm` engine: its missing-extra error where vLLM is absent, and its generate path on a GPU
(marked `gpu`: skipped with the reason on machines without a CUDA GPU or without vLLM)."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from symbolic_moe.engines import create_engine
from symbolic_moe.errors import MissingExtraError
from symbolic_moe.types import ChatRequest, GenerationSettings

HAS_VLLM = importlib.util.find_spec("vllm") is not None
# A small instruct model; on a machine without internet access point this at a local folder.
VLLM_MODEL = os.environ.get("SMOE_VLLM_MODEL", "Qwen/Qwen2.5-0.5B-Instruct")


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed")
def test_missing_extra_is_one_clear_error() -> None:
    engine = create_engine("vllm", "Qwen/Qwen2.5-0.5B-Instruct", {"data_dir": None})
    assert engine.kind == "vllm"
    with pytest.raises(MissingExtraError, match=r"The vllm engine needs the optional package 'vllm'.*\[vllm\]"):
        engine.generate([ChatRequest.user("hi")], GenerationSettings())
    assert not engine.loaded
    engine.unload()  # nothing started, nothing to stop


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_VLLM, reason="needs the vllm extra (pip install 'symbolic-moe[vllm]')")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_generate_on_a_gpu() -> None:
    """One batch of chats through the child process: an answer per request in order, token
    counts, the length limit and stop strings honoured, the same greedy answer again, and the
    child gone after unload."""
    engine = create_engine("vllm", VLLM_MODEL, {"max_model_len": 2048, "gpu_memory_utilization": 0.5})
    requests = [ChatRequest.user(f"What is {i} plus {i}? Answer with the number.", f"q{i}") for i in range(4)]
    greedy = GenerationSettings(temperature=0.0, max_tokens=16)
    try:
        first = engine.generate(requests, greedy)
        assert len(first) == len(requests) and engine.loaded
        for out in first:
            assert out.text.strip() and out.prompt_tokens > 0 and 0 < out.completion_tokens <= 16
            assert out.finish_reason in ("stop", "length")
        assert [c.text for c in engine.generate(requests, greedy)] == [c.text for c in first]
        capped = engine.generate(requests[:1], GenerationSettings(temperature=0.0, max_tokens=2))
        assert capped[0].completion_tokens <= 2 and capped[0].finish_reason == "length"
        stopped = engine.generate(requests[1:2], GenerationSettings(temperature=0.0, max_tokens=16, stop=("2",)))
        assert "2" not in stopped[0].text  # "1 plus 1": the answer is cut before the number
        assert engine.stats.requests == 2 * len(requests) + 2
    finally:
        engine.unload()
    assert not engine.loaded
