"""The `transformers` engine's white-box access (engines/whitebox.py `WhiteBox`): ETR's meta LLM
on PyTorch.

`MetaLM("transformers:embedded:smollm2")` (etr/whitebox.py) wraps a `TransformersWhiteBox`: the
same interface as the llama.cpp one (render, tokenize, hidden, head), with the states and head
from PyTorch instead. Everything ETR derives from them (response log-probs, losses, routing) is
MetaLM's own code. Its `model_id` carries the backend: dequantised float32 weights give states
slightly unlike llama.cpp's quantised kernels, so expert tokens and cached hidden states of one
backend are not reused by the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EngineError
from ..types import Message
from .torch_decoding import cache_of
from .transformers import TransformersEngine, locate

# A meta model reference with this prefix runs on PyTorch.
TRANSFORMERS_PREFIX = "transformers:"


@dataclass
class TransformersWhiteBox:
    """Hidden states and head from a `TransformersEngine`. One sequence at a time; a call whose
    tokens extend the previous call's (a decode growing token by token) only runs the new tokens
    through the kept KV cache."""

    ref: str
    n_ctx: int = 4096
    n_threads: int = 2
    device: str = "cpu"
    dtype: str = "float32"
    _cache: Any = field(default=None, init=False, repr=False)
    _last: np.ndarray | None = field(default=None, init=False, repr=False)
    _tokens: list[int] = field(default_factory=list, init=False, repr=False)

    @classmethod
    def on_engine(cls, engine: TransformersEngine, n_ctx: int = 4096) -> TransformersWhiteBox:
        """A white box on an existing engine: one copy of the weights serves generation and ETR."""
        config = engine.config
        box = cls(TRANSFORMERS_PREFIX + engine.model, n_ctx=n_ctx, device=config.device, dtype=config.dtype)
        box.__dict__["engine"] = engine  # fills the cached property
        return box

    @property
    def backend_ref(self) -> str:
        """The model reference without the backend prefix."""
        return self.ref.removeprefix(TRANSFORMERS_PREFIX)

    @cached_property
    def engine(self) -> TransformersEngine:
        options = {"device": self.device, "dtype": self.dtype, "n_ctx": self.n_ctx, "n_threads": self.n_threads}
        return TransformersEngine(model=self.backend_ref, options=options)

    @cached_property
    def path(self) -> Path:
        source, gguf_file, _ = locate(self.backend_ref, self.engine.config)
        return Path(source) / gguf_file if gguf_file else Path(source)

    @property
    def model_id(self) -> str:
        return f"{TRANSFORMERS_PREFIX}{self.path.name}"

    def load(self) -> None:
        self.engine.load()

    def close(self) -> None:
        self.engine.unload()
        self._cache, self._last, self._tokens = None, None, []

    @cached_property
    def head(self) -> np.ndarray:
        return self.engine.head()

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        self.load()
        tokenizer = self.engine.tokenizer
        if not tokenizer.chat_template:
            raise EngineError(f"{self.path.name}: the tokenizer has no chat template")
        return tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def tokenize(self, text: str) -> list[int]:
        # As the llama.cpp backend: special markers are single tokens, no BOS added (the
        # template writes its own).
        self.load()
        return list(self.engine.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, tokens: Sequence[int]) -> str:
        self.load()
        return self.engine._detokenize(tokens)

    def is_end(self, token: int) -> bool:
        self.load()
        return token in self.engine.end_ids

    def hidden(self, tokens: Sequence[int], all_positions: bool = False) -> np.ndarray:
        tokens = list(tokens)
        if not tokens:
            raise EngineError("hidden states of an empty token sequence")
        if len(tokens) > self.n_ctx:
            raise EngineError(f"{len(tokens)} tokens exceed the meta model's context ({self.n_ctx})")
        self.load()
        if all_positions:
            return self.engine.hidden_states(tokens, all_positions=True)
        if tokens == self._tokens and self._last is not None:
            return self._last
        import torch  # an optional, heavy dependency: loaded only when PyTorch states are asked for

        engine, kept = self.engine, len(self._tokens)
        extends = self._cache is not None and len(tokens) > kept and tokens[:kept] == self._tokens
        start, cache = (kept, self._cache) if extends else (0, None)
        new = torch.tensor([tokens[start:]], device=engine.net.device)
        with engine._lock, torch.inference_mode():
            out = engine.net.base_model(input_ids=new, use_cache=True, **{engine._cache_arg: cache})
        self._cache = cache_of(out)
        self._tokens = tokens
        self._last = out.last_hidden_state[0, -1].float().cpu().numpy()
        return self._last
