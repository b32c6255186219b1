"""Kill -9 at random moments (issue 11 target): 0 stored generations lost or repeated, at most
the in-flight sequences regenerated, and the same answers as an uninterrupted run.

A child process runs one scheduler call of N jobs on the embedded SmolLM2 (batched llama.cpp,
`batch_size` sequences in flight). It prints `F <key>` when the engine hands a generation back
and `S <key>` once it is committed. The parent SIGKILLs it at a random moment, checks the store
(integrity, nothing stored before is gone or changed), starts it again, and repeats; after the
last kill the child runs to the end. A reference run without kills gives the expected texts.

    python benchmarks/bench_kill_resume.py --jobs 32 --kills 10 --max-tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, machine, write_result  # noqa: E402

CHILD = r"""
import sys
from symbolic_moe.config import ModelSpec
from symbolic_moe.scheduler import Job, ModelPool, Scheduler
from symbolic_moe.store import GenerationStore
from symbolic_moe.types import ChatRequest, GenerationSettings

store_path, n, batch, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


class Watched(GenerationStore):
    def put_many(self, engine, model, settings, items, identity=None):
        items = list(items)
        for key, _, _ in items:
            print("F", key, flush=True)
        super().put_many(engine, model, settings, items, identity)
        for key, _, _ in items:
            print("S", key, flush=True)


spec = ModelSpec(engine="llama_cpp", model="embedded:smollm2",
                 settings=GenerationSettings(max_tokens=max_tokens, temperature=0.0, seed=3),
                 options={"n_threads": 1, "batch_size": batch, "n_ctx": 1024})
scheduler = Scheduler(ModelPool({"smol": spec}), Watched(store_path), progress=False)
jobs = [Job("smol", ChatRequest.user(f"Write one sentence about the number {i}.", f"q{i}")) for i in range(n)]
scheduler.run(jobs)
print("DONE", flush=True)
"""


def start(store: Path, a: argparse.Namespace) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [str(store), str(a.jobs), str(a.batch_size), str(a.max_tokens)]
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def rows(store: Path) -> dict[str, str]:
    if not store.exists():
        return {}
    with sqlite3.connect(store, timeout=30) as db:
        try:
            return dict(db.execute("SELECT key, text FROM generations"))
        except sqlite3.OperationalError:
            return {}


def integrity(store: Path) -> str:
    if not store.exists():
        return "ok"
    with sqlite3.connect(store, timeout=30) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=32)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4, help="sequences in flight (n_seq_max)")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--min-delay", type=float, default=3.0, help="kill between min and max seconds after start")
    p.add_argument("--max-delay", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="kill_resume")
    a = p.parse_args()
    rng = random.Random(a.seed)
    before = machine(threads=1)
    start_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        reference_store = Path(tmp) / "reference.sqlite"
        proc, _ = start(reference_store, a)
        proc.wait()
        reference = rows(reference_store)
        reference_seconds = time.perf_counter() - start_all

        store = Path(tmp) / "killed.sqlite"
        kills: list[dict[str, Any]] = []
        finished_by: dict[str, int] = {}  # key -> how many processes handed it back
        for k in range(a.kills + 1):
            held = rows(store)
            proc, lines = start(store, a)
            delay = rng.uniform(a.min_delay, a.max_delay) if k < a.kills else None
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            time.sleep(0.2)  # let the reader thread drain the pipe
            after = rows(store)
            handed = [line.split()[1] for line in lines if line.startswith("F ")]
            committed = {line.split()[1] for line in lines if line.startswith("S ")}
            for key in handed:
                finished_by[key] = finished_by.get(key, 0) + 1
            kills.append(
                {
                    "kill_after_seconds": round(delay, 2) if delay else None,
                    "killed": proc.returncode == -signal.SIGKILL,
                    "rows_before": len(held),
                    "rows_after": len(after),
                    "integrity": integrity(store),
                    "stored_lost": sum(1 for key in held if key not in after),
                    "stored_changed": sum(1 for key, text in held.items() if after.get(key) != text),
                    "regenerated_stored": sum(1 for key in handed if key in held),
                    "handed_back_not_committed": sum(1 for key in handed if key not in after),
                    "committed_this_process": len(committed),
                }
            )
            print(json.dumps(kills[-1]), flush=True)
        final = rows(store)
    total = time.perf_counter() - start_all
    killed = [k for k in kills if k["killed"]]
    result = {
        "command": "python benchmarks/bench_kill_resume.py " + " ".join(sys.argv[1:]),
        "settings": vars(a),
        "machine_before": before,
        "machine_after": machine(threads=1),
        "reference_seconds": round(reference_seconds, 1),
        "total_seconds": round(total, 1),
        "processes": kills,
        "targets": {
            "kills": len(killed),
            "stored_generations_lost": sum(k["stored_lost"] + k["stored_changed"] for k in kills),
            "stored_generations_repeated": sum(k["regenerated_stored"] for k in kills),
            "handed_back_but_not_committed": sum(k["handed_back_not_committed"] for k in kills),
            "final_rows": len(final),
            "jobs": a.jobs,
            "generated_more_than_once": sum(1 for n in finished_by.values() if n > 1),
            "integrity_ok_after_every_kill": all(k["integrity"] == "ok" for k in kills),
            "texts_identical_to_uninterrupted_run": final == reference,
            "texts_differing_from_uninterrupted_run": sum(1 for k, t in reference.items() if final.get(k) != t),
        },
    }
    print(json.dumps(result["targets"], indent=1))
    print(f"wrote {write_result(a.out, result)}")


if __name__ == "__main__":
    main()
