"""Plug-in extension (ETR paper 3.6, Table 4): new experts' tokens appended to a head whose old rows
are never retrained.

Why training the new tokens on their own query sets fails (measured in
benchmarks/results/etr_mmlu_expert_dynamic.json, "dynamic_diagnostics"): the loss only asks a new token
to beat the word tokens (and, "frozen", the old expert tokens) on ITS queries. The cheapest way to
do that is to grow along the component every query state shares (SmolLM2's last-position states
point mostly the same way), and nothing in the loss ever says "lose here". The new tokens' logits
then exceed the old tokens' on every question, old domains included, and every question is routed
to a new expert.

The fix ("anchored"): train only the new rows, inside the softmax [W_V; W_E old (frozen); W_E new],
on the new experts' query sets PLUS anchor queries - queries outside those sets, each with the old
expert the frozen head already routes it to as target. Anchors need no labels and no old query
sets (any queries the provider has will do; the frozen head labels them), and the old rows and
files stay untouched, which is the paper's plug-in promise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .plugins import ExpertHead
from .query_sets import QuerySets, training_pairs
from .routing import route_states
from .train import TrainConfig, train_expert_tokens, word_logsumexp

MODES = ("absent", "frozen", "anchored")


def extend_head(
    word_head: np.ndarray,
    states: Mapping[str, np.ndarray],
    sets: QuerySets,
    names: Sequence[str],
    old: ExpertHead,
    config: TrainConfig,
    mode: str = "anchored",
    anchors: Sequence[str] = (),
) -> ExpertHead:
    """`old` with tokens for `names` appended, trained from `sets` (old rows unchanged);
    `word_head` is the meta LLM's W_V, `states` its query states by id.

    mode "absent": new tokens trained alone (the paper's description); "frozen": the old tokens
    join the softmax; "anchored": the old tokens join the softmax and `anchors` (query ids not in
    the new sets) teach the new tokens where the old experts win."""
    if mode not in MODES:
        raise ValueError(f"unknown extension mode '{mode}' (one of {', '.join(MODES)})")
    ids, targets = training_pairs(sets, names)
    if mode == "anchored":
        own = set(ids)
        kept = [q for q in dict.fromkeys(anchors) if q not in own]
        if kept:
            labels = route_states(np.stack([states[q] for q in kept]), old)
            ids, targets = ids + kept, targets + [len(names) + int(i) for i in labels]
    hidden = np.stack([states[q] for q in ids])
    rows, _ = train_expert_tokens(
        hidden,
        np.array(targets),
        word_head,
        len(names),
        config,
        None if mode == "absent" else old.rows,
        word_logsumexp(hidden, word_head),
    )
    info = {"train": config.to_json(), "extension": mode}
    return old.append(ExpertHead.from_rows(old.meta_model, list(names), rows, info).tokens)


def diagnostics(states: np.ndarray, head: ExpertHead, new: Sequence[str], own: Sequence[str]) -> dict[str, Any]:
    """Why a grown head routes as it does, on `states` whose right expert is `own` (one name per row):
    the share of old-expert questions taken by a new token, the mean margin of the best new logit
    over the best old logit on those questions, and each token's row norm and cosine with the mean
    query state (the shared component)."""
    logits = states @ head.rows.T
    is_new = np.array([n in new for n in head.names])
    old_rows = np.array([o not in new for o in own])
    margin = logits[:, is_new].max(axis=1) - logits[:, ~is_new].max(axis=1)
    mean_state = states.mean(axis=0)
    rows = head.rows
    cosine = rows @ mean_state / (np.linalg.norm(rows, axis=1) * np.linalg.norm(mean_state))
    return {
        "old_domain_questions_taken_by_new_tokens": float((margin[old_rows] > 0).mean()) if old_rows.any() else None,
        "mean_margin_new_over_old_on_old_domains": float(margin[old_rows].mean()) if old_rows.any() else None,
        "mean_margin_new_over_old_on_new_domains": float(margin[~old_rows].mean()) if (~old_rows).any() else None,
        "row_norm": {n: float(v) for n, v in zip(head.names, np.linalg.norm(rows, axis=1), strict=True)},
        "cosine_with_mean_state": {n: float(v) for n, v in zip(head.names, cosine, strict=True)},
        "mean_logit_on_all_questions": {n: float(v) for n, v in zip(head.names, logits.mean(axis=0), strict=True)},
    }
