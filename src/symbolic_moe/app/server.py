"""The mixture as one LLM behind an OpenAI-compatible endpoint (`smoe serve CONFIG`).

`POST /v1/chat/completions` answers the last user message through the Python API
(`api.Mixture`), the same steps `smoe run` takes on a test question. Requests that arrive
together (within `window` seconds) are answered as one micro-batch, so each expert model loads
once per batch, yet every request stays its own:
- validated on its own before it joins a batch: body size (413), JSON and fields (400, naming the
  field), `n > 1` (400), question size (400), model name (404), API key (401);
- its own `seed` (recruitment, experts and aggregator), its own `max_tokens` / `temperature` (the
  LLM aggregator's; part of that generation's store key), its own `usage` (only its generations;
  with `cost_usd`, an extension field: USD of those generations, null when a model is unpriced),
  and its own `budget` (an extension field, USD per question, learned routers only: the expert
  calls may cost no more; too small for the cheapest model's call, or a method that cannot keep
  to one: 400 naming `budget`);
- a batch that fails is split in halves until the failing request is alone, so a bad request
  fails only itself (generations already stored are reused, not repeated).
`stream: true` sends OpenAI `chat.completion.chunk` events: the role first, the whole answer as one
chunk once aggregated, the finish reason (and usage when `stream_options.include_usage`), then
`data: [DONE]`. A client that goes away mid-stream only loses its stream: its answer is still
computed and stored whole with its batch. `GET /v1/models` lists the one model.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future
from queue import Empty, Queue
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..api import Answer, Mixture, last_user_message
from ..api import Request as AnswerRequest
from ..errors import ConfigError

MODEL_ID = "symbolic-moe"
_INT64 = 2**63


class ServerOptions(BaseModel):
    """Limits and access of `smoe serve` (command-line options)."""

    model_config = ConfigDict(extra="forbid")

    api_key: str | None = None  # when set, every /v1 call needs `Authorization: Bearer <key>`
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    max_question_bytes: int = Field(16 * 1024, ge=64)  # UTF-8 bytes of the question (>= its tokens)
    max_tokens_limit: int = Field(4096, ge=1)
    window: float = Field(0.05, ge=0)  # seconds a micro-batch waits for more requests
    max_batch: int = Field(64, ge=1)


class ApiError(Exception):
    """An error answered as OpenAI's error body: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...

    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send many optional fields

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    seed: StrictInt | None = Field(None, ge=-_INT64, lt=_INT64)
    n: StrictInt | None = None
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    budget: float | None = Field(None, gt=0, allow_inf_nan=False)  # extension: USD per question


def parse_request(body: bytes, options: ServerOptions) -> ChatCompletionRequest:
    """One request's body, validated on its own: every problem is a 4xx naming what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    try:
        request = ChatCompletionRequest.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise ApiError(400, f"{where}: {first['msg']}", param=where, code="invalid_value") from None
    if request.model != MODEL_ID:
        raise ApiError(404, f"model '{request.model}' does not exist; this server serves '{MODEL_ID}'", "model")
    if request.n not in (None, 1):
        raise ApiError(400, f"n: only n = 1 is supported (got {request.n}); send n requests instead", "n")
    limit = options.max_tokens_limit
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, name)
        if value is not None and value > limit:
            raise ApiError(400, f"{name}: {value} is more than this server's limit of {limit}", name)
    return request


def question_text(request: ChatCompletionRequest, options: ServerOptions) -> str:
    try:
        text = last_user_message([m.model_dump() for m in request.messages])
    except ValueError as exc:
        raise ApiError(400, str(exc), "messages") from None
    size = len(text.encode())
    if size > options.max_question_bytes:
        raise ApiError(
            400,
            f"messages: the question has {size} bytes, more than this server's limit of "
            f"{options.max_question_bytes} (smoe serve --max-question-bytes)",
            "messages",
            "question_too_long",
        )
    return text


class MixtureService:
    """Collects concurrent requests for up to `window` seconds and answers them as one batch."""

    def __init__(self, mixture: Mixture, window: float = 0.05, max_batch: int = 64) -> None:
        self.mixture, self.window, self.max_batch = mixture, window, max_batch
        self.queue: Queue[tuple[AnswerRequest, Future] | None] = Queue()
        self.batches: list[int] = []  # sizes of the batches answered (for tests and benchmarks)
        mixture.prepare()
        self._thread = threading.Thread(target=self._loop, name="smoe-batches", daemon=True)
        self._thread.start()

    def submit(self, request: AnswerRequest) -> Future:
        future: Future = Future()
        self.queue.put((request, future))
        return future

    def close(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch, deadline = [first], time.monotonic() + self.window
            while len(batch) < self.max_batch:
                try:
                    item = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except Empty:
                    break
                if item is None:
                    self.queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self.batches.append(len(batch))
            self._settle(batch)

    def _settle(self, batch: list[tuple[AnswerRequest, Future]]) -> None:
        """Answer a batch; when it fails, answer its halves apart until the failing request is
        alone, so one bad request never fails the others."""
        try:
            answers = self.mixture.answer_requests([r for r, _ in batch])
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len({r.key for r, _ in batch}) == 1:
                for _, future in batch:
                    _resolve(future, exc=exc)
                return
            keys = list(dict.fromkeys(r.key for r, _ in batch))
            half = set(keys[: len(keys) // 2])
            self._settle([item for item in batch if item[0].key in half])
            self._settle([item for item in batch if item[0].key not in half])
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            _resolve(future, answer)


def _resolve(future: Future, answer: Answer | None = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(answer)


def _usage(answer: Answer) -> dict[str, Any]:
    """OpenAI's usage fields, plus `cost_usd` (an extension: USD of the generations the answer
    used, null when one came from an unpriced model)."""
    u = answer.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "cost_usd": u.cost_usd,
    }


def _details(answer: Answer) -> dict[str, Any]:
    """What the mixture did, under the response's `symbolic_moe` key."""
    return {
        "question_id": answer.question.id,
        "answer": answer.answer,
        "experts": answer.experts,
        "skills": answer.skills,
        "expert_answers": [e.model_dump() for e in answer.expert_answers],
        "aggregator": answer.aggregator,
        "recruitment": answer.recruitment,
        "seed": answer.seed,
        "budget": answer.budget,
        "steps": {name: u.model_dump() for name, u in answer.steps.items()},
    }


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(mixture: Mixture, options: ServerOptions | None = None) -> FastAPI:
    options = options or ServerOptions()
    service = MixtureService(mixture, options.window, options.max_batch)
    app = FastAPI(title="symbolic-moe", description="A mixture of LLMs behind one OpenAI-compatible endpoint")
    app.state.service = service
    app.router.add_event_handler("shutdown", service.close)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(ApiError(exc.status_code, str(exc.detail)).body(), status_code=exc.status_code)

    def authorize(request: Request) -> None:
        if options.api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), options.api_key.encode()):
            raise ApiError(401, "missing or wrong API key (Authorization: Bearer <key>)", code="invalid_api_key")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {
            "object": "list",
            "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "symbolic-moe"}],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        authorize(request)
        body = await read_body(request, options.max_body_bytes)
        parsed = parse_request(body, options)
        text = question_text(parsed, options)
        seed = mixture.run.config.seed if parsed.seed is None else parsed.seed
        try:
            mixture.check_budget(parsed.budget)
        except ConfigError as exc:
            raise ApiError(400, str(exc), "budget", "invalid_value") from None
        max_tokens = parsed.max_tokens or parsed.max_completion_tokens
        ask = AnswerRequest(mixture.question(text), seed, max_tokens, parsed.temperature, parsed.budget)
        future = service.submit(ask)
        meta = {"id": "chatcmpl-" + uuid.uuid4().hex, "created": int(time.time()), "model": MODEL_ID}
        if parsed.stream:
            usage = parsed.stream_options is not None and parsed.stream_options.include_usage
            return StreamingResponse(stream(future, meta, usage), media_type="text/event-stream")
        answer = await wait(future)
        return {
            **meta,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text or ""},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(answer),
            "symbolic_moe": _details(answer),
        }

    return app


async def wait(future: Future) -> Answer:
    """The request's answer; shielded, so a client that leaves does not cancel its batch."""
    try:
        return await asyncio.shield(asyncio.wrap_future(future))
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - one clear line for this request only
        raise ApiError(500, f"answering failed: {type(exc).__name__}: {exc}") from exc


async def stream(future: Future, meta: dict[str, Any], include_usage: bool) -> AsyncIterator[str]:
    """OpenAI chunk events: role, then the answer as one chunk, finish reason, usage, [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**meta, "object": "chat.completion.chunk", "choices": [choice], **extra}

    yield _sse(chunk({"role": "assistant", "content": ""}))
    try:
        answer = await wait(future)
    except ApiError as exc:
        yield _sse(exc.body())
        return
    yield _sse(chunk({"content": answer.text or ""}, symbolic_moe=_details(answer)))
    yield _sse(chunk({}, "stop"))
    if include_usage:
        yield _sse({**meta, "object": "chat.completion.chunk", "choices": [], "usage": _usage(answer)})
    yield _sse("[DONE]")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes (read on, discarding, up to 64x the limit,
    so the client sees the 413 instead of a connection reset mid-upload)."""
    declared = request.headers.get("content-length")
    too_big = ApiError(
        413, f"request body larger than this server's limit of {limit} bytes (smoe serve --max-body-bytes)"
    )
    if declared is not None and not declared.isdigit():
        raise ApiError(400, "Content-Length is not a number")
    if declared is not None and int(declared) > 64 * limit:
        raise too_big
    chunks, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > 64 * limit:
            raise too_big
        if size <= limit:
            chunks.append(part)
    if size > limit:
        raise too_big
    return b"".join(chunks)


class BackgroundServer:
    """`smoe serve` inside a Python program: uvicorn on a thread (tests, benchmarks, notebooks).

    with BackgroundServer(create_app(mixture)) as base_url:  # "http://127.0.0.1:PORT/v1"
        ...
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self._thread = threading.Thread(target=self.server.run, name="smoe-serve", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/v1"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=60)
