"""ETR as a router over recorded outputs (MMLU-Pro replay pool): correctness-based query sets from
the validation split (expert right, meta LLM wrong), tokens trained on the meta LLM's hidden
states, one expert per test question (router-only mode), scored by that expert's recorded answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..grading import extract_answer, is_correct
from ..types import GenerationSettings, Question
from .data import query_messages, read_questions, read_replay, take_per_group
from .evaluate import train_head
from .query_sets import correctness_based
from .routing import PromptExpert, route_states
from .scoring import AnswerCache
from .train import TrainConfig
from .whitebox import HiddenCache, MetaLM

# the replay models left after removing the large / API / base-only ones (the "small16" pool)
SMALL16 = [
    "Meta-Llama-3_1-8B-Instruct",
    "Phi-3-mini-4k-instruct",
    "Yi-34B",
    "Mixtral-8x7B-Instruct-v0.1",
    "Mixtral-8x7B-v0.1",
    "mathstral-7B",
    "Meta-Llama-3_1-8B",
    "c4ai-command-r-v01",
    "Meta-Llama-3-8B",
    "gemma-7b",
    "Mistral-7B-v0.1",
    "Mistral-7B-Instruct-v0.2",
    "Mistral-7B-v0.2-hf",
    "Yi-6b-Chat",
    "Qwen1.5-7B-Chat",
    "Mistral-7B-Instruct-v0.1",
]


def replay_correct(data_dir: Path, models: list[str], questions: list[Question]) -> dict[str, dict[str, bool]]:
    out = {}
    for m in models:
        preds = read_replay(data_dir / "replay" / "mmlu_pro" / f"{m}.jsonl.gz")
        out[m] = {q.id: preds.get(q.id) == q.answer for q in questions}
    return out


def meta_correct(lm: MetaLM, cache: HiddenCache, answers: AnswerCache, questions: list[Question]) -> dict[str, bool]:
    """Whether the meta LLM answers each question right: its letter after "The answer is (" for
    multiple choice (computed right after the query state, so only the answer prefix is new), a
    greedy chain of thought (512 tokens) graded as usual for free-form questions."""
    out = {}
    for q in questions:
        messages = query_messages(q)
        cache.last_states(lm, [messages])
        if q.is_math:
            key = f"{q.id}\x00meta-cot"
            if key not in answers.data:
                text = PromptExpert(lm).continue_chat(messages, "", GenerationSettings(temperature=0, max_tokens=512))
                answers.data[key] = extract_answer(text.text, q) or ""
            out[q.id] = is_correct(f"The answer is \\boxed{{{answers.data[key]}}}", q)
        else:
            out[q.id] = answers.get(lm, q, messages, "meta", None) == q.answer
    return out


def replay_router(
    data_dir: Path,
    out_dir: Path,
    models: list[str] | None = None,
    test_per_category: int | None = 20,
    validation_per_category: int | None = None,
    seed: int = 0,
    config: TrainConfig | None = None,
    meta_ref: str = "embedded:smollm2",
    threads: int = 2,
) -> dict[str, Any]:
    models = list(models or SMALL16)
    config = config or TrainConfig(seed=seed)
    bench = data_dir / "benchmarks" / "mmlu_pro"
    val = take_per_group(read_questions(bench / "validation.jsonl"), "category", validation_per_category)
    test = take_per_group(read_questions(bench / "test.jsonl"), "category", test_per_category)
    lm, cache = MetaLM(meta_ref, n_threads=threads), HiddenCache(out_dir / "hidden")
    answers = AnswerCache(out_dir / "answers_mmlu_pro_meta.json")
    meta_ok = meta_correct(lm, cache, answers, val)
    answers.save()
    val_ok, test_ok = replay_correct(data_dir, models, val), replay_correct(data_dir, models, test)
    sets = correctness_based(meta_ok, val_ok, 100, seed)
    states = dict(zip([q.id for q in val], cache.last_states(lm, [query_messages(q) for q in val]), strict=True))
    head = train_head(lm, states, sets, models, config)
    test_states = cache.last_states(lm, [query_messages(q) for q in test])
    chosen = [models[i] for i in route_states(test_states, head)]
    val_acc = {m: float(np.mean(list(v.values()))) for m, v in val_ok.items()}
    best = max(models, key=lambda m: val_acc[m])
    rng = np.random.default_rng(seed)
    random_pick = [models[i] for i in rng.integers(0, len(models), len(test))]

    def acc(picks: list[str]) -> float:
        return float(np.mean([test_ok[m][q.id] for m, q in zip(picks, test, strict=True)]))

    (out_dir / "mmlu_pro_routes.json").write_text(json.dumps({"ids": [q.id for q in test], "etr": chosen}))
    return {
        "setup": {
            "meta_model": lm.model_id,
            "models": models,
            "seed": seed,
            "validation_questions": len(val),
            "test_questions": len(test),
            "test_per_category": test_per_category,
            "validation_per_category": validation_per_category,
            "train_config": config.to_json(),
            "query_set_sizes": {m: len(s) for m, s in sets.items()},
            "meta_validation_accuracy": float(np.mean(list(meta_ok.values()))),
        },
        "methods": {
            "etr_router": {"accuracy": acc(chosen), "distribution": {m: chosen.count(m) for m in set(chosen)}},
            "task_best_single": {"accuracy": acc([best] * len(test)), "model": best},
            "random_expert": {"accuracy": acc(random_pick)},
            "oracle_any_correct": {"accuracy": float(np.mean([any(test_ok[m][q.id] for m in models) for q in test]))},
        },
        "validation_accuracy": val_acc,
        "test_accuracy": {m: float(np.mean([test_ok[m][q.id] for q in test])) for m in models},
    }
