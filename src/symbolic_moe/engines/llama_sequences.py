"""Per-sequence state of one batched decode (llama_batch.py): the jobs and results callers see,
the slots sequences run in, and what prompt sharing keeps (which KV stream holds which prompt,
first tokens sampled early for waiting jobs)."""

from __future__ import annotations

import codecs
import ctypes
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np

from ..errors import EngineError


@dataclass(frozen=True)
class DecodeJob:
    """One sequence to generate: a tokenised prompt and how to sample it."""

    prompt: Sequence[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    grammar: str | None = None  # GBNF (root rule "root") the text must follow; None: free text


@dataclass
class DecodeResult:
    text: str
    tokens: list[int]
    prompt_tokens: int
    finish_reason: str  # "stop" (EOG token or stop string) or "length"
    seconds: float  # wall time from the sequence's admission to its end


@dataclass
class Slot:
    """A sequence in flight in one KV stream (= its sequence id)."""

    index: int  # position of the job in the caller's list
    job: DecodeJob
    limit: int  # max new tokens, capped by the room left in the stream
    sampler: Any
    started: float
    donor: int | None = None  # slot whose KV cache holds this job's prompt, to copy from
    fed: int = 0  # prompt tokens already decoded
    next_token: int | None = None  # sampled, not yet decoded
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    result: DecodeResult | None = None


@dataclass
class EarlyStart:
    """A waiting job's first token, sampled with its own sampler from the logits at the end of an
    identical prompt; its KV cells will come from a stream that holds that prompt."""

    prompt: tuple[int, ...]
    sampler: Any
    token: int


class DecodeState:
    """The state of one `decode` call: slots, results, and what prompt sharing needs."""

    def __init__(self, memory: Any, room: int, n_seq: int, jobs: Sequence[DecodeJob], share: bool) -> None:
        self.memory = memory
        self.room = room
        self.jobs = jobs
        self.slots: list[Slot | None] = [None] * n_seq
        self.results: list[DecodeResult | None] = [None] * len(jobs)
        self.finished: deque[int] = deque()  # job indices finished and not yet handed back
        self.admitted = [False] * len(jobs)
        self.held: list[tuple[int, ...] | None] = [None] * n_seq  # per stream: the whole prompt in its first cells
        self.starts: dict[int, EarlyStart] = {}  # by job index
        self.twins: dict[tuple[int, ...], list[int]] = {}  # a prompt of several jobs -> their indices
        if share:
            for i, job in enumerate(jobs):
                self.twins.setdefault(tuple(job.prompt), []).append(i)

    def needed(self, prompt: tuple[int, ...] | None) -> bool:
        """Does a waiting job with an early first token still need this prompt's KV cells?"""
        return prompt is not None and any(start.prompt == prompt for start in self.starts.values())


def make_sampler(job: DecodeJob, vocab: Any) -> SequenceSampler:
    """The sampler of one sequence (see `SequenceSampler`)."""
    return SequenceSampler(job, vocab)


def check_grammar(grammar: str, vocab: Any) -> None:
    """Raise EngineError when llama.cpp cannot compile `grammar` (GBNF) for this vocabulary."""
    make_sampler(DecodeJob(prompt=[0], max_tokens=1, grammar=grammar), vocab).free()


def _chain(job: DecodeJob) -> Any:
    """Greedy at temperature 0, else top-p, temperature and a seeded draw (the order llama.cpp's
    own samplers use)."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    if job.temperature <= 0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if job.top_p < 1.0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(job.top_p, 1))
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(job.temperature))
    # 0xFFFFFFFF means "pick a random seed" to llama.cpp; keep seeds below it.
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(job.seed % 0xFFFFFFFF))
    return chain


class SequenceSampler:
    """How one sequence picks its tokens: its own sampler chain (seeded from the request, so draws
    do not depend on batch neighbours) and, when the job has a grammar, its own grammar state.

    With a grammar, the token is first drawn without it and only checked against the grammar; a
    token the grammar rejects is drawn again from the grammar-masked distribution (llama.cpp's
    common sampler does the same). Masking the whole vocabulary at every step (49k tokens for
    SmolLM2, 262k for Gemma-3) doubled the time per token; most tokens inside a JSON string pass
    the check. The result follows the grammar either way: at temperature 0 it is exactly the
    constrained argmax, and a seeded draw is from the masked distribution (an accepted first draw
    has probability p(t), a rejected one leads to p(t)/Z; together p(t)/Z)."""

    def __init__(self, job: DecodeJob, vocab: Any) -> None:
        self.chain = _chain(job)
        self.grammar: Any = None
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        if job.grammar is not None:
            self.grammar = llama_cpp.llama_sampler_init_grammar(vocab, job.grammar.encode(), b"root")
            if not self.grammar:  # llama.cpp logs the parse error itself
                self.grammar = None
                self.free()
                raise EngineError("llama.cpp could not compile the grammar")

    def sample(self, ctx: Any, index: int) -> int:
        """The next token from the logits at batch position `index` (the grammar accepts it)."""
        token = int(llama_cpp.llama_sampler_sample(self.chain, ctx, index))
        if self.grammar is None:
            return token
        if not self._allows(token):
            token = self._constrained(ctx, index)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        return token

    def _allows(self, token: int) -> bool:
        one = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 1.0, 0.0))
        candidates = llama_cpp.llama_token_data_array(one, 1, -1, False)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(candidates))
        return math.isfinite(one[0].logit)

    def _constrained(self, ctx: Any, index: int) -> int:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(self.n_vocab,))
        data = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
        data["id"] = np.arange(self.n_vocab, dtype=np.int32)
        data["logit"] = logits
        pointer = data.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
        candidates = llama_cpp.llama_token_data_array(pointer, self.n_vocab, -1, False)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(candidates))
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(candidates))
        # (no second accept into the chain: its samplers keep no per-token state)
        return int(candidates.data[candidates.selected].id)

    def free(self) -> None:
        for sampler in (self.chain, self.grammar):
            if sampler is not None:
                llama_cpp.llama_sampler_free(sampler)
        self.chain = self.grammar = None


# llama_token_data (llama.h): token id, logit, probability
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
