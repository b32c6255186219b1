"""The mixture as one LLM behind an OpenAI-compatible endpoint (`smoe serve CONFIG`).

`POST /v1/chat/completions` takes the last user message as the question and answers it the way
`smoe run` answers a test question: keyword LLM -> skills mapped onto the profiles -> k experts
recruited -> experts run -> aggregated. Requests that arrive together are answered together, so
each expert model still loads once per batch (the paper's batched inference, online). Profiles
and the aggregator come from the config's run directory (computed on first start if missing).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from concurrent.futures import Future
from queue import Empty, Queue
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict

from .methods.symbolic_moe import synthesize
from .run import Run
from .types import Question

MODEL_ID = "symbolic-moe"
_OPTION = re.compile(r"\(([A-J])\)")


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send many optional fields

    model: str = MODEL_ID
    messages: list[ChatMessage]
    seed: int | None = None


def question_from_messages(messages: list[ChatMessage]) -> Question:
    """The last user message as a Question; lettered options "(A) ... (B) ..." make it multiple choice."""
    users = [m.content for m in messages if m.role == "user"]
    if not users:
        raise HTTPException(status_code=400, detail="messages: no user message to answer")
    text = users[-1]
    letters = sorted(set(_OPTION.findall(text)))
    qid = "serve-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return Question(id=qid, question=text, answer="", choices=letters if len(letters) >= 2 else None)


class MixtureService:
    """Collects concurrent requests for up to `window` seconds and answers them as one batch."""

    def __init__(self, run: Run, window: float = 0.05, max_batch: int = 64) -> None:
        self.run, self.window, self.max_batch = run, window, max_batch
        self.queue: Queue[tuple[Question, int, Future]] = Queue()
        run.mapped_keywords() if run.config.keywords.skills_from_field is None else run.profiles()
        if run.config.aggregator.method == "llm":
            run.aggregator()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def answer(self, question: Question, seed: int) -> dict[str, Any]:
        future: Future = Future()
        self.queue.put((question, seed, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            batch = [self.queue.get()]
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except Empty:
                    break
            try:
                for item, result in zip(batch, self._answer_batch(batch), strict=True):
                    item[2].set_result(result)
            except Exception as exc:  # every waiting request learns what went wrong
                for item in batch:
                    item[2].set_exception(exc)

    def _answer_batch(self, batch: list[tuple[Question, int, Future]]) -> list[dict[str, Any]]:
        run = self.run
        questions = list({q.id: q for q, _, _ in batch}.values())
        seed = batch[0][1]
        kept = {qid: row["kept"] for qid, row in run.annotate(questions).items()}
        mapped = run.map_to_profiles(kept)
        # trimming is a test-set statistic; a handful of live questions keeps every recruited expert
        plan = run.recruit([q.id for q in questions], [mapped[q.id] for q in questions], seed, trim_share=0.0)
        scheduler = run.scheduler
        before = (scheduler.prompt_tokens, scheduler.completion_tokens)
        finals, _, aggregator = synthesize(
            run, questions, plan, seed, run.config.aggregator.method, run.config.aggregator.discussion, write=False
        )
        usage = {
            "prompt_tokens": scheduler.prompt_tokens - before[0],
            "completion_tokens": scheduler.completion_tokens - before[1],
        }
        by_id = {
            q.id: {"text": final or "", "experts": experts, "keywords": mapped[q.id], "aggregator": aggregator}
            for q, final, experts in zip(questions, finals, plan.experts, strict=True)
        }
        return [{**by_id[q.id], "batch_usage": usage} for q, _, _ in batch]


def create_app(run: Run) -> FastAPI:
    service = MixtureService(run)
    app = FastAPI(title="symbolic-moe", description="A mixture of LLMs behind one OpenAI-compatible endpoint")

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "symbolic-moe"}]}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    def chat(request: ChatCompletionRequest) -> dict[str, Any]:
        question = question_from_messages(request.messages)
        result = service.answer(question, run.config.seed if request.seed is None else request.seed)
        usage = result["batch_usage"]
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL_ID,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": result["text"]}, "finish_reason": "stop"}
            ],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "symbolic_moe": {k: result[k] for k in ("experts", "keywords", "aggregator")},
        }

    return app
