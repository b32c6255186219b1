"""Any OpenAI-compatible chat server (vLLM, SGLang, llama.cpp server, Ollama, hosted APIs).

Requests of a batch go out concurrently (bounded by `concurrency`) so that a batching server
sees them together; each is retried with exponential backoff on rate limits (429), server
errors (5xx), timeouts and dropped connections. Other 4xx answers are the caller's fault and
fail at once, naming the model and the status.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ..errors import ConfigError, EngineError
from ..types import ChatRequest, Completion, GenerationSettings
from .base import TimedEngine

# 408 (request timeout) and 409 (some gateways' "busy") are transient like 429 and 5xx.
_RETRY_STATUS = {408, 409, 429}


class OpenAIOptions(BaseModel):
    """The `options` of an `openai` model in the run config; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1 (the part before /chat/completions)")
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1)
    timeout: float = Field(600.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff: float = Field(1.0, ge=0, description="first retry wait in seconds; doubles each retry")
    max_backoff: float = Field(60.0, ge=0)
    data_dir: str | None = None  # passed to every engine by the pool; unused here


class _Transient(Exception):
    """A failure worth retrying (kept apart so tenacity retries only these)."""


@dataclass
class OpenAIEngine(TimedEngine):
    kind: str = "openai"
    opts: OpenAIOptions = field(init=False)
    base_url: str = field(init=False)
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self.opts = OpenAIOptions(**self.options)
        except ValidationError as exc:
            problems = "; ".join(f"options.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"openai engine for model '{self.model}': {problems}") from None
        self.base_url = self.opts.base_url.rstrip("/")

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

    def _generate(self, requests: list[ChatRequest], settings: GenerationSettings) -> list[Completion]:
        workers = min(self.opts.concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai") as pool:
            futures = [pool.submit(self._complete, request, settings) for request in requests]
            try:
                return [future.result() for future in futures]  # in request order
            except BaseException:
                for future in futures:  # one failure fails the batch: don't send the rest
                    future.cancel()
                raise

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
        return body

    def _complete(self, request: ChatRequest, settings: GenerationSettings) -> Completion:
        body = self.body(request, settings)
        start = time.perf_counter()
        retrying = Retrying(
            stop=stop_after_attempt(self.opts.max_retries + 1),
            wait=wait_exponential(multiplier=self.opts.backoff, max=self.opts.max_backoff),
            retry=retry_if_exception(lambda exc: isinstance(exc, _Transient)),
            reraise=False,
        )
        try:
            data = retrying(self._post, body)
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
        if status in _RETRY_STATUS or status >= 500:
            raise _Transient(f"HTTP {status}: {_snippet(response)}")
        if status >= 400:
            raise EngineError(
                f"model '{self.model}' at {self.base_url}: HTTP {status} (not retried): {_snippet(response)}"
            )
        try:
            data = response.json()
        except ValueError:
            raise _Transient(f"HTTP {status} with a body that is not JSON: {_snippet(response)}") from None
        if not isinstance(data, dict) or not data.get("choices"):
            raise EngineError(f"model '{self.model}' at {self.base_url}: answer has no choices: {_snippet(response)}")
        return data

    @staticmethod
    def _parse(data: dict[str, Any], seconds: float) -> Completion:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        # A null content (e.g. a reasoning model that spent every token thinking) is an empty answer.
        text = (choice.get("message") or {}).get("content") or ""
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=seconds,
            finish_reason=choice.get("finish_reason"),
        )


def _snippet(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")
