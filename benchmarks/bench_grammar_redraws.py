"""Issue 16: what a grammar-constrained keyword answer spends on redraws, with and without the
redraw shortcuts of engines/llama_sequences.py (remembered grammar states, likely-token shortlists).

    .venv/bin/python benchmarks/bench_grammar_redraws.py            # both keyword LLMs

For each keyword LLM, the structured keyword samples (5 each) of `--questions` validation
questions, generated straight through the engine (no store, so every call really decodes), once
with the shortcuts on and once with both off, in alternating order over `--rounds` rounds. The
sampler's methods are wrapped to count draws, rejected draws (redraws), whole-vocabulary grammar
checks and the seconds spent in redraws; wall seconds per call. Writes
benchmarks/results/grammar_redraws.json.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench_common import RESULTS, ROOT, machine

from symbolic_moe.config import load_config
from symbolic_moe.engines import llama_sequences
from symbolic_moe.engines.llama_sequences import SequenceSampler
from symbolic_moe.preprocess.keywords import keyword_settings
from symbolic_moe.prompts import keyword_request
from symbolic_moe.run import Run
from symbolic_moe.types import GenerationSettings

CONFIG = ROOT / "configs/replay-mmlu-pro-small16.toml"
COUNTS = {"draws": 0, "redraws": 0, "whole_vocabulary_checks": 0, "redraw_seconds": 0.0}


def count_sampler_work() -> None:
    """Wrap SequenceSampler's methods so that COUNTS sees every draw of a grammar sequence."""
    sample, constrained, masked = SequenceSampler.sample, SequenceSampler._constrained, SequenceSampler._masked

    def counted_sample(self: SequenceSampler, ctx: Any, index: int) -> int:
        COUNTS["draws"] += self.grammar is not None
        return sample(self, ctx, index)

    def counted_constrained(self: SequenceSampler, ctx: Any, index: int) -> int:
        start = time.perf_counter()
        token = constrained(self, ctx, index)
        COUNTS["redraws"] += 1
        COUNTS["redraw_seconds"] += time.perf_counter() - start
        return token

    def counted_masked(self: SequenceSampler, ids: Any, logits: Any) -> Any:
        COUNTS["whole_vocabulary_checks"] += len(ids) == self.n_vocab
        return masked(self, ids, logits)

    SequenceSampler.sample = counted_sample  # type: ignore[method-assign]
    SequenceSampler._constrained = counted_constrained  # type: ignore[method-assign]
    SequenceSampler._masked = counted_masked  # type: ignore[method-assign]


def measure(engine: Any, requests: list[Any], settings: GenerationSettings, shortcuts: bool) -> dict[str, Any]:
    defaults = llama_sequences.SHORTLISTS, llama_sequences.REMEMBERED
    if not shortcuts:
        llama_sequences.SHORTLISTS, llama_sequences.REMEMBERED = (), 0
    COUNTS.update(draws=0, redraws=0, whole_vocabulary_checks=0, redraw_seconds=0.0)
    start = time.perf_counter()
    try:
        texts = [c.text for c in engine.generate(requests, settings)]
    finally:
        llama_sequences.SHORTLISTS, llama_sequences.REMEMBERED = defaults
    return {**COUNTS, "wall_seconds": time.perf_counter() - start, "answers": len(texts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2", "gemma3"])
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    count_sampler_work()
    results: dict[str, Any] = {"machine": machine(), "questions": args.questions, "rounds": args.rounds}
    for model in args.models:
        run = Run(load_config(CONFIG, [f"keywords.model={model}", "scheduler.progress=false"]))
        cfg = run.config.keywords
        questions = run.validation[3 :: len(run.validation) // args.questions][: args.questions]
        requests = [keyword_request(q, s, structured=True) for q in questions for s in range(cfg.samples)]
        settings = keyword_settings(run.scheduler.pool.settings(model), cfg)
        engine = run.scheduler.pool.engine(model)
        engine.generate(requests[:1], settings)  # load the model outside the measurement
        rows = []
        for round_ in range(args.rounds):
            for shortcuts in (True, False) if round_ % 2 == 0 else (False, True):
                rows.append({"round": round_, "shortcuts": shortcuts, **measure(engine, requests, settings, shortcuts)})
                print(model, json.dumps(rows[-1]), flush=True)
        results[model] = rows
    (RESULTS / "grammar_redraws.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
