"""PyTorch helpers of the `transformers` engine (and its white box): loading torch with one clear
error, giving an unloaded model's memory back to the OS, sampling one token, reading the KV cache
a forward pass returned. torch itself loads only when a model does."""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

from ..errors import EngineError

INSTALL = "pip install 'transformers>=5,<6' 'accelerate>=1.1' (both are symbolic-moe base dependencies)"


def torch_module() -> Any:
    """torch (with transformers importable), or one EngineError saying how to install both."""
    try:
        # heavy: torch loads only when the model does
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise EngineError(f"the transformers engine needs PyTorch and transformers: {INSTALL} ({exc})") from exc
    return torch


def trim_heap() -> None:
    """Give freed heap memory back to the OS. glibc keeps freed blocks below its (adaptive, up
    to 32 MB) mmap threshold in the heap, where most weight tensors of a small model live, so
    without this an unloaded model's memory stays in the process."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


def pick_token(logits: Any, temperature: float, top_p: float, generator: Any) -> int:
    """One token from a row of logits (float32, CPU): greedy at temperature 0, else top-p on the
    untempered distribution, then temperature, then a draw from `generator`."""
    torch = torch_module()
    if temperature <= 0:
        return int(torch.argmax(logits))
    values, order = torch.sort(logits, descending=True)
    if top_p < 1.0:
        probs = torch.softmax(values, -1)
        values = values.masked_fill((probs.cumsum(-1) - probs) >= top_p, float("-inf"))  # keeps the top one
    probs = torch.softmax(values / temperature, -1)
    return int(order[torch.multinomial(probs, 1, generator=generator)])


def cache_of(output: Any) -> Any:
    """The KV cache a forward pass returned (`cache` in newer transformers 5.x, else `past_key_values`)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
