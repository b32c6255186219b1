"""The transformers engine against the llama_cpp engine on SmolLM2-135M-Instruct (the packaged
GGUF; transformers dequantises it to float32), CPU, greedy and seeded sampling.

For each engine: load seconds, end-to-end tokens/s of N short open questions decoded as one batch
and one at a time (wall time of generate(), prefill included), how many batched texts equal the
one-at-a-time texts (greedy, and seeded sampling at temperature 0.7), and peak RSS. For the
transformers engine also the white-box check: max |W_V h - logits| over the prompts.

    .venv/bin/python benchmarks/bench_transformers_engine.py [--n 8] [--max-tokens 64] [--threads 1]

Writes benchmarks/results/transformers_engine.json and prints a table.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from bench_common import machine, peak_rss_mib, table, wait_for_quiet, write_result
from bench_llama_batch import make_requests

from symbolic_moe.engines import create_engine
from symbolic_moe.types import ChatRequest, GenerationSettings

MODEL = "embedded:smollm2"


def timed(engine: Any, requests: list[ChatRequest], settings: GenerationSettings) -> tuple[list[Any], float]:
    start = time.perf_counter()
    out = engine.generate(requests, settings)
    return out, time.perf_counter() - start


def measure(kind: str, options: dict[str, Any], requests: list[ChatRequest], max_tokens: int) -> dict[str, Any]:
    engine = create_engine(kind, MODEL, options)
    start = time.perf_counter()
    engine.load()
    result: dict[str, Any] = {"engine": kind, "load_s": round(time.perf_counter() - start, 2)}
    for label, settings in (
        ("greedy", GenerationSettings(temperature=0.0, max_tokens=max_tokens)),
        ("sampled", GenerationSettings(temperature=0.7, max_tokens=max_tokens, seed=11)),
    ):
        batched, batch_s = timed(engine, requests, settings)
        singles, single_s = [], 0.0
        for request in requests:
            [out], seconds = timed(engine, [request], settings)
            singles.append(out)
            single_s += seconds
        tokens = sum(c.completion_tokens for c in batched)
        result[label] = {
            "batched_tok_s": round(tokens / batch_s, 2),
            "single_tok_s": round(sum(c.completion_tokens for c in singles) / single_s, 2),
            "completion_tokens": tokens,
            "batched_equals_single": sum(a.text == b.text for a, b in zip(batched, singles, strict=True)),
        }
    if kind == "transformers":
        head = engine.head()
        gaps = []
        for request in requests:
            tokens = engine.request_tokens(request)
            gaps.append(float(np.abs(head @ engine.hidden_states(tokens) - engine.logits(tokens)).max()))
        result["head_logits_max_abs_diff"] = max(gaps)
    engine.unload()
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    requests = make_requests("short", a.n)
    state = wait_for_quiet(max_load=1.5, timeout=120)
    runs = [
        measure("transformers", {"n_threads": a.threads, "batch_size": a.n}, requests, a.max_tokens),
        measure("llama_cpp", {"n_threads": a.threads, "batch_size": a.n}, requests, a.max_tokens),
    ]
    data = {
        "machine": machine(a.threads),
        "start": state,
        "end_loadavg": machine()["loadavg"],
        "n": a.n,
        "max_tokens": a.max_tokens,
        "runs": runs,
    }
    path = write_result("transformers_engine", data)
    rows = [
        [
            r["engine"],
            r["load_s"],
            r["greedy"]["single_tok_s"],
            r["greedy"]["batched_tok_s"],
            f"{r['greedy']['batched_equals_single']}/{a.n}",
            f"{r['sampled']['batched_equals_single']}/{a.n}",
            r["peak_rss_mib"],
        ]
        for r in runs
    ]
    heads = ["engine", "load s", "1-seq tok/s", "batch tok/s", "greedy same", "sampled same", "peak MiB"]
    print(table(heads, rows))
    print(f"start {state}; written {path}")


if __name__ == "__main__":
    main()
