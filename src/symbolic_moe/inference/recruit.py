"""Skill-based recruitment (paper 3.3.1, SPEC 5.2-5.4), vectorised over questions x models.

    S[q, i] = sum of model i's profile scores over q's mapped keywords   (local suitability)
    g[i]    = model i's total profile score, made positive, normalised   (global competency)
    w[q, i] = g[i] * S[q, i]                                             (relevance)

`softmax` (paper): p = softmax(w / T), T = 0.5, with g made positive by shifting the lowest total to
1 when any total is <= 0. `linear` (authors' scripts, `recruit_agents.py`): g is their
`normalize_to_probability(totals, temperature=0.5)` - shift by the minimum only when it is < 0, raise
to the power 1/T (squared), normalise - then keep models with S > 0 (all of them, shifted to be
positive, if none), p proportional to S * g. `greedy` (ours, not
in the paper): the k models with the highest S, ties broken by g, without sampling. A question with no
mapped keywords falls back to p proportional to g. k experts are drawn with replacement; then
experts with under `trim_share` of all selections (paper: 5%; the authors' scripts never trim, i.e.
0) are trimmed and their slots re-drawn in proportion to the remaining models' selection counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Profile = dict[str, int]


def score_matrix(profiles: dict[str, Profile], models: Sequence[str], keywords: Sequence[Sequence[str]]) -> np.ndarray:
    """S as a (questions x models) array."""
    vocabulary = sorted({k for m in models for k in profiles.get(m, {})})
    index = {k: j for j, k in enumerate(vocabulary)}
    table = np.zeros((len(vocabulary), len(models)))
    for i, m in enumerate(models):
        for keyword, score in profiles.get(m, {}).items():
            table[index[keyword], i] = score
    counts = np.zeros((len(keywords), len(vocabulary)))
    for q, ks in enumerate(keywords):
        for k in set(ks):
            if k in index:
                counts[q, index[k]] = 1.0
    return counts @ table


def profile_totals(profiles: dict[str, Profile], models: Sequence[str]) -> np.ndarray:
    """Each model's total profile score (sum over its keywords)."""
    return np.array([sum(profiles.get(m, {}).values()) for m in models], dtype=float)


def global_competency(
    profiles: dict[str, Profile], models: Sequence[str], weighting: str = "softmax", temperature: float = 0.5
) -> np.ndarray:
    """g over the pool, summing to 1. `linear` (and `greedy`, which ranks ties by it): the authors'
    `normalize_to_probability(totals, temperature)`; `softmax`: the paper's "made positive,
    normalised" (lowest total shifted to 1 when any is <= 0)."""
    totals = profile_totals(profiles, models)
    if weighting == "softmax":
        if totals.min() <= 0:
            totals = totals - totals.min() + 1.0
        return totals / totals.sum()
    return normalize_to_probability(totals, temperature)


def normalize_to_probability(values: np.ndarray, temperature: float = 0.5) -> np.ndarray:
    """The authors' helper: shift by the minimum only when it is negative, raise to 1/T, normalise.
    All-zero values (nothing to tell the models apart) give the uniform distribution."""
    values = np.asarray(values, dtype=float)
    if values.min() < 0:
        values = values - values.min()
    powered = values ** (1.0 / temperature)
    total = powered.sum()
    return powered / total if total > 0 else np.full(len(values), 1.0 / len(values))


def probabilities(
    scores: np.ndarray,
    competency: np.ndarray,
    weighting: str = "softmax",
    temperature: float = 0.5,
    has_keywords: np.ndarray | None = None,
) -> np.ndarray:
    """Per-question recruitment distributions, (questions x models), rows summing to 1.
    Rows where `has_keywords` is False (default: rows of all-zero scores) use `competency`."""
    scores = np.asarray(scores, dtype=float)
    if weighting == "softmax":
        logits = competency[None, :] * scores / temperature
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
    elif weighting == "linear":
        positive = scores > 0
        shifted = scores - scores.min(axis=1, keepdims=True) + 1.0
        none_positive = ~positive.any(axis=1, keepdims=True)
        probs = np.where(none_positive, shifted, np.where(positive, scores, 0.0)) * competency[None, :]
    elif weighting == "greedy":
        # a deterministic top-k; p only serves weighted votes: the linear distribution
        return probabilities(scores, competency, "linear", temperature, has_keywords)
    else:
        raise ValueError(f"unknown weighting '{weighting}' (softmax, linear or greedy)")
    if has_keywords is None:
        has_keywords = (scores != 0).any(axis=1)
    # no skills, or (linear) every candidate has g = 0: fall back to global competency
    fallback = ~np.asarray(has_keywords, dtype=bool) | (probs.sum(axis=1) <= 0)
    probs[fallback] = competency
    return probs / probs.sum(axis=1, keepdims=True)


def sample_experts(probs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k draws with replacement per row, by inverse CDF: (questions x k) model indices."""
    cdf = np.cumsum(probs, axis=1)
    draws = rng.random((probs.shape[0], k))
    # index of the first cdf entry above the draw = how many entries are <= the draw
    picks = (cdf[:, None, :] <= draws[:, :, None]).sum(axis=2)
    return np.minimum(picks, probs.shape[1] - 1)


def sample_each(probs: np.ndarray, k: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """`sample_experts` with one generator per row: each row's draw is its own."""
    if len(rngs) != len(probs):
        raise ValueError(f"{len(rngs)} generators for {len(probs)} questions")
    rows = [sample_experts(probs[i : i + 1], k, r)[0] for i, r in enumerate(rngs)]
    return np.array(rows, dtype=int).reshape(len(rows), k)


def top_experts(scores: np.ndarray, competency: np.ndarray, k: int) -> np.ndarray:
    """The k best models per row by S, ties broken by g (then by pool order); with k above the pool
    size the ranking wraps around."""
    order = np.lexsort((-np.broadcast_to(competency, scores.shape), -scores), axis=1)
    return order[:, np.arange(k) % scores.shape[1]]


def trim(
    selections: np.ndarray, n_models: int, share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Remove models with under `share` of all selections; re-draw their slots from the rest in
    proportion to the rest's selection counts. Returns (new selections, removed mask)."""
    counts = np.bincount(selections.ravel(), minlength=n_models).astype(float)
    removed = counts < share * selections.size
    if removed.all() or not removed.any():
        return selections.copy(), np.zeros(n_models, dtype=bool)
    keep_counts = np.where(removed, 0.0, counts)
    new = selections.copy()
    slots = removed[new]
    new[slots] = rng.choice(n_models, size=int(slots.sum()), p=keep_counts / keep_counts.sum())
    return new, removed


@dataclass
class Recruitment:
    """The plan: which models answer each question, with the numbers that led there."""

    models: list[str]
    question_ids: list[str]
    experts: list[list[str]]  # per question, k model names (after trimming)
    probabilities: np.ndarray
    counts_before: dict[str, int] = field(default_factory=dict)
    counts_after: dict[str, int] = field(default_factory=dict)
    trimmed: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "models": self.models,
            "counts_before_trimming": self.counts_before,
            "counts_after_trimming": self.counts_after,
            "trimmed": self.trimmed,
            "questions": [
                {
                    "id": qid,
                    "experts": experts,
                    "probabilities": {m: round(float(p), 6) for m, p in zip(self.models, row, strict=True)},
                }
                for qid, experts, row in zip(self.question_ids, self.experts, self.probabilities, strict=True)
            ],
        }


def question_rng(seed: int, question_id: str) -> np.random.Generator:
    """An RNG of its own for one (seed, question): the draw does not depend on what else is asked."""
    digest = int.from_bytes(hashlib.sha256(question_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed % 2**64, digest])


def recruit(
    question_ids: Sequence[str],
    keywords: Sequence[Sequence[str]],
    profiles: dict[str, Profile],
    models: Sequence[str],
    k: int = 3,
    weighting: str = "softmax",
    temperature: float = 0.5,
    trim_share: float = 0.05,
    seed: int = 0,
    rng: np.random.Generator | Sequence[np.random.Generator] | None = None,
) -> Recruitment:
    """The recruitment plan of every entry point (`smoe run`, the Python API, `smoe serve`).

    `rng`: one generator for the whole set (default: seeded by `seed`), or one per question (online
    serving, `question_rng`: a question's experts then do not depend on its row in a batch or on the
    other questions; no trimming then, since the 5% rule is a statistic over a whole test set)."""
    models = list(models)
    per_question = rng is not None and not isinstance(rng, np.random.Generator)
    if per_question and trim_share > 0:
        raise ValueError("trimming needs one generator for the whole set (got one per question)")
    has_keywords = np.array([len(ks) > 0 for ks in keywords], dtype=bool)
    scores = score_matrix(profiles, models, keywords)
    competency = global_competency(profiles, models, weighting, temperature)
    probs = probabilities(scores, competency, weighting, temperature, has_keywords)
    shared = np.random.default_rng(seed) if rng is None else rng
    if weighting == "greedy":
        scores[~has_keywords] = 0.0  # no skills: rank by competency alone
        before = top_experts(scores, competency, k)
    elif isinstance(shared, np.random.Generator):
        before = sample_experts(probs, k, shared)
    else:
        before = sample_each(probs, k, shared)
    after, removed = before, np.zeros(len(models), dtype=bool)
    if isinstance(shared, np.random.Generator):
        after, removed = trim(before, len(models), trim_share, shared)

    def counts(selection: np.ndarray) -> dict[str, int]:
        return {m: int(c) for m, c in zip(models, np.bincount(selection.ravel(), minlength=len(models)), strict=True)}

    return Recruitment(
        models=models,
        question_ids=list(question_ids),
        experts=[[models[i] for i in row] for row in after],
        probabilities=probs,
        counts_before=counts(before),
        counts_after=counts(after),
        trimmed=[m for m, r in zip(models, removed, strict=True) if r],
    )
