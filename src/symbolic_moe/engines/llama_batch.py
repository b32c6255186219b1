"""Batched multi-sequence decoding on llama.cpp's low-level API (llama-cpp-python 0.3.x).

`LlamaModel` owns one loaded GGUF and one context; `decode(jobs)` runs any number of token
sequences through `n_seq` parallel slots (continuous batching: a finished sequence's slot is
refilled with the next waiting job in the same step). One request is the same code with one
slot, so the batched and one-at-a-time paths share every setting.

Design choices (why):
- The KV cache is by default *not* unified for full-attention models (SmolLM2): each slot gets
  its own stream of `n_ctx_seq` cells, so a token attends only to its own sequence's cells, and
  batched greedy texts match one-at-a-time decoding (16/16 measured; with a unified cache 0/16,
  at the same speed). Sliding-window models (Gemma-3) get a unified cache: with one stream per
  sequence their batches decoded ~20 % slower (59 vs 70 tok/s, BENCHMARKS.md g). In a unified
  cache the micro-batches mix sequences freely, so prompts prefilled together round differently
  than prefilled alone.
- Non-unified caches split a batch into micro-batches of consecutive sequence ids (llama.cpp's
  `split_equal(sequential=true)`), so tokens are always added in slot order; an empty slot (only
  at the tail, when no job is waiting) costs one extra micro-batch per step.
- Flash attention is on by default (the high-level `Llama` class has it off, so outputs differ
  from `Llama`'s after some tokens). Reason: without it, attention sums over a number of KV cells
  that depends on the longest sequence in the micro-batch, which changes float rounding, so a
  sequence's greedy output depended on its batch neighbours. The flash-attention kernel skips
  masked cells, so that dependence is gone.
- Remaining batch dependence: llama.cpp multiplies a multi-row batch with other kernels than a
  single row for some weight types (llamafile tinyBLAS for Q4_0/Q5_0/Q8_0, repacked Q4_K). Their
  float rounding differs slightly, so near-ties in greedy decoding can flip. Measured on 16
  sequences x 128 tokens: SmolLM2 (Q4_1) 16/16 identical, Gemma-3-270M (Q5_0/Q4_K) 11-12/16.
- Each sequence has its own sampler chain seeded from the request (and its own grammar state
  when the job has a grammar), so draws do not depend on which other sequences share the
  batch. The logits still can, slightly (see above): with long prompts of different lengths in
  one batch (chain-of-thought prompts, 16 wide), seeded samples at temperature 0.7 were measured
  to differ from one-at-a-time decoding in 13 of 15 texts, while greedy texts agreed (SmolLM2).
  Short prompts agree in the tests on both models.
- Prompt sharing (`share_prompts`): several samples of one prompt (the keyword step asks for 5,
  Self-Consistency for 5) prefill it once. When a prompt has been decoded, every job with the same
  prompt samples its first token from those logits with its own seeded sampler: a job already in
  a slot (admitted while the prompt was prefilling) copies the donor's stream at once
  (`llama_memory_seq_cp`: across streams llama.cpp copies the whole buffer at the next decode,
  before that decode writes anything; in a unified cache it only tags the cells); a job still
  waiting keeps its first token and, when it is admitted, takes the prompt's cells from any
  stream that still holds them - a finished one as it is, a busy one by copy - and drops the
  cells after the prompt (`llama_memory_seq_rm`). Its KV
  cache and first logits are then bit-identical to its own prefill, so outputs equal the unshared
  path's. (Re-decoding the last prompt token in the follower instead was tried: rows decoded
  alone round differently from a long prefill and greedy texts drifted.) A finished stream is kept
  while a waiting job needs its prompt; with no stream left holding it, the job prefills itself.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import llama_cpp

from ..errors import EngineError
from .llama_sequences import DecodeJob, DecodeResult, DecodeState, EarlyStart, Slot, check_grammar, make_sampler
from .llama_vocab import LlamaVocab

_CTX_ROUND = 256  # per-sequence context sizes are rounded up to this many cells
_GGML_ERROR, _GGML_CONT = 4, 5  # ggml_log_level values (ggml.h)
_backend_ready = False
_log_state = {"verbose": False, "last": 0}


@llama_cpp.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: Any) -> None:
    # llama-cpp-python's own callback maps ggml's log levels off by one and prints every
    # warning; this one prints errors only, or everything when verbose.
    if level != _GGML_CONT:
        _log_state["last"] = level
    if _log_state["verbose"] or _log_state["last"] == _GGML_ERROR:
        print(text.decode("utf-8", errors="replace"), end="", file=sys.stderr, flush=True)


class LlamaModel(LlamaVocab):
    """A GGUF loaded in-process, plus a context sized on demand for `n_seq` x `n_ctx_seq`; its
    metadata and vocabulary through `LlamaVocab`."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_threads: int,
        use_mmap: bool = True,
        flash_attn: bool = True,
        kv_unified: bool | None = None,
        repack: bool = True,
        n_batch: int = 2048,
        n_ubatch: int = 512,
        share_prompts: bool = True,
        verbose: bool = False,
    ) -> None:
        global _backend_ready
        _log_state["verbose"] = verbose
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True
        params = llama_cpp.llama_model_default_params()
        params.use_mmap = use_mmap
        params.use_extra_bufts = repack
        params.n_gpu_layers = 0
        self.path = Path(path)
        self.model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), params)
        if not self.model:
            raise EngineError(f"llama.cpp could not load the GGUF model {self.path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_threads = n_threads
        self.flash_attn = flash_attn
        # Auto: unified for sliding-window models only (see the module docstring; measured in
        # BENCHMARKS.md g): Gemma-3 decodes batches ~20 % faster unified, SmolLM2 is no faster
        # unified and keeps greedy texts equal to one-at-a-time decoding only with streams.
        arch = self.meta("general.architecture") or ""
        sliding = self.meta(f"{arch}.attention.sliding_window") is not None
        self.kv_unified = sliding if kv_unified is None else kv_unified
        self.n_batch = n_batch
        self.n_ubatch = n_ubatch
        self.share_prompts = share_prompts
        self.shared_prompt_tokens = 0  # prompt tokens copied instead of decoded (for benchmarks)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self.model)
        self.ctx: Any = None
        self.ctx_shape = (0, 0)  # (n_seq, n_ctx_seq) of the current context

    # --- context -----------------------------------------------------------------------------

    def ensure_context(self, n_seq: int, n_ctx_seq: int) -> int:
        """Make sure the context has at least `n_seq` streams of `n_ctx_seq` cells; return the
        actual cells per stream. Contexts only grow, so alternating batch shapes do not thrash
        (a larger KV cache than needed changes nothing numerically: unused cells are masked)."""
        n_ctx_seq = -(-n_ctx_seq // _CTX_ROUND) * _CTX_ROUND
        have_seq, have_ctx = self.ctx_shape
        if self.ctx is not None and have_seq >= n_seq and have_ctx >= n_ctx_seq:
            return have_ctx
        n_seq, n_ctx_seq = max(n_seq, have_seq), max(n_ctx_seq, have_ctx)
        self.free_context()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_seq * n_ctx_seq
        params.n_seq_max = n_seq
        params.kv_unified = self.kv_unified
        # Sliding-window layers (Gemma 3) keep only the window per sequence, not n_ctx cells.
        params.swa_full = False
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_ubatch
        params.n_threads = self.n_threads
        params.n_threads_batch = self.n_threads
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        if not self.ctx:
            self.ctx = None
            raise EngineError(f"llama.cpp could not create a context ({n_seq} x {n_ctx_seq} tokens) for {self.path}")
        actual = int(llama_cpp.llama_n_ctx_seq(self.ctx))
        self.ctx_shape = (n_seq, actual)
        return actual

    def free_context(self) -> None:
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
            self.ctx_shape = (0, 0)

    def close(self) -> None:
        self.free_context()
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None

    # --- decoding ----------------------------------------------------------------------------

    def decode(self, jobs: Sequence[DecodeJob], n_seq: int, n_ctx_seq: int) -> list[DecodeResult]:
        """Every job's result, in job order (see `decode_each`)."""
        results: list[DecodeResult | None] = [None] * len(jobs)
        for index, result in self.decode_each(jobs, n_seq, n_ctx_seq):
            results[index] = result
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # pragma: no cover - decode_each runs until every job has a result
            raise EngineError(f"decoding ended without results for requests {missing}")
        return [r for r in results if r is not None]

    def decode_each(self, jobs: Sequence[DecodeJob], n_seq: int, n_ctx_seq: int) -> Iterator[tuple[int, DecodeResult]]:
        """Generate every job with up to `n_seq` sequences in flight, each with `n_ctx_seq`
        cells of context, yielding (job index, result) as each sequence finishes (after the
        decode step that finished it), so callers can store it before the rest are done.
        Every prompt must fit (`len(prompt) < n_ctx_seq`). Closing the generator early frees
        every sampler; the context stays usable."""
        if not jobs:
            return
        for i, job in enumerate(jobs):
            if not job.prompt:
                raise EngineError(f"request {i}: empty prompt")
        for grammar in {job.grammar for job in jobs if job.grammar is not None}:
            check_grammar(grammar, self.vocab)  # fail before decoding anything, not mid-batch
        n_seq = max(1, min(n_seq, len(jobs)))
        room = self.ensure_context(n_seq, n_ctx_seq)
        for i, job in enumerate(jobs):
            if len(job.prompt) >= room:
                raise EngineError(f"request {i}: prompt of {len(job.prompt)} tokens does not fit a context of {room}")
        memory = llama_cpp.llama_get_memory(self.ctx)
        llama_cpp.llama_memory_clear(memory, False)
        d = DecodeState(memory, room, n_seq, jobs, self.share_prompts)
        pending = deque(enumerate(jobs))
        batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        try:
            while pending or any(d.slots):
                free = [s for s, slot in enumerate(d.slots) if slot is None]
                copied: set[int] = set()  # streams copied into this step: not a source before the copy lands
                while free and pending:
                    self._admit(d, *pending.popleft(), free, copied)
                outputs = self._fill_batch(batch, d.slots)
                rc = llama_cpp.llama_decode(self.ctx, batch)
                if rc != 0:
                    raise EngineError(f"llama_decode failed with code {rc} for {self.path}")
                for s, out_index in outputs:
                    slot = d.slots[s]
                    assert slot is not None
                    if not slot.tokens:  # the prompt is complete: hand it on before sampling
                        prompt = d.held[s] = tuple(slot.job.prompt)
                        for follower in self._share_prompt(d, s, out_index):
                            self._release(d, follower)
                        self._sample_starts(d, prompt, out_index)
                    token = slot.sampler.sample(self.ctx, out_index)
                    if self._advance(slot, token) is not None:
                        self._release(d, slot)
                while d.finished:
                    index = d.finished.popleft()
                    result = d.results[index]
                    assert result is not None
                    yield index, result
        finally:
            for slot in d.slots:
                if slot is not None:
                    slot.sampler.free()
            for start in d.starts.values():
                start.sampler.free()
            llama_cpp.llama_batch_free(batch)

    def _admit(self, d: DecodeState, index: int, job: DecodeJob, free: list[int], copied: set[int]) -> None:
        """Start `job` in one of the `free` streams. A job whose first token was sampled early
        takes its prompt's KV cells from a stream that holds them (a free one as it is, a busy
        one by copy) and starts generating at once; any other job prefills."""
        d.admitted[index] = True
        limit = min(job.max_tokens, d.room - len(job.prompt))
        start = d.starts.pop(index, None)
        holders = [h for h, held in enumerate(d.held) if start and held == start.prompt and h not in copied]
        if start is None or not holders:
            if start is not None:
                start.sampler.free()
            s = self._take_stream(d, free)
            slot = Slot(index, job, limit, make_sampler(job, self.vocab, d.allowed), time.perf_counter())
            slot.donor = self._donor_for(d.slots, job) if self.share_prompts else None
            d.slots[s] = slot
            return
        n = len(job.prompt)
        idle = [h for h in holders if h in free]
        if idle:
            s = idle[0]
            free.remove(s)
        else:
            s = self._take_stream(d, free)
            llama_cpp.llama_memory_seq_cp(d.memory, holders[0], s, -1, -1)
            copied.add(s)
        llama_cpp.llama_memory_seq_rm(d.memory, s, n, -1)  # keep the prompt, drop what followed it
        d.held[s] = start.prompt
        self.shared_prompt_tokens += n
        slot = Slot(index, job, limit, start.sampler, time.perf_counter(), fed=n)
        d.slots[s] = slot
        if self._advance(slot, start.token) is not None:
            self._release(d, slot)
            free.append(s)

    @staticmethod
    def _take_stream(d: DecodeState, free: list[int]) -> int:
        """An empty KV stream from `free`, preferring one whose prompt no waiting job needs."""
        s = next((s for s in free if not d.needed(d.held[s])), free[0])
        free.remove(s)
        llama_cpp.llama_memory_seq_rm(d.memory, s, -1, -1)
        d.held[s] = None
        return s

    def _sample_starts(self, d: DecodeState, prompt: tuple[int, ...], out_index: int) -> None:
        """A prompt is decoded: sample the first token of every job still waiting with the
        same prompt, each with its own sampler (a seeded draw does not depend on when it is made)."""
        for index in d.twins.get(prompt, ()):
            if not d.admitted[index] and index not in d.starts:
                sampler = make_sampler(d.jobs[index], self.vocab, d.allowed)
                token = sampler.sample(self.ctx, out_index)
                d.starts[index] = EarlyStart(prompt, sampler, token)

    @staticmethod
    def _donor_for(slots: list[Slot | None], job: DecodeJob) -> int | None:
        """A slot still prefilling the same prompt as `job`, if any."""
        for d, other in enumerate(slots):
            if (
                other is not None
                and other.donor is None
                and other.fed < len(other.job.prompt)
                and other.job.prompt == job.prompt
            ):
                return d
        return None

    def _share_prompt(self, d: DecodeState, s: int, out_index: int) -> list[Slot]:
        """Slot `s` has just decoded its whole prompt: give it to the slots waiting for it.
        Each copies the stream and samples its first token from the same logits (its own
        sampler), exactly as if it had prefilled the prompt itself. Returns finished slots."""
        finished = []
        for f, follower in enumerate(d.slots):
            if follower is None or follower.donor != s:
                continue
            llama_cpp.llama_memory_seq_cp(d.memory, s, f, -1, -1)
            d.held[f] = d.held[s]
            follower.donor = None
            follower.fed = len(follower.job.prompt)
            self.shared_prompt_tokens += follower.fed
            token = follower.sampler.sample(self.ctx, out_index)
            if self._advance(follower, token) is not None:
                finished.append(follower)
        return finished

    def _fill_batch(self, batch: Any, slots: list[Slot | None]) -> list[tuple[int, int]]:
        """Put each slot's next token (or its next prompt chunk) into `batch`, in slot order;
        return (slot, batch index) for the positions whose logits we sample from."""
        n = 0
        outputs: list[tuple[int, int]] = []
        # Decoding slots first: one token each, so they never wait behind a long prefill.
        budget = self.n_batch - sum(1 for s in slots if s is not None and s.next_token is not None)
        for s, slot in enumerate(slots):
            if slot is None or slot.donor is not None:  # empty, or waiting for a donor's prompt
                continue
            if slot.next_token is not None:
                pos = len(slot.job.prompt) + len(slot.tokens) - 1
                chunk = [slot.next_token]
                slot.next_token = None
                last = True
            else:
                take = min(len(slot.job.prompt) - slot.fed, budget)
                if take <= 0:
                    continue
                pos = slot.fed
                chunk = list(slot.job.prompt[slot.fed : slot.fed + take])
                slot.fed += take
                budget -= take
                last = slot.fed == len(slot.job.prompt)
            for k, token in enumerate(chunk):
                batch.token[n] = token
                batch.pos[n] = pos + k
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = s
                batch.logits[n] = 0
                n += 1
            if last:
                batch.logits[n - 1] = 1
                outputs.append((s, n - 1))
        batch.n_tokens = n
        return outputs

    @staticmethod
    def _release(d: DecodeState, slot: Slot) -> None:
        """A finished slot: store its result, free its sampler, and empty its KV stream unless a
        waiting job can still take its prompt from there."""
        s = next(i for i, other in enumerate(d.slots) if other is slot)
        d.results[slot.index] = slot.result
        d.finished.append(slot.index)
        slot.sampler.free()
        if not d.needed(d.held[s]):
            llama_cpp.llama_memory_seq_rm(d.memory, s, -1, -1)
            d.held[s] = None
        d.slots[s] = None

    def _advance(self, slot: Slot, token: int) -> DecodeResult | None:
        """Record a sampled token; return the result when the sequence is finished."""
        if llama_cpp.llama_vocab_is_eog(self.vocab, token):
            return self._finish(slot, "stop")
        slot.tokens.append(token)
        before = len(slot.text)
        slot.text += slot.decoder.decode(self.piece(token))
        if slot.job.stop:
            longest = max(len(s) for s in slot.job.stop)
            start = max(0, before - longest + 1)
            hits = [i for i in (slot.text.find(s, start) for s in slot.job.stop if s) if i >= 0]
            if hits:
                slot.text = slot.text[: min(hits)]
                return self._finish(slot, "stop", flush=False)
        if len(slot.tokens) >= slot.limit:
            return self._finish(slot, "length")
        slot.next_token = token
        return None

    def _finish(self, slot: Slot, reason: str, flush: bool = True) -> DecodeResult:
        text = slot.text + (slot.decoder.decode(b"", True) if flush else "")
        slot.result = DecodeResult(text, slot.tokens, len(slot.job.prompt), reason, time.perf_counter() - slot.started)
        return slot.result
