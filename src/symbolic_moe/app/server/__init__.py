"""The mixture as one LLM behind an OpenAI-compatible endpoint (`smoe serve CONFIG`), in three parts
as vLLM's OpenAI entrypoint: `protocol` (wire types, one request's validation, response bodies),
`service` (micro-batching through `Mixture`, no web framework) and `routes` (the thin FastAPI app).

`POST /v1/chat/completions` answers the last user message through the Python API
(`api.Mixture`), the same steps `smoe run` takes on a test question. Requests that arrive
together (within `window` seconds) are answered as one micro-batch, so each expert model loads
once per batch, yet every request stays its own:
- validated on its own before it joins a batch: body size (413), JSON and fields (400, naming the
  field), `n > 1` (400), question size (400), model name (404), API key (401);
- its own `seed` (recruitment, experts and aggregator), its own `max_tokens` / `temperature` (the
  LLM aggregator's; part of that generation's store key), its own `usage` (only its generations);
- a batch that fails is split in halves until the failing request is alone, so a bad request
  fails only itself (generations already stored are reused, not repeated).
`stream: true` sends OpenAI `chat.completion.chunk` events: the role first, the whole answer as one
chunk once aggregated, the finish reason (and usage when `stream_options.include_usage`), then
`data: [DONE]`. A client that goes away mid-stream only loses its stream: its answer is still
computed and stored whole with its batch. `GET /v1/models` lists the one model.
"""

from .protocol import MODEL_ID, ApiError, ChatCompletionRequest, ServerOptions, parse_request
from .routes import BackgroundServer, create_app
from .service import MixtureService

__all__ = [
    "MODEL_ID",
    "ApiError",
    "BackgroundServer",
    "ChatCompletionRequest",
    "MixtureService",
    "ServerOptions",
    "create_app",
    "parse_request",
]
