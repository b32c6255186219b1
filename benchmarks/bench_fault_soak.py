"""Fault soak (issue 11 target): the embedded-demo pipeline on two `openai` pool models behind a
flaky local server (30 % of requests get a fault: 500, 429 + Retry-After, a hang past the
timeout, malformed JSON, empty choices), plus a third pool model whose server always fails.

The same config runs twice through `smoe run`, each with a fresh run directory and store, against
the same server (so the store keys are the same): once clean (fault rate 0), once at the fault
rate. Target: the faulty run finishes in one invocation with the same accuracy as the clean run,
the same stored answers (0 finished answers lost), the broken model isolated (exit status 3,
"partial", listed in results.json) and no other model failed.

    python benchmarks/bench_fault_soak.py --limit 4 --validation-limit 4 --max-tokens 24
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, machine, write_result  # noqa: E402
from flaky_server import FlakyServer, set_fault_rate  # noqa: E402

MODELS = {"smollm2": "embedded:smollm2", "gemma3": "embedded:gemma3-270m"}


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def write_config(path: Path, url: str, a: argparse.Namespace) -> None:
    """configs/embedded.toml with its pool replaced by the two models behind the flaky server
    and a model that always fails."""
    raw = tomllib.loads((ROOT / "configs/embedded.toml").read_text())
    client = {
        "base_url": url,
        "concurrency": 2,
        "timeout": a.timeout,
        "max_retries": a.max_retries,
        "backoff": 0.2,
        "max_backoff": 2.0,
    }
    pool = {
        name: {
            "engine": "openai",
            "model": name,
            "options": client,
            "settings": {"temperature": 0.7, "max_tokens": a.max_tokens},
        }
        for name in MODELS
    }
    pool["broken"] = {"engine": "openai", "model": "broken", "options": {**client, "max_retries": 2}}
    raw["pool"] = pool
    raw["benchmark"].update({"limit": a.limit, "validation_limit": a.validation_limit})
    raw["keywords"]["max_tokens"] = 16
    # Two model groups at once: the server answers each model on its own thread (speed-only).
    raw["scheduler"] = {"mode": "batched", "workers": 2, "progress": False}
    lines = [f"{k} = {toml_value(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    for key, table in raw.items():
        if isinstance(table, dict) and key != "pool":
            lines += [f"[{key}]"] + [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()]
    for name, spec in pool.items():
        lines += [f"[pool.{json.dumps(name)}]"] + [f"{k} = {toml_value(v)}" for k, v in spec.items()]
    path.write_text("\n".join(lines) + "\n")


def run_smoe(config: Path, out: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [
        sys.executable,
        "-c",
        "from symbolic_moe.app.cli import main; main()",
        "run",
        str(config),
        "--out",
        str(out),
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None
    return {
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 1),
        "results": results,
        "stderr": proc.stderr[-2000:],
    }


def stored(out: Path) -> dict[str, str | None]:
    with sqlite3.connect(out / "generations.sqlite") as db:
        return dict(db.execute("SELECT key, text FROM generations"))


def summary(run: dict[str, Any]) -> dict[str, Any]:
    r = run["results"] or {}
    return {
        "exit_code": run["exit_code"],
        "wall_seconds": run["wall_seconds"],
        "status": r.get("status"),
        "accuracy": {m: v["accuracy"] for m, v in r.get("methods", {}).items()},
        "failed_models": [f["model"] for f in r.get("failed", [])],
        "failed": r.get("failed"),
        "tokens": r.get("tokens"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=4, help="test questions")
    p.add_argument("--validation-limit", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--fault-rate", type=float, default=0.3)
    p.add_argument("--timeout", type=float, default=45.0, help="client timeout; a hang lasts 1 s longer")
    p.add_argument("--max-retries", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="fault_soak.json")
    a = p.parse_args()

    server = FlakyServer(MODELS, fault_rate=0.0, seed=a.seed, hang_seconds=a.timeout + 1, broken=("broken",)).start()
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "soak.toml"
        write_config(config, server.url, a)
        before = machine(threads=1)
        for name, rate in (("clean", 0.0), ("faulty", a.fault_rate)):
            set_fault_rate(server, rate)
            server.stats.clear()
            server.answered.clear()
            run = run_smoe(config, Path(tmp) / name)
            run["server"] = dict(server.stats)
            run["stored"] = stored(Path(tmp) / name)
            runs[name] = run
        server.close()
    clean, faulty = runs["clean"], runs["faulty"]
    lost = [k for k in clean["stored"] if k not in faulty["stored"]]
    differing = [k for k, t in clean["stored"].items() if k in faulty["stored"] and faulty["stored"][k] != t]
    c, f = summary(clean), summary(faulty)
    result = {
        "command": "python benchmarks/bench_fault_soak.py " + " ".join(sys.argv[1:]),
        "settings": vars(a),
        "machine_before": before,
        "machine_after": machine(threads=1),
        "clean": {**c, "server": clean["server"], "stored_generations": len(clean["stored"])},
        "faulty": {**f, "server": faulty["server"], "stored_generations": len(faulty["stored"])},
        "targets": {
            "finished_in_one_invocation": faulty["results"] is not None,
            "same_accuracy_as_clean": c["accuracy"] == f["accuracy"] and bool(c["accuracy"]),
            "finished_answers_lost": len(lost),
            "stored_answers_differing_from_clean": len(differing),
            "answers_re_requested_after_delivery": faulty["server"].get("re_requested_after_answer", 0),
            "partial_exit_code_3": faulty["exit_code"] == 3,
            "only_broken_model_isolated": f["failed_models"] == ["broken"],
            "clean_run_only_broken_failed": c["failed_models"] == ["broken"],
        },
    }
    if faulty["exit_code"] not in (0, 3):
        result["faulty"]["stderr"] = faulty["stderr"]
    print(json.dumps(result["targets"], indent=1))
    print(json.dumps({"clean": c["accuracy"], "faulty": f["accuracy"], "faults": faulty["server"]}, indent=1))
    print(f"wrote {write_result(a.out.removesuffix('.json'), result)}")


if __name__ == "__main__":
    main()
