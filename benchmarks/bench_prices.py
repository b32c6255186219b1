"""What each single model of the priced pools scores and costs on the test split (issue 18): the
price tables put to work. For every pool model of each config: test accuracy by this project's
grader (95% bootstrap interval over questions), USD per question and per 1,000 questions (recorded
costs for RouterBench, configs/prices/mmlu-pro.toml for MMLU-Pro, on tokens estimated by the
replay engine), mean prompt and completion tokens per call. Writes benchmarks/results/prices.json.

    python benchmarks/bench_prices.py [--out runs/bench-prices]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, machine, write_result  # noqa: E402

from symbolic_moe.config import load_config  # noqa: E402
from symbolic_moe.methods import run_method  # noqa: E402
from symbolic_moe.run import Run  # noqa: E402
from symbolic_moe.stats import bootstrap_ci  # noqa: E402

CONFIGS = {"routerbench_arc": "configs/replay-routerbench-arc.toml", "mmlu_pro_all29": "configs/replay-mmlu-pro.toml"}


def pool_rows(config: str, out: Path) -> list[dict[str, Any]]:
    """One row per pool model: its zero-shot answers on the test split, graded and costed."""
    cfg = load_config(ROOT / config, ["scheduler.progress=false", f"store={out / 'store.sqlite'}"], out)
    run = Run(cfg)
    rows = []
    for model, spec in cfg.pool.items():
        result = run_method(f"single:{model}", run, seed=0)
        correct = np.array([[p.correct for p in result.predictions]], dtype=float)
        cost = result.cost_usd
        rows.append(
            {
                "model": model,
                "n": result.n,
                "accuracy": result.accuracy,
                "ci95": bootstrap_ci(correct),
                "usd_per_question": None if cost is None else cost / result.n,
                "prompt_tokens_per_call": result.prompt_tokens / result.calls,
                "completion_tokens_per_call": result.completion_tokens / result.calls,
                "price": None if spec.price is None else spec.price.model_dump(exclude_none=True),
            }
        )
    return sorted(rows, key=lambda r: -r["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-prices", help="run directory (store, artifacts)")
    args = parser.parse_args()
    pools = {name: pool_rows(config, Path(args.out) / name) for name, config in CONFIGS.items()}
    path = write_result("prices", {"machine": machine(), "configs": CONFIGS, "pools": pools})
    for name, rows in pools.items():
        print(f"\n{name} ({CONFIGS[name]}), test split")
        print("| model | accuracy % | 95% interval | USD per 1,000 questions | prompt / completion tokens per call |")
        print("|---|---:|---:|---:|---:|")
        for r in rows:
            per_k = "unpriced" if r["usd_per_question"] is None else f"{1000 * r['usd_per_question']:.3f}"
            low, high = r["ci95"]
            print(
                f"| {r['model']} | {100 * r['accuracy']:.1f} | {100 * low:.1f}-{100 * high:.1f} | {per_k} "
                f"| {r['prompt_tokens_per_call']:.0f} / {r['completion_tokens_per_call']:.0f} |"
            )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
