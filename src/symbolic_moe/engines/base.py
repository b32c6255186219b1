"""The engine protocol (SPEC 8): load once, generate a whole batch, unload.

Engines register by name with `@register("name")`; the decorated factory imports its backend
lazily so a missing optional dependency costs nothing until that engine is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..types import ChatRequest, Completion, GenerationSettings


@dataclass
class EngineStats:
    """Counters every engine keeps; the scheduler reads them into results.json."""

    loads: int = 0
    load_seconds: float = 0.0
    unload_seconds: float = 0.0
    generate_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

    def add(self, completions: Sequence[Completion], seconds: float) -> None:
        self.generate_seconds += seconds
        self.requests += len(completions)
        self.prompt_tokens += sum(c.prompt_tokens for c in completions)
        self.completion_tokens += sum(c.completion_tokens for c in completions)


@runtime_checkable
class Engine(Protocol):
    """A model behind one small interface. `kind` names the backend, `model` the model reference."""

    kind: str
    model: str
    stats: EngineStats

    def load(self) -> None: ...

    def generate(self, requests: Sequence[ChatRequest], settings: GenerationSettings) -> list[Completion]: ...

    def unload(self) -> None: ...


@dataclass
class TimedEngine:
    """Base class with the bookkeeping: subclasses implement `_load`, `_generate`, `_unload`."""

    model: str
    options: dict[str, Any] = field(default_factory=dict)
    kind: str = "base"
    stats: EngineStats = field(default_factory=EngineStats)
    loaded: bool = False

    def load(self) -> None:
        if self.loaded:
            return
        start = time.perf_counter()
        self._load()
        self.stats.loads += 1
        self.stats.load_seconds += time.perf_counter() - start
        self.loaded = True

    def generate(self, requests: Sequence[ChatRequest], settings: GenerationSettings) -> list[Completion]:
        if not requests:
            return []
        self.load()
        start = time.perf_counter()
        completions = self._generate(list(requests), settings)
        self.stats.add(completions, time.perf_counter() - start)
        return completions

    def unload(self) -> None:
        if not self.loaded:
            return
        start = time.perf_counter()
        self._unload()
        self.stats.unload_seconds += time.perf_counter() - start
        self.loaded = False

    def _load(self) -> None:  # pragma: no cover - trivial default
        pass

    def _generate(self, requests: list[ChatRequest], settings: GenerationSettings) -> list[Completion]:
        raise NotImplementedError

    def _unload(self) -> None:  # pragma: no cover - trivial default
        pass


EngineFactory = Callable[..., Engine]
_REGISTRY: dict[str, Callable[[], type]] = {}


def register(kind: str) -> Callable[[Callable[[], type]], Callable[[], type]]:
    """Register a function that imports and returns the engine class for `kind`."""

    def wrap(loader: Callable[[], type]) -> Callable[[], type]:
        _REGISTRY[kind] = loader
        return loader

    return wrap


def engine_kinds() -> list[str]:
    return sorted(_REGISTRY)


def create_engine(kind: str, model: str, options: dict[str, Any] | None = None) -> Engine:
    """Build (but do not load) the engine `kind` for `model`."""
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown engine '{kind}' (known: {', '.join(engine_kinds())})")
    cls = _REGISTRY[kind]()
    return cls(model=model, options=dict(options or {}))
