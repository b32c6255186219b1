"""Expert query sets (ETR paper 2.2, eq. 3): which queries teach expert i's token.

- loss-based (white-box experts): A_i = {j : L_meta(j) - L_expert_i(j) > tau}, L = summed
  negative log-likelihood of the reference response (eq. 2);
- correctness-based (engines without log-probs, e.g. recorded outputs): A_i = {j : expert i is
  right and the meta LLM is wrong}.
Both are down-sampled (seeded) to at most `size` queries per expert (paper: 100).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .whitebox import Messages, MetaLM

QuerySets = dict[str, list[str]]  # expert name -> query ids


def downsample(ids: Sequence[str], size: int | None, seed: int, salt: str = "") -> list[str]:
    """At most `size` of `ids`, drawn without replacement, in their original order. `salt` (the
    expert's name) gives each expert its own draw for the same seed."""
    ids = list(ids)
    if size is None or len(ids) <= size:
        return ids
    offset = int.from_bytes(salt.encode()[:8].ljust(8, b"\0"), "little") % (2**31)
    keep = set(np.random.default_rng([seed, offset]).choice(len(ids), size=size, replace=False).tolist())
    return [q for i, q in enumerate(ids) if i in keep]


def loss_based(
    meta_loss: Mapping[str, float],
    expert_loss: Mapping[str, Mapping[str, float]],
    tau: float = 0.0,
    size: int | None = 100,
    seed: int = 0,
) -> QuerySets:
    """A_i = queries whose reference response costs the meta LLM more than tau nats above expert i."""
    return {
        name: downsample([q for q, l_meta in meta_loss.items() if l_meta - losses[q] > tau], size, seed, name)
        for name, losses in expert_loss.items()
    }


def correctness_based(
    meta_correct: Mapping[str, bool],
    expert_correct: Mapping[str, Mapping[str, bool]],
    size: int | None = 100,
    seed: int = 0,
) -> QuerySets:
    """A_i = queries expert i answers correctly and the meta LLM does not."""
    return {
        name: downsample([q for q, ok in correct.items() if ok and not meta_correct.get(q, False)], size, seed, name)
        for name, correct in expert_correct.items()
    }


def with_system(messages: Messages, system_prompt: str | None) -> list[dict[str, str]]:
    """The chat an expert defined by a system prompt sees (it replaces any system message)."""
    rest = [dict(m) for m in messages if m["role"] != "system"]
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + rest


def with_suffix(messages: Messages, suffix: str | None) -> list[dict[str, str]]:
    """The chat with `suffix` appended to its last user message. An expert defined this way shares
    the whole question prefix with the meta LLM's prompt, so its KV cache is reused."""
    chat = [dict(m) for m in messages]
    if suffix:
        last = max(i for i, m in enumerate(chat) if m["role"] == "user")
        chat[last]["content"] += suffix
    return chat


def response_losses(
    lm: MetaLM,
    queries: Mapping[str, Messages],
    responses: Mapping[str, str],
    suffix: str | None = None,
) -> dict[str, float]:
    """L(j) for each query id under `lm` (optionally as an expert whose prompt ends with `suffix`)."""
    return {qid: lm.response_loss(with_suffix(messages, suffix), responses[qid]) for qid, messages in queries.items()}


def training_pairs(query_sets: Mapping[str, Sequence[str]], names: Sequence[str]) -> tuple[list[str], list[int]]:
    """(query id, expert index) pairs for `names`, in expert order."""
    ids: list[str] = []
    targets: list[int] = []
    for i, name in enumerate(names):
        ids.extend(query_sets.get(name, []))
        targets.extend([i] * len(query_sets.get(name, [])))
    return ids, targets
