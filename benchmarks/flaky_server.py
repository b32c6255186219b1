"""A flaky OpenAI-compatible server on 127.0.0.1 in front of the embedded models (fault soak).

Each POST /v1/chat/completions is, with probability `fault_rate`, answered by a fault drawn
uniformly from: 500, 429 with `Retry-After`, a hang past the client's timeout (then the socket
is closed without an answer), malformed JSON, an empty `choices` list. Otherwise the real model
answers: the embedded GGUF through the project's own llama.cpp engine, one request at a time per
model (so an answer never depends on what else is pending, and a run with faults can be
compared answer for answer with a clean run). A model named in `broken` always answers 500.

`stats` counts requests, faults per kind, answers, and re-requests of a body that had already
received a full answer (an answer the client lost and asked for again).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from symbolic_moe.engines.llama_cpp import LlamaCppEngine
from symbolic_moe.types import ChatRequest, GenerationSettings

FAULTS = ("http_500", "http_429_retry_after", "hang", "malformed_json", "empty_choices")


class FlakyServer:
    def __init__(
        self,
        models: dict[str, str],
        fault_rate: float = 0.3,
        seed: int = 0,
        hang_seconds: float = 31.0,
        retry_after: float = 1.0,
        broken: tuple[str, ...] = (),
        n_threads: int = 1,
    ) -> None:
        self.engines = {
            name: LlamaCppEngine(model=model, options={"n_threads": n_threads, "n_ctx": 2048})
            for name, model in models.items()
        }
        self.model_locks = {name: threading.Lock() for name in models}
        self.fault_rate, self.hang_seconds, self.retry_after = fault_rate, hang_seconds, retry_after
        self.broken = set(broken)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self.answered: set[str] = set()  # bodies that received a full answer
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner._send(self, 200, {"object": "list", "data": [{"id": m} for m in owner.engines]})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner._chat(self, raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FlakyServer:
        for engine in self.engines.values():
            engine.load()
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        for engine in self.engines.values():
            engine.unload()

    # -- answering --------------------------------------------------------------------------

    def _chat(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        body = json.loads(raw)
        digest = hashlib.sha256(raw).hexdigest()
        model = body.get("model")
        with self.lock:
            self.stats["requests"] += 1
            if digest in self.answered:
                self.stats["re_requested_after_answer"] += 1
            fault = None
            if model in self.broken:
                fault = "broken_model_500"
            elif self.rng.random() < self.fault_rate:
                fault = self.rng.choice(FAULTS)
            if fault:
                self.stats[fault] += 1
        if model not in self.engines and model not in self.broken:
            self._send(handler, 404, {"error": f"no model {model}"})
            return
        if fault in ("http_500", "broken_model_500"):
            self._send(handler, 500, {"error": "injected server error"})
        elif fault == "http_429_retry_after":
            self._send(handler, 429, {"error": "rate limited"}, {"Retry-After": f"{self.retry_after:g}"})
        elif fault == "hang":
            time.sleep(self.hang_seconds)  # the client has given up by now
            handler.close_connection = True
        elif fault == "malformed_json":
            self._send(handler, 200, b'{"choices": [{"message": {"role": "assistant", "content": "The ans')
        elif fault == "empty_choices":
            self._send(handler, 200, {"object": "chat.completion", "choices": []})
        else:
            reply = self._generate(model, body)
            if self._send(handler, 200, reply):
                with self.lock:
                    self.answered.add(digest)
                    self.stats["answers"] += 1

    def _generate(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        settings = GenerationSettings(
            temperature=body.get("temperature", 0.7),
            top_p=body.get("top_p", 1.0),
            max_tokens=body.get("max_tokens", 64),
            seed=body.get("seed", 0),
            stop=tuple(body.get("stop") or ()),
        )
        request = ChatRequest(messages=tuple(body["messages"]))
        with self.model_locks[model]:
            [completion] = self.engines[model].generate([request], settings)
        return {
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": completion.text},
                    "finish_reason": completion.finish_reason,
                }
            ],
            "usage": {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens},
        }

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, reply: Any, headers: dict[str, str] | None = None) -> bool:
        data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
            return True
        except OSError:  # the client went away
            return False


def set_fault_rate(server: FlakyServer, rate: float) -> None:
    with server.lock:
        server.fault_rate = rate
