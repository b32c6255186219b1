"""Training the expert tokens W_E (ETR paper eq. 4, Table 8) with everything else frozen.

    loss = mean over (query j, expert i) of  -log softmax([W_V; W_E] h_j)[|V| + i]

h_j is the meta LLM's last hidden state of query j (computed once, cached). Because W_V and h are
frozen, the word-token part of the softmax is a constant per query: we precompute
lse_V(j) = logsumexp(W_V h_j) once and use logsumexp([lse_V(j), W_E h_j]), which is exactly the
same loss (tests check it against the full |V|+|E| softmax) but needs no |V| x d matmul per step.
Optimiser as the paper: AdamW lr 5e-4, weight decay 1.0, 5 epochs, batch 16, cosine schedule with
5 warmup steps; rows start at the mean word-token row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from .plugins import ExpertHead
from .query_sets import QuerySets, training_pairs
from .whitebox import MetaLM


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 5e-4
    weight_decay: float = 1.0
    epochs: int = 5
    batch_size: int = 16
    warmup_steps: int = 5
    seed: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def word_logsumexp(hidden: np.ndarray, head: np.ndarray, chunk: int = 256) -> np.ndarray:
    """logsumexp over word tokens of W_V h for each row of `hidden` (n,), in float64."""
    out = np.empty(len(hidden), dtype=np.float64)
    for start in range(0, len(hidden), chunk):
        logits = hidden[start : start + chunk].astype(np.float64) @ head.T.astype(np.float64)
        top = logits.max(axis=1)
        out[start : start + chunk] = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return out


def expert_token_loss(hidden, targets, rows, lse_words, frozen=None):  # torch tensors (torch loads lazily)
    """Mean -log P(expert token target | query) over [W_V; frozen; rows] (torch tensors).

    hidden (n, d), targets (n,) indices into `rows` (the trained experts), rows (E, d),
    lse_words (n,) the word-token logsumexp, frozen (F, d) or None: other experts' rows that take
    part in the softmax but are not trained (they come after the trained rows in the logits)."""
    # heavy: torch loads only to train expert tokens
    import torch

    expert_logits = hidden @ rows.T
    if frozen is not None and len(frozen):
        expert_logits = torch.cat([expert_logits, hidden @ frozen.T], dim=1)
    all_lse = torch.logsumexp(torch.cat([lse_words[:, None], expert_logits], dim=1), dim=1)
    return (all_lse - expert_logits.gather(1, targets[:, None]).squeeze(1)).mean()


def full_softmax_loss(hidden: np.ndarray, targets: np.ndarray, head: np.ndarray, rows: np.ndarray) -> float:
    """The same loss the naive way, over the concatenated head (reference for tests)."""
    logits = hidden.astype(np.float64) @ np.concatenate([head, rows]).T.astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(targets)), len(head) + targets].mean())


def train_expert_tokens(
    hidden: np.ndarray,
    targets: np.ndarray,
    head: np.ndarray,
    n_experts: int,
    config: TrainConfig | None = None,
    frozen: np.ndarray | None = None,
    lse_words: np.ndarray | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Train W_E (n_experts x d) on (query state, expert index) pairs; returns rows and per-epoch
    mean losses. A query in several experts' query sets appears once per expert. With `frozen`
    (F x d), a target n_experts + f means "the frozen expert f": such anchor queries teach the new
    rows to lose where an old expert should win (plug-in extension, etr/extend.py)."""
    # heavy: torch loads only to train expert tokens
    import torch

    config = config or TrainConfig()
    targets = np.asarray(targets, dtype=np.int64)
    if len(hidden) != len(targets) or not len(targets):
        raise ValueError(f"{len(hidden)} hidden states for {len(targets)} targets")
    limit = n_experts + (0 if frozen is None else len(frozen))
    if targets.min() < 0 or targets.max() >= limit:
        raise ValueError(f"targets must be in [0, {limit})")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (16 x 576) matmuls: more threads only add synchronisation (3x slower measured)
    try:
        return _train(torch, hidden, targets, head, n_experts, config, frozen, lse_words)
    finally:
        torch.set_num_threads(threads)


def _train(torch, hidden, targets, head, n_experts, config, frozen, lse_words):  # torch: the lazily loaded module
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    lse = word_logsumexp(hidden, head) if lse_words is None else lse_words
    h = torch.tensor(hidden, dtype=torch.float64)
    y = torch.tensor(targets)
    lse_t = torch.tensor(lse, dtype=torch.float64)
    fixed = None if frozen is None else torch.tensor(frozen, dtype=torch.float64)
    init = np.repeat(head.mean(axis=0, keepdims=True), n_experts, axis=0)  # paper B.2: mean head row
    rows = torch.nn.Parameter(torch.tensor(init, dtype=torch.float64))
    optimiser = torch.optim.AdamW([rows], lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(targets) / config.batch_size)
    total = steps_per_epoch * config.epochs

    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    history: list[float] = []
    for _ in range(config.epochs):
        order = torch.tensor(rng.permutation(len(targets)))
        losses = []
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            loss = expert_token_loss(h[idx], y[idx], rows, lse_t[idx], fixed)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            losses.append(float(loss.detach()) * len(idx))
        history.append(sum(losses) / len(targets))
    return rows.detach().numpy().astype(np.float32), history


def train_head(
    lm: MetaLM,
    states: dict[str, np.ndarray],
    sets: QuerySets,
    names: list[str],
    config: TrainConfig,
    lse: Mapping[str, float] | None = None,
) -> ExpertHead:
    """Train the tokens of `names` from their query sets (plug-in extension: etr/extend.py).
    `lse`: each query's word-token logsumexp, when already known (cross-validation reuses it)."""
    ids, targets = training_pairs(sets, names)
    hidden = np.stack([states[q] for q in ids])
    words = np.array([lse[q] for q in ids]) if lse is not None else word_logsumexp(hidden, lm.head)
    rows, _ = train_expert_tokens(hidden, np.array(targets), lm.head, len(names), config, None, words)
    return ExpertHead.from_rows(lm.model_id, names, rows, {"train": config.to_json()})
