"""vLLM's offline engine on a GPU (the `vllm` extra).

vLLM does not reliably give GPU memory back inside a process, and the pipeline loads one model
after another. So the model lives in a child process (spawned: CUDA cannot be forked) that
answers batches over a pipe; `unload` ends the child, and its exit frees the memory.
Options (VLLMOptions) are passed to `vllm.LLM(...)`: the common ones are typed fields, any other
engine argument goes under `engine_args`. Output-changing (in the store key): `dtype`,
`quantization`, `max_model_len`, `revision`, `tokenizer`, `trust_remote_code`, `engine_args`
(unknown arguments are assumed to change outputs). Speed-only: `tensor_parallel_size`,
`gpu_memory_utilization`, `enforce_eager`, `swap_space`.

Structured generation: settings with a `json_schema` become vLLM guided decoding (its JSON
grammar backend) for each request of the batch (`sampling_params`, `with_guided_decoding`).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import multiprocessing as mp
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from pydantic import Field

from ..errors import EngineError, MissingExtraError
from ..types import ChatRequest, Completion, GenerationSettings
from .base import EngineOptions, TimedEngine


class VLLMOptions(EngineOptions):
    """Arguments of `vllm.LLM`; None leaves vLLM's default."""

    dtype: str | None = None
    quantization: str | None = None
    max_model_len: int | None = Field(None, ge=1)
    revision: str | None = None
    tokenizer: str | None = None
    trust_remote_code: bool | None = None
    tensor_parallel_size: int | None = Field(None, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    enforce_eager: bool | None = None
    swap_space: float | None = Field(None, ge=0)
    engine_args: dict[str, Any] = Field(default_factory=dict, description="any other vllm.LLM argument")


# One batch: (list of chats, list of SamplingParams keyword dicts), one per request.
Batch = tuple[list[list[dict[str, str]]], list[dict[str, Any]]]


def sampling_params(request: ChatRequest, settings: GenerationSettings) -> dict[str, Any]:
    """The keyword arguments of one request's `vllm.SamplingParams` (a JSON schema rides along
    as `json_schema`, turned into guided decoding in the child: `with_guided_decoding`)."""
    params: dict[str, Any] = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_tokens": settings.max_tokens,
        "seed": settings.seed + request.sample,  # repeated samples of one chat differ
        "stop": list(settings.stop) or None,
    }
    if settings.json_schema is not None:
        params["json_schema"] = settings.response_schema
    return params


def with_guided_decoding(params: dict[str, Any]) -> dict[str, Any]:
    """`params` with `json_schema` turned into vLLM's guided decoding: `structured_outputs`
    (vLLM >= 0.10.2) or `guided_decoding` (older releases). Runs in the child, where vllm is."""
    params = dict(params)
    schema = params.pop("json_schema", None)
    if schema is None:
        return params
    try:
        from vllm.sampling_params import StructuredOutputsParams  # vllm: only ever in the child process

        params["structured_outputs"] = StructuredOutputsParams(json=schema)
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams  # the same, for vLLM before 0.10.2

        params["guided_decoding"] = GuidedDecodingParams(json=schema)
    return params


def _serve(conn: Connection, model: str, engine_args: dict[str, Any]) -> None:
    """Child process: load the model once, then answer batches until told to stop (None)."""
    try:
        # optional dependency (the `vllm` extra), GPU only
        from vllm import LLM, SamplingParams

        llm = LLM(model=model, **engine_args)
        conn.send(("ready", None))
    except BaseException as exc:  # report, don't die silently: the parent waits on this pipe
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            batch: Batch | None = conn.recv()
        except EOFError:  # the parent is gone
            break
        if batch is None:
            break
        chats, params = batch
        try:
            sampling = [SamplingParams(**with_guided_decoding(p)) for p in params]
            outputs = llm.chat(chats, sampling_params=sampling, use_tqdm=False)
            results = [
                {
                    "text": out.outputs[0].text,
                    "prompt_tokens": len(out.prompt_token_ids or []),
                    "completion_tokens": len(out.outputs[0].token_ids),
                    "finish_reason": out.outputs[0].finish_reason,
                }
                for out in outputs
            ]
            conn.send(("ok", results))
        except Exception as exc:  # a bad batch should not kill a loaded model
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


@dataclass
class VLLMEngine(TimedEngine):
    Options = VLLMOptions
    output_options = frozenset(
        {"dtype", "quantization", "max_model_len", "revision", "tokenizer", "trust_remote_code", "engine_args"}
    )
    kind: str = "vllm"
    opts: VLLMOptions = field(init=False, repr=False)
    _process: Any = field(default=None, init=False, repr=False)
    _conn: Connection | None = field(default=None, init=False, repr=False)

    def _load(self) -> None:
        if importlib.util.find_spec("vllm") is None:  # check here: importing vllm in the parent costs seconds
            raise MissingExtraError("vllm", "vllm", "The vllm engine")
        opts = self.opts.model_dump(exclude={"data_dir", "engine_args"}, exclude_none=True)
        engine_args = {**opts, **self.opts.engine_args}
        context = mp.get_context("spawn")
        parent, child = context.Pipe()
        # Not a daemon: vLLM starts its own worker processes for tensor parallelism.
        self._process = context.Process(target=_serve, args=(child, self.model, engine_args))
        self._process.start()
        # Runs before multiprocessing's own exit hook (atexit is LIFO), which would wait on the child.
        atexit.register(self.unload)
        child.close()
        self._conn = parent
        status, message = self._receive()
        if status != "ready":
            self._unload()
            raise EngineError(f"vllm could not load model '{self.model}': {message}")

    def _receive(self) -> tuple[str, Any]:
        assert self._conn is not None
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            code = self._process.exitcode if self._process else None
            raise EngineError(f"vllm process for model '{self.model}' died (exit code {code})") from None

    def _generate(self, requests: list[ChatRequest], settings: GenerationSettings) -> list[Completion]:
        if self._conn is None:
            raise EngineError(f"vllm engine for model '{self.model}' is not loaded")
        params = [sampling_params(request, settings) for request in requests]
        batch: Batch = ([[dict(m) for m in r.messages] for r in requests], params)
        self._conn.send(batch)
        status, payload = self._receive()
        if status != "ok":
            raise EngineError(f"vllm model '{self.model}': generation failed: {payload}")
        return [Completion(**result) for result in payload]

    def _unload(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):  # the child may already be gone
                self._conn.send(None)
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(timeout=60)
            if self._process.is_alive():  # stuck in CUDA teardown: the memory must come back anyway
                self._process.kill()
                self._process.join()
            self._process = None
        atexit.unregister(self.unload)
