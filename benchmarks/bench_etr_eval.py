"""ETR evaluations for benchmarks/ETR.md: MMLU-Expert (routing + answer accuracy, Static vs
Dynamic) and the MMLU-Pro small16 replay router.

    .venv/bin/python benchmarks/bench_etr_eval.py [--train 20 --eval 10 --loss 0 --profile 4 \
        --test-per-category 5 --val-per-category 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from symbolic_moe.config import default_data_dir
from symbolic_moe.etr.evaluate import mmlu_expert
from symbolic_moe.etr.replay_pool import replay_router
from symbolic_moe.etr.train import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=50, help="training-half questions per domain")
    p.add_argument("--eval", type=int, default=30, help="held-out questions per domain")
    p.add_argument("--loss", type=int, default=10, help="questions per domain for loss-based query sets")
    p.add_argument("--profile", type=int, default=10, help="questions per domain for Symbolic-MoE profiles")
    p.add_argument("--test-per-category", type=int, default=20)
    p.add_argument("--val-per-category", type=int, default=None)
    p.add_argument("--work", type=Path, default=Path("runs/etr-bench"))
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (1 is faster on a busy machine)")
    p.add_argument("--lr", type=float, default=5e-4, help="expert-token learning rate (paper: 5e-4)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs (paper: 5)")
    p.add_argument("--tag", default="", help="suffix of the results file names")
    p.add_argument("--only", choices=["mmlu_expert", "replay"], default=None)
    a = p.parse_args()
    data, out = default_data_dir(), Path(__file__).parent / "results"
    config = TrainConfig(lr=a.lr, epochs=a.epochs)
    tag = f"_{a.tag}" if a.tag else ""
    a.work.mkdir(parents=True, exist_ok=True)
    if a.only in (None, "mmlu_expert"):
        start = time.perf_counter()
        res = mmlu_expert(
            data, a.work, a.train, a.eval, a.loss, profile_per_domain=a.profile, threads=a.threads, config=config
        )
        res["seconds"] = time.perf_counter() - start
        (out / f"etr_mmlu_expert{tag}.json").write_text(json.dumps(res, indent=1))
        for name, m in res["methods"].items():
            print(f"{name:24s} routing={m['routing_accuracy']} answer={m['answer_accuracy']:.3f}")
    if a.only in (None, "replay"):
        start = time.perf_counter()
        res = replay_router(
            data,
            a.work,
            test_per_category=a.test_per_category,
            validation_per_category=a.val_per_category,
            threads=a.threads,
            config=config,
        )
        res["seconds"] = time.perf_counter() - start
        (out / f"etr_replay_small16{tag}.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res["methods"], indent=1), res["setup"]["meta_validation_accuracy"])


if __name__ == "__main__":
    main()
