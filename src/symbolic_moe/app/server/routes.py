"""The routes of `smoe serve`: a thin FastAPI app over the service (service.py) and the wire format
(protocol.py). Authorization, body size, the two endpoints and the error bodies live here; what a
request means and how it is answered do not."""

from __future__ import annotations

import hmac
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...api import Mixture
from .protocol import MODEL_ID, ApiError, ServerOptions, completion, parse_request, question_text, response_meta
from .service import MixtureService, stream, wait


def create_app(mixture: Mixture, options: ServerOptions | None = None) -> FastAPI:
    """The app answering through `mixture` (its service starts now and stops with the app)."""
    options = options or ServerOptions()
    service = MixtureService(mixture, options.window, options.max_batch)
    app = FastAPI(title="symbolic-moe", description="A mixture of LLMs behind one OpenAI-compatible endpoint")
    app.state.service, app.state.options = service, options
    app.router.add_event_handler("shutdown", service.close)
    app.add_exception_handler(ApiError, api_error)  # type: ignore[arg-type]  # starlette types handlers loosely
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/v1/models", models, methods=["GET"])
    app.add_api_route("/v1/chat/completions", chat, methods=["POST"])
    return app


async def api_error(_: Request, exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(ApiError(exc.status_code, str(exc.detail)).body(), status_code=exc.status_code)


def authorize(request: Request) -> None:
    key = request.app.state.options.api_key
    if key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(401, "missing or wrong API key (Authorization: Bearer <key>)", code="invalid_api_key")


def health() -> dict[str, str]:
    return {"status": "ok"}


def models(request: Request) -> dict[str, Any]:
    authorize(request)
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "symbolic-moe"}]}


async def chat(request: Request) -> Any:
    authorize(request)
    options: ServerOptions = request.app.state.options
    service: MixtureService = request.app.state.service
    parsed = parse_request(await read_body(request, options.max_body_bytes), options)
    future = service.submit_chat(parsed, question_text(parsed, options))
    meta = response_meta()
    if parsed.stream:
        return StreamingResponse(stream(future, meta, parsed.include_usage), media_type="text/event-stream")
    return completion(meta, await wait(future))


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
