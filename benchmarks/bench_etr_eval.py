"""ETR on MMLU-Expert (routing + answer accuracy, ETR-Static vs ETR-Dynamic / plug-in experts).
The MMLU-Pro replay router is benchmarks/bench_etr_router.py.

    .venv/bin/python benchmarks/bench_etr_eval.py [--train 20 --eval 10 --loss 0 --profile 4]
    # routing only (no expert answers: hidden states are all it needs), 5 draws of the 4 + 2 groups
    .venv/bin/python benchmarks/bench_etr_eval.py --train 20 --eval 10 --loss 0 --lr 5e-3 --epochs 20 \
        --routing-only --dynamic-splits 5 --tag dynamic
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from symbolic_moe.app.etr_mmlu_expert import mmlu_expert
from symbolic_moe.config import default_data_dir
from symbolic_moe.etr.train import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=50, help="training-half questions per domain")
    p.add_argument("--eval", type=int, default=30, help="held-out questions per domain")
    p.add_argument("--loss", type=int, default=10, help="questions per domain for loss-based query sets")
    p.add_argument("--profile", type=int, default=10, help="questions per domain for Symbolic-MoE profiles")
    p.add_argument("--work", type=Path, default=Path("runs/etr-bench"), help="hidden states and answers cache")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (1 is faster on a busy machine)")
    p.add_argument("--lr", type=float, default=5e-4, help="expert-token learning rate (paper: 5e-4)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs (paper: 5)")
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument("--routing-only", action="store_true", help="ETR routing accuracy only (no answers)")
    p.add_argument("--dynamic-splits", type=int, default=1, help="seeded draws of the 4 + 2 expert groups")
    a = p.parse_args()
    data, out = default_data_dir(), Path(__file__).parent / "results"
    config = TrainConfig(lr=a.lr, epochs=a.epochs)
    tag = f"_{a.tag}" if a.tag else ""
    a.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    res = mmlu_expert(
        data,
        a.work,
        a.train,
        a.eval,
        a.loss,
        profile_per_domain=a.profile,
        threads=a.threads,
        config=config,
        routing_only=a.routing_only,
        dynamic_splits=a.dynamic_splits,
    )
    res["seconds"] = time.perf_counter() - start
    res["command"] = "benchmarks/bench_etr_eval.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    (out / f"etr_mmlu_expert{tag}.json").write_text(json.dumps(res, indent=1))
    for name, m in res["methods"].items():
        answer = m.get("answer_accuracy")
        print(f"{name:24s} routing={m['routing_accuracy']} answer={answer}")
    if "dynamic_mean_over_splits" in res:
        print("dynamic, mean over splits:", res["dynamic_mean_over_splits"])


if __name__ == "__main__":
    main()
