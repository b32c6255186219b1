"""ETR's replay router in the router table (issue 10 item 7a): fitted on the validation split only,
scored on the public test split, seeds 0,1,2, both replay pools.

    .venv/bin/python benchmarks/bench_etr_router.py [--pools small16,all29] [--stride 1] [--threads 1]

1. Cross-validation inside the validation split (`--folds` interleaved folds, seed 0) over the
   router's settings (query-set cap, lr, epochs, batch); the best k = 1 setting
   is used below.
2. On the test split (every `--stride`-th question): `etr` (k = 1, model switch) and `etr_vote`
   (top-3 by expert-token probability, weighted vote) through `smoe`'s own evaluate(), with the
   chosen settings and with the settings used before this fix (cap of 100 queries per expert),
   plus task_best / top_k_vote (k = 3) / oracle on the same questions.
Hidden states of SmolLM2 are cached in $SMOE_CACHE_DIR/etr or ~/.cache/symbolic-moe/etr.
Writes benchmarks/results/router_etr_<pool>.json: {"command", "rows": [{method, accuracy_mean,
accuracy_std, calls_per_question, seeds}], ...detail}.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from symbolic_moe.app.report import evaluate
from symbolic_moe.config import load_config
from symbolic_moe.etr.replay_pool import RouterSettings, etr_cache_dir, question_states
from symbolic_moe.etr.select import cross_validate, task_best_cv
from symbolic_moe.etr.train import TrainConfig
from symbolic_moe.etr.whitebox import HiddenCache, MetaLM
from symbolic_moe.grading import answer_key
from symbolic_moe.run import Run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"small16": "configs/replay-mmlu-pro-small16.toml", "all29": "configs/replay-mmlu-pro.toml"}
# before this fix: query sets capped at 100 per expert (also lr 5e-3 at batch 16 and the meta-wrong
# filter, not re-run here: see RouterSettings); same optimiser as the chosen row, so the cap is isolated
BEFORE_SIZE = 100


def grid() -> list[RouterSettings]:
    """The hypothesis (query-set cap of 100 vs none), then how hard to train: a linear router on a
    576-d state fitted on ~230 questions over-fits, and a weakly trained one falls back on how often
    each model is right. Mostly batch 128 (8x fewer steps; a step costs ~0.2 s on 2 busy cores)."""
    out = [RouterSettings(TrainConfig(lr=2e-2, epochs=20, batch_size=128), size) for size in (100, None)]
    for lr, epochs in ((5e-3, 20), (5e-3, 5), (1e-3, 5), (2e-4, 5)):
        out.append(RouterSettings(TrainConfig(lr=lr, epochs=epochs, batch_size=128), None))
    out.append(RouterSettings(TrainConfig(), None))  # the paper's optimiser: lr 5e-4, 5 epochs, batch 16
    return out


def options(settings: RouterSettings, threads: int) -> list[str]:
    return [
        f"method_options.etr.lr={settings.train.lr}",
        f"method_options.etr.epochs={settings.train.epochs}",
        f"method_options.etr.batch_size={settings.train.batch_size}",
        f"method_options.etr.size={settings.size or 0}",
        f"method_options.etr.meta_filter={str(settings.meta_filter).lower()}",
        f"method_options.etr.threads={threads}",
    ]


def rows_of(methods: dict, label: dict[str, str]) -> list[dict]:
    return [
        {
            "method": label.get(name, name),
            "accuracy_mean": m["accuracy"],
            "accuracy_std": m["std"],
            "calls_per_question": m["calls_per_question"],
            "seeds": m["seeds"],
            "n": m["n"],
        }
        for name, m in methods.items()
    ]


def bench_pool(pool: str, args: argparse.Namespace, seeds: list[int]) -> dict:
    work = args.out / pool
    base = [
        "scheduler.progress=false",
        f"benchmark.stride={args.stride}",
        "recruit.k=3",
        f"store={work / 'store.sqlite'}",
    ]
    run = Run(load_config(ROOT / CONFIGS[pool], base, out=work / "prep"))
    lm, root = MetaLM(n_threads=args.threads), etr_cache_dir()
    cache = HiddenCache(root / "hidden")
    meta_ok: dict[str, bool] = {}  # no meta-wrong filter (RouterSettings.meta_filter)
    states = question_states(lm, cache, run.validation)
    correct = run.validation_correct()
    outputs = run.validation_outputs()
    keys = {m: {q.id: answer_key(outputs[m].get(q.id), q) for q in run.validation} for m in run.experts}
    gold = {q.id: q.answer for q in run.validation}
    start = time.perf_counter()
    cv = cross_validate(
        lm,
        states,
        meta_ok,
        correct,
        keys,
        gold,
        grid(),
        args.folds,
        [0],
        progress=lambda r: print(pool, "cv", json.dumps(r), flush=True),
    )
    cv_seconds = time.perf_counter() - start
    reference = task_best_cv(correct, list(states), args.folds)
    print(pool, "cv task-best (k=1 reference)", reference, flush=True)
    best = max(cv, key=lambda r: r["k1"])
    chosen = RouterSettings(
        TrainConfig(**{k: best["settings"]["train"][k] for k in ("lr", "epochs", "batch_size")}),
        size=best["settings"]["size"],
        meta_filter=best["settings"]["meta_filter"],
    )
    question_states(lm, cache, run.test)  # fill the cache before the timed runs
    lm.close()
    table: dict = {}
    before = RouterSettings(chosen.train, BEFORE_SIZE, chosen.meta_filter)
    for tag, settings in (("chosen", chosen), ("before", before)):
        cfg = load_config(ROOT / CONFIGS[pool], base + options(settings, args.threads), out=work / tag)
        table[tag] = evaluate(Run(cfg), ["etr", "etr_vote"], seeds)["methods"]
    cfg = load_config(ROOT / CONFIGS[pool], base, out=work / "baselines")
    baselines = evaluate(Run(cfg), ["task_best", "top_k_vote", "oracle"], seeds)["methods"]
    rows = rows_of(table["chosen"], {"etr": "etr (k=1, model switch)", "etr_vote": "etr_vote (top-3 weighted vote)"})
    rows += rows_of(
        table["before"],
        {"etr": "etr k=1 (before the fix)", "etr_vote": "etr_vote k=3 (before the fix)"},
    )
    rows += rows_of(baselines, {"top_k_vote": "top_k_vote (k=3)"})
    detail = {}
    for tag, methods in table.items():
        for name, m in methods.items():
            info = m["info"][str(seeds[0])]
            detail[f"{name} ({tag})"] = {
                "per_seed_accuracy": m["per_seed_accuracy"],
                "selection_counts_seed0": {k: v for k, v in info["selection_counts"].items() if v},
                "query_set_sizes_seed0": info["query_set_sizes"],
            }
    return {
        "rows": rows,
        "pool": pool,
        "config": CONFIGS[pool],
        "test_questions": len(run.test),
        "test_stride": args.stride,
        "validation_questions": len(run.validation),
        "meta_model": lm.model_id,
        "chosen_settings": chosen.to_json(),
        "before_settings": before.to_json(),
        "cross_validation": {
            "folds": args.folds,
            "seeds": [0],
            "seconds": cv_seconds,
            "results": cv,
            "task_best_same_folds": reference,
        },
        "validation_accuracy": {m: float(np.mean(list(c.values()))) for m, c in correct.items()},
        "validation_category_counts": dict(Counter(str(q.category) for q in run.validation)),
        "detail": detail,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pools", default="small16,all29")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--stride", type=int, default=1, help="every N-th test question (hidden states cost ~2-5 s)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1 is faster on a busy machine)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds inside the validation split")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-etr-router")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    command = "benchmarks/bench_etr_router.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for pool in args.pools.split(","):
        start = time.perf_counter()
        result = {"command": command, **bench_pool(pool, args, seeds)}
        result["seconds"] = time.perf_counter() - start
        path = ROOT / "benchmarks" / "results" / f"router_etr_{pool}.json"
        path.write_text(json.dumps(result, indent=1))
        for row in result["rows"]:
            print(
                f"{pool:8s} {row['method']:42s} {100 * row['accuracy_mean']:6.2f} +- {100 * row['accuracy_std']:.2f}"
                f"  calls/q {row['calls_per_question']:.2f}"
            )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
