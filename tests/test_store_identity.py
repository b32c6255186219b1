"""The store key covers what changes outputs (issue 11, "stale answers"): the model file, the
engine's output-changing options, the server; speed-only options do not split the cache; old
stores are refused with a clear message."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fault_server import FaultServer, Reply, chat_reply

from symbolic_moe.config import ModelSpec
from symbolic_moe.engines import create_engine
from symbolic_moe.errors import DataError
from symbolic_moe.scheduler import Job, ModelPool, Scheduler
from symbolic_moe.store import GenerationStore
from symbolic_moe.types import ChatRequest, GenerationSettings

JOB = [Job("m", ChatRequest.user("What is 2+2?", "q1"), GenerationSettings(max_tokens=4))]


def run_once(spec: ModelSpec, store_path: Path) -> tuple[str | None, int, int]:
    """(text, generated, reused) of one job in a fresh scheduler on the shared store."""
    scheduler = Scheduler(ModelPool({"m": spec}), GenerationStore(store_path), progress=False)
    [completion] = scheduler.run(JOB)
    usage = scheduler.usage["m"]
    return completion.text, usage.generated, usage.reused


def test_changed_recording_is_not_reused(tmp_path: Path) -> None:
    recording = tmp_path / "m.jsonl"
    recording.write_text(json.dumps({"id": "q1", "output": "old answer"}) + "\n")
    spec = ModelSpec(engine="replay", model=str(recording))
    assert run_once(spec, tmp_path / "s.sqlite") == ("old answer", 1, 0)
    assert run_once(spec, tmp_path / "s.sqlite") == ("old answer", 0, 1)
    recording.write_text(json.dumps({"id": "q1", "output": "a re-recorded answer"}) + "\n")
    assert run_once(spec, tmp_path / "s.sqlite") == ("a re-recorded answer", 1, 0)


def test_other_server_is_not_reused_but_speed_options_are(tmp_path: Path) -> None:
    def answering(text: str):
        def script(call: int, body: dict[str, Any]) -> Reply:
            return 200, chat_reply(text), 0.0

        return script

    first, second = FaultServer(answering("from first")), FaultServer(answering("from second"))
    try:
        store = tmp_path / "s.sqlite"
        spec = ModelSpec(engine="openai", model="m", options={"base_url": first.url})
        assert run_once(spec, store) == ("from first", 1, 0)
        faster = {"base_url": first.url + "/", "concurrency": 2, "timeout": 9.0, "max_retries": 1}
        assert run_once(ModelSpec(engine="openai", model="m", options=faster), store) == ("from first", 0, 1)
        moved = ModelSpec(engine="openai", model="m", options={"base_url": second.url})
        assert run_once(moved, store) == ("from second", 1, 0)
        assert len(first.bodies) == 1 and len(second.bodies) == 1
    finally:
        first.close()
        second.close()


def test_llama_identity_has_output_options_and_file_only(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)  # never loaded: identity reads the file's metadata only

    def identity(**options: Any) -> dict[str, Any]:
        return create_engine("llama_cpp", str(gguf), {"data_dir": None, **options}).identity()

    base = identity()
    assert base["file"]["path"] == str(gguf.resolve()) and base["file"]["size"] == 64
    for output_changing in (
        {"requantize": "q4_0"},
        {"n_ctx": 1024},
        {"kv_unified": True},
        {"flash_attn": False},
        {"system_prompt": "You are terse."},
    ):
        assert identity(**output_changing) != base, output_changing
    for speed_only in ({"n_threads": 1}, {"batch_size": 4}, {"share_prompts": False}, {"use_mmap": False}):
        assert identity(**speed_only) == base, speed_only
    gguf.write_bytes(b"GGUF" + b"\0" * 100)  # another file at the same path
    assert identity() != base


def test_schema_1_store_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE generations (key TEXT PRIMARY KEY, engine TEXT, model TEXT, text TEXT)")
    db.execute("INSERT INTO generations VALUES ('k', 'llama_cpp', 'm', 'yo')")
    db.commit()
    db.close()
    with pytest.raises(DataError, match=r"old.sqlite: generation store of schema 1 \(1 rows\).*move it away"):
        GenerationStore(path)
    newer = tmp_path / "newer.sqlite"
    GenerationStore(newer).close()
    db = sqlite3.connect(newer)
    db.execute("UPDATE meta SET value = '9' WHERE name = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(DataError, match="schema 9"):
        GenerationStore(newer)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE generations (key TEXT PRIMARY KEY)").connection.commit()
    assert GenerationStore(empty).count() == 0  # an empty old store is simply upgraded
