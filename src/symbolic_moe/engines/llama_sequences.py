"""Per-sequence state of one batched decode (llama_batch.py): the jobs and results callers see,
the slots sequences run in, and what prompt sharing keeps (which KV stream holds which prompt,
first tokens sampled early for waiting jobs)."""

from __future__ import annotations

import codecs
import ctypes
import math
from collections import OrderedDict, deque
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
        self.allowed = AllowedTokens()  # grammar checks shared by this call's sequences
        if share:
            for i, job in enumerate(jobs):
                self.twins.setdefault(tuple(job.prompt), []).append(i)

    def needed(self, prompt: tuple[int, ...] | None) -> bool:
        """Does a waiting job with an early first token still need this prompt's KV cells?"""
        return prompt is not None and any(start.prompt == prompt for start in self.starts.values())


class AllowedTokens:
    """The tokens a grammar allows after a prefix of accepted tokens, remembered for the sequences
    of one `decode` call (one vocabulary). A grammar's state is a function of the tokens it has
    accepted, and the samples of one request start alike (`{"keywords": [`, where a tiny model's
    free draw is nearly always rejected), so one whole-vocabulary check serves them all."""

    def __init__(self) -> None:
        self.capacity = REMEMBERED  # read when made (tests switch it off)
        self.entries: OrderedDict[tuple[str, tuple[int, ...]], np.ndarray] = OrderedDict()

    def get(self, key: tuple[str, tuple[int, ...]]) -> np.ndarray | None:
        ids = self.entries.get(key)
        if ids is not None:
            self.entries.move_to_end(key)
        return ids

    def put(self, key: tuple[str, tuple[int, ...]], ids: np.ndarray) -> None:
        self.entries[key] = ids
        if len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


def make_sampler(job: DecodeJob, vocab: Any, allowed: AllowedTokens | None = None) -> SequenceSampler:
    """The sampler of one sequence (see `SequenceSampler`); `allowed`: its decode call's."""
    return SequenceSampler(job, vocab, allowed)


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
    has probability p(t), a rejected one leads to p(t)/Z; together p(t)/Z), up to the shortlist's
    bound in `_constrained`."""

    def __init__(self, job: DecodeJob, vocab: Any, allowed: AllowedTokens | None = None) -> None:
        self.chain = _chain(job)
        self.grammar: Any = None
        self.grammar_text = job.grammar or ""
        self.accepted: list[int] = []  # tokens the grammar has accepted: its state
        self.allowed = allowed or AllowedTokens()
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self.greedy = job.temperature <= 0
        self.spread = max(job.temperature, 1.0)  # the flattest temperature the chain samples at
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
        self.accepted.append(token)
        return token

    def _allows(self, token: int) -> bool:
        one = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 1.0, 0.0))
        candidates = llama_cpp.llama_token_data_array(one, 1, -1, False)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(candidates))
        return math.isfinite(one[0].logit)

    def _constrained(self, ctx: Any, index: int) -> int:
        """A draw from the grammar-masked distribution. Checking the grammar against all of
        Gemma-3's 262k tokens takes ~30 ms, 45 % of its structured keyword time (BENCHMARKS.md,
        bench_grammar_redraws.py), so the tokens
        allowed in this grammar state are looked up first (`AllowedTokens`), then the grammar
        checks the most likely tokens in growing shortlists (`SHORTLISTS`). A shortlist decides
        when one of its tokens is allowed and, unless decoding is greedy (then it is exact), the
        tokens outside it hold under `TAIL` of the allowed probability: a bound on how far the
        draw's distribution can move, since every token outside is less likely than every token
        inside. Otherwise the whole vocabulary is checked and its allowed tokens remembered."""
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(self.n_vocab,))
        key = (self.grammar_text, tuple(self.accepted))
        known = self.allowed.get(key)
        if known is not None:
            return self._draw(_token_data(known, logits))
        weights = None if self.greedy else np.exp((logits - logits.max()) / self.spread, dtype=np.float64)
        total = 0.0 if weights is None else float(weights.sum())
        for size in (n for n in SHORTLISTS if n < self.n_vocab):
            shortlist = np.argpartition(logits, -size)[-size:].astype(np.int32)
            data = self._masked(shortlist, logits)
            allowed = np.isfinite(data["logit"])
            if not allowed.any():
                continue
            if weights is None:
                return self._draw(data[allowed])
            inside = weights[shortlist]
            if total - float(inside.sum()) <= TAIL * float(inside[allowed].sum()):
                return self._draw(data[allowed])
        data = self._masked(np.arange(self.n_vocab, dtype=np.int32), logits)
        data = data[np.isfinite(data["logit"])]
        self.allowed.put(key, data["id"].copy())
        return self._draw(data)

    def _masked(self, ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Candidates `ids` with their logits, -inf where the grammar forbids them."""
        data = _token_data(ids, logits)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(_candidates(data)))
        return data

    def _draw(self, data: np.ndarray) -> int:
        candidates = _candidates(data)
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(candidates))
        # (no accept into the chain: its samplers keep no per-token state)
        return int(candidates.data[candidates.selected].id)

    def free(self) -> None:
        for sampler in (self.chain, self.grammar):
            if sampler is not None:
                llama_cpp.llama_sampler_free(sampler)
        self.chain = self.grammar = None


# llama_token_data (llama.h): token id, logit, probability
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
SHORTLISTS = (256, 4096, 32768)  # tokens the grammar checks first in a constrained redraw
REMEMBERED = 32  # grammar states whose allowed tokens a decode call keeps (up to 1 MB each)
TAIL = 1e-3  # the most allowed probability the shortlist may leave out


def _token_data(ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
    data = np.zeros(len(ids), dtype=_TOKEN_DATA)
    data["id"] = ids
    data["logit"] = logits[ids]
    return data


def _candidates(data: np.ndarray) -> Any:
    """A llama_token_data_array over `data` (not sorted, nothing selected; `data` must outlive it)."""
    pointer = data.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
    return llama_cpp.llama_token_data_array(pointer, len(data), -1, False)
