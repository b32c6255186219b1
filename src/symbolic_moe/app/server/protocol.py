"""The wire format of `smoe serve` (OpenAI's chat completions): request and response types, the
validation of one request on its own, and the response bodies. No web framework here."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from ...answers import Answer, last_user_message

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

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


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


def response_meta() -> dict[str, Any]:
    """The fields every response (and every chunk of one stream) shares."""
    return {"id": "chatcmpl-" + uuid.uuid4().hex, "created": int(time.time()), "model": MODEL_ID}


def usage(answer: Answer) -> dict[str, int]:
    u = answer.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens}


def details(answer: Answer) -> dict[str, Any]:
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
        "steps": {name: u.model_dump() for name, u in answer.steps.items()},
    }


def completion(meta: dict[str, Any], answer: Answer) -> dict[str, Any]:
    """A `chat.completion` body."""
    message = {"role": "assistant", "content": answer.text or ""}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return {
        **meta,
        "object": "chat.completion",
        "choices": [choice],
        "usage": usage(answer),
        "symbolic_moe": details(answer),
    }


def chunk(meta: dict[str, Any], delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """A `chat.completion.chunk` body with one choice."""
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**meta, "object": "chat.completion.chunk", "choices": [choice], **extra}


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event."""
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"
