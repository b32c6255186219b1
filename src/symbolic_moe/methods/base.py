"""What a method is: a function of (run, seed) returning one prediction per test question.

Methods are compositions of the shared steps (recruit, run experts, aggregate) and register by
name with their typed options, `@method("debate", options=DebateOptions)` (as simonw/llm models
declare their `Options`); `smoe run` and `smoe compare` look them up here, and `check_config`
checks a config's method names and `[method_options.<method>]` tables against them before any
generation (so `agnets = 1`, `agents = 0` or `agents = "three"` is one error line naming the
setting). Their LLM calls and tokens are metered from the scheduler, so every method is costed the
same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from ..config import RunConfig, first_error
from ..errors import ConfigError
from ..grading import extract_answer, is_correct
from ..types import Question

if TYPE_CHECKING:
    from ..run import Run


class MethodOptions(BaseModel):
    """A method's options (`[method_options.<method>]`); this base has none: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def of(cls, run: Run, name: str) -> Self:
        """The validated `[method_options.<name>]` of a run (defaults where not set)."""
        registered = method_spec(name).options
        if registered is not cls:
            raise TypeError(f"method '{name}' registered {registered.__name__}, not {cls.__name__}")
        return cls.model_validate(run.config.method_options.get(name, {}))


@dataclass
class Prediction:
    question_id: str
    text: str | None  # the final output (an aggregator's text, or the voted answer written out)
    answer: str | None
    correct: bool
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def grade(cls, question: Question, text: str | None, **detail: Any) -> Prediction:
        return cls(question.id, text, extract_answer(text, question), is_correct(text, question), detail)


@dataclass
class MethodResult:
    name: str
    seed: int
    predictions: list[Prediction]
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    loads: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return sum(p.correct for p in self.predictions) / len(self.predictions) if self.predictions else 0.0

    @property
    def n(self) -> int:
        return len(self.predictions)


MethodFn = Callable[["Run", int], list[Prediction] | tuple[list[Prediction], dict[str, Any]]]
PrepareFn = Callable[["Run"], Any]


@dataclass(frozen=True)
class MethodSpec:
    fn: MethodFn
    prepare: PrepareFn | None = None  # preprocessing, run before metering starts
    options: type[MethodOptions] = MethodOptions


METHODS: dict[str, MethodSpec] = {}
# Parametrised methods: a name `prefix:argument` (e.g. `single:<model>`) is built on first use.
FAMILIES: dict[str, Callable[[str], MethodSpec]] = {}


def method(
    name: str, prepare: PrepareFn | None = None, options: type[MethodOptions] = MethodOptions
) -> Callable[[MethodFn], MethodFn]:
    """Register `fn(run, seed)` as `name`; `prepare(run)` computes the preprocessing it needs
    (profiles, aggregator choice, ...) so that a method's metered cost is its inference only;
    `options` is the model of its `[method_options.<name>]` table."""

    def wrap(fn: MethodFn) -> MethodFn:
        METHODS[name] = MethodSpec(fn, prepare, options)
        return fn

    return wrap


def method_spec(name: str) -> MethodSpec:
    """The method called `name`: registered, or `prefix:argument` of a registered family."""
    if name in METHODS:
        return METHODS[name]
    prefix, sep, argument = name.partition(":")
    if sep and argument and prefix in FAMILIES:
        return FAMILIES[prefix](argument)
    known = sorted(METHODS) + [f"{p}:<argument>" for p in sorted(FAMILIES)]
    raise ConfigError(f"unknown method '{name}' (known: {', '.join(known)})")


def check_config(config: RunConfig, source: str = "<config>", methods: Sequence[str] = ()) -> None:
    """`methods` (names to run) and every `[method_options.<method>]` table of `config` against the
    registered methods and their options: one ConfigError naming the setting, before any generation."""
    for name in methods:
        method_spec(name)
    for name, values in config.method_options.items():
        try:
            options = method_spec(name).options
        except ConfigError as exc:
            raise ConfigError(f"{source}: method_options.{name}: {exc}") from None
        try:
            options.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {first_error(exc, f'method_options.{name}.')}") from None


def run_method(name: str, run: Run, seed: int) -> MethodResult:
    """Run one registered method and meter its calls and tokens."""
    spec = method_spec(name)
    if spec.prepare is not None:
        spec.prepare(run)
    s = run.scheduler
    before = (s.calls, s.prompt_tokens, s.completion_tokens, s.loads)
    out = spec.fn(run, seed)
    predictions, info = out if isinstance(out, tuple) else (out, {})
    return MethodResult(
        name=name,
        seed=seed,
        predictions=predictions,
        calls=s.calls - before[0],
        prompt_tokens=s.prompt_tokens - before[1],
        completion_tokens=s.completion_tokens - before[2],
        loads=s.loads - before[3],
        info=info,
    )


def grade_all(questions: Sequence[Question], texts: Sequence[str | None], **detail: Any) -> list[Prediction]:
    return [Prediction.grade(q, t, **detail) for q, t in zip(questions, texts, strict=True)]
