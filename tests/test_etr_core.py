"""ETR without a model: head extension, loss, training, query sets, plug-in files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from symbolic_moe.errors import ConfigError, DataError
from symbolic_moe.etr.data import take_per_group
from symbolic_moe.etr.plugins import (
    ExpertHead,
    ExpertToken,
    append_tokens,
    load_head,
    load_token,
    save_head,
    save_token,
)
from symbolic_moe.etr.query_sets import correctness_based, downsample, loss_based, training_pairs
from symbolic_moe.etr.routing import extended_logits, route_states
from symbolic_moe.etr.train import (
    TrainConfig,
    expert_token_loss,
    full_softmax_loss,
    train_expert_tokens,
    word_logsumexp,
)
from symbolic_moe.types import Question


def test_expert_rows_leave_word_token_logits_unchanged() -> None:
    rng = np.random.default_rng(0)
    head, hidden = rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(4, 8)).astype(np.float32)
    rows = 10 * rng.normal(size=(3, 8)).astype(np.float32)
    plain, extended = extended_logits(hidden, head, np.zeros((0, 8), np.float32)), extended_logits(hidden, head, rows)
    assert extended.shape == (4, 53)
    np.testing.assert_array_equal(extended[:, :50], plain)
    # probabilities of word tokens are all scaled by one factor: their order and ratios stay
    p = np.exp(extended - extended.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = np.exp(plain - plain.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    np.testing.assert_array_equal(np.argsort(-p[:, :50], axis=1), np.argsort(-q, axis=1))
    ratio = p[:, :50] / q
    np.testing.assert_allclose(ratio, ratio[:, :1].repeat(50, axis=1), rtol=1e-4)
    assert route_states(hidden, ExpertHead.from_rows("m", ["a", "b", "c"], rows)).tolist() == list(
        (hidden @ rows.T).argmax(1)
    )


def test_loss_matches_hand_computation() -> None:
    hidden = np.array([[1.0, 0.0], [0.0, 2.0]])
    head = np.array([[1.0, 1.0], [0.0, -1.0], [2.0, 0.0]])  # |V| = 3
    rows = np.array([[0.5, 0.5], [-1.0, 1.0]])  # |E| = 2
    targets = np.array([0, 1])
    # query 1: logits [1, 0, 2 | 0.5, -1] -> -log softmax at 0.5
    # query 2: logits [2, -2, 0 | 1, 2]   -> -log softmax at 2
    l1 = -(0.5 - math.log(math.e**1 + 1 + math.e**2 + math.e**0.5 + math.e**-1))
    l2 = -(2 - math.log(math.e**2 + math.e**-2 + 1 + math.e + math.e**2))
    expected = (l1 + l2) / 2
    assert full_softmax_loss(hidden, targets, head, rows) == pytest.approx(expected, rel=1e-12)
    loss = expert_token_loss(
        torch.tensor(hidden), torch.tensor(targets), torch.tensor(rows), torch.tensor(word_logsumexp(hidden, head))
    )
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    # a frozen (appended, untrained) expert joins the softmax
    frozen = np.array([[0.0, 1.0]])
    with_frozen = expert_token_loss(
        torch.tensor(hidden),
        torch.tensor(targets),
        torch.tensor(rows),
        torch.tensor(word_logsumexp(hidden, head)),
        torch.tensor(frozen),
    )
    assert float(with_frozen) == pytest.approx(
        full_softmax_loss(hidden, targets, np.concatenate([head, frozen]), rows), rel=1e-12
    )


def test_training_learns_separable_experts_and_starts_from_mean_row() -> None:
    rng = np.random.default_rng(1)
    d, n = 16, 120
    head = rng.normal(size=(200, d))
    centres = 6 * rng.normal(size=(3, d))
    targets = rng.integers(0, 3, size=n)
    hidden = centres[targets] + rng.normal(size=(n, d))
    with pytest.raises(ValueError, match="targets"):
        train_expert_tokens(hidden, targets + 1, head, 3)
    rows, history = train_expert_tokens(hidden, targets, head, 3, TrainConfig(lr=0.05, epochs=20))
    assert history[-1] < history[0]
    assert (route_states(hidden, ExpertHead.from_rows("m", ["a", "b", "c"], rows)) == targets).mean() > 0.9
    init_loss = full_softmax_loss(hidden, targets, head, np.repeat(head.mean(0, keepdims=True), 3, 0))
    assert history[0] < init_loss + 1e-6


def test_query_sets() -> None:
    meta = {"q1": 10.0, "q2": 5.0, "q3": 7.0}
    experts = {"a": {"q1": 4.0, "q2": 5.5, "q3": 6.5}, "b": {"q1": 9.5, "q2": 1.0, "q3": 1.0}}
    assert loss_based(meta, experts, tau=1.0) == {"a": ["q1"], "b": ["q2", "q3"]}
    meta_ok = {"q1": True, "q2": False, "q3": False}
    right = {"a": {"q1": True, "q2": True, "q3": False}, "b": {"q1": False, "q2": True, "q3": True}}
    assert correctness_based(meta_ok, right) == {"a": ["q2"], "b": ["q2", "q3"]}
    ids = [f"q{i}" for i in range(300)]
    small = downsample(ids, 100, seed=3, salt="a")
    assert len(small) == 100 and small == sorted(small, key=ids.index)
    assert small == downsample(ids, 100, seed=3, salt="a") != downsample(ids, 100, seed=3, salt="b")
    assert training_pairs({"a": ["q1"], "b": ["q2", "q3"]}, ["b", "a"]) == (["q2", "q3", "q1"], [0, 0, 1])


def test_plugin_files_round_trip_append_and_errors(tmp_path) -> None:
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    head = ExpertHead.from_rows("smol.gguf", ["astro", "law", "history"], rows, {"queries": 100})
    save_head(head, tmp_path / "h")
    loaded = load_head(tmp_path / "h", meta_model="smol.gguf")
    assert loaded.names == ["astro", "law", "history"]
    np.testing.assert_array_equal(loaded.rows, rows)
    assert loaded.tokens[0].info == {"queries": 100}
    grown = append_tokens(tmp_path / "h", [ExpertToken("zeta", np.ones(4, np.float32), "smol.gguf")])
    assert load_head(tmp_path / "h").names == ["astro", "law", "history", "zeta"] == grown.names
    with pytest.raises(ConfigError, match="dimension 5"):
        append_tokens(tmp_path / "h", [ExpertToken("wide", np.ones(5, np.float32), "smol.gguf")])
    with pytest.raises(ConfigError, match="meta model"):
        append_tokens(tmp_path / "h", [ExpertToken("other", np.ones(4, np.float32), "gemma.gguf")])
    with pytest.raises(ConfigError, match="already"):
        append_tokens(tmp_path / "h", [ExpertToken("law", np.ones(4, np.float32), "smol.gguf")])
    assert len(load_head(tmp_path / "h")) == 4  # failed appends wrote nothing
    with pytest.raises(ConfigError, match="expert tokens are for"):
        load_head(tmp_path / "h", meta_model="gemma.gguf")
    single = save_token(ExpertToken("x", np.zeros(4, np.float32), "smol.gguf"), tmp_path / "x.npz")
    assert load_token(single).name == "x"
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        load_token(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="no experts.json"):
        load_head(tmp_path / "empty")


def test_expert_chats_do_not_touch_the_callers_messages() -> None:
    from symbolic_moe.etr.query_sets import with_suffix, with_system

    chat = ({"role": "system", "content": "s"}, {"role": "user", "content": "q"})
    assert with_suffix(chat, " as a lawyer")[-1]["content"] == "q as a lawyer"
    assert with_system(chat, "expert") == [{"role": "system", "content": "expert"}, {"role": "user", "content": "q"}]
    assert chat[1]["content"] == "q" and with_suffix(chat, None) == [dict(m) for m in chat]


def test_top_k_weights_and_routed_vote_by_hand() -> None:
    from symbolic_moe.etr.replay_pool import top_k
    from symbolic_moe.etr.select import folds_of, routed_accuracy

    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    order, weights = top_k(p, 2)
    assert order.tolist() == [[0, 1], [2, 0]]  # ties keep the first model
    np.testing.assert_allclose(weights, [[0.625, 0.375], [0.8 / 0.9, 0.1 / 0.9]])
    keys = {"a": {"q1": "A", "q2": "B"}, "b": {"q1": "C", "q2": None}, "c": {"q1": "C", "q2": "D"}}
    gold = {"q1": "C", "q2": "B"}
    # k = 1: q1 -> a (A, wrong), q2 -> c (D, wrong)
    assert routed_accuracy(p, ["a", "b", "c"], ["q1", "q2"], keys, gold, 1) == 0.0
    # k = 3: q1: A 0.5 vs C 0.5 -> tie to the most likely expert's answer (A); q2: D 0.8 beats B 0.1
    assert routed_accuracy(p, ["a", "b", "c"], ["q1", "q2"], keys, gold, 3) == 0.0
    p2 = np.array([[0.4, 0.35, 0.25], [0.45, 0.1, 0.45]])
    # q1: C (0.35 + 0.25) beats A 0.4; q2: B 0.45 ties D 0.45 -> the first expert's (a: B)
    assert routed_accuracy(p2, ["a", "b", "c"], ["q1", "q2"], keys, gold, 3) == 1.0
    assert folds_of(["q0", "q1", "q2", "q3", "q4"], 2) == [["q0", "q2", "q4"], ["q1", "q3"]]


def test_uncapped_replay_query_sets_keep_how_often_each_model_is_right() -> None:
    """The cap of 100 per expert (paper) flattens a pool's strong and weak models to the same
    query-set size; without it a model right twice as often has twice the queries."""
    from symbolic_moe.etr.replay_pool import RouterSettings, replay_sets

    ids = [f"q{i}" for i in range(300)]
    correct = {"strong": {q: i % 3 != 0 for i, q in enumerate(ids)}, "weak": {q: i % 3 == 0 for i, q in enumerate(ids)}}
    capped = replay_sets({}, correct, RouterSettings(size=100), seed=0)
    assert len(capped["strong"]) == len(capped["weak"]) == 100
    full = replay_sets({}, correct, RouterSettings(), seed=0)
    assert len(full["strong"]) == 200 and len(full["weak"]) == 100
    meta = {q: i < 30 for i, q in enumerate(ids)}  # the meta LLM right on the first 30
    filtered = replay_sets(meta, correct, RouterSettings(meta_filter=True), seed=0)
    assert len(filtered["strong"]) == 180 and not set(filtered["strong"]) & set(ids[:30])


def test_anchored_extension_keeps_old_rows_and_old_routes() -> None:
    """Plug-in extension on states with a large shared component: the old rows are untouched in
    every mode, and with anchors the new expert takes its own domain without taking the old ones."""
    from symbolic_moe.etr.extend import MODES, diagnostics, extend_head

    rng = np.random.default_rng(0)
    d = 24
    words = rng.normal(size=(300, d))
    shared, centres = 5 * rng.normal(size=d), 2.5 * rng.normal(size=(4, d))
    states = {f"{i}-{j}": shared + centres[i] + rng.normal(size=d) for i in range(4) for j in range(40)}
    names = ["a", "b", "c", "new"]
    sets = {n: [f"{i}-{j}" for j in range(25)] for i, n in enumerate(names)}
    held = [f"{i}-{j}" for i in range(4) for j in range(25, 40)]
    truth = [names[int(q.split("-")[0])] for q in held]
    cfg = TrainConfig(lr=1e-2, epochs=30)
    ids, targets = training_pairs(sets, names[:3])
    rows, _ = train_expert_tokens(np.stack([states[q] for q in ids]), np.array(targets), words, 3, cfg)
    old = ExpertHead.from_rows("m", names[:3], rows)
    x = np.stack([states[q] for q in held])
    before = [old.names[i] for i in route_states(x, old)]
    anchors = [q for n in names[:3] for q in sets[n]]
    for mode in MODES:
        grown = extend_head(words, states, sets, ["new"], old, cfg, mode, anchors)
        assert grown.names == names
        np.testing.assert_array_equal(grown.rows[:3], old.rows)
        assert grown.tokens[3].info["extension"] == mode
    grown = extend_head(words, states, sets, ["new"], old, cfg, "anchored", anchors)
    after = [grown.names[i] for i in route_states(x, grown)]
    new_domain = [t == "new" for t in truth]
    assert np.mean([a == "new" for a, n in zip(after, new_domain, strict=True) if n]) >= 0.9
    kept = [a == b for a, b, n in zip(after, before, new_domain, strict=True) if not n]
    assert np.mean(kept) >= 0.9
    report = diagnostics(x, grown, ["new"], truth)
    assert report["old_domain_questions_taken_by_new_tokens"] <= 0.1
    assert report["mean_margin_new_over_old_on_new_domains"] > 0 > report["mean_margin_new_over_old_on_old_domains"]
    with pytest.raises(ValueError, match="extension mode"):
        extend_head(words, states, sets, ["new"], old, cfg, "retrain")


def test_take_per_group_skips_the_questions_scored_before() -> None:
    """`skip` passes over each group's first questions (file order kept): a later evaluation can
    score questions an earlier one never saw."""
    questions = [Question(id=f"{d}{i}", question="?", answer="A", extra={"domain": d}) for i in range(5) for d in "xy"]
    first = take_per_group(questions, "domain", 2)
    later = take_per_group(questions, "domain", 2, skip=2)
    assert [q.id for q in first] == ["x0", "y0", "x1", "y1"]
    assert [q.id for q in later] == ["x2", "y2", "x3", "y3"]
    assert [q.id for q in take_per_group(questions, "domain", None, skip=4)] == ["x4", "y4"]
