"""The library surface other parts (CLI, `smoe run` methods) call: train plug-in experts, extend
them, route questions. Everything heavy lives in the modules these compose."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..types import Question
from .data import query_messages
from .extend import extend_head
from .plugins import ExpertHead, append_tokens, load_head, save_head
from .query_sets import QuerySets, downsample
from .replay_pool import RouterSettings, meta_correct, replay_correct, replay_sets
from .routing import route_states
from .scoring import AnswerCache
from .train import TrainConfig, train_head
from .whitebox import HiddenCache, MetaLM


def _states(lm: MetaLM, cache_dir: Path, questions: Sequence[Question]) -> dict[str, np.ndarray]:
    states = HiddenCache(cache_dir).last_states(lm, [query_messages(q) for q in questions])
    return dict(zip([q.id for q in questions], states, strict=True))


def replay_query_sets(
    lm: MetaLM,
    data_dir: Path,
    questions: list[Question],
    models: list[str],
    cache_dir: Path,
    seed: int = 0,
    settings: RouterSettings | None = None,
) -> QuerySets:
    """Correctness-based query sets for replay models (expert right; with `settings.meta_filter`,
    the meta LLM wrong too), capped as `settings.size` says (RouterSettings: no cap, no filter)."""
    settings = settings or RouterSettings()
    meta_ok: dict[str, bool] = {}
    if settings.meta_filter:
        answers = AnswerCache(cache_dir / "meta_answers.json")
        meta_ok = meta_correct(lm, HiddenCache(cache_dir / "hidden"), answers, questions)
        answers.save()
    return replay_sets(meta_ok, replay_correct(data_dir, models, questions), settings, seed)


def labelled_query_sets(questions: list[Question], field: str, seed: int = 0) -> QuerySets:
    """One expert per value of `field` (e.g. MMLU-Expert `domain`), its questions as query set."""
    values = sorted({str(q.field(field)) for q in questions if q.field(field) is not None})
    if not values:
        raise ConfigError(f"no question has the field '{field}'")
    return {v: downsample([q.id for q in questions if str(q.field(field)) == v], 100, seed, v) for v in values}


def train_plugins(
    questions: list[Question],
    sets: QuerySets,
    out_dir: Path,
    meta_ref: str = "embedded:smollm2",
    config: TrainConfig | None = None,
    cache_dir: Path | None = None,
    extend: bool = False,
) -> ExpertHead:
    """Train tokens for the experts in `sets` and write their plug-in files into `out_dir`.
    `extend`: the experts are new ones, appended to the head already there without changing it;
    their tokens are trained against the old ones, anchored on the other `questions` (etr/extend.py)."""
    lm = MetaLM(meta_ref)
    names = [n for n, ids in sets.items() if ids]
    if not names:
        raise ConfigError("every expert query set is empty: nothing to train")
    config = config or TrainConfig()
    cache = cache_dir or out_dir / "cache" / "hidden"
    if extend:
        old = load_head(out_dir, lm.model_id)
        states = _states(lm, cache, questions)  # the anchors need every question's state
        grown = extend_head(lm.head, states, {n: sets[n] for n in names}, names, old, config, "anchored", list(states))
        return append_tokens(out_dir, list(grown.tokens[len(old) :]))
    used = {q for n in names for q in sets[n]}
    states = _states(lm, cache, [q for q in questions if q.id in used])
    head = train_head(lm, states, {n: sets[n] for n in names}, names, config)
    save_head(head, out_dir)
    return head


def route_questions(
    questions: Sequence[Question],
    experts: ExpertHead | str | Path,
    meta_ref: str = "embedded:smollm2",
    cache_dir: Path | None = None,
    lm: MetaLM | None = None,
) -> list[str]:
    """Router-only ETR: one expert name per question (best expert token at the first position)."""
    lm = lm or MetaLM(meta_ref)
    head = experts if isinstance(experts, ExpertHead) else load_head(experts, lm.model_id)
    cache = HiddenCache(cache_dir)
    states = cache.last_states(lm, [query_messages(q) for q in questions])
    return [head.names[i] for i in route_states(states, head)]
