"""White-box access to a model: the capability ETR's meta LLM needs (ETR paper 2.1), as a protocol
on the engine level: chat template, tokenizer, final hidden states and the output head.

Implemented by the `llama_cpp` engine (`llama_whitebox.LlamaWhiteBox`, a GGUF through llama.cpp)
and the `transformers` engine (`transformers_whitebox.TransformersWhiteBox`, PyTorch); a reference
`transformers:<model>` picks the second. ETR's `MetaLM` (etr/whitebox.py) wraps any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..types import Message
from .llama_whitebox import LlamaWhiteBox
from .transformers_whitebox import TRANSFORMERS_PREFIX, TransformersWhiteBox

Messages = Sequence[Message]


class WhiteBox(Protocol):
    """A frozen model whose hidden states and head can be read. One sequence at a time."""

    ref: str
    n_ctx: int

    @property
    def path(self) -> Path: ...

    @property
    def model_id(self) -> str:
        """What plug-in files and caches record: states only fit the model (and backend) made them."""
        ...

    @property
    def head(self) -> np.ndarray:
        """The output head W_V, (vocab x d) float32."""
        ...

    def load(self) -> None: ...

    def close(self) -> None: ...

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        """The model's own chat template applied to `messages`."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """Tokens of `text`, special markers as single tokens, no BOS added."""
        ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def is_end(self, token: int) -> bool: ...

    def hidden(self, tokens: Sequence[int], all_positions: bool = False) -> np.ndarray:
        """Final hidden states after `tokens`: the last one (d,), or every position's (n, d)."""
        ...


def open_white_box(ref: str, n_ctx: int = 4096, n_threads: int = 2, n_batch: int = 512) -> WhiteBox:
    """The white box of model `ref`: `transformers:<model>` on PyTorch, anything else (a GGUF file,
    `embedded:smollm2`) on llama.cpp. Nothing loads until it is used."""
    if ref.startswith(TRANSFORMERS_PREFIX):
        return TransformersWhiteBox(ref, n_ctx=n_ctx, n_threads=n_threads)
    return LlamaWhiteBox(ref, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch)
