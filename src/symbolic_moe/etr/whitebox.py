"""The white-box meta LLM (ETR paper 2.1): final hidden states, the output head, response log-probs.

Backend: llama-cpp-python on the GGUF file. A context with `embeddings=True` and pooling NONE
returns the final-norm hidden state h of every position we ask for; the head W_V is the GGUF's
`output.weight`, or the tied `token_embd.weight` (SmolLM2, Gemma-3), dequantised once with the
`gguf` package. Then word-token logits = W_V @ h, which is what lets ETR append rows W_E to the
head without touching the model (benchmarks/ETR.md measures the agreement with llama.cpp's own
logits and the speed against transformers).

Response losses are computed from our own per-position states, never from
`create_completion(echo=True, logprobs=...)`, which pairs tokens with logits off by one for
models without a BOS token (SmolLM2).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EngineError

Messages = Sequence[dict[str, str]]
# A meta model reference with this prefix runs on PyTorch (engines/transformers_whitebox.py).
TRANSFORMERS_PREFIX = "transformers:"


def resolve_model_path(ref: str) -> Path:
    """A GGUF path for `embedded:smollm2`, `embedded:gemma3-270m` or a file path."""
    from ..engines.embedded import resolve_gguf

    return resolve_gguf(ref)


def read_head(path: str | Path) -> np.ndarray:
    """The output head W_V (vocab x d, float32) of a GGUF file: `output.weight`, else the tied
    `token_embd.weight`."""
    import gguf

    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    tensor = tensors.get("output.weight") or tensors.get("token_embd.weight")
    if tensor is None:
        raise EngineError(f"{path}: neither output.weight nor token_embd.weight in the GGUF file")
    return np.ascontiguousarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


@dataclass
class MetaLM:
    """A frozen GGUF model with its hidden states and head exposed. One sequence at a time; the KV
    cache keeps the longest common prefix with the previous call, so prompts that share a system
    prompt (or a decode that grows token by token) only evaluate what is new."""

    ref: str = "embedded:smollm2"
    n_ctx: int = 4096
    n_threads: int = 2
    n_batch: int = 512
    _llm: Any = field(default=None, init=False, repr=False)
    _tokens: list[int] = field(default_factory=list, init=False, repr=False)

    def __new__(cls, ref: str = "embedded:smollm2", *args: Any, **kwargs: Any) -> MetaLM:
        # The backend follows the reference: "transformers:<model>" is the PyTorch one, with the
        # same interface, so every `MetaLM(meta_ref)` in ETR can take either.
        if cls is MetaLM and ref.startswith(TRANSFORMERS_PREFIX):
            from ..engines.transformers_whitebox import TransformersMetaLM

            cls = TransformersMetaLM
        return super().__new__(cls)

    @cached_property
    def path(self) -> Path:
        return resolve_model_path(self.ref)

    @property
    def model_id(self) -> str:
        """What plug-in files record: expert tokens only fit the meta model they were trained on."""
        return self.path.name

    def load(self) -> None:
        if self._llm is not None:
            return
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
        from jinja2.sandbox import ImmutableSandboxedEnvironment

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

    def prompt_tokens(self, messages: Messages, prefix: str = "") -> list[int]:
        """Tokens of a chat ready for the assistant turn, optionally with the turn's start."""
        return self.tokenize(self.render(messages) + prefix)

    def is_end(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    # -- forward passes -------------------------------------------------------------------

    def _states(self, rows: int) -> np.ndarray:
        import llama_cpp

        ctx, out = self.llm._ctx.ctx, np.empty((rows, self.dim), dtype=np.float32)
        for i in range(rows):
            ptr = llama_cpp.llama_get_embeddings_ith(ctx, i - rows)  # negative: counted from the end
            out[i] = np.ctypeslib.as_array(ptr, shape=(self.dim,))
        return out

    def hidden(self, tokens: Sequence[int], all_positions: bool = False) -> np.ndarray:
        """Final hidden states after `tokens`: the last one (d,), or every position's (n, d)
        when `all_positions` (needed for response log-probs)."""
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

    root: Path

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
