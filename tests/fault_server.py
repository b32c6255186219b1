"""A tiny scripted OpenAI-compatible HTTP server on 127.0.0.1, for fault injection only: each
POST /chat/completions is answered by `script(call_number, body)`. Real sockets, real HTTP: the
client under test cannot tell it from a misbehaving server."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# One scripted answer: (HTTP status, body, seconds to wait before answering[, headers]). A body
# of bytes is sent as it is (e.g. malformed JSON); anything else is sent as JSON.
Reply = tuple[Any, ...]
Script = Callable[[int, dict[str, Any]], Reply]


def chat_reply(text: str, prompt_tokens: int = 7, completion_tokens: int = 3) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def wait_for_arrivals(server_ref: list[FaultServer], count: int, limit: float = 120.0) -> None:
    """Block (inside a script) until `count` requests have arrived, so a test can be sure they
    are all in flight at once; the limit is generous, for a loaded machine."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and len(server_ref[0].bodies) < count:
        time.sleep(0.01)


def echo(call: int, body: dict[str, Any]) -> Reply:
    return 200, chat_reply("echo: " + body["messages"][-1]["content"]), 0.0


class FaultServer:
    """Answers each POST with `script(call_number, body)`; records bodies, headers, the times
    requests arrived and the largest number of requests in flight at once."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "fake"}]}, {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    call = len(owner.bodies)
                    owner.bodies.append(body)
                    owner.headers.append(dict(self.headers))
                    owner.arrivals.append(time.monotonic())
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                status, reply, delay, *rest = owner.script(call, body)
                time.sleep(delay)
                with owner.lock:
                    owner.in_flight -= 1
                with contextlib.suppress(OSError):  # the client may have given up (timeout test)
                    self._send(status, reply, rest[0] if rest else {})

            def _send(self, status: int, reply: Any, headers: dict[str, str]) -> None:
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
