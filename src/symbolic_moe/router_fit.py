"""Fitting the learned router (routing/) on a run (SPEC 10), one floor above `run`: labelled
questions, their signals, and the predicted correctness of every pool model on the questions being
scored.

Labels are the pool's stored outputs on the `router.fit_splits` (default: the validation split,
whose outputs the profile step already stores; never the split being scored). Signals are the
MiniLM embeddings of the question texts (cached in `question_embeddings.npz` beside the
generation store, so runs sharing a store embed each question once) and each question's groups:
its category field and its skills (keyword LLM, mapped onto the profile vocabulary, or a dataset
field). With `router.cross_fit_folds = K` the scored split's own labels are used too, by K-fold
cross-fitting (fit on the fit splits + K - 1 folds, predict the held-out fold, rotate): a
measurement of "a user with more labels" that needs every pool model's answer on the scored split.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from .data import load_split
from .errors import ConfigError, DataError
from .inference.keyword_mapping import KeywordEmbedder
from .preprocess import keywords as keyword_step
from .preprocess import profiles
from .routing.base import PREDICTORS, Predictor, Signals, cross_fit_folds, groups_of
from .routing.cost import Costs
from .run import Run
from .types import Completion, Question

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # run -> {key: value}


def _cached(run: Run, key: tuple, compute):
    slot = _CACHE.setdefault(run, {})
    if key not in slot:
        slot[key] = compute()
    return slot[key]


def make_predictor(run: Run) -> Predictor:
    cfg = run.config.router
    return PREDICTORS[cfg.kind](strength=cfg.strength, neighbours=cfg.neighbours, clusters=cfg.clusters, c=cfg.c)


def question_embedder(run: Run) -> KeywordEmbedder:
    path = run.config.store_path().parent / "question_embeddings.npz"
    return _cached(run, ("embedder",), lambda: KeywordEmbedder(run.config.recruit.embedding_model, path))


def skills_of(run: Run, split: str, questions: Sequence[Question]) -> dict[str, list[str]]:
    """Skills of any split's questions, on the profile vocabulary."""
    field = run.config.keywords.skills_from_field
    if field:
        return keyword_step.skills_from_field(questions, field)
    if split == "validation":
        return run.keywords("validation")
    if split == run.config.benchmark.test and list(questions) == run.test:
        return run.mapped_keywords()
    if run.config.keywords.source == "embedding":
        cfg = run.config.keywords
        return keyword_step.skills_from_neighbours(
            questions, run.validation, cfg.embedding_field, run.embedder, cfg.neighbours
        )
    annotated = run.annotate(list(questions))
    return run.map_to_profiles({qid: row["kept"] for qid, row in annotated.items()})


def signals(run: Run, split: str, questions: Sequence[Question]) -> Signals:
    vectors = question_embedder(run).embed([q.question for q in questions])
    return Signals(np.asarray(vectors, dtype=np.float64), groups_of(questions, skills_of(run, split, questions)))


def fit_questions(run: Run, split: str) -> list[Question]:
    """The questions of a fit split; an unknown split is an error naming `router.fit_splits`."""
    b = run.config.benchmark
    if split == b.validation or split == "validation":
        return run.validation
    try:
        return load_split(b.path, split, run.data_dir)
    except DataError as exc:
        raise ConfigError(f"router.fit_splits: split '{split}' cannot be read: {exc}") from None


def labels(run: Run, split: str, questions: Sequence[Question]) -> np.ndarray:
    """(questions x pool models) 0/1: did each pool model answer each question correctly. The
    validation split reuses the profile step's stored outputs; other splits are answered (and
    stored) the same way. A model with no output at all on the split is an error naming it, unless
    it failed for good in this run (fault isolation: the run goes on without it)."""
    if split in ("validation", run.config.benchmark.validation) and list(questions) == run.validation:
        outputs = run.validation_outputs()
    else:
        outputs = profiles.answer_all(questions, run.experts, run.scheduler, f"router labels ({split})")
    for model in run.experts:
        texts = outputs.get(model, {})
        if model in run.scheduler.failures:
            continue  # failed for good in this run (isolated): learned as never right, so never routed to
        if not any(texts.get(q.id) for q in questions):
            raise ConfigError(
                f"router: pool model '{model}' has no stored outputs on the '{split}' split "
                "(router.fit_splits), so its correctness cannot be learned"
            )
    correct = profiles.grade_all(questions, outputs)
    return np.array([[correct[m][q.id] for m in run.experts] for q in questions], dtype=float)


def training_set(run: Run) -> tuple[Signals, np.ndarray]:
    """Signals and labels of every `router.fit_splits` question."""

    def compute():
        parts, ys = [], []
        for split in run.config.router.fit_splits:
            questions = fit_questions(run, split)
            ys.append(labels(run, split, questions))  # first: a model without outputs fails before embedding
            parts.append(signals(run, split, questions))
        return Signals.concat(parts), np.concatenate(ys)

    return _cached(run, ("training", tuple(run.config.router.fit_splits)), compute)


def predict_scored(run: Run) -> np.ndarray:
    """Predicted correctness (test questions x pool models), cached per run; computed in a method's
    `prepare` step so its generations (labels, embeddings) are not counted as routing calls."""

    def compute() -> np.ndarray:
        cfg = run.config.router
        train, y = training_set(run)
        scored = signals(run, run.config.benchmark.test, run.test)
        if not cfg.cross_fit_folds:
            return fitted(run).predict(scored)
        y_scored = labels(run, run.config.benchmark.test, run.test)
        fold = cross_fit_folds(len(run.test), cfg.cross_fit_folds, run.config.seed)
        out = np.zeros(y_scored.shape)
        for f in range(cfg.cross_fit_folds):
            held, rest = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
            fold_router = make_predictor(run).fit(
                Signals.concat([train, scored.take(rest)]), np.vstack([y, y_scored[rest]])
            )
            out[held] = fold_router.predict(scored.take(held))
        return out

    return _cached(run, ("scored", run.config.router.model_dump_json()), compute)


def fitted(run: Run) -> Predictor:
    """The router fitted on the `router.fit_splits` (cached per run and router settings)."""

    def compute() -> Predictor:
        train, y = training_set(run)
        return make_predictor(run).fit(train, y)

    return _cached(run, ("fitted", run.config.router.model_dump_json()), compute)


def predict(run: Run, questions: Sequence[Question], label: str = "requests") -> np.ndarray:
    """Predicted correctness of any new questions (e.g. a server's batch), from the router fitted
    on the fit splits; their skills come from the keyword step (`label` names them in the store)."""
    return fitted(run).predict(signals(run, label, questions))


def call_costs(run: Run, split: str, questions: Sequence[Question]) -> np.ndarray:
    """(questions x pool models) USD of each pool model's call on each question (NaN: unpriced),
    read from the same generations the labels grade (stored: nothing is generated again)."""
    generations = profiles.completions_all(questions, run.experts, run.scheduler, f"router costs ({split})")
    return np.array([[_usd(generations.get(m, {}).get(q.id)) for m in run.experts] for q in questions], dtype=float)


def _usd(completion: Completion | None) -> float:
    cost = None if completion is None else completion.cost_usd
    return float("nan") if cost is None else float(cost)


def costs(run: Run) -> Costs:
    """Expected and largest cost of a call to each pool model, over the `router.fit_splits`
    questions (cached per run); an unpriced model, or a budget no model's call fits, is an error
    here, before any scored question is answered."""

    def compute() -> Costs:
        cfg = run.config.router
        matrix = np.concatenate([call_costs(run, s, fit_questions(run, s)) for s in cfg.fit_splits])
        return Costs.fit(run.experts, matrix)

    fitted_costs = _cached(run, ("costs", tuple(run.config.router.fit_splits)), compute)
    fitted_costs.check_budget(run.config.router.budget)
    return fitted_costs


def cost_aware(run: Run) -> bool:
    """Whether the router's settings need prices (a cost weight or a budget)."""
    cfg = run.config.router
    return cfg.cost_weight > 0 or cfg.budget is not None
