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
    # totals 6, 1, -2 -> shifted so the lowest is 1: 9, 4, 1 -> / 14
    assert np.allclose(global_competency(PROFILES, MODELS), [9 / 14, 4 / 14, 1 / 14])
    # all positive totals are only normalised
    assert np.allclose(global_competency({"A": {"x": 3}, "B": {"x": 1}}, ["A", "B"]), [0.75, 0.25])


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
    # calculus: A 5, B 2, C 0 -> A, B; no keywords -> by competency: A (9/14), B (4/14)
    assert plan.experts == [["A", "B"], ["A", "B"]]
