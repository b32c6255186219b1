"""What the mixture answers (the Python API's and the server's data): an `Answer` per question with
its experts, skills, expert answers and `Usage`; the `Request` it answers; free-text questions and
chat messages turned into a `Question`. Plain values, apart from `Mixture` (api.py), which makes them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, computed_field

from .types import Completion, Question

_OPTION = re.compile(r"\(([A-J])\)")


class Usage(BaseModel):
    """Generations one answer used (stored ones included: they are what the answer cost)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented way; mypy cannot see through it
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, completions: Iterable[Completion]) -> Usage:
        done = list(completions)
        return cls(
            calls=len(done),
            prompt_tokens=sum(c.prompt_tokens for c in done),
            completion_tokens=sum(c.completion_tokens for c in done),
        )


class ExpertAnswer(BaseModel):
    model: str
    text: str | None  # the expert's full answer (after the discussion round, when there is one)
    answer: str | None  # the answer extracted from it (option letter or math answer)


class Answer(BaseModel):
    """The mixture's answer to one question."""

    question: Question
    text: str | None  # the final answer text (the aggregator's, or "The answer is (X)" for a vote)
    answer: str | None  # the final answer extracted: an option letter or a math answer
    experts: list[str]
    skills: list[str]  # the question's skills, mapped onto the profile vocabulary
    expert_answers: list[ExpertAnswer]
    aggregator: str  # the aggregator model, or "majority" / "weighted"
    # the recruitment distribution over the pool the experts were drawn from (Symbolic-MoE; None
    # for the learned routers, which rank instead of drawing)
    recruitment: dict[str, float] | None = None
    seed: int
    usage: Usage
    steps: dict[str, Usage]  # usage per step: keywords, experts, discussion, aggregator


@dataclass(frozen=True)
class Request:
    """One question to answer, with its own seed and (LLM aggregator) settings."""

    question: Question
    seed: int
    max_tokens: int | None = None
    temperature: float | None = None

    @property
    def key(self) -> tuple:
        """Requests with equal keys have equal answers (every generation is seeded and stored)."""
        return (self.question.id, self.question.question, self.seed, self.max_tokens, self.temperature)

    def aggregator_settings(self) -> dict[str, Any]:
        given = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        return {name: value for name, value in given.items() if value is not None}


def question_from_text(text: str) -> Question:
    """A free-text question; lettered options "(A) ... (B) ..." make it multiple choice. Its id is
    a hash of the text, so equal texts are the same question (same stored generations)."""
    letters = sorted(set(_OPTION.findall(text)))
    qid = "ask-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return Question(id=qid, question=text, answer="", choices=letters if len(letters) >= 2 else None)


def normal_text(text: str) -> str:
    """`text` with its whitespace normalised: questions equal up to whitespace are the same."""
    return " ".join(text.split())


def last_user_message(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message (text parts of a multi-part content joined)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            parts = [p for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
            content = "\n".join(str(p.get("text", "")) for p in parts)
        if isinstance(content, str) and content.strip():
            return content
    raise ValueError("messages: no user message with text to answer")
