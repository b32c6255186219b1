"""ETR as a router over recorded outputs (MMLU-Pro replay pools): correctness-based query sets from
the validation split, expert tokens trained on the meta LLM's hidden states, then per test question
the expert tokens' probabilities (router-only mode): k = 1 switches to the most likely expert, k > 1
is a vote of the k most likely experts weighted by those probabilities.

Why the settings differ from the paper's (benchmarks/bench_etr_router.py measures each by
cross-validation inside the validation split): the paper's experts are domain fine-tunes whose
query sets are balanced by construction, so capping each at 100 queries is harmless. A replay
pool's query sets are "questions this model got right": the cap cuts a strong model's set more than
a weak one's and erases how often each model is right (all29: 58.6% -> 64.6% without it). And a
linear router on SmolLM2's 576-d state, fitted on a few hundred questions, over-fits when trained
hard: a weak fit (lr 1e-3, 5 epochs, batch 128) beat lr 5e-3 / 20 epochs by 6-9 points.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engines.requantize import cache_dir
from ..grading import extract_answer, is_correct
from ..routing import decide
from ..types import GenerationSettings, Question
from .data import query_messages, read_questions, read_replay, take_per_group
from .plugins import ExpertHead
from .query_sets import QuerySets, correctness_based
from .routing import PromptExpert, expert_probabilities
from .scoring import AnswerCache
from .train import TrainConfig, train_head
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


def etr_cache_dir() -> Path:
    """Hidden states and meta answers shared by runs: $SMOE_CACHE_DIR/etr, else ~/.cache/symbolic-moe/etr.
    Entries are keyed by meta model file and exact prompt text, so any run may reuse them."""
    return cache_dir().parent / "etr"


@dataclass(frozen=True)
class RouterSettings:
    """How a replay router is fitted. Defaults chosen by 3-fold cross-validation inside the MMLU-Pro
    validation split, best k = 1 accuracy on both pools (benchmarks/results/router_etr_*.json,
    "cross_validation"): a weakly trained router (lr 1e-3, 5 epochs, batch 128: ~90 steps) beat
    every uncapped harder setting by 4-12 points - a linear router on a 576-d state fitted on ~230 questions
    over-fits, the weak one keeps how often each model is right and moves only a little from it."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-3, epochs=5, batch_size=128))
    size: int | None = None  # per-expert query-set cap (paper: 100); None keeps every query
    # paper's criterion: a query teaches an expert only if the meta LLM got it wrong. Off: in
    # router-only mode the meta LLM never answers, and SmolLM2-135M is right on MMLU-Pro at chance
    # level (11.4% of 70 validation questions, 10 options), so the filter drops a random tenth of the data.
    meta_filter: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "train": self.train.to_json()}


def replay_correct(data_dir: Path, models: list[str], questions: list[Question]) -> dict[str, dict[str, bool]]:
    """{model: {question id: recorded letter == gold}} straight from the replay files (CLI path)."""
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


def question_states(lm: MetaLM, cache: HiddenCache, questions: Sequence[Question]) -> dict[str, np.ndarray]:
    """{question id: the meta LLM's last hidden state of the question's zero-shot CoT prompt}."""
    states = cache.last_states(lm, [query_messages(q) for q in questions])
    return dict(zip([q.id for q in questions], states, strict=True))


def replay_sets(
    meta_ok: Mapping[str, bool],
    correct: Mapping[str, Mapping[str, bool]],
    settings: RouterSettings,
    seed: int,
) -> QuerySets:
    """Correctness-based query sets: questions each model got right (and, with `meta_filter`, the
    meta LLM got wrong), capped at `settings.size`."""
    return correctness_based(meta_ok if settings.meta_filter else {}, correct, settings.size, seed)


def fit_router(
    lm: MetaLM,
    states: Mapping[str, np.ndarray],
    meta_ok: Mapping[str, bool],
    correct: Mapping[str, Mapping[str, bool]],
    settings: RouterSettings,
    seed: int = 0,
    lse: Mapping[str, float] | None = None,
) -> tuple[ExpertHead, QuerySets]:
    """Expert tokens for every model in `correct` (in that order); a model with an empty query set
    gets a token trained on nothing (the mean word row), so it is rarely picked."""
    models = list(correct)
    sets = replay_sets(
        meta_ok, {m: {q: correct[m][q] for q in states if q in correct[m]} for m in models}, settings, seed
    )
    config = TrainConfig(**{**settings.train.to_json(), "seed": seed})
    return train_head(lm, dict(states), sets, models, config, lse), sets


def top_k(probabilities: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the indices of the k most likely experts (best first) and their probabilities
    renormalised to sum to 1 (the vote weights)."""
    order = decide.top_k(probabilities, k)
    chosen = np.take_along_axis(probabilities, order, axis=1)
    return order, chosen / chosen.sum(axis=1, keepdims=True)


def replay_router(
    data_dir: Path,
    out_dir: Path,
    models: list[str] | None = None,
    test_per_category: int | None = 20,
    validation_per_category: int | None = None,
    seed: int = 0,
    settings: RouterSettings | None = None,
    meta_ref: str = "embedded:smollm2",
    threads: int = 2,
) -> dict[str, Any]:
    """`smoe etr evaluate replay`: k = 1 routing on (the first N per category of) the test split,
    scored by the recorded letters, against the task-best model, a random expert and the oracle."""
    models = list(models or SMALL16)
    settings = settings or RouterSettings()
    bench = data_dir / "benchmarks" / "mmlu_pro"
    val = take_per_group(read_questions(bench / "validation.jsonl"), "category", validation_per_category)
    test = take_per_group(read_questions(bench / "test.jsonl"), "category", test_per_category)
    lm, cache = MetaLM(meta_ref, n_threads=threads), HiddenCache(out_dir / "hidden")
    meta_ok: dict[str, bool] = {}
    if settings.meta_filter:
        answers = AnswerCache(out_dir / "answers_mmlu_pro_meta.json")
        meta_ok = meta_correct(lm, cache, answers, val)
        answers.save()
    val_ok, test_ok = replay_correct(data_dir, models, val), replay_correct(data_dir, models, test)
    head, sets = fit_router(lm, question_states(lm, cache, val), meta_ok, val_ok, settings, seed)
    test_states = np.stack(list(question_states(lm, cache, test).values()))
    chosen = [models[i] for i in expert_probabilities(test_states, head).argmax(axis=1)]
    val_acc = {m: float(np.mean(list(v.values()))) for m, v in val_ok.items()}
    best = max(models, key=lambda m: val_acc[m])
    random_pick = [models[i] for i in np.random.default_rng(seed).integers(0, len(models), len(test))]

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
            "settings": settings.to_json(),
            "query_set_sizes": {m: len(s) for m, s in sets.items()},
            "meta_validation_accuracy": float(np.mean(list(meta_ok.values()))) if meta_ok else None,
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
