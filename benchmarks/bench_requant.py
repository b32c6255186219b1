"""Would re-quantising an embedded model to a format with faster CPU kernels pay? (issue 5, g)

    .venv/bin/python benchmarks/bench_requant.py [--model smollm2] [--types q4_0 q8_0] [--n 16] \\
        [--max-tokens 128] [--threads 2]

Re-quantises the shipped GGUF (llama.cpp's `llama_model_quantize`, allow_requantize) into a
temporary directory, then for the original and each re-quantised file: batched prefill tok/s
(the pipeline's chain-of-thought prompts on the first --n demo test questions, max_tokens 1),
batched end-to-end tokens/s (greedy, --max-tokens), and agreement with the original: identical
texts, identical extracted answers, and demo accuracy. A faster format is only worth it if the
answers stay (nearly) the same. Writes benchmarks/results/requant_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, table, under_load, wait_for_quiet, write_result  # noqa: E402

from symbolic_moe.data import load_split  # noqa: E402
from symbolic_moe.engines.embedded import embedded_gguf  # noqa: E402
from symbolic_moe.engines.llama_cpp import LlamaCppEngine  # noqa: E402
from symbolic_moe.engines.requantize import requantized_gguf  # noqa: E402
from symbolic_moe.grading import extract_answer, is_correct  # noqa: E402
from symbolic_moe.prompts import cot_request  # noqa: E402
from symbolic_moe.types import GenerationSettings  # noqa: E402

TYPES = ["q4_0", "q4_0_pure", "q8_0", "q5_0", "q4_k_m"]  # _pure: every tensor, embeddings too


def requantize(source: Path, kind: str, out_dir: Path) -> tuple[Path, float]:
    start = time.perf_counter()
    out = requantized_gguf(source, kind, out_dir)
    return out, time.perf_counter() - start


def measure(path: str, questions: list, a: argparse.Namespace) -> dict[str, Any]:
    requests = [cot_request(q) for q in questions]
    options = {"n_threads": a.threads, "n_seq_max": len(requests), **a.options}
    engine = LlamaCppEngine(model=path, options=options)
    engine.load()
    engine.generate(requests[:2], GenerationSettings(temperature=0.0, max_tokens=2))  # warm up, size context
    start = time.perf_counter()
    pre = engine.generate(requests, GenerationSettings(temperature=0.0, max_tokens=1))
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    full = engine.generate(requests, GenerationSettings(temperature=0.0, max_tokens=a.max_tokens))
    seconds = time.perf_counter() - start
    engine.unload()
    prompt_tokens = sum(c.prompt_tokens for c in pre)
    completion_tokens = sum(c.completion_tokens for c in full)
    return {
        "file": path,
        "size_mb": Path(path).stat().st_size / 1e6,
        "prefill_tokens_per_second": prompt_tokens / prefill,
        "end_to_end_seconds": seconds,
        "completion_tokens_per_second": completion_tokens / seconds,
        "texts": [c.text for c in full],
        "answers": [extract_answer(c.text, q) for c, q in zip(full, questions, strict=True)],
        "correct": sum(is_correct(c.text, q) for c, q in zip(full, questions, strict=True)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2", choices=["smollm2", "gemma3-270m"])
    p.add_argument("--types", nargs="*", default=["q4_0", "q8_0"], choices=TYPES)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-load", type=float, default=1.5)
    p.add_argument("--wait", type=float, default=1800)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="engine option (JSON value)")
    a = p.parse_args()
    a.options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in a.option)}
    questions = load_split("demo", "test", None, limit=a.n)
    source = embedded_gguf(a.model)
    with tempfile.TemporaryDirectory() as tmp:
        files = {"original": (str(source), 0.0)}
        for kind in a.types:
            out, secs = requantize(source, kind, Path(tmp))
            files[kind] = (str(out), secs)
        load = wait_for_quiet(a.max_load, a.wait)
        rows = {}
        for kind, (path, secs) in files.items():
            rows[kind] = {"requantize_seconds": secs, **measure(path, questions, a)}
    base = rows["original"]
    for row in rows.values():
        row["same_texts"] = sum(x == y for x, y in zip(row["texts"], base["texts"], strict=True))
        row["same_answers"] = sum(x == y for x, y in zip(row["answers"], base["answers"], strict=True))
        row["prefill_speedup"] = row["prefill_tokens_per_second"] / base["prefill_tokens_per_second"]
        row["end_to_end_speedup"] = base["end_to_end_seconds"] / row["end_to_end_seconds"]
    for row in rows.values():
        del row["texts"]
    result = {
        "command": "python benchmarks/bench_requant.py " + " ".join(sys.argv[1:]),
        "machine": machine(a.threads),
        "machine_before": load,
        "under_load": under_load(load),
        "loadavg_after": machine()["loadavg"],
        "model": a.model,
        "n": a.n,
        "max_tokens": a.max_tokens,
        "rows": rows,
    }
    path = write_result(f"requant_{a.model}", result)
    print(
        table(
            ["format", "MB", "prefill tok/s", "x", "e2e tok/s", "e2e x", "same texts", "same answers", "correct"],
            [
                [
                    k,
                    r["size_mb"],
                    r["prefill_tokens_per_second"],
                    r["prefill_speedup"],
                    r["completion_tokens_per_second"],
                    r["end_to_end_speedup"],
                    f"{r['same_texts']}/{a.n}",
                    f"{r['same_answers']}/{a.n}",
                    r["correct"],
                ]
                for k, r in rows.items()
            ],
        )
    )
    print(f"load before: {load}; wrote {path}")


if __name__ == "__main__":
    main()
