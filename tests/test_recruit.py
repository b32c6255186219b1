"""Every recruitment formula against hand-computed numbers (SPEC 5.2-5.4)."""

import math

import numpy as np
import pytest

from symbolic_moe.inference.recruit import (
    global_competency,
    probabilities,
    recruit,
    sample_experts,
    score_matrix,
    trim,
)
from symbolic_moe.preprocess.profiles import build_profiles

PROFILES = {
    "A": {"algebra": 3, "calculus": 5, "geometry": -2},  # total 6
    "B": {"algebra": -1, "calculus": 2},  # total 1
    "C": {"geometry": 4, "biology": -6},  # total -2
}
MODELS = ["A", "B", "C"]


def test_profile_scores_plus_one_minus_one():
    keywords = {"q1": ["algebra", "calculus"], "q2": ["algebra"], "q3": []}
    correct = {"M": {"q1": True, "q2": False, "q3": True}}
    assert build_profiles(keywords, correct) == {"M": {"algebra": 0, "calculus": 1}}


def test_local_suitability_is_sum_over_mapped_keywords():
    s = score_matrix(PROFILES, MODELS, [["algebra", "calculus", "geometry"], ["biology"], ["unknown"]])
    assert s.tolist() == [[6, 1, 4], [0, 0, -6], [0, 0, 0]]


def test_global_competency_shifted_positive_and_normalised():
    # softmax (paper): totals 6, 1, -2 -> shifted so the lowest is 1: 9, 4, 1 -> / 14
    assert np.allclose(global_competency(PROFILES, MODELS, "softmax"), [9 / 14, 4 / 14, 1 / 14])
    # all positive totals are only normalised
    assert np.allclose(global_competency({"A": {"x": 3}, "B": {"x": 1}}, ["A", "B"], "softmax"), [0.75, 0.25])


def test_linear_global_competency_is_the_authors_normalize_to_probability():
    # totals 6, 1, -2: min < 0 -> minus min: 8, 3, 0 -> ** (1 / 0.5): 64, 9, 0 -> / 73
    assert np.allclose(global_competency(PROFILES, MODELS, "linear", 0.5), [64 / 73, 9 / 73, 0.0])
    # positive totals are not shifted, only squared: 3, 1 -> 9, 1 -> / 10
    assert np.allclose(global_competency({"A": {"x": 3}, "B": {"x": 1}}, ["A", "B"], "linear"), [0.9, 0.1])
    # a minimum of exactly 0 is not shifted (the old code shifted on <= 0): 0, 2 -> 0, 4 -> 0, 1
    assert np.allclose(global_competency({"A": {"x": 0}, "B": {"x": 2}}, ["A", "B"], "linear"), [0.0, 1.0])
    # another temperature: T = 1 keeps the shifted totals: 8, 3, 0 -> / 11
    assert np.allclose(global_competency(PROFILES, MODELS, "linear", 1.0), [8 / 11, 3 / 11, 0.0])


def test_linear_recruitment_uses_the_squared_competency():
    # calculus: S = 5, 2, 0 -> p ~ S * g = 5 * 64, 2 * 9, 0 -> 320 / 338, 18 / 338, 0
    plan = recruit(["q"], [["calculus"]], PROFILES, MODELS, k=3, weighting="linear", trim_share=0)
    assert np.allclose(plan.probabilities[0], [320 / 338, 18 / 338, 0.0])
    # no keywords: p = g; C (g = 0) is never recruited
    plan = recruit(["q"] * 200, [[]] * 200, PROFILES, MODELS, k=3, weighting="linear", trim_share=0)
    assert np.allclose(plan.probabilities[0], [64 / 73, 9 / 73, 0.0]) and plan.counts_before["C"] == 0


def test_trim_share_zero_keeps_every_selection_and_positive_share_trims():
    # 2 of 300 selections go to B under share 0.05 (threshold 15): trimmed and re-drawn from A
    kws = [["geometry"]] * 98 + [["calculus"]] * 2  # geometry: only C has S > 0; calculus: A 5, B 2
    ids = [f"q{i}" for i in range(100)]
    untrimmed = recruit(ids, kws, PROFILES, MODELS, k=3, weighting="greedy", trim_share=0)
    assert untrimmed.trimmed == [] and untrimmed.counts_before == untrimmed.counts_after
    # greedy top-3: geometry -> C 4, A -2... C, B(0), A(-2); calculus -> A, B, C: A 100, B 100, C 100
    assert untrimmed.counts_before == {"A": 100, "B": 100, "C": 100}
    plan = recruit(ids, kws, PROFILES, MODELS, k=1, weighting="greedy", trim_share=0.05)
    # k = 1: C 98, A 2 (A is 2/100 < 5%): A trimmed, its 2 slots re-drawn from C alone
    assert plan.counts_before == {"A": 2, "B": 0, "C": 98}
    assert plan.trimmed == ["A", "B"] and plan.counts_after == {"A": 0, "B": 0, "C": 100}


def test_softmax_weighting_matches_hand_computation():
    g = global_competency(PROFILES, MODELS)
    s = np.array([[6.0, 1.0, 4.0]])
    w = np.array([54 / 14, 4 / 14, 4 / 14]) / 0.5
    expected = np.exp(w) / np.exp(w).sum()
    assert np.allclose(probabilities(s, g, "softmax", 0.5), expected)
    assert math.isclose(expected[0], 1 / (1 + 2 * math.exp(-50 / 7)), rel_tol=1e-9)


def test_linear_weighting_keeps_positive_scores():
    g = global_competency(PROFILES, MODELS)
    s = np.array([[6.0, 1.0, 4.0], [2.0, -1.0, 0.0]])
    p = probabilities(s, g, "linear")
    assert np.allclose(p[0], np.array([54, 4, 4]) / 62)
    assert np.allclose(p[1], [1.0, 0.0, 0.0])  # only A has S > 0


def test_linear_weighting_shifts_when_no_model_is_positive():
    g = global_competency(PROFILES, MODELS)
    p = probabilities(np.array([[0.0, 0.0, -6.0]]), g, "linear")
    # S - min + 1 = 7, 7, 1; times g * 14 = 9, 4, 1 -> 63, 28, 1
    assert np.allclose(p[0], np.array([63, 28, 1]) / 92)


def test_question_without_keywords_falls_back_to_competency():
    g = global_competency(PROFILES, MODELS)
    p = probabilities(np.array([[5.0, 0.0, 0.0]]), g, "softmax", 0.5, has_keywords=np.array([False]))
    assert np.allclose(p[0], g)


def test_sampling_follows_the_distribution_and_is_seeded():
    probs = np.tile([0.2, 0.5, 0.3], (20000, 1))
    a = sample_experts(probs, 3, np.random.default_rng(7))
    b = sample_experts(probs, 3, np.random.default_rng(7))
    assert (a == b).all() and a.shape == (20000, 3)
    share = np.bincount(a.ravel(), minlength=3) / a.size
    assert np.allclose(share, [0.2, 0.5, 0.3], atol=0.01)
    assert (sample_experts(np.array([[0.0, 1.0, 0.0]]), 4, np.random.default_rng(0)) == 1).all()


def test_trimming_removes_rare_experts_and_redraws_from_the_rest():
    # 20 selections: A 15, B 4, C 1; share 10% -> threshold 2 -> C removed
    sel = np.array([[0, 0]] * 7 + [[0, 1], [1, 1]] + [[1, 2]])
    assert np.bincount(sel.ravel()).tolist() == [15, 4, 1]
    new, removed = trim(sel, 3, 0.10, np.random.default_rng(0))
    assert removed.tolist() == [False, False, True]
    assert 2 not in new and new.size == 20
    untouched = sel != 2
    assert (new[untouched] == sel[untouched]).all()


def test_trimming_redraw_is_proportional_to_selection_counts():
    sel = np.array([[0, 1, 2]] + [[0, 0, 1]] * 50)  # A 101, B 51, C 1 of 153
    rng = np.random.default_rng(1)
    redrawn = [trim(sel, 3, 0.05, rng)[0][0, 2] for _ in range(4000)]
    assert abs(np.mean(np.array(redrawn) == 0) - 101 / 152) < 0.03


def test_recruit_is_reproducible_and_counts_add_up():
    kws = [["algebra", "calculus"], ["geometry"], ["biology"], []] * 25
    ids = [f"q{i}" for i in range(len(kws))]
    a = recruit(ids, kws, PROFILES, MODELS, k=3, seed=3)
    b = recruit(ids, kws, PROFILES, MODELS, k=3, seed=3)
    c = recruit(ids, kws, PROFILES, MODELS, k=3, seed=4)
    assert a.experts == b.experts and a.experts != c.experts
    assert sum(a.counts_before.values()) == sum(a.counts_after.values()) == 300
    assert all(len(row) == 3 for row in a.experts)
    for m in a.trimmed:
        assert a.counts_before[m] < 0.05 * 300 and a.counts_after[m] == 0


@pytest.mark.parametrize("weighting", ["softmax", "linear"])
def test_recruitment_speed_scale(weighting):
    """10,000 x 16 must stay vectorised (the timing target lives in benchmarks/)."""
    rng = np.random.default_rng(0)
    probs = probabilities(rng.integers(-5, 6, (10000, 16)).astype(float), np.full(16, 1 / 16), weighting)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert sample_experts(probs, 3, rng).shape == (10000, 3)


def test_greedy_takes_the_top_k_by_suitability_then_competency():
    from symbolic_moe.inference.recruit import top_experts

    order = top_experts(np.array([[1.0, 3, 3, 0], [0, 0, 0, 0]]), np.array([0.1, 0.2, 0.3, 0.4]), 3)
    assert order.tolist() == [[2, 1, 0], [3, 2, 1]]
    plan = recruit(["q1", "q2"], [["calculus"], []], PROFILES, MODELS, k=2, weighting="greedy", trim_share=0)
    # calculus: A 5, B 2, C 0 -> A, B; no keywords -> by competency: A (64/73), B (9/73)
    assert plan.experts == [["A", "B"], ["A", "B"]]
