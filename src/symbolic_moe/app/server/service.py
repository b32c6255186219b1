"""The behaviour of `smoe serve` without the web framework: requests that arrive together (within
`window` seconds) are answered through `Mixture` as one micro-batch, so each expert model loads
once per batch, yet every request stays its own (its seed, its aggregator settings, its usage);
a batch that fails is split in halves until the failing request is alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from queue import Empty, Queue
from typing import Any

from ...answers import Answer
from ...answers import Request as AnswerRequest
from ...api import Mixture
from .protocol import ApiError, ChatCompletionRequest, chunk, details, sse, usage


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

    def submit_chat(self, request: ChatCompletionRequest, text: str) -> Future:
        """A validated chat request's question, with its seed (default: the config's) and its
        settings for the LLM aggregator."""
        seed = self.mixture.run.config.seed if request.seed is None else request.seed
        max_tokens = request.max_tokens or request.max_completion_tokens
        return self.submit(AnswerRequest(self.mixture.question(text), seed, max_tokens, request.temperature))

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
    yield sse(chunk(meta, {"role": "assistant", "content": ""}))
    try:
        answer = await wait(future)
    except ApiError as exc:
        yield sse(exc.body())
        return
    yield sse(chunk(meta, {"content": answer.text or ""}, symbolic_moe=details(answer)))
    yield sse(chunk(meta, {}, "stop"))
    if include_usage:
        yield sse({**meta, "object": "chat.completion.chunk", "choices": [], "usage": usage(answer)})
    yield sse("[DONE]")
