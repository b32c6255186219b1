"""ETR's meta LLM (ETR paper 2.1): a frozen white-box model (engines/whitebox.py: llama.cpp or
PyTorch), with what ETR computes from its states and head: word logits, response log-probs and
losses, and an on-disk cache of last-position hidden states.

`MetaLM(ref)` opens the white box `ref` names (`transformers:<model>` for PyTorch, else a GGUF on
llama.cpp); `MetaLM.wrap(box)` wraps one that is already open (e.g. on a running engine).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engines.whitebox import Messages, WhiteBox, open_white_box
from ..errors import EngineError


def log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


@dataclass
class MetaLM:
    """A white-box model seen by ETR. `backend` is opened from `ref` unless given."""

    ref: str = "embedded:smollm2"
    n_ctx: int = 4096
    n_threads: int = 2
    n_batch: int = 512
    backend: WhiteBox = field(default=None, repr=False)  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.backend is None:
            self.backend = open_white_box(self.ref, self.n_ctx, self.n_threads, self.n_batch)

    @classmethod
    def wrap(cls, backend: WhiteBox) -> MetaLM:
        """ETR on a white box that is already open."""
        return cls(backend.ref, n_ctx=backend.n_ctx, backend=backend)

    @property
    def path(self) -> Path:
        return self.backend.path

    @property
    def model_id(self) -> str:
        """What plug-in files record: expert tokens only fit the meta model they were trained on."""
        return self.backend.model_id

    @property
    def head(self) -> np.ndarray:
        return self.backend.head

    @property
    def dim(self) -> int:
        return int(self.head.shape[1])

    def load(self) -> None:
        self.backend.load()

    def close(self) -> None:
        self.backend.close()

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        return self.backend.render(messages, add_generation_prompt)

    def tokenize(self, text: str) -> list[int]:
        return self.backend.tokenize(text)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.backend.detokenize(tokens)

    def is_end(self, token: int) -> bool:
        return self.backend.is_end(token)

    def hidden(self, tokens: Sequence[int], all_positions: bool = False) -> np.ndarray:
        return self.backend.hidden(tokens, all_positions)

    def prompt_tokens(self, messages: Messages, prefix: str = "") -> list[int]:
        """Tokens of a chat ready for the assistant turn, optionally with the turn's start."""
        return self.tokenize(self.render(messages) + prefix)

    def word_logits(self, hidden: np.ndarray) -> np.ndarray:
        return hidden @ self.head.T

    def response_logprobs(self, messages: Messages, response: str) -> np.ndarray:
        """log P(x_k | query, x_<k) of every token of `response` as the assistant turn (eq. 2)."""
        prompt = self.prompt_tokens(messages)
        full = self.tokenize(self.render(messages) + response)
        if full[: len(prompt)] != prompt or len(full) == len(prompt):
            raise EngineError("response tokens do not extend the prompt tokens (empty response?)")
        states = self.hidden(full, all_positions=True)
        # the state at position t predicts token t + 1
        logp = log_softmax(self.word_logits(states[len(prompt) - 1 : -1]))
        return logp[np.arange(len(full) - len(prompt)), full[len(prompt) :]]

    def response_loss(self, messages: Messages, response: str) -> float:
        """L(j) = sum of -log P over the response tokens (paper eq. 2)."""
        return float(-self.response_logprobs(messages, response).sum())


def text_key(model_id: str, text: str) -> str:
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()[:24]


@dataclass
class HiddenCache:
    """Last-position hidden states on disk, one .npy per (meta model, prompt text), so training,
    extension and evaluation never recompute a query's state."""

    root: Path | None  # None: no cache, states are computed every time

    def _file(self, model_id: str, text: str) -> Path:
        assert self.root is not None
        return self.root / text_key(model_id, text)[:2] / f"{text_key(model_id, text)}.npy"

    def last_states(self, lm: MetaLM, conversations: Sequence[Messages]) -> np.ndarray:
        """(n, d) last-position states of each conversation ready for the assistant turn."""
        out = np.empty((len(conversations), lm.dim), dtype=np.float32)
        for i, messages in enumerate(conversations):
            text = lm.render(messages)
            if self.root is None:
                out[i] = lm.hidden(lm.tokenize(text))
                continue
            path = self._file(lm.model_id, text)
            if path.exists():
                out[i] = np.load(path)
                continue
            out[i] = lm.hidden(lm.tokenize(text))
            path.parent.mkdir(parents=True, exist_ok=True)
            # a temp name of our own: two processes may compute the same prompt (duplicate questions)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.npy")
            np.save(tmp, out[i])
            tmp.replace(path)
        return out
