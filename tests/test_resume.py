"""A run killed with SIGKILL resumes without repeating or losing a finished generation (SPEC 9,
issue 11). The batched llama.cpp engine hands back each sequence as it finishes and the
scheduler commits it at once, so rows appear one by one inside a single engine call (before,
they were committed per chunk of 16). The test waits on conditions (rows stored), never on a
time window: every limit is generous so a loaded machine only makes it slower."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = r"""
import json, sys
from symbolic_moe.config import ModelSpec
from symbolic_moe.scheduler import Job, ModelPool, Scheduler
from symbolic_moe.store import GenerationStore
from symbolic_moe.types import ChatRequest, GenerationSettings

store_path, n = sys.argv[1], int(sys.argv[2])
# Two sequences in flight, all n jobs in ONE engine call (n <= the scheduler's chunk of 16).
options = {"n_threads": 1, "batch_size": 2, "n_ctx": 512}
spec = ModelSpec(engine="llama_cpp", model="embedded:smollm2", settings=GenerationSettings(max_tokens=24, seed=1),
                 options=options)
scheduler = Scheduler(ModelPool({"smol": spec}), GenerationStore(store_path), progress=False)
jobs = [Job("smol", ChatRequest.user(f"Count from {i} to {i + 5}.", f"q{i}")) for i in range(n)]
out = scheduler.run(jobs)
usage = scheduler.usage["smol"]
print(json.dumps({"generated": usage.generated, "reused": usage.reused, "texts": [c.text for c in out],
                  "run_generations": usage.run_generations, "run_prompt_tokens": usage.run_prompt_tokens,
                  "run_completion_tokens": usage.run_completion_tokens}))
"""

LIMIT = 900.0  # seconds: generous, for a loaded 2-core machine; a quiet one needs a few


def rows(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet, or the file is being created
        return 0


def wait_for_rows(proc: subprocess.Popen, store: Path, at_least: int) -> int:
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline and proc.poll() is None:
        done = rows(store)
        if done >= at_least:
            return done
        time.sleep(0.05)
    pytest.fail(f"{at_least} rows not stored while the run was going (exit code {proc.poll()}, rows {rows(store)})")


@pytest.mark.slow
def test_sigkill_mid_call_then_resume(tmp_path):
    store = tmp_path / "store.sqlite"
    n = 12
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(store), str(n)], stdout=subprocess.PIPE)
    try:
        wait_for_rows(proc, store, 3)  # rows appear while the one engine call is still running
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finished = db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    assert 3 <= finished < n
    assert db.execute("SELECT COUNT(*) FROM generations WHERE text IS NULL").fetchone()[0] == 0
    before = dict(db.execute("SELECT key, text FROM generations"))
    db.close()

    resumed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(store), str(n)], capture_output=True, check=True, timeout=LIMIT
    )
    report = json.loads(resumed.stdout)
    # Nothing stored was lost or generated again; only what was missing was generated.
    assert report["reused"] == finished and report["generated"] == n - finished
    assert all(text is not None for text in report["texts"])
    db = sqlite3.connect(store)
    after = dict(db.execute("SELECT key, text FROM generations"))
    assert len(after) == n and all(after[key] == text for key, text in before.items())
    # Accounting covers every generation the run used, the killed process's included.
    tokens = db.execute("SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM generations").fetchone()
    assert report["run_generations"] == n
    assert (report["run_prompt_tokens"], report["run_completion_tokens"]) == tuple(tokens)
    db.close()
