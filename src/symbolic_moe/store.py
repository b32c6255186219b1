"""Every generation, stored (SPEC 9): SQLite in WAL mode, one row per finished generation.

What holds: the scheduler commits each generation in its own transaction as soon as the engine
hands it back (`Engine.generate_each`): the batched llama.cpp engine hands back each sequence
when it finishes, the openai engine each answer when it arrives, replay each record; engines
without streaming (vllm) hand back a whole batch when it returns. So a run killed at any point,
even by SIGKILL, keeps every generation that was handed back before the kill; what it loses is
the sequences in flight (at most `n_seq_max` for llama.cpp, `concurrency` for openai). SQLite's
journal makes each commit atomic: no half-written row is ever seen.

The key (`generation_key`) covers everything that determines the output: the engine's identity
(kind, model, output-changing options, model file path/size/mtime; `Engine.identity()`), the
messages, question id, sample index and generation settings (a JSON schema for structured
generation included; settings without one hash as they did before the schema existed). Each row
also keeps the identity, tokens and seconds, so a resumed run can account for what an earlier
process generated, and the cost the backend recorded for the call (`cost_usd`, e.g. a replay
record's `cost`; NULL when it recorded none). Prices are not stored: the scheduler prices every
generation when it hands it out, so a changed price needs no new generation.

The file carries a schema version (`meta` table). Schema 1 stores (keys without engine options
or model file identity) cannot be matched to their engine settings: opening one is a clear
error asking to move it away; a store from a newer symbolic-moe is refused likewise. A schema 2
store gains the `cost_usd` column (NULL: its engines recorded no costs) and becomes schema 3.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import DataError
from .types import ChatRequest, Completion, GenerationSettings

SCHEMA_VERSION = 3

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
    created REAL NOT NULL,
    identity TEXT,
    cost_usd REAL
);
CREATE INDEX IF NOT EXISTS generations_model ON generations (engine, model);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def generation_key(
    engine: str,
    model: str,
    request: ChatRequest,
    settings: GenerationSettings,
    identity: Mapping[str, Any] | None = None,
) -> str:
    """A stable hash of everything that determines a generation; `identity` is the engine's
    `identity()` (output-changing options and model file), which the scheduler always passes."""
    payload = {
        "engine": engine,
        "model": model,
        "identity": dict(identity or {}),
        "messages": list(request.messages),
        "question_id": request.question_id,
        "sample": request.sample,
        "settings": settings.key_payload(),
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
        self._check_schema()

    def _check_schema(self) -> None:
        """Create a new store, or accept one of this schema; anything else is a DataError."""
        db = self._db
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version: int | None = None
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
            version = int(row[0]) if row else None
        if version is None and "generations" in tables:
            rows = db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
            if rows:
                db.close()
                raise DataError(
                    f"{self.path}: generation store of schema 1 ({rows} rows) from an older symbolic-moe: its keys "
                    "do not cover engine options or model files, so its answers cannot be matched to them; "
                    "move it away (or set `store` to a new file) and run again"
                )
            db.execute("DROP TABLE generations")  # empty: recreate with this schema
        if version == 2:  # schema 3 adds the recorded cost; schema 2's engines recorded none
            with db:
                db.execute("ALTER TABLE generations ADD COLUMN cost_usd REAL")
                db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))
            version = SCHEMA_VERSION
        if version is not None and version != SCHEMA_VERSION:
            db.close()
            raise DataError(
                f"{self.path}: generation store of schema {version}; this symbolic-moe reads schema "
                f"{SCHEMA_VERSION}: use a matching version or set `store` to a new file"
            )
        with db:
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(keys)
        found: dict[str, Completion] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT key, text, prompt_tokens, completion_tokens, seconds, finish_reason, cost_usd "
                    f"FROM generations WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, text, ptok, ctok, secs, finish, cost in rows:
                    found[key] = Completion(
                        text=text,
                        prompt_tokens=ptok,
                        completion_tokens=ctok,
                        seconds=secs,
                        finish_reason=finish,
                        cached=True,
                        cost_usd=cost,
                    )
        return found

    def put_many(
        self,
        engine: str,
        model: str,
        settings: GenerationSettings,
        items: Iterable[tuple[str, ChatRequest, Completion]],
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        """Store finished generations in one transaction; `cost_usd` must be the cost the engine
        recorded (None when it recorded none), not one computed from a price."""
        settings_json = settings.model_dump_json()
        identity_json = json.dumps(dict(identity or {}), sort_keys=True)
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
                identity_json,
                completion.cost_usd,
            )
            for key, request, completion in items
        ]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
