"""ETR as a method of a run (`smoe run` / `smoe compare`): correctness-based query sets from the
run's validation outputs (pool model right, meta LLM wrong), expert tokens trained on the meta
LLM's hidden states, one expert per test question (router-only), that expert answers.
The lead registers it, e.g. `method("etr")(etr_method)`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..inference.recruit import Recruitment
from ..methods.base import Prediction
from .api import route_questions, train_plugins
from .query_sets import correctness_based
from .replay_pool import meta_correct
from .scoring import AnswerCache
from .train import TrainConfig
from .whitebox import HiddenCache, MetaLM

if TYPE_CHECKING:
    from ..run import Run


def etr_method(
    run: Run, seed: int, meta_ref: str = "embedded:smollm2", threads: int = 2
) -> tuple[list[Prediction], dict[str, Any]]:
    work = run.out / "etr"
    lm = MetaLM(meta_ref, n_threads=threads)
    answers = AnswerCache(work / "meta_answers.json")
    meta_ok = meta_correct(lm, HiddenCache(work / "hidden"), answers, run.validation)
    answers.save()
    sets = correctness_based(meta_ok, run.validation_correct(), 100, seed)
    head = train_plugins(run.validation, sets, work / "plugins", meta_ref, TrainConfig(seed=seed), work / "hidden")
    chosen = route_questions(run.test, head, meta_ref, work / "hidden", lm)
    plan = Recruitment(
        models=run.experts,
        question_ids=[q.id for q in run.test],
        experts=[[name] for name in chosen],
        probabilities=np.zeros((len(run.test), len(run.experts))),
    )
    outputs = run.expert_outputs(plan, seed, write=False)
    predictions = [
        Prediction.grade(q, row[0].text, experts=[name]) for q, row, name in zip(run.test, outputs, chosen, strict=True)
    ]
    info = {
        "meta_model": lm.model_id,
        "meta_validation_accuracy": float(np.mean(list(meta_ok.values()))) if meta_ok else None,
        "query_set_sizes": {m: len(ids) for m, ids in sets.items()},
        "trained_experts": head.names,
        "selection_counts": {m: chosen.count(m) for m in run.experts},
    }
    return predictions, info
