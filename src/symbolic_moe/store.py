"""Every generation, stored (SPEC 9): SQLite in WAL mode, one row per finished generation.

A row is committed as soon as its generation returns, so a run killed at any point (even by
SIGKILL) keeps everything finished and never sees a half-written row: SQLite's journal makes
each commit atomic. The key covers everything that determines the output.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from .types import ChatRequest, Completion, GenerationSettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    engine TEXT NOT NULL,
    model TEXT NOT NULL,
    question_id TEXT,
    sample INTEGER NOT NULL,
    messages TEXT NOT NULL,
    settings TEXT NOT NULL,
    text TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    finish_reason TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS generations_model ON generations (engine, model);
"""


def generation_key(engine: str, model: str, request: ChatRequest, settings: GenerationSettings) -> str:
    """A stable hash of everything that determines a generation."""
    payload = {
        "engine": engine,
        "model": model,
        "messages": list(request.messages),
        "question_id": request.question_id,
        "sample": request.sample,
        "settings": settings.model_dump(mode="json"),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class GenerationStore:
    """A SQLite file of generations, safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(keys)
        found: dict[str, Completion] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT key, text, prompt_tokens, completion_tokens, seconds, finish_reason "
                    f"FROM generations WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, text, ptok, ctok, secs, finish in rows:
                    found[key] = Completion(
                        text=text,
                        prompt_tokens=ptok,
                        completion_tokens=ctok,
                        seconds=secs,
                        finish_reason=finish,
                        cached=True,
                    )
        return found

    def put_many(
        self,
        engine: str,
        model: str,
        settings: GenerationSettings,
        items: Iterable[tuple[str, ChatRequest, Completion]],
    ) -> None:
        """Store finished generations in one transaction."""
        settings_json = settings.model_dump_json()
        rows = [
            (
                key,
                engine,
                model,
                request.question_id,
                request.sample,
                json.dumps(list(request.messages), ensure_ascii=False),
                settings_json,
                completion.text,
                completion.prompt_tokens,
                completion.completion_tokens,
                completion.seconds,
                completion.finish_reason,
                time.time(),
            )
            for key, request, completion in items
        ]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
