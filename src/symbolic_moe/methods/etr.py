"""Expert Token Routing as methods of a run (`smoe run` / `smoe compare` / `smoe serve`).

The meta LLM (SmolLM2, white-box through llama.cpp) reads each question; expert tokens trained on
its hidden states of the validation split (correctness-based query sets: the pool model's recorded
or generated answer is right) give a probability per pool model (router-only ETR, etr/replay_pool):

- `etr`: the most likely expert answers alone (model switch, 1 call per question);
- `etr_vote`: the `recruit.k` most likely experts answer, their answers are voted with the
  expert-token probabilities as weights (k calls).

Options (`[method_options.etr]`, shared by both): `meta_model` (default embedded:smollm2),
`threads` (llama.cpp threads), `cache_dir` (hidden states and meta answers, default
$SMOE_CACHE_DIR/etr or ~/.cache/symbolic-moe/etr), `lr`, `epochs`, `size` (query-set cap per
expert, 0 = none), `batch_size`, `meta_filter` (see etr.replay_pool.RouterSettings).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from ..etr.plugins import ExpertHead, load_head, save_head
from ..etr.replay_pool import (
    RouterSettings,
    etr_cache_dir,
    fit_router,
    meta_correct,
    question_states,
    replay_sets,
    top_k,
)
from ..etr.routing import expert_probabilities
from ..etr.scoring import AnswerCache
from ..etr.whitebox import HiddenCache, MetaLM
from ..inference.recruit import Recruitment
from ..voting import answer_as_text, vote
from .base import MethodOptions, Prediction, method

if TYPE_CHECKING:
    from ..run import Run


class EtrOptions(MethodOptions):
    """`etr` and `etr_vote` (shared); router defaults are etr.replay_pool.RouterSettings'."""

    meta_model: str = Field("embedded:smollm2", description="the white-box meta LLM")
    threads: int = Field(2, ge=1, description="llama.cpp threads of the meta LLM (speed only)")
    cache_dir: str | None = Field(None, description="hidden states; default $SMOE_CACHE_DIR/etr")
    lr: float | None = Field(None, gt=0)
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    size: int | None = Field(None, ge=0, description="query-set cap per expert, 0 = none")
    meta_filter: bool | None = Field(None, strict=True, description="train only on questions the meta LLM got wrong")


def _prepare(run: Run) -> None:
    run.validation_correct()


def router_settings(run: Run) -> RouterSettings:
    """The fitted router's settings: defaults, overridden by `[method_options.etr]` (typed, checked
    when the config loads)."""
    opts = EtrOptions.of(run, "etr")
    base = RouterSettings()
    train = replace(
        base.train,
        lr=base.train.lr if opts.lr is None else opts.lr,
        epochs=base.train.epochs if opts.epochs is None else opts.epochs,
        batch_size=base.train.batch_size if opts.batch_size is None else opts.batch_size,
    )
    size = base.size if opts.size is None else (opts.size or None)  # 0: no cap
    meta_filter = base.meta_filter if opts.meta_filter is None else opts.meta_filter
    return RouterSettings(train, size, meta_filter)


def expert_distribution(run: Run, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(test questions x pool models) expert-token probabilities, fitted on the validation split."""
    opts = EtrOptions.of(run, "etr")
    root = Path(opts.cache_dir or etr_cache_dir())
    lm = MetaLM(opts.meta_model, n_threads=opts.threads)
    cache = HiddenCache(root / "hidden")
    settings = router_settings(run)
    meta_ok: dict[str, bool] = {}
    if settings.meta_filter:  # the meta LLM's own answers are only needed to filter query sets
        answers = AnswerCache(root / f"meta_answers_{lm.model_id}.json")
        meta_ok = meta_correct(lm, cache, answers, run.validation)
        answers.save()
    correct = run.validation_correct()
    sets = replay_sets(meta_ok, correct, settings, seed)
    # etr and etr_vote of one seed share the fitted tokens: refit only when what they depend on changed
    fit = json.dumps([lm.model_id, settings.to_json(), seed, sets, run.experts], sort_keys=True)
    key = hashlib.sha256(fit.encode()).hexdigest()[:16]
    folder = run.out / "etr" / f"plugins_seed{seed}"
    head = load_head(folder) if (folder / "experts.json").exists() else None
    if head is None or head.names != run.experts or head.tokens[0].info.get("fit") != key:
        head, _ = fit_router(lm, question_states(lm, cache, run.validation), meta_ok, correct, settings, seed)
        head = ExpertHead.from_rows(head.meta_model, head.names, head.rows, {"fit": key, "router": settings.to_json()})
        save_head(head, folder)
    test_states = np.stack(list(question_states(lm, cache, run.test).values()))
    info = {
        "meta_model": lm.model_id,
        "meta_validation_accuracy": float(np.mean(list(meta_ok.values()))) if meta_ok else None,
        "settings": settings.to_json(),
        "query_set_sizes": {m: len(ids) for m, ids in sets.items()},
    }
    return expert_probabilities(test_states, head), info


def _answer(run: Run, seed: int, k: int) -> tuple[list[Prediction], dict[str, Any]]:
    probabilities, info = expert_distribution(run, seed)
    order, weights = top_k(probabilities, k)
    experts = [[run.experts[i] for i in row] for row in order]
    plan = Recruitment(run.experts, [q.id for q in run.test], experts, probabilities)
    outputs = run.expert_outputs(plan, seed, write=False)
    predictions = []
    for q, row, models, w in zip(run.test, outputs, experts, weights, strict=True):
        text = row[0].text if k == 1 else answer_as_text(vote(q, [c.text for c in row], list(w)), q)
        predictions.append(Prediction.grade(q, text, experts=models))
    first = [e[0] for e in experts]
    info["selection_counts"] = {m: first.count(m) for m in run.experts}
    return predictions, info


@method("etr", prepare=_prepare, options=EtrOptions)
def etr(run: Run, seed: int):
    """Model switch: the expert whose token is most likely answers alone."""
    return _answer(run, seed, 1)


@method("etr_vote", prepare=_prepare, options=EtrOptions)
def etr_vote(run: Run, seed: int):
    """The `recruit.k` most likely experts, voted with their expert-token probabilities."""
    return _answer(run, seed, run.config.recruit.k)
