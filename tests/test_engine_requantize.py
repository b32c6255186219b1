"""The llama_cpp engine's `requantize` option and its KV layout choice, on real models."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbolic_moe.engines.embedded import resolve_gguf
from symbolic_moe.engines.llama_cpp import LlamaCppEngine
from symbolic_moe.engines.requantize import requantized_gguf
from symbolic_moe.errors import ConfigError
from symbolic_moe.types import ChatRequest, GenerationSettings

needs_smol = pytest.mark.usefixtures("smollm2_installed")
needs_gemma = pytest.mark.usefixtures("gemma_installed")


@needs_smol
def test_requantized_copy_is_made_once_and_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOE_CACHE_DIR", str(tmp_path))
    engine = LlamaCppEngine(model="embedded:smollm2", options={"n_threads": 1, "requantize": "q4_0"})
    try:
        out = engine.generate([ChatRequest.user("What is 2+2?", "q")], GenerationSettings(temperature=0, max_tokens=8))
        assert out[0].completion_tokens > 0
        assert engine.llm is not None
        made = engine.llm.path
        assert made.parent == tmp_path / "gguf" and made.name.endswith(".q4_0.gguf")
        assert made.stat().st_size < resolve_gguf("embedded:smollm2").stat().st_size  # Q4_0 is smaller than Q4_1
        assert engine.llm.meta("general.file_type") == "2"  # LLAMA_FTYPE_MOSTLY_Q4_0
    finally:
        engine.unload()
    stamp = made.stat().st_mtime_ns
    assert requantized_gguf(resolve_gguf("embedded:smollm2"), "q4_0") == made  # reused, not rewritten
    assert made.stat().st_mtime_ns == stamp
    assert not list(tmp_path.rglob("*.partial"))


def test_unknown_requantize_type_is_a_config_error(tmp_path: Path) -> None:
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    with pytest.raises(ConfigError, match="q3_x.*q4_0"):
        requantized_gguf(source, "q3_x", tmp_path)


@needs_smol
@needs_gemma
def test_kv_layout_is_unified_for_sliding_window_models_only() -> None:
    for model, unified in (("embedded:smollm2", False), ("embedded:gemma3-270m", True)):
        engine = LlamaCppEngine(model=model, options={"n_threads": 1})
        engine.load()
        try:
            assert engine.llm is not None and engine.llm.kv_unified is unified
        finally:
            engine.unload()
    forced = LlamaCppEngine(model="embedded:smollm2", options={"n_threads": 1, "kv_unified": True})
    forced.load()
    assert forced.llm is not None and forced.llm.kv_unified is True
    forced.unload()
