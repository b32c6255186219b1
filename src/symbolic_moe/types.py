"""The small value types every layer shares: questions, chat requests, settings, completions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Question(BaseModel):
    """One benchmark item (SPEC 2). Unknown fields are kept in `extra`."""

    model_config = ConfigDict(frozen=True)

    id: str
    question: str
    answer: str
    choices: list[str] | None = None
    category: str | None = None
    source: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_math(self) -> bool:
        return not self.choices

    @property
    def n_options(self) -> int | None:
        """How many options a multiple-choice question offers (None: an open answer)."""
        return len(self.choices) if self.choices else None

    def field(self, name: str) -> Any:
        """A named field, looking in `extra` for the ones without their own attribute."""
        if name in type(self).model_fields:
            return getattr(self, name)
        return self.extra.get(name)


class GenerationSettings(BaseModel):
    """How one model generates. One pydantic model for every engine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(4096, gt=0)
    seed: int = 0
    stop: tuple[str, ...] = ()


Message = dict[str, str]


class ChatRequest(BaseModel):
    """One chat to complete. `question_id` lets replay engines find the recorded output;
    `sample` tells repeated samples of the same chat apart (it also offsets the seed)."""

    model_config = ConfigDict(frozen=True)

    messages: tuple[dict[str, str], ...]
    question_id: str | None = None
    sample: int = 0

    @classmethod
    def user(cls, text: str, question_id: str | None = None, sample: int = 0) -> ChatRequest:
        return cls(messages=({"role": "user", "content": text},), question_id=question_id, sample=sample)

    @property
    def prompt_text(self) -> str:
        return "\n\n".join(m["content"] for m in self.messages)


class Completion(BaseModel):
    """What an engine returns for one request. `text` is None when the engine has no answer
    (a replay record without output); graders treat that as wrong. `cost_usd`: an engine sets it
    only when the backend recorded the call's cost (a replay record's `cost`); the scheduler
    fills it for every generation it hands out, from that or the model's price (`pricing`), and
    leaves it None for an unpriced model."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str | None = None
    cached: bool = False
    cost_usd: float | None = None
