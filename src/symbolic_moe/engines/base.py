"""The engine protocol (SPEC 8) and the seam every engine and executor builds on.

An engine loads a model once, generates batches, and unloads. What this module fixes for all:

- **Options.** Each engine class declares `Options: ClassVar[type[EngineOptions]]`, a pydantic
  model with `extra="forbid"` and typed defaults, and `output_options: ClassVar[frozenset[str]]`,
  the option names that change what the model writes. Only those go into the store key; every
  other option (threads, concurrency, timeouts, retries, batch width) is speed-only. Config load
  validates each model's `options` with `engine_options(kind)`, which imports the engine module but
  no heavy backend (llama_cpp, torch, vllm, ray are imported inside methods only).
- **Identity.** `engine.identity()` is a JSON-able dict: engine kind, model reference, the
  output-changing options, and what the model reference points at (`model_identity()`: a GGUF's
  or recording's resolved path, size and mtime; a server's base_url is an output option). The
  scheduler puts it into every store key, so a changed file or option never reuses old answers.
- **Per-generation streaming.** `engine.generate_each(requests, settings)` yields
  `(index in requests, Completion)` as each generation finishes, in finishing order. Engines
  override `_generate_each`; the default runs `_generate` and yields all at the end. The batched
  llama.cpp engine and the openai engine yield each as it finishes; the scheduler stores each at
  once. `generate()` collects `generate_each` into request order.

Engines register by name with `@register("name")`; the decorated loader imports the engine module
lazily, so a missing optional dependency costs nothing until that engine is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError, EngineError
from ..types import ChatRequest, Completion, GenerationSettings


class EngineOptions(BaseModel):
    """Base of every engine's options; unknown keys are errors. `data_dir` is passed to every
    engine by the model pool (where relative model paths are looked up); it is not an output
    option itself: engines that resolve files put the resolved file into `model_identity()`."""

    model_config = ConfigDict(extra="forbid")

    data_dir: str | None = None


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
        for completion in completions:
            self.count(completion)

    def count(self, completion: Completion) -> None:
        self.requests += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens


@runtime_checkable
class Engine(Protocol):
    """A model behind one small interface. `kind` names the backend, `model` the model reference."""

    kind: str
    model: str
    stats: EngineStats
    loaded: bool

    def load(self) -> None: ...

    def generate(self, requests: Sequence[ChatRequest], settings: GenerationSettings) -> list[Completion]: ...

    def generate_each(
        self, requests: Sequence[ChatRequest], settings: GenerationSettings
    ) -> Iterator[tuple[int, Completion]]: ...

    def identity(self) -> dict[str, Any]: ...

    def unload(self) -> None: ...


def format_validation(exc: ValidationError, prefix: str = "options.") -> str:
    """pydantic's errors as one line: `options.n_ctxx: unknown option; options.x: ...`."""
    parts = []
    for error in exc.errors():
        where = prefix + ".".join(str(p) for p in error["loc"])
        message = "unknown option" if error["type"] == "extra_forbidden" else error["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def file_identity(path: Path) -> dict[str, Any]:
    """What names a model file's contents cheaply: resolved path, size and modification time."""
    path = path.resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclass
class TimedEngine:
    """Base class with the bookkeeping: subclasses set `Options` (an EngineOptions subclass) and
    `output_options` and implement `_load`, `_generate` (or `_generate_each`) and `_unload`.
    `opts` holds the validated options; a subclass with its own `__post_init__` calls
    `super().__post_init__()` first. Override `model_identity()` when the model reference
    names a file (return `{"file": file_identity(path)}`)."""

    Options: ClassVar[type[EngineOptions]] = EngineOptions
    output_options: ClassVar[frozenset[str]] = frozenset()

    model: str
    options: dict[str, Any] = field(default_factory=dict)
    kind: str = "base"
    stats: EngineStats = field(default_factory=EngineStats)
    loaded: bool = False
    opts: EngineOptions = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.opts = validate_options(self.kind, self.model, self.Options, self.options)

    # -- identity ------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """Everything about this engine that changes its outputs (see the module docstring)."""
        chosen = self.opts.model_dump(mode="json", include=set(self.output_options))
        return {"engine": self.kind, "model": self.model, "options": chosen, **self.model_identity()}

    def model_identity(self) -> dict[str, Any]:
        """What the model reference points at (file identity), when the engine can tell."""
        return {}

    # -- lifecycle -----------------------------------------------------------------------------

    def load(self) -> None:
        if self.loaded:
            return
        start = time.perf_counter()
        self._load()
        self.stats.loads += 1
        self.stats.load_seconds += time.perf_counter() - start
        self.loaded = True

    def generate(self, requests: Sequence[ChatRequest], settings: GenerationSettings) -> list[Completion]:
        """All completions, in request order."""
        out: list[Completion | None] = [None] * len(requests)
        for index, completion in self.generate_each(requests, settings):
            out[index] = completion
        missing = [i for i, c in enumerate(out) if c is None]
        if missing:
            raise EngineError(f"{self.kind} model '{self.model}' returned no completion for requests {missing}")
        return [c for c in out if c is not None]

    def generate_each(
        self, requests: Sequence[ChatRequest], settings: GenerationSettings
    ) -> Iterator[tuple[int, Completion]]:
        """(index, completion) as each generation finishes. Stats count every yielded one, also
        when a later request fails or the caller stops early."""
        if not requests:
            return
        self.load()
        start = time.perf_counter()
        try:
            for index, completion in self._generate_each(list(requests), settings):
                self.stats.count(completion)
                yield index, completion
        finally:
            self.stats.generate_seconds += time.perf_counter() - start

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

    def _generate_each(
        self, requests: list[ChatRequest], settings: GenerationSettings
    ) -> Iterator[tuple[int, Completion]]:
        """Default: one `_generate` call, all completions yielded when it returns."""
        yield from enumerate(self._generate(requests, settings))

    def _unload(self) -> None:  # pragma: no cover - trivial default
        pass


def validate_options(kind: str, model: str, options_cls: type[EngineOptions], options: dict[str, Any]) -> Any:
    """`options` checked against an engine's Options; a ConfigError names the model and option."""
    try:
        return options_cls.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(f"{kind} engine for model '{model}': {format_validation(exc)}") from None


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


def engine_class(kind: str) -> type:
    """The engine class registered as `kind` (its module imported; heavy backends are not)."""
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown engine '{kind}' (known: {', '.join(engine_kinds())})")
    try:
        return _REGISTRY[kind]()
    except ImportError as exc:
        raise ConfigError(f"engine '{kind}' is not available: {exc}") from None


def engine_options(kind: str) -> type[EngineOptions]:
    """The Options class of engine `kind`, for validating a config before anything loads."""
    return getattr(engine_class(kind), "Options", EngineOptions)


def create_engine(kind: str, model: str, options: dict[str, Any] | None = None) -> Engine:
    """Build (but do not load) the engine `kind` for `model`; options are validated here."""
    return engine_class(kind)(model=model, options=dict(options or {}))
