"""Chat templates of the local engines (`llama_cpp` and `transformers`): how chat messages become
one prompt string.

A GGUF's own template (`tokenizer.chat_template`) is rendered with Jinja2 the way
llama-cpp-python's Jinja2ChatFormatter does, so prompts match it; a model without one gets the
plain "User: ...\nAssistant:" prompt and stops at "\nUser:". A template that rejects a system
role (Gemma-style) gets the system text merged into the first user message; an engine's
`system_prompt` option goes first (`with_system_prompt`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import EngineError
from ..types import Message

TEMPLATE_KEY = "tokenizer.chat_template"
PLAIN_STOP = ("\nUser:",)


class _IgnoreGenerationTags(jinja2.ext.Extension):
    """HuggingFace templates may wrap assistant turns in `{% generation %}`: render the body."""

    tags = {"generation"}

    def parse(self, parser: Any) -> Any:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _raise(message: str) -> None:
    raise ValueError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, **kwargs: Any) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, **kwargs)


@dataclass(frozen=True)
class ChatTemplate:
    """How chat messages become one prompt string. `source` None means the plain template."""

    source: str | None
    bos_token: str = ""
    eos_token: str = ""
    _compiled: Any = field(default=None, compare=False, repr=False)

    @property
    def is_plain(self) -> bool:
        return self.source is None

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt, ending where the assistant's answer starts. A template that rejects a
        system role (Gemma-style) gets the system text merged into the first user message."""
        if self.source is None:
            return render_plain(messages)
        try:
            return self._render(messages)
        except (jinja2.TemplateError, ValueError, TypeError) as exc:
            if not any(m["role"] == "system" for m in messages):
                raise EngineError(f"the model's chat template failed: {exc}") from exc
            merged = merge_system(messages)
            try:
                return self._render(merged)
            except (jinja2.TemplateError, ValueError, TypeError) as exc2:
                raise EngineError(f"the model's chat template failed: {exc2}") from exc2

    def _render(self, messages: Sequence[Message]) -> str:
        template = self._compiled or _compile(self.source or "")
        return template.render(
            messages=[dict(m) for m in messages],
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            add_generation_prompt=True,
            raise_exception=_raise,
            strftime_now=lambda f: datetime.now().strftime(f),
        )


def _compile(source: str) -> Any:
    # The same environment llama-cpp-python's Jinja2ChatFormatter builds, so prompts match it.
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_IgnoreGenerationTags, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    return env.from_string(source)


def chat_template_for(metadata: Mapping[str, str | None], bos_token: str = "", eos_token: str = "") -> ChatTemplate:
    """The chat template a model's GGUF metadata asks for; plain when it has none."""
    source = metadata.get(TEMPLATE_KEY)
    if not source or not source.strip():
        return ChatTemplate(None, bos_token, eos_token)
    try:
        compiled = _compile(source)
    except jinja2.TemplateError as exc:
        raise EngineError(f"the GGUF chat template ({TEMPLATE_KEY}) does not parse: {exc}") from exc
    return ChatTemplate(source, bos_token, eos_token, compiled)


def render_plain(messages: Sequence[Message]) -> str:
    """The plain "User: ...\\nAssistant:" prompt for models without a chat template (base models)."""
    lines = []
    for m in messages:
        role = m["role"]
        if role == "system":
            lines.append(m["content"] + "\n")
        else:
            lines.append(f"{'Assistant' if role == 'assistant' else 'User'}: {m['content']}")
    return "\n".join(lines) + "\nAssistant:"


def merge_system(messages: Sequence[Message]) -> list[Message]:
    """Fold system messages into the first user message (for templates without a system role)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}" if system else m["content"]
            return rest
    return [{"role": "user", "content": system}, *rest]


def with_system_prompt(messages: Sequence[Message], system_prompt: str | None) -> list[Message]:
    """Put `system_prompt` first: as a new system message, or in front of an existing one."""
    out = [dict(m) for m in messages]
    if not system_prompt:
        return out
    if out and out[0]["role"] == "system":
        out[0]["content"] = f"{system_prompt}\n\n{out[0]['content']}"
        return out
    return [{"role": "system", "content": system_prompt}, *out]
