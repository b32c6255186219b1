"""Per-sequence state of one batched decode (llama_batch.py): the jobs and results callers see,
the slots sequences run in, and what prompt sharing keeps (which KV stream holds which prompt,
first tokens sampled early for waiting jobs)."""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp


@dataclass(frozen=True)
class DecodeJob:
    """One sequence to generate: a tokenised prompt and how to sample it."""

    prompt: Sequence[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()


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


def make_sampler(job: DecodeJob) -> Any:
    """A sampler chain for one sequence: greedy at temperature 0, else top-p, temperature and
    a seeded draw (the order llama.cpp's own samplers use)."""
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
