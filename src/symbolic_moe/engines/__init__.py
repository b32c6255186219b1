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
    from .llama_cpp import LlamaCppEngine

    return LlamaCppEngine


@register("openai")
def _openai() -> type:
    from .openai import OpenAIEngine

    return OpenAIEngine


@register("replay")
def _replay() -> type:
    from .replay import ReplayEngine

    return ReplayEngine


@register("simulated")
def _simulated() -> type:
    from .simulated import SimulatedEngine

    return SimulatedEngine


@register("transformers")
def _transformers() -> type:
    from .transformers import TransformersEngine

    return TransformersEngine


@register("vllm")
def _vllm() -> type:
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
