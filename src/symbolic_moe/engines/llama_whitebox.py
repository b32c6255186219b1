"""The `llama_cpp` engine's white-box access (engines/whitebox.py `WhiteBox`): final hidden states
and the output head of a GGUF model, for ETR's meta LLM (ETR paper 2.1).

A llama-cpp-python context with `embeddings=True` and pooling NONE returns the final-norm hidden
state h of every position we ask for; the head W_V is the GGUF's `output.weight`, or the tied
`token_embd.weight` (SmolLM2, Gemma-3), dequantised once with the `gguf` package. Then word-token
logits = W_V @ h, which is what lets ETR append rows W_E to the head without touching the model
(benchmarks/ETR.md measures the agreement with llama.cpp's own logits and the speed against
transformers).

Response losses (etr/whitebox.py) are computed from our own per-position states, never from
`create_completion(echo=True, logprobs=...)`, which pairs tokens with logits off by one for
models without a BOS token (SmolLM2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import EngineError
from ..types import Message
from .embedded import resolve_gguf

Messages = Sequence[Message]


def read_head(path: str | Path) -> np.ndarray:
    """The output head W_V (vocab x d, float32) of a GGUF file: `output.weight`, else the tied
    `token_embd.weight`."""
    # heavy: the GGUF reader loads only when the head is read
    import gguf

    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    tensor = tensors.get("output.weight") or tensors.get("token_embd.weight")
    if tensor is None:
        raise EngineError(f"{path}: neither output.weight nor token_embd.weight in the GGUF file")
    return np.ascontiguousarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)


@dataclass
class LlamaWhiteBox:
    """A frozen GGUF model with its hidden states and head exposed. One sequence at a time; the KV
    cache keeps the longest common prefix with the previous call, so prompts that share a system
    prompt (or a decode that grows token by token) only evaluate what is new."""

    ref: str = "embedded:smollm2"
    n_ctx: int = 4096
    n_threads: int = 2
    n_batch: int = 512
    _llm: Any = field(default=None, init=False, repr=False)
    _tokens: list[int] = field(default_factory=list, init=False, repr=False)

    @cached_property
    def path(self) -> Path:
        return resolve_gguf(self.ref)

    @property
    def model_id(self) -> str:
        """What plug-in files record: expert tokens only fit the meta model they were trained on."""
        return self.path.name

    def load(self) -> None:
        if self._llm is not None:
            return
        # heavy: llama_cpp (the C library) loads only when the model does
        import llama_cpp

        self._llm = llama_cpp.Llama(
            str(self.path),
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE,
            n_ctx=self.n_ctx,
            n_batch=self.n_batch,
            n_ubatch=self.n_batch,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            verbose=False,
        )
        self._tokens = []

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
        self._llm = None
        self._tokens = []

    @property
    def llm(self) -> Any:
        self.load()
        return self._llm

    @cached_property
    def head(self) -> np.ndarray:
        return read_head(self.path)

    @property
    def dim(self) -> int:
        return int(self.head.shape[1])

    # -- text <-> tokens ------------------------------------------------------------------

    @cached_property
    def _template(self) -> Any:
        source = self.llm.metadata.get("tokenizer.chat_template")
        if not source:
            raise EngineError(f"{self.path.name}: no chat template in the GGUF metadata")

        def raise_exception(message: str) -> None:
            raise EngineError(f"{self.path.name} chat template: {message}")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        return env.from_string(source)

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        """The model's own chat template applied to `messages` (as the model saw them in tuning)."""
        llm = self.llm
        bos = llm.detokenize([llm.token_bos()]).decode("utf-8", "ignore") if llm.token_bos() >= 0 else ""
        eos = llm.detokenize([llm.token_eos()]).decode("utf-8", "ignore")
        return self._template.render(
            messages=list(messages), add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos
        )

    def tokenize(self, text: str) -> list[int]:
        # special=True: the template's markers (<|im_start|>...) are single special tokens.
        # add_bos=False: a BOS the template wants is already in its text.
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.llm.detokenize(list(tokens)).decode("utf-8", "ignore")

    def is_end(self, token: int) -> bool:
        # heavy: llama_cpp (the C library) loads only when the model does
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    # -- forward passes -------------------------------------------------------------------

    def _states(self, rows: int) -> np.ndarray:
        # heavy: llama_cpp (the C library) loads only when the model does
        import llama_cpp

        ctx, out = self.llm._ctx.ctx, np.empty((rows, self.dim), dtype=np.float32)
        for i in range(rows):
            ptr = llama_cpp.llama_get_embeddings_ith(ctx, i - rows)  # negative: counted from the end
            out[i] = np.ctypeslib.as_array(ptr, shape=(self.dim,))
        return out

    def hidden(self, tokens: Sequence[int], all_positions: bool = False) -> np.ndarray:
        """Final hidden states after `tokens`: the last one (d,), or every position's (n, d)
        when `all_positions` (needed for response log-probs)."""
        # heavy: llama_cpp (the C library) loads only when the model does
        import llama_cpp

        tokens = list(tokens)
        if not tokens:
            raise EngineError("hidden states of an empty token sequence")
        if len(tokens) > self.n_ctx:
            raise EngineError(f"{len(tokens)} tokens exceed the meta model's context ({self.n_ctx})")
        llm = self.llm
        keep = 0
        if not all_positions:
            limit = min(len(self._tokens), len(tokens) - 1)  # re-evaluate at least the last token
            while keep < limit and self._tokens[keep] == tokens[keep]:
                keep += 1
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm._ctx.ctx), -1, keep, -1)
        self._tokens = self._tokens[:keep]
        states: list[np.ndarray] = []
        for start in range(keep, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            llm._batch.set_batch(chunk, start, all_positions)
            if llama_cpp.llama_decode(llm._ctx.ctx, llm._batch.batch) != 0:
                self._tokens = []
                raise EngineError(f"llama_decode failed on {self.path.name} at position {start}")
            self._tokens.extend(chunk)
            if all_positions:
                states.append(self._states(len(chunk)))
        return np.concatenate(states) if all_positions else self._states(1)[0]
