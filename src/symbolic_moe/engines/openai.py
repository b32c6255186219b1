"""Any OpenAI-compatible chat server (vLLM, SGLang, llama.cpp server, Ollama, hosted APIs).

Requests of a batch go out concurrently (bounded by `concurrency`) so that a batching server
sees them together, and each answer is handed back as soon as it arrives (`generate_each`), so
the scheduler stores it at once. Each request is retried (tenacity) with exponential backoff on
rate limits (429), server errors (5xx), timeouts, dropped connections, and answers that are not
usable (a body that is not JSON, no `choices`): a `Retry-After` header (seconds or an HTTP date)
sets the wait instead, capped at `max_backoff`. Other 4xx answers are the caller's fault and fail
at once, naming the model and the status. When one request fails for good, no new request of
the batch is started; those in flight finish (and are handed back), then the error is raised.

Structured generation: settings with a `json_schema` send `response_format`, first as
`json_schema` (OpenAI, vLLM, SGLang, llama.cpp's C++ server), then, when the server refuses it
(HTTP 400/404/415/422/501 whose message names the format, or a 500 naming response_format), as
`json_object` with the schema beside it (llama-cpp-python's server reads it there), then as plain
`json_object`, then not at all: the answer is free text and the caller parses it leniently. Each
step down is remembered for the model (the engine instance) and announced by one
StructuredOutputWarning naming the model and the server's message; later requests start at the
remembered step.

Options: `base_url` changes outputs (another server, another model behind it) and is part of
the store key; `api_key_env`, `concurrency`, `timeout`, `max_retries`, `backoff`, `max_backoff`
are speed-only.
"""

from __future__ import annotations

import email.utils
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import Field, field_validator
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ..errors import EngineError, StructuredOutputWarning
from ..types import ChatRequest, Completion, GenerationSettings
from .base import EngineOptions, TimedEngine

# 408 (request timeout) and 409 (some gateways' "busy") are transient like 429 and 5xx.
_RETRY_STATUS = {408, 409, 429}
# How servers refuse a response_format they do not support: the status, and the message naming it.
_REFUSAL_STATUS = {400, 404, 415, 422, 501}
_REFUSAL_TEXT = re.compile(r"response_format|json_schema|json_object|schema|grammar|guided", re.IGNORECASE)
# The ways to ask for a JSON answer, most specific first; "text" asks for none.
FORMATS = ("json_schema", "json_object_schema", "json_object", "text")


class OpenAIOptions(EngineOptions):
    """The `options` of an `openai` model in the run config; unknown keys are errors."""

    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1 (the part before /chat/completions)")
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1)
    timeout: float = Field(600.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff: float = Field(1.0, ge=0, description="first retry wait in seconds; doubles each retry")
    max_backoff: float = Field(60.0, ge=0, description="longest wait between tries, Retry-After included")

    @field_validator("base_url")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return value.rstrip("/")  # ".../v1/" and ".../v1" are one server (one store key)


class _Transient(Exception):
    """A failure worth retrying (kept apart so tenacity retries only these); `retry_after` is
    the server's Retry-After in seconds, when it sent one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header as seconds: a number, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass
class OpenAIEngine(TimedEngine):
    Options = OpenAIOptions
    output_options = frozenset({"base_url"})
    kind: str = "openai"
    base_url: str = field(init=False)
    _client: httpx.Client | None = field(default=None, init=False, repr=False)
    # the most specific response_format this model's server accepted (see the module docstring)
    format_mode: str = field(default=FORMATS[0], init=False)
    _format_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.opts: OpenAIOptions
        self.base_url = self.opts.base_url

    # -- lifecycle -----------------------------------------------------------------------------

    def _load(self) -> None:
        key = os.environ.get(self.opts.api_key_env) or "EMPTY"  # local servers accept any key
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {key}"},
            timeout=self.opts.timeout,
            limits=httpx.Limits(max_connections=self.opts.concurrency),
        )
        try:
            self._check_reachable()
        except BaseException:
            self._close()
            raise

    def _check_reachable(self) -> None:
        """GET /models, tried 3 times within about a second (a server may be just starting)."""
        url = f"{self.base_url}/models"
        last: Exception | None = None
        for attempt in range(3):
            try:
                response = self._client_or_fail().get(url, timeout=min(self.opts.timeout, 10.0))
            except httpx.HTTPError as exc:
                last = exc
                if attempt < 2:
                    time.sleep(0.25 * 2**attempt)
                continue
            if response.status_code in (401, 403):
                raise EngineError(
                    f"OpenAI-compatible server at {self.base_url} refused the key for model '{self.model}' "
                    f"(HTTP {response.status_code}); set ${self.opts.api_key_env}"
                )
            return  # any other answer means something is listening; chat errors are reported later
        raise EngineError(f"cannot reach OpenAI-compatible server at {self.base_url} for model '{self.model}': {last}")

    def _unload(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _client_or_fail(self) -> httpx.Client:
        if self._client is None:
            raise EngineError(f"openai engine for model '{self.model}' is not loaded")
        return self._client

    # -- generation ----------------------------------------------------------------------------

    def _generate_each(
        self, requests: list[ChatRequest], settings: GenerationSettings
    ) -> Iterator[tuple[int, Completion]]:
        """Each completion as it arrives. After a request fails for good, requests not yet sent
        are cancelled; those in flight are still awaited and yielded, then the error is raised."""
        workers = min(self.opts.concurrency, len(requests))
        failed = threading.Event()  # also stops queued requests that start before cancel() reaches them
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai")
        futures: dict[Future[Completion], int] = {
            pool.submit(self._complete, request, settings, failed): i for i, request in enumerate(requests)
        }
        first_error: BaseException | None = None
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.cancelled():
                        continue
                    error = future.exception()
                    if error is None:
                        yield futures[future], future.result()
                    elif first_error is None or isinstance(first_error, _Skipped):
                        first_error = error
                        failed.set()
                        for other in pending:
                            other.cancel()
        finally:
            failed.set()  # the caller stopped early: start nothing new
            pool.shutdown(wait=True, cancel_futures=True)
        if first_error is not None:
            raise first_error

    def body(self, request: ChatRequest, settings: GenerationSettings) -> dict[str, Any]:
        """The JSON body of one chat completion request."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in request.messages],
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_tokens": settings.max_tokens,
            # Each sample of the same chat gets its own seed, so repeated samples differ.
            "seed": settings.seed + request.sample,
        }
        if settings.stop:  # some servers reject an empty list
            body["stop"] = list(settings.stop)
        schema = settings.response_schema
        if schema is not None and self.format_mode != "text":
            body["response_format"] = response_format(self.format_mode, schema)
        return body

    def _step_down(self, tried: str, refusal: str) -> None:
        """The server refused `tried`: use the next format for this model from now on (once,
        however many requests in flight were refused together)."""
        with self._format_lock:
            if self.format_mode != tried:
                return
            self.format_mode = FORMATS[FORMATS.index(tried) + 1]
        then = "free text (parsed leniently)" if self.format_mode == "text" else f"'{self.format_mode}'"
        warnings.warn(
            f"model '{self.model}' at {self.base_url} refused response_format '{tried}' ({refusal}); "
            f"asking for {then} from now on",
            StructuredOutputWarning,
            stacklevel=2,
        )

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the server sent one, else exponential backoff; both capped."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.opts.max_backoff)
        return wait_exponential(multiplier=self.opts.backoff, max=self.opts.max_backoff)(state)

    def _complete(
        self, request: ChatRequest, settings: GenerationSettings, stop: threading.Event | None = None
    ) -> Completion:
        if stop is not None and stop.is_set():  # another request of the batch failed for good
            raise _Skipped()
        body = self.body(request, settings)
        start = time.perf_counter()
        retrying = Retrying(
            stop=stop_after_attempt(self.opts.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, _Transient)),
            reraise=False,
        )
        try:
            while True:
                try:
                    data = retrying(self._post, body)
                    break
                except _FormatRefused as refused:
                    self._step_down(refused.mode, str(refused))
                    body = self.body(request, settings)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise EngineError(
                f"model '{self.model}' at {self.base_url}: request failed after "
                f"{self.opts.max_retries + 1} attempts: {cause}"
            ) from None
        return self._parse(data, time.perf_counter() - start)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client_or_fail().post(f"{self.base_url}/chat/completions", json=body)
        except httpx.TransportError as exc:  # timeouts, refused or dropped connections
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if "response_format" in body and _refuses_format(status, response.text):
            raise _FormatRefused(_format_name(body["response_format"]), f"HTTP {status}: {_snippet(response, 160)}")
        if status in _RETRY_STATUS or status >= 500:
            wait_for = retry_after_seconds(response.headers.get("retry-after"))
            raise _Transient(f"HTTP {status}: {_snippet(response)}", wait_for)
        if status >= 400:
            raise EngineError(
                f"model '{self.model}' at {self.base_url}: HTTP {status} (not retried): {_snippet(response)}"
            )
        try:
            data = response.json()
        except ValueError:
            raise _Transient(f"HTTP {status} with a body that is not JSON: {_snippet(response)}") from None
        # A 200 without a usable answer (proxies and overloaded servers send these) is retried
        # like a 5xx: the same request asked again normally gets a proper answer.
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Transient(f"HTTP {status} answer without choices: {_snippet(response)}")
        message = choices[0].get("message")
        if message is not None and not isinstance(message, dict):
            raise _Transient(f"HTTP {status} answer with a malformed message: {_snippet(response)}")
        return data

    @staticmethod
    def _parse(data: dict[str, Any], seconds: float) -> Completion:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        # A null content (e.g. a reasoning model that spent every token thinking) is an empty answer.
        content = (choice.get("message") or {}).get("content")
        usage = usage if isinstance(usage, dict) else {}
        return Completion(
            text=content if isinstance(content, str) else "",
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            seconds=seconds,
            finish_reason=choice.get("finish_reason"),
        )


def _count(value: Any) -> int:
    """A token count from `usage`; anything that is not a count is 0 (servers may omit it)."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


class _Skipped(EngineError):
    """Not sent: another request of the same batch had already failed for good."""

    def __init__(self) -> None:
        super().__init__("not sent: another request of the batch failed")


class _FormatRefused(EngineError):
    """The server refused the request's response_format (`mode`); not retried as it is."""

    def __init__(self, mode: str, message: str) -> None:
        super().__init__(message)
        self.mode = mode


def response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The `response_format` of a request for JSON matching `schema`, in one of FORMATS."""
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def _refuses_format(status: int, text: str) -> bool:
    """Does this answer refuse the request's response_format? A client error naming a format,
    or a 500 naming `response_format` itself (llama-cpp-python's server answers its own request
    validation error with a 500 that quotes the field)."""
    if status in _REFUSAL_STATUS:
        return bool(_REFUSAL_TEXT.search(text))
    return status == 500 and "response_format" in text


def _format_name(sent: dict[str, Any]) -> str:
    if sent.get("type") == "json_object":
        return "json_object_schema" if "schema" in sent else "json_object"
    return str(sent.get("type"))


def _snippet(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")
