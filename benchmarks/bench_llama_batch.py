"""Batched multi-sequence decoding against one-at-a-time decoding in the llama_cpp engine.

16 requests (short open questions, or with --prompts cot the pipeline's chain-of-thought prompt
on the first MMLU-Pro test questions), greedy, max_tokens 128, for each embedded model. End-to-end
tokens/s counts the whole generate() wall time, prefill included. Prefill tok/s is measured apart
with max_tokens=1. Also checks that both paths give the same texts (they must, under greedy).

    .venv/bin/python benchmarks/bench_llama_batch.py [--n 16] [--max-tokens 128] [--threads 2] \\
        [--prompts short|cot]

Writes benchmarks/results/llama_batch.json (llama_batch_cot.json with --prompts cot) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from symbolic_moe.config import default_data_dir
from symbolic_moe.data import load_split
from symbolic_moe.engines.llama_cpp import LlamaCppEngine
from symbolic_moe.prompts import cot_request
from symbolic_moe.types import ChatRequest, GenerationSettings

MODELS = ["embedded:smollm2", "embedded:gemma3-270m"]
# Short open questions: decoding dominates, which is where batching pays.
SHORT = [
    "Explain why the sky is blue.",
    "Describe how a bill becomes a law in the United States.",
    "What causes the seasons on Earth?",
    "Explain photosynthesis step by step.",
    "Why do we have leap years?",
    "Describe the water cycle.",
    "How does a vaccine train the immune system?",
    "Explain the difference between weather and climate.",
    "What is inflation and what causes it?",
    "How do airplanes stay in the air?",
    "Explain how a refrigerator works.",
    "Why is the ocean salty?",
    "Describe the causes of the French Revolution.",
    "How does compound interest work?",
    "Explain what DNA does in a cell.",
    "Why do leaves change color in autumn?",
]


def make_requests(kind: str, n: int) -> list[ChatRequest]:
    if kind == "short":
        return [ChatRequest.user(SHORT[i % len(SHORT)], question_id=f"short-{i}") for i in range(n)]
    # The pipeline's own chain-of-thought prompt on MMLU-Pro questions: long prompts, so
    # prefill (the same work in both modes) takes a large share of the time.
    return [cot_request(q) for q in load_split("benchmarks/mmlu_pro", "test", default_data_dir(), limit=n)]


def timed(engine: LlamaCppEngine, batches: list[list[ChatRequest]], settings: GenerationSettings) -> dict[str, Any]:
    start = time.perf_counter()
    outs = [c for batch in batches for c in engine.generate(batch, settings)]
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "prompt_tokens": sum(c.prompt_tokens for c in outs),
        "completion_tokens": sum(c.completion_tokens for c in outs),
        "texts": [c.text for c in outs],
    }


def bench_model(
    model: str, requests: list[ChatRequest], max_tokens: int, threads: int, options: dict[str, Any]
) -> dict[str, Any]:
    n = len(requests)
    engine = LlamaCppEngine(model=model, options={"data_dir": None, "n_threads": threads, "n_seq_max": n, **options})
    start = time.perf_counter()
    engine.load()
    load = time.perf_counter() - start
    one_each = [[r] for r in requests]
    # Warm both paths once (first decodes pay page faults) and size the context for the batch.
    engine.generate(requests[:2], GenerationSettings(temperature=0.0, max_tokens=4))
    row: dict[str, Any] = {"model": model, "options": options, "load_seconds": load, "n": n, "max_tokens": max_tokens}
    for mode, batches in (("batched", [requests]), ("sequential", one_each)):
        prefill = timed(engine, batches, GenerationSettings(temperature=0.0, max_tokens=1))
        full = timed(engine, batches, GenerationSettings(temperature=0.0, max_tokens=max_tokens))
        row[mode] = {
            "seconds": full["seconds"],
            "prompt_tokens": full["prompt_tokens"],
            "completion_tokens": full["completion_tokens"],
            "tokens_per_second": full["completion_tokens"] / full["seconds"],
            "prefill_tokens_per_second": prefill["prompt_tokens"] / prefill["seconds"],
        }
        row[f"_{mode}_texts"] = full["texts"]
    row["speedup"] = row["batched"]["tokens_per_second"] / row["sequential"]["tokens_per_second"]
    pairs = zip(row.pop("_batched_texts"), row.pop("_sequential_texts"), strict=True)
    row["same_texts"] = sum(x == y for x, y in pairs)
    engine.unload()
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--models", nargs="*", default=MODELS)
    p.add_argument("--prompts", choices=["short", "cot"], default="short")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine option for every model (JSON value), e.g. kv_unified=true or requantize='\"q4_0\"'",
    )
    p.add_argument("--name", help="result name (default llama_batch, llama_batch_cot with --prompts cot)")
    a = p.parse_args()
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in a.option)}
    requests = make_requests(a.prompts, a.n)
    load_before = os.getloadavg()
    rows = [bench_model(m, requests, a.max_tokens, a.threads, options) for m in a.models]
    result = {
        "command": "python benchmarks/bench_llama_batch.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "threads": a.threads,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "rows": rows,
    }
    name = a.name or ("llama_batch" if a.prompts == "short" else f"llama_batch_{a.prompts}")
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"prompts={a.prompts} threads={a.threads} loadavg before={load_before[0]:.1f} after={os.getloadavg()[0]:.1f}")
    print(
        f"{'model':22s} {'seq tok/s':>9s} {'batch tok/s':>11s} {'speedup':>7s} "
        f"{'seq prefill':>11s} {'batch prefill':>13s} {'same':>5s}"
    )
    for r in rows:
        s, b = r["sequential"], r["batched"]
        print(
            f"{r['model']:22s} {s['tokens_per_second']:9.1f} {b['tokens_per_second']:11.1f} {r['speedup']:7.2f} "
            f"{s['prefill_tokens_per_second']:11.1f} {b['prefill_tokens_per_second']:13.1f} "
            f"{r['same_texts']:>3d}/{r['n']}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
