"""Engines behind one protocol. Each registers lazily, so importing this costs nothing heavy."""

from .base import (
    Engine,
    EngineOptions,
    EngineStats,
    TimedEngine,
    create_engine,
    engine_class,
    engine_kinds,
    engine_options,
    register,
)


@register("llama_cpp")
def _llama_cpp() -> type:
    # lazy registry: llama_cpp (C library) loads only for this engine
    from .llama_cpp import LlamaCppEngine

    return LlamaCppEngine


@register("openai")
def _openai() -> type:
    # lazy registry: httpx/openai load only for this engine
    from .openai import OpenAIEngine

    return OpenAIEngine


@register("replay")
def _replay() -> type:
    # lazy registry: each backend loads only when asked for
    from .replay import ReplayEngine

    return ReplayEngine


@register("simulated")
def _simulated() -> type:
    # lazy registry: each backend loads only when asked for
    from .simulated import SimulatedEngine

    return SimulatedEngine


@register("transformers")
def _transformers() -> type:
    # lazy registry: transformers/torch load only for this engine
    from .transformers import TransformersEngine

    return TransformersEngine


@register("vllm")
def _vllm() -> type:
    # lazy registry: vllm (optional extra) loads only for this engine
    from .vllm import VLLMEngine

    return VLLMEngine


__all__ = [
    "Engine",
    "EngineOptions",
    "EngineStats",
    "TimedEngine",
    "create_engine",
    "engine_class",
    "engine_kinds",
    "engine_options",
    "register",
]
