"""The `llama_cpp` engine (SPEC 8): GGUF models in-process through llama-cpp-python.

    engine = LlamaCppEngine(model="embedded:smollm2", options={"data_dir": None})
    engine.generate([ChatRequest.user("2+2?")], GenerationSettings(temperature=0, max_tokens=32))

`model` is `embedded:smollm2`, `embedded:gemma3-270m`, or a path to a GGUF file (absolute, or
relative to the working directory, then to `data_dir`). Options (all optional):

- `n_ctx` (4096): context per sequence, prompt plus completion. A prompt that does not fit is an
  EngineError (never silently truncated: a cut prompt gives a confidently wrong answer); the
  completion is capped at the room left and ends with finish_reason "length".
- `n_threads` (default: the cores not busy with other work when the model loads, at least 1):
  llama.cpp's threads spin at barriers and slow down many-fold when they outnumber the free cores
  (a 2-minute test took 39 minutes with 2 threads beside 2 busy processes on 2 cores).
- `use_mmap` (True); `flash_attn` (True, unlike `llama_cpp.Llama`: see llama_batch.py for why).
- `n_seq_max` or its alias `batch_size` (16): sequences decoded in parallel.
- `kv_unified` (auto): one KV buffer for all sequences instead of one stream each. Auto turns it
  on for sliding-window models (Gemma-3), where batches decode ~20 % faster; full-attention
  models keep one stream each, which keeps batched greedy texts equal to one-at-a-time ones
  (BENCHMARKS.md, engine speed).
- `requantize` (none): load a cached re-quantised copy of the GGUF instead, e.g. "q4_0" (faster
  batched CPU kernels); see requantize.py. It changes the model's numbers, so its answers.
- `system_prompt`: a system message put before every request (merged with a request's own).
- `share_prompts` (True): requests with the same prompt in one batch (several samples of one
  question) prefill it once and copy the KV cache; outputs are unchanged (llama_batch.py).
- `verbose` (False): let llama.cpp log to stderr.

Output-changing options, part of the store key with the GGUF's identity (resolved path, size,
mtime; the chat template is in the file): `n_ctx`, `flash_attn`, `kv_unified`, `requantize`,
`system_prompt`. Speed-only: `n_threads`, `use_mmap`, `n_seq_max`/`batch_size`, `share_prompts`,
`verbose`. (Which requests share a batch can flip near-ties in greedy decoding for some weight
types, see llama_batch.py; that depends on what else is pending, so no key can hold it.)
Each sequence is handed back as soon as it finishes (`generate_each`), so the scheduler stores
it at once: a killed run loses at most the sequences in flight.

Prompts are rendered with the GGUF's own chat template (`tokenizer.chat_template`, with Jinja2 the
way llama-cpp-python's Jinja2ChatFormatter does; engines/chat_template.py); a model without one gets the plain
"User: ...\nAssistant:", stops at "\nUser:", and has the space after "Assistant:" stripped.
Sampling: greedy at temperature 0, else top-p + temperature with seed `settings.seed +
request.sample`, so repeated samples differ and reruns repeat.

Structured generation: settings with a `json_schema` are turned into a GBNF grammar by
llama-cpp-python's own converter (`llama_grammar.json_schema_to_gbnf`, the one its server uses),
and each sequence samples through llama.cpp's grammar sampler (llama_sequences.make_sampler).
A schema the converter or llama.cpp cannot compile is an EngineError naming the model, raised
before anything is decoded.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, field_validator

from ..errors import EngineError
from ..types import ChatRequest, Completion, GenerationSettings
from .base import EngineOptions, TimedEngine, file_identity
from .chat_template import PLAIN_STOP, TEMPLATE_KEY, ChatTemplate, chat_template_for, with_system_prompt
from .embedded import resolve_gguf
from .requantize import TYPES as REQUANT_TYPES
from .requantize import requantized_gguf

if TYPE_CHECKING:  # llama_cpp (the C library) loads only when a model does
    # heavy: llama_cpp (the C library) loads only when a model does
    from .llama_batch import LlamaModel


class LlamaCppOptions(EngineOptions):
    """The options this engine accepts; anything else is a configuration error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    n_ctx: int = Field(4096, ge=16)
    n_threads: int | None = Field(None, ge=1)
    n_seq_max: int = Field(16, ge=1, le=256, alias="batch_size")
    flash_attn: bool = True
    kv_unified: bool | None = None
    requantize: str | None = None
    use_mmap: bool = True
    share_prompts: bool = True
    system_prompt: str | None = None
    verbose: bool = False

    @field_validator("requantize")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value not in REQUANT_TYPES:
            raise ValueError(f"unknown type {value!r}; choose one of {', '.join(REQUANT_TYPES)}")
        return value


# --- the engine -------------------------------------------------------------------------------


def free_cores(samples: int = 5) -> int:
    """Cores this process may use that other processes are not running on: the cores it is
    allowed, less `busy_cores`. Thread count changes speed only, never what llama.cpp computes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = busy_cores(samples)
    return cores if busy is None else max(1, cores - busy)


def busy_cores(samples: int = 5) -> int | None:
    """Runnable tasks of other processes: /proc/loadavg's running count minus this process's own
    running threads (e.g. OpenMP threads still spinning after an embedding), the median of a few
    samples 10 ms apart; None where /proc cannot tell."""
    try:
        others = []
        for _ in range(samples):
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
            others.append(running - _own_running_threads())
            time.sleep(0.01)
    except (OSError, ValueError, IndexError):
        return None
    return max(0, sorted(others)[len(others) // 2])


def _own_running_threads() -> int:
    count = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            # the state follows the parenthesised command name, which may itself hold spaces
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "R":
                count += 1
        except (OSError, IndexError):
            continue
    return count


@dataclass
class LlamaCppEngine(TimedEngine):
    Options = LlamaCppOptions
    output_options = frozenset({"n_ctx", "flash_attn", "kv_unified", "requantize", "system_prompt"})
    kind: str = "llama_cpp"
    llm: LlamaModel | None = field(default=None, init=False, repr=False)
    template: ChatTemplate | None = field(default=None, init=False, repr=False)
    # One llama.cpp context must not decode from two threads at once (ctypes releases the GIL).
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _grammars: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # by schema text

    @property
    def config(self) -> LlamaCppOptions:
        """The validated options (typed)."""
        assert isinstance(self.opts, LlamaCppOptions)
        return self.opts

    def model_identity(self) -> dict[str, Any]:
        # The source GGUF (a re-quantised copy is derived from it and named by `requantize`).
        return {"file": file_identity(resolve_gguf(self.model, self.config.data_dir))}

    # --- lifecycle ---------------------------------------------------------------------------

    def _load(self) -> None:
        # heavy: llama_cpp (the C library) loads only when a model does
        from .llama_batch import LlamaModel

        path = resolve_gguf(self.model, self.config.data_dir)
        if self.config.requantize:
            path = requantized_gguf(path, self.config.requantize)
        llm = LlamaModel(
            path,
            n_threads=self.config.n_threads or free_cores(),
            use_mmap=self.config.use_mmap,
            flash_attn=self.config.flash_attn,
            kv_unified=self.config.kv_unified,
            share_prompts=self.config.share_prompts,
            verbose=self.config.verbose,
        )
        try:
            self.template = chat_template_for(
                {TEMPLATE_KEY: llm.meta(TEMPLATE_KEY)}, llm.token_text(llm.bos), llm.token_text(llm.eos)
            )
        except EngineError as exc:
            llm.close()
            raise EngineError(f"{self.model}: {exc}") from exc
        self.llm = llm

    def _unload(self) -> None:
        with self._lock:
            if self.llm is not None:
                self.llm.close()
            self.llm = None
            self.template = None

    # --- generation --------------------------------------------------------------------------

    def request_tokens(self, request: ChatRequest) -> list[int]:
        """The token ids the model sees for `request` (chat template applied)."""
        self.load()
        assert self.llm is not None and self.template is not None
        messages = with_system_prompt(request.messages, self.config.system_prompt)
        text = self.template.render(messages)
        # A GGUF template writes its own BOS (llama-cpp-python tokenizes its output with
        # add_bos=False); the plain template relies on the model's add-BOS setting.
        return self.llm.tokenize(text, add_special=self.template.is_plain, parse_special=True)

    def grammar(self, json_schema: str) -> str:
        """The GBNF grammar of a JSON schema (checked against the loaded vocabulary)."""
        if json_schema not in self._grammars:
            # both load the llama.cpp C library, which this module leaves until a model loads
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            from .llama_sequences import check_grammar  # (the same reason)

            try:
                gbnf = json_schema_to_gbnf(json_schema)
            except Exception as exc:  # the converter raises assorted errors (asserts, KeyError...)
                raise EngineError(f"{self.model}: cannot turn the JSON schema into a grammar: {exc!r}") from None
            assert self.llm is not None
            try:
                check_grammar(gbnf, self.llm.vocab)
            except EngineError as exc:
                raise EngineError(f"{self.model}: {exc} made from the JSON schema") from None
            self._grammars[json_schema] = gbnf
        return self._grammars[json_schema]

    def _generate_each(
        self, requests: list[ChatRequest], settings: GenerationSettings
    ) -> Iterator[tuple[int, Completion]]:
        with self._lock:
            yield from self._generate_locked(requests, settings)

    def _generate_locked(
        self, requests: list[ChatRequest], settings: GenerationSettings
    ) -> Iterator[tuple[int, Completion]]:
        # heavy: llama_cpp (the C library) loads only when a model does
        from .llama_sequences import DecodeJob

        assert self.llm is not None
        assert self.template is not None
        n_ctx = self.config.n_ctx
        # Without a chat template nothing marks the end of the answer: a base model goes on to
        # write the next "User:" turn itself, so that line ends the completion.
        stop = tuple(settings.stop) + (PLAIN_STOP if self.template.is_plain else ())
        grammar = self.grammar(settings.json_schema) if settings.json_schema is not None else None
        jobs = []
        for i, request in enumerate(requests):
            tokens = self.request_tokens(request)
            if len(tokens) >= n_ctx:
                who = f"question {request.question_id}" if request.question_id else f"request {i}"
                raise EngineError(
                    f"{self.model}: the prompt of {who} has {len(tokens)} tokens, more than the context "
                    f"n_ctx={n_ctx} allows; raise the model's n_ctx option"
                )
            jobs.append(
                DecodeJob(
                    prompt=tokens,
                    max_tokens=min(settings.max_tokens, n_ctx - len(tokens)),
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    seed=settings.seed + request.sample,
                    stop=stop,
                    grammar=grammar,
                )
            )
        # One request decodes alone; several share the batch. Both run the same code, so greedy
        # outputs are identical either way.
        n_seq = 1 if len(jobs) == 1 else min(self.config.n_seq_max, len(jobs))
        need = min(n_ctx, max(len(j.prompt) + j.max_tokens for j in jobs))
        plain = self.template.is_plain
        for index, r in self.llm.decode_each(jobs, n_seq=n_seq, n_ctx_seq=need):
            yield (
                index,
                Completion(
                    text=r.text.lstrip() if plain else r.text,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=len(r.tokens),
                    seconds=r.seconds,
                    finish_reason=r.finish_reason,
                ),
            )
