"""Prompt (prefix) sharing in the llama_cpp engine on the keyword step (issue 5, g).

    .venv/bin/python benchmarks/bench_prefix_share.py [--questions 30] [--samples 5] [--threads 2]

The keyword step asks the keyword LLM (SmolLM2) for --samples samples of the SAME prompt per
question (temperature 0.7, max_tokens 64, seeds offset by the sample index). With
`share_prompts` the engine prefills each prompt once and copies its KV cache to the other
samples' sequences; without it every sample prefills the prompt again. Both runs use the same
batch (16 sequences) and seeds; the texts must be identical. Writes
benchmarks/results/prefix_share.json and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import CpuMeter, machine, table, under_load, wait_for_quiet, write_result  # noqa: E402

from symbolic_moe.data import load_split  # noqa: E402
from symbolic_moe.engines.llama_cpp import LlamaCppEngine  # noqa: E402
from symbolic_moe.prompts import keyword_request  # noqa: E402
from symbolic_moe.types import GenerationSettings  # noqa: E402


def measure(share: bool, requests: list, a: argparse.Namespace) -> dict[str, Any]:
    engine = LlamaCppEngine(model=f"embedded:{a.model}", options={"n_threads": a.threads, "share_prompts": share})
    engine.load()
    state = wait_for_quiet(a.max_load, a.wait)
    settings = GenerationSettings(temperature=0.7, top_p=1.0, max_tokens=a.max_tokens, seed=0)
    meter = CpuMeter()
    start = time.perf_counter()
    out = engine.generate(requests, settings)
    seconds = time.perf_counter() - start
    cpu = meter.stop()
    assert engine.llm is not None
    copied = engine.llm.shared_prompt_tokens
    engine.unload()
    return {
        "share_prompts": share,
        "seconds": seconds,
        "prompt_tokens": sum(c.prompt_tokens for c in out),
        "prompt_tokens_copied": copied,
        "completion_tokens": sum(c.completion_tokens for c in out),
        "machine_before": state,
        "under_load": under_load(state),
        "cpu_during": cpu,
        "texts": [c.text for c in out],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2", choices=["smollm2", "gemma3-270m"])
    p.add_argument("--questions", type=int, default=30)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-load", type=float, default=1.5)
    p.add_argument("--wait", type=float, default=1800)
    a = p.parse_args()
    questions = load_split("demo", "test", None, limit=a.questions)
    requests = [keyword_request(q, s) for q in questions for s in range(a.samples)]
    rows = [measure(False, requests, a), measure(True, requests, a)]
    same = sum(x == y for x, y in zip(rows[0].pop("texts"), rows[1].pop("texts"), strict=True))
    result = {
        "command": "python benchmarks/bench_prefix_share.py " + " ".join(sys.argv[1:]),
        "machine": machine(a.threads),
        "model": a.model,
        "requests": len(requests),
        "rows": rows,
        "same_texts": same,
        "speedup": rows[0]["seconds"] / rows[1]["seconds"],
    }
    path = write_result(f"prefix_share_{a.model}" if a.model != "smollm2" else "prefix_share", result)
    print(
        table(
            ["share", "seconds", "prompt tok", "copied", "completion tok", "others"],
            [
                [
                    r["share_prompts"],
                    r["seconds"],
                    r["prompt_tokens"],
                    r["prompt_tokens_copied"],
                    r["completion_tokens"],
                    r["cpu_during"]["others_normal_cores"],
                ]
                for r in rows
            ],
        )
    )
    print(f"speedup {result['speedup']:.2f}x, same texts {same}/{len(requests)}; wrote {path}")


if __name__ == "__main__":
    main()
