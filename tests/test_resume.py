"""A run killed with SIGKILL resumes without repeating a finished generation (SPEC 9)."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

SCRIPT = r"""
import json, sys
from symbolic_moe.config import ModelSpec
from symbolic_moe.scheduler import Job, ModelPool, Scheduler
from symbolic_moe.store import GenerationStore
from symbolic_moe.types import ChatRequest, GenerationSettings

store_path, n = sys.argv[1], int(sys.argv[2])
spec = ModelSpec(engine="llama_cpp", model="embedded:smollm2", settings=GenerationSettings(max_tokens=24, seed=1))
pool = ModelPool({"smol": spec})
scheduler = Scheduler(pool, GenerationStore(store_path), chunk_size=1, progress=False)
jobs = [Job("smol", ChatRequest.user(f"Count from {i} to {i + 5}.", f"q{i}")) for i in range(n)]
out = scheduler.run(jobs)
print(json.dumps({"generated": scheduler.usage["smol"].generated, "reused": scheduler.usage["smol"].reused,
                  "texts": [c.text for c in out]}))
"""


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path):
    store = tmp_path / "store.sqlite"
    n = 30
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(store), str(n)], stdout=subprocess.PIPE)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline:
        time.sleep(0.2)
        if store.exists():
            try:
                done = sqlite3.connect(store, timeout=1).execute("SELECT COUNT(*) FROM generations").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if done >= 3:
                break
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finished = db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    assert 3 <= finished < n
    assert db.execute("SELECT COUNT(*) FROM generations WHERE text IS NULL").fetchone()[0] == 0
    db.close()

    resumed = subprocess.run([sys.executable, "-c", SCRIPT, str(store), str(n)], capture_output=True, check=True)
    report = json.loads(resumed.stdout)
    assert report["reused"] == finished and report["generated"] == n - finished
    assert all(report["texts"])
