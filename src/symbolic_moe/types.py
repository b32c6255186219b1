"""The small value types every layer shares: questions, chat requests, settings, completions."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
    """How one model generates. One pydantic model for every engine.

    `json_schema`: the answer must be JSON matching this schema (structured generation). Given
    as a dict or JSON text, it is kept as canonical JSON text, so settings stay hashable (the
    executor groups requests by settings) and two spellings of one schema are one store key.
    Engines constrain decoding with it (llama.cpp grammar, OpenAI `response_format`, a logits
    processor, vLLM guided decoding); None (the default) is free text and leaves store keys as
    they were before the field existed (see `key_payload`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(4096, gt=0)
    seed: int = 0
    stop: tuple[str, ...] = ()
    json_schema: str | None = None

    @field_validator("json_schema", mode="before")
    @classmethod
    def _canonical_schema(cls, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError("a JSON schema is a JSON object")
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    @property
    def response_schema(self) -> dict[str, Any] | None:
        """The JSON schema as a dict, or None for free text."""
        return json.loads(self.json_schema) if self.json_schema is not None else None

    def key_payload(self) -> dict[str, Any]:
        """The settings as they enter a store key: without a schema exactly as before the
        schema existed, so stores written then stay valid; with one, the schema is part of it."""
        return self.model_dump(mode="json", exclude={"json_schema"} if self.json_schema is None else set())


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
