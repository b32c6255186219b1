"""Cheap, deterministic answers from white-box models: the letter a model puts after
"The answer is (" (its most likely option letter), and a prompt-based expert choice
(Meta-Prompting-E) read the same way. Used where generating hundreds of chains of thought on
2 CPU cores is not affordable; the generative ETR path is `routing.etr_generate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..types import Question
from .query_sets import with_suffix
from .whitebox import Messages, MetaLM

ANSWER_PREFIX = "The answer is ("

# The question comes first, as in the query prompt, so the KV cache of the question is reused.
META_PROMPT = (
    "Question: {question}\n\n"
    "You coordinate a team of expert assistants. Each expert is best at one subject:\n{experts}\n\n"
    "Which expert should answer the question above? Reply with the expert's number only."
)


def _continuation_token(lm: MetaLM, prompt_text: str, piece: str) -> int:
    """The token the model would emit for `piece` right after `prompt_text`."""
    base = lm.tokenize(prompt_text)
    extended = lm.tokenize(prompt_text + piece)
    return extended[len(base)] if extended[: len(base)] == base and len(extended) > len(base) else extended[-1]


def choose_among(lm: MetaLM, messages: Messages, prefix: str, options: Sequence[str]) -> int:
    """Index of the option whose first token the model rates highest after `prefix` in the
    assistant turn (a constrained greedy choice)."""
    text = lm.render(messages) + prefix
    tokens = [_continuation_token(lm, text, o) for o in options]
    logits = lm.word_logits(lm.hidden(lm.tokenize(text)))
    return int(np.argmax(logits[tokens]))


def letter_answer(lm: MetaLM, messages: Messages, choices: Sequence[str], suffix: str | None = None) -> str:
    """The option letter `lm` puts after "The answer is (" (as an expert: prompt ending in `suffix`)."""
    return choices[choose_among(lm, with_suffix(messages, suffix), ANSWER_PREFIX, choices)]


def meta_prompting_choice(lm: MetaLM, question: Question, descriptions: Sequence[str]) -> int:
    """Meta-Prompting-E: the meta LLM reads a numbered list of experts and names one."""
    experts = "\n".join(f"{i}. {d}" for i, d in enumerate(descriptions, start=1))
    user = META_PROMPT.format(experts=experts, question=question.question)
    return choose_among(lm, [{"role": "user", "content": user}], "", [str(i) for i in range(1, len(descriptions) + 1)])


@dataclass
class AnswerCache:
    """Letter answers per (question id, expert), kept in a JSON file so reruns cost nothing."""

    path: Path
    data: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.path.exists():
            self.data = json.loads(self.path.read_text())

    def get(self, lm: MetaLM, question: Question, messages: Messages, expert: str, suffix: str | None) -> str:
        key = f"{question.id}\x00{expert}"
        if key not in self.data:
            self.data[key] = letter_answer(lm, messages, question.choices or [], suffix)
        return self.data[key]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data))
