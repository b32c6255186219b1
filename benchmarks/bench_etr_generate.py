"""ETR end to end (Algorithm 1) on MMLU-Expert held-out questions: SmolLM2 decodes greedily over
[W_V; W_E] (domain tokens trained on the training half), switches to the SmolLM2 domain expert
when an expert token wins, and the completion is graded. Records where the switch happened.

    .venv/bin/python benchmarks/bench_etr_generate.py [--per-domain 3 --max-tokens 96 --threads 1]

Tokens use the cross-validated lr 5e-3, 20 epochs (benchmarks/ETR.md).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from symbolic_moe.app.etr_mmlu_expert import DOMAINS, expert_suffix
from symbolic_moe.config import default_data_dir
from symbolic_moe.etr.api import labelled_query_sets, train_plugins
from symbolic_moe.etr.data import query_messages, read_questions, split_by_group, take_per_group
from symbolic_moe.etr.routing import PromptExpert, etr_generate
from symbolic_moe.etr.train import TrainConfig
from symbolic_moe.etr.whitebox import MetaLM
from symbolic_moe.grading import is_correct
from symbolic_moe.types import GenerationSettings


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--per-domain", type=int, default=3)
    p.add_argument("--train", type=int, default=20)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--work", type=Path, default=Path("runs/etr-bench"))
    a = p.parse_args()
    questions = read_questions(default_data_dir() / "mmlu_expert" / "test.jsonl")
    train_all, held_all = split_by_group(questions, "domain", 0)
    train = take_per_group(train_all, "domain", a.train)
    held = take_per_group(held_all, "domain", a.per_domain)
    lm = MetaLM(n_threads=a.threads)
    head = train_plugins(
        train,
        labelled_query_sets(train, "domain"),
        a.work / "plugins_generate",
        config=TrainConfig(lr=a.lr, epochs=a.epochs),
        cache_dir=a.work / "hidden",
    )
    backends = {d: PromptExpert(lm, user_suffix=expert_suffix(d)) for d in DOMAINS}
    settings = GenerationSettings(temperature=0.0, max_tokens=a.max_tokens)
    rows = []
    for q in held:
        start = time.perf_counter()
        out = etr_generate(lm, head, backends, query_messages(q), settings)
        rows.append(
            {
                "id": q.id,
                "domain": q.field("domain"),
                "expert": out.expert,
                "switched_at": out.switched_at,
                "correct": is_correct(out.completion.text, q),
                "seconds": time.perf_counter() - start,
                "completion_tokens": out.completion.completion_tokens,
                "text": out.completion.text,
            }
        )
        print(q.id, out.expert, out.switched_at, rows[-1]["correct"], flush=True)
    result = {
        "questions": len(rows),
        "max_tokens": a.max_tokens,
        "decoding": "greedy",
        "switched": sum(r["expert"] is not None for r in rows),
        "switch_positions": dict(Counter(str(r["switched_at"]) for r in rows)),
        "routing_accuracy": sum(r["expert"] == r["domain"] for r in rows) / len(rows),
        "answer_accuracy": sum(r["correct"] for r in rows) / len(rows),
        "seconds_per_question": sum(r["seconds"] for r in rows) / len(rows),
        "rows": rows,
    }
    (Path(__file__).parent / "results" / "etr_generate.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
