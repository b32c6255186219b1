"""The `vllm` engine needs a GPU and the `vllm` extra; here only its missing-extra error is checked."""

from __future__ import annotations

import importlib.util

import pytest

from symbolic_moe.engines import create_engine
from symbolic_moe.errors import MissingExtraError
from symbolic_moe.types import ChatRequest, GenerationSettings


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_extra_is_one_clear_error() -> None:
    engine = create_engine("vllm", "Qwen/Qwen2.5-0.5B-Instruct", {"data_dir": None})
    assert engine.kind == "vllm"
    with pytest.raises(MissingExtraError, match=r"The vllm engine needs the optional package 'vllm'.*\[vllm\]"):
        engine.generate([ChatRequest.user("hi")], GenerationSettings())
    assert not engine.loaded
    engine.unload()  # nothing started, nothing to stop
