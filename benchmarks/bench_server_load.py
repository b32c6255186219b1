"""`smoe serve` under load (issue 11, server target): 64 concurrent official `openai` clients and
8 hostile requests (1 MB body, bad JSON, bad seed types, n = 2, ...) sent in the same seconds.

Counts 200s whose answer is correct (the same answer, experts and usage the same request gets when
it is sent alone afterwards), clear 4xx (an OpenAI error body with a message), 5xx and transport
errors. Two of the 64 ask the same question with different seeds.

Pool: the replay pool of 16 recorded MMLU-Pro models (configs/replay-mmlu-pro-small16.toml) with
skills from the `category` field and a majority vote. Its experts answer from recordings in
milliseconds, so the figures measure the server (validation, micro-batching, isolation) rather
than how fast 2 shared cores decode: the embedded pool would need ~600 generations for 64 new
questions (keywords, experts, aggregator), minutes per run. The server runs as a real
`smoe serve` process on 127.0.0.1.

    .venv/bin/python benchmarks/bench_server_load.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, ROOT, machine  # noqa: E402

from symbolic_moe.config import default_data_dir, load_config  # noqa: E402
from symbolic_moe.data import load_split  # noqa: E402

CONFIG = ROOT / "configs" / "replay-mmlu-pro-small16.toml"
SETS = ["keywords.skills_from_field=category"]


def hostile(question: str) -> dict[str, bytes]:
    """Eight requests a server must refuse with a clear 4xx, never a 5xx."""
    message = {"role": "user", "content": question}

    def body(**fields: Any) -> bytes:
        return json.dumps({"model": "symbolic-moe", **fields}).encode()

    return {
        "1 MB body": body(messages=[{"role": "user", "content": "x" * 2**20}]),
        "bad JSON": b'{"model": "symbolic-moe", "messages": [{"role": "user", "content": "hi"}',
        "seed as string": body(messages=[message], seed="seven"),
        "seed as float": body(messages=[message], seed=1.5),
        "n = 2": body(messages=[message], n=2),
        "messages not a list": body(messages="what is 2 + 2?"),
        "no user message": body(messages=[{"role": "system", "content": "be brief"}]),
        "40 KB question": body(messages=[{"role": "user", "content": "why " * 10000}]),
    }


def start_server(out: Path, port: int, data_dir: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", "from symbolic_moe.app.cli import app; app()", "serve", str(CONFIG)]
    command += ["--port", str(port)]
    command += [a for s in SETS for a in ("--set", s)] + ["--out", str(out), "--data-dir", str(data_dir)]
    command += ["--set", f"store={out / 'generations.sqlite'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    log = (out / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"smoe serve exited: see {out / 'server.log'}")
        time.sleep(0.5)
    server.kill()
    raise SystemExit("smoe serve did not start in 600 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-server-load")
    args = parser.parse_args()
    data_dir = default_data_dir()
    if data_dir is None:
        raise SystemExit("benchmark data not found: set SMOE_DATA_DIR")
    args.out.mkdir(parents=True, exist_ok=True)
    config = load_config(CONFIG, SETS)
    test = load_split(config.benchmark.path, config.benchmark.test, data_dir)
    # spread over the categories; the last two clients ask one question with two seeds
    questions = test[:: len(test) // (args.clients - 1)][: args.clients - 1]
    requests = [(q, 100 + i) for i, q in enumerate(questions[:-1])] + [(questions[-1], 1), (questions[-1], 2)]
    bad = hostile(questions[0].question)

    server = start_server(args.out, args.port, data_dir)
    base = f"http://127.0.0.1:{args.port}/v1"
    try:
        start = threading.Barrier(len(requests) + len(bad))

        def ask(item: tuple[Any, int]) -> dict[str, Any]:
            client = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=600)
            q, seed = item
            start.wait()
            began = time.monotonic()
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="symbolic-moe", messages=[{"role": "user", "content": q.question}], seed=seed
                )
                reply = raw.parse()
                return {
                    "status": raw.status_code,
                    "seconds": time.monotonic() - began,
                    "text": reply.choices[0].message.content,
                    "experts": reply.model_extra["symbolic_moe"]["experts"],
                    "usage": reply.usage.total_tokens,
                    "right": reply.model_extra["symbolic_moe"]["answer"] == q.answer,
                }
            except openai.APIStatusError as exc:
                return {"status": exc.status_code, "seconds": time.monotonic() - began, "error": str(exc)}
            except openai.APIConnectionError as exc:
                return {"status": None, "seconds": time.monotonic() - began, "error": str(exc)}

        def attack(content: bytes) -> dict[str, Any]:
            start.wait()
            try:
                reply = httpx.post(
                    f"{base}/chat/completions",
                    content=content,
                    headers={"content-type": "application/json"},
                    timeout=600,
                )
            except httpx.TransportError as exc:
                return {"status": None, "error": repr(exc)}
            message = reply.json().get("error", {}).get("message") if reply.status_code >= 400 else None
            return {"status": reply.status_code, "message": message}

        # one request first, so the timed seconds do not include loading the keyword-mapping model
        warm = time.monotonic()
        openai.OpenAI(base_url=base, api_key="none", timeout=600).chat.completions.create(
            model="symbolic-moe", messages=[{"role": "user", "content": test[1].question}]
        )
        warm_up = time.monotonic() - warm
        began = time.monotonic()
        with ThreadPoolExecutor(len(requests) + len(bad)) as pool:
            good_futures = [pool.submit(ask, r) for r in requests]
            bad_futures = {name: pool.submit(attack, body) for name, body in bad.items()}
            good = [f.result() for f in good_futures]
            attacks = {name: f.result() for name, f in bad_futures.items()}
        wall = time.monotonic() - began

        # the same requests one at a time: the answers they get alone
        def alone(item: tuple[Any, int]) -> dict[str, Any]:
            q, seed = item
            client = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=600)
            reply = client.chat.completions.create(
                model="symbolic-moe", messages=[{"role": "user", "content": q.question}], seed=seed
            )
            return {
                "text": reply.choices[0].message.content,
                "experts": reply.model_extra["symbolic_moe"]["experts"],
                "usage": reply.usage.total_tokens,
            }

        references = [alone(r) for r in requests]
    finally:
        server.terminate()
        server.wait(timeout=60)

    def correct(got: dict[str, Any], ref: dict[str, Any]) -> bool:
        return got["status"] == 200 and all(got[k] == ref[k] for k in ("text", "experts", "usage"))

    statuses = [g["status"] for g in good] + [a["status"] for a in attacks.values()]
    clear_4xx = [a for a in attacks.values() if a["status"] and 400 <= a["status"] < 500 and a["message"]]
    latencies = sorted(g["seconds"] for g in good)
    twins = good[-2:], references[-2:]
    result = {
        "command": "python benchmarks/bench_server_load.py " + " ".join(sys.argv[1:]),
        "pool": "replay-mmlu-pro-small16, skills from category, majority vote",
        "machine": machine(),
        "clients": len(requests),
        "hostile": len(bad),
        "warm_up_seconds": round(warm_up, 2),
        "wall_seconds": round(wall, 2),
        "latency_seconds": {
            "p50": round(statistics.median(latencies), 3),
            "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
            "max": round(latencies[-1], 3),
        },
        "correct_200": sum(correct(g, r) for g, r in zip(good, references, strict=True)),
        "status_200": statuses.count(200),
        "clear_4xx": len(clear_4xx),
        "status_4xx": sum(1 for s in statuses if s and 400 <= s < 500),
        "status_5xx": sum(1 for s in statuses if s and s >= 500),
        "transport_errors": statuses.count(None),
        "gold_accuracy": round(sum(g.get("right", False) for g in good) / len(good), 4),
        "hostile_replies": attacks,
        "same_question_two_seeds": {
            "question_id": questions[-1].id,
            "experts_in_batch": [g.get("experts") for g in twins[0]],
            "experts_alone": [r["experts"] for r in twins[1]],
            "match_alone": [correct(g, r) for g, r in zip(*twins, strict=True)],
        },
        "targets": {"correct_200": len(requests), "clear_4xx": len(bad), "status_5xx": 0},
    }
    result["targets_met"] = (
        result["correct_200"] == len(requests) and result["clear_4xx"] == len(bad) and result["status_5xx"] == 0
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "server_load.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "hostile_replies"}, indent=1))


if __name__ == "__main__":
    main()
