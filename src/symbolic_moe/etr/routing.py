"""ETR inference (paper 2.1, Algorithm 1): the meta LLM decodes over [W_V; W_E]; when the next
token is expert j's token the active model becomes expert j, which continues the same chat from
the meta LLM's partial answer. The caller sees one completion.

Router-only mode (for pools of recorded outputs, where no expert can continue a partial answer)
picks, per question, the expert token with the highest logit at the first generated position:
that is the position the tokens were trained at (the last query position, eq. 4), and it gives
every question an expert, which a replay pool needs (the meta LLM itself has no recorded answers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..engines.base import Engine
from ..types import ChatRequest, Completion, GenerationSettings
from .plugins import ExpertHead
from .query_sets import with_suffix, with_system
from .whitebox import Messages, MetaLM


def extended_logits(hidden: np.ndarray, head: np.ndarray, expert_rows: np.ndarray) -> np.ndarray:
    """[W_V; W_E] h: word-token logits first (unchanged by the expert rows), then expert logits."""
    if expert_rows.size == 0:
        return hidden @ head.T
    return np.concatenate([hidden @ head.T, hidden @ expert_rows.T], axis=-1)


def route_states(states: np.ndarray, experts: ExpertHead) -> np.ndarray:
    """Router-only: index of the best expert token per row of `states` (n, d)."""
    if not len(experts):
        raise ValueError("no expert tokens to route to")
    return np.asarray(states @ experts.rows.T).argmax(axis=-1)


def expert_probabilities(states: np.ndarray, experts: ExpertHead) -> np.ndarray:
    """Router-only: softmax over the expert tokens' logits per row of `states` (n, E). The word
    tokens scale every expert's probability by the same factor, so leaving them out changes no
    ranking; it gives weights that sum to 1 over the experts (for a weighted vote)."""
    if not len(experts):
        raise ValueError("no expert tokens to route to")
    logits = np.asarray(states, dtype=np.float64) @ experts.rows.T.astype(np.float64)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


class ExpertBackend(Protocol):
    """An expert that can continue a chat whose assistant turn has already begun with `prefix`."""

    def continue_chat(self, messages: Messages, prefix: str, settings: GenerationSettings) -> Completion: ...


def _pick(logits: np.ndarray, settings: GenerationSettings, rng: np.random.Generator) -> int:
    if settings.temperature <= 0:
        return int(logits.argmax())
    z = logits.astype(np.float64) / settings.temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if settings.top_p < 1.0:
        order = np.argsort(-p)
        cut = np.searchsorted(np.cumsum(p[order]), settings.top_p) + 1
        mask = np.zeros_like(p)
        mask[order[:cut]] = p[order[:cut]]
        p = mask / mask.sum()
    return int(rng.choice(len(p), p=p))


def _stopped(text: str, stop: Sequence[str]) -> str | None:
    for s in stop:
        if s and s in text:
            return text[: text.index(s)]
    return None


def decode(
    lm: MetaLM,
    tokens: list[int],
    settings: GenerationSettings,
    expert_rows: np.ndarray | None = None,
    max_tokens: int | None = None,
) -> tuple[list[int], int | None, str]:
    """Decode from `tokens` over [W_V; expert_rows]. Returns (generated word tokens, index of the
    expert token that stopped decoding or None, finish reason)."""
    rows = np.zeros((0, lm.dim), np.float32) if expert_rows is None else expert_rows
    rng = np.random.default_rng(settings.seed)
    context = list(tokens)
    out: list[int] = []
    limit = settings.max_tokens if max_tokens is None else max_tokens
    vocab = lm.head.shape[0]
    while len(out) < limit:
        token = _pick(extended_logits(lm.hidden(context), lm.head, rows), settings, rng)
        if token >= vocab:
            return out, token - vocab, "expert"
        if lm.is_end(token):
            return out, None, "stop"
        out.append(token)
        context.append(token)
        if settings.stop and _stopped(lm.detokenize(out), settings.stop) is not None:
            return out, None, "stop"
    return out, None, "length"


@dataclass
class PromptExpert:
    """An expert that is a white-box GGUF model with a system prompt and/or an instruction appended
    to the user turn (may share the meta LLM's weights: MMLU-Expert's domain experts here)."""

    lm: MetaLM
    system_prompt: str | None = None
    user_suffix: str | None = None

    def continue_chat(self, messages: Messages, prefix: str, settings: GenerationSettings) -> Completion:
        start = time.perf_counter()
        chat = with_suffix(
            with_system(messages, self.system_prompt) if self.system_prompt else messages, self.user_suffix
        )
        prompt = self.lm.prompt_tokens(chat, prefix)
        out, _, reason = decode(self.lm, prompt, settings)
        text = self.lm.detokenize(out)
        cut = _stopped(text, settings.stop)
        return Completion(
            text=prefix + (text if cut is None else cut),
            prompt_tokens=len(prompt),
            completion_tokens=len(out),
            seconds=time.perf_counter() - start,
            finish_reason=reason,
        )


@dataclass
class EngineExpert:
    """Any engine as an expert. The partial answer goes in as a final assistant message, which
    OpenAI-compatible servers and chat templates treat as a turn to continue when they support
    it; the completion returned is prefix + continuation, as the caller would see it."""

    engine: Engine

    def continue_chat(self, messages: Messages, prefix: str, settings: GenerationSettings) -> Completion:
        chat = tuple(dict(m) for m in messages) + (({"role": "assistant", "content": prefix},) if prefix else ())
        done = self.engine.generate([ChatRequest(messages=chat)], settings)[0]
        return done.model_copy(update={"text": None if done.text is None else prefix + done.text})


@dataclass
class ETRCompletion:
    completion: Completion
    expert: str | None  # the expert that finished the answer; None: the meta LLM answered alone
    switched_at: int | None  # number of meta tokens before the switch
    meta_text: str = ""
    info: dict = field(default_factory=dict)


def etr_generate(
    lm: MetaLM,
    experts: ExpertHead,
    backends: dict[str, ExpertBackend],
    messages: Messages,
    settings: GenerationSettings,
) -> ETRCompletion:
    """Algorithm 1: one completion from the meta LLM, or from the expert it switches to."""
    start = time.perf_counter()
    missing = [n for n in experts.names if n not in backends]
    if missing:
        raise ValueError(f"no backend for expert tokens {missing}")
    prompt = lm.prompt_tokens(messages)
    out, expert, reason = decode(lm, prompt, settings, experts.rows)
    meta_text = lm.detokenize(out)
    if expert is None:
        text = _stopped(meta_text, settings.stop) if settings.stop else None
        completion = Completion(
            text=meta_text if text is None else text,
            prompt_tokens=len(prompt),
            completion_tokens=len(out),
            seconds=time.perf_counter() - start,
            finish_reason=reason,
        )
        return ETRCompletion(completion, None, None, meta_text)
    name = experts.names[expert]
    left = settings.max_tokens - len(out)
    if left <= 0:  # nothing left to generate: the switch changes nothing the caller sees
        done = Completion(text=meta_text, finish_reason="length")
    else:
        done = backends[name].continue_chat(messages, meta_text, settings.model_copy(update={"max_tokens": left}))
    completion = done.model_copy(
        update={
            "prompt_tokens": len(prompt) + done.prompt_tokens,
            "completion_tokens": len(out) + done.completion_tokens,
            "seconds": time.perf_counter() - start,
        }
    )
    return ETRCompletion(completion, name, len(out), meta_text)


def first_expert_position(
    lm: MetaLM, experts: ExpertHead, messages: Messages, settings: GenerationSettings
) -> tuple[str | None, int | None]:
    """The expert the meta LLM would switch to while decoding greedily, and after how many tokens
    (None, None if it never does within max_tokens)."""
    out, expert, _ = decode(lm, lm.prompt_tokens(messages), settings, experts.rows)
    return (experts.names[expert], len(out)) if expert is not None else (None, None)
