"""The learned router (issue 10): predictors on hand-made examples, vote weights, the cascade's
stopping rule, and config errors."""

import math

import numpy as np
import pytest

from symbolic_moe.config import parse_config
from symbolic_moe.errors import ConfigError
from symbolic_moe.routing import PREDICTORS, Signals, brier
from symbolic_moe.routing.decide import cascade, log_odds_weight, ranking, should_stop
from symbolic_moe.voting import leader, margin, tally

# 4 labelled questions, 2 models; A is right on the math questions, B on the law ones
GROUPS = [["category:math"], ["category:math"], ["category:law"], ["category:law"]]
EMB = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
CORRECT = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=float)


def test_prior_is_smoothed_overall_accuracy():
    p = PREDICTORS["prior"]().fit(Signals(EMB, GROUPS), CORRECT).predict(Signals(EMB[:1], [["category:math"]]))
    # (right + 0.5) / (n + 1): A 3.5 / 5, B 2.5 / 5
    assert np.allclose(p, [[0.7, 0.5]])


def test_skills_shrink_category_rates_to_the_prior():
    predictor = PREDICTORS["skills"](strength=2.0).fit(Signals(EMB, GROUPS), CORRECT)
    p = predictor.predict(Signals(EMB[:2], [["category:math"], ["category:unknown"]]))
    # math: A (2 + 2 * 0.7) / (2 + 2) = 0.85, B (0 + 2 * 0.5) / 4 = 0.25; unknown category: the prior
    assert np.allclose(p, [[0.85, 0.25], [0.7, 0.5]])


def test_knn_weights_neighbours_by_cosine_and_shrinks_to_the_category():
    predictor = PREDICTORS["knn"](strength=2.0, neighbours=2).fit(Signals(EMB, GROUPS), CORRECT)
    p = predictor.predict(Signals(np.array([[1.0, 0.0]]), [["category:law"]]))
    # nearest two: q0 (cos 1.0) and q1 (cos 0.8), both A right, B wrong: votes A 1.8, B 0
    # law base: A (1 + 2 * 0.7) / 4 = 0.6, B (2 + 2 * 0.5) / 4 = 0.75
    # A (1.8 + 2 * 0.6) / (1.8 + 2) = 3 / 3.8, B (0 + 2 * 0.75) / 3.8 = 1.5 / 3.8
    assert np.allclose(p, [[3 / 3.8, 1.5 / 3.8]])


@pytest.mark.parametrize("kind", ["clusters", "logistic"])
def test_every_predictor_gives_probabilities_and_learns_the_split(kind):
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    side = rng.integers(0, 2, 200)
    emb = centres[side] + 0.1 * rng.standard_normal((200, 3))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    # model 0 is right on side 0 (90%), model 1 on side 1 (90%)
    correct = np.stack([(side == 0) ^ (rng.random(200) < 0.1), (side == 1) ^ (rng.random(200) < 0.1)], 1)
    signals = Signals(emb, [[] for _ in side])
    predictor = PREDICTORS[kind](strength=5.0, clusters=2, c=1.0).fit(signals.take(range(150)), correct[:150])
    p = predictor.predict(signals.take(range(150, 200)))
    assert p.shape == (50, 2) and (p > 0).all() and (p < 1).all()
    assert (ranking(p)[:, 0] == side[150:]).mean() > 0.9
    prior = PREDICTORS["prior"]().fit(signals.take(range(150)), correct[:150]).predict(signals.take(range(150, 200)))
    assert brier(p, correct[150:]) < brier(prior, correct[150:])


def test_log_odds_weights():
    # p = 0.5 with 10 options: log(0.5 * 9 / 0.5) = log 9
    assert math.isclose(log_odds_weight(0.5, 10), math.log(9))
    assert math.isclose(log_odds_weight(0.8, 4), math.log(0.8 * 3 / 0.2))
    assert log_odds_weight(0.05, 10) == 0.0  # worse than chance: no say
    assert math.isclose(log_odds_weight(0.75, None), math.log(3))  # open answer: odds alone


def test_vote_ties_go_to_the_most_likely_expert():
    totals = tally(["B", "C", None], [1.0, 1.0, 5.0])
    assert totals == {"B": 1.0, "C": 1.0} and leader(totals) == "B" and margin(totals) == 0.0


def test_stopping_rule():
    # margin reached
    assert should_stop({"A": 3.0}, [2.0, 2.0], threshold=3.0)
    # not reached, and the two left (4.0) could still overturn a 2.5 lead
    assert not should_stop({"A": 2.5}, [2.0, 2.0], threshold=3.0)
    # not reached, but the one left (2.0) cannot overturn a 2.5 lead: decided
    assert should_stop({"A": 2.5}, [2.0], threshold=3.0)
    # disagreement: 2.5 vs 2.0 leaves a 0.5 margin
    assert not should_stop({"A": 2.5, "B": 2.0}, [1.0], threshold=3.0)
    # nobody parseable yet: keep asking; k_max reached: stop
    assert not should_stop({}, [1.0], threshold=0.0) and should_stop({}, [], threshold=3.0)


def test_cascade_asks_best_first_and_stops_on_agreement():
    answers = {(0, 0): "A", (0, 1): "A", (0, 2): "B", (1, 0): "C", (1, 1): "D", (1, 2): "D"}
    order = np.array([[0, 1, 2], [0, 1, 2]])
    weights = np.full((2, 3), 2.0)
    batches = []

    def ask(batch):
        batches.append(batch)
        return [answers[qm] for qm in batch]

    result = cascade(order, weights, threshold=3.0, k_max=3, ask=ask)
    # q0: A (2), A (4 >= 3): stop after 2. q1: C, D (tie 0), D: k_max, D wins 4 to 2
    assert result.asked == [[0, 1], [0, 1, 2]] and result.answers == ["A", "D"]
    assert batches == [[(0, 0), (1, 0)], [(0, 1), (1, 1)], [(1, 2)]]  # one batch per round


def test_cascade_tie_goes_to_the_first_ranked_expert():
    order = np.array([[2, 0, 1]])
    result = cascade(order, np.full((1, 3), 1.0), 5.0, 2, lambda b: ["X" if m == 2 else "Y" for _, m in b])
    assert result.asked == [[2, 0]] and result.answers == ["X"]


def _raw(**router):
    return {"pool": {"m": {"engine": "replay", "model": "x.jsonl"}}, "router": router}


@pytest.mark.parametrize(
    "router, field",
    [
        ({"kind": "forest"}, "router.kind"),
        ({"k_max": 0}, "router.k_max"),
        ({"margin": -1}, "router.margin"),
        ({"fit_splits": ["test"]}, "router.fit_splits"),
        ({"cross_fit_folds": 1}, "router.cross_fit_folds"),
        ({"neighbors": 3}, "router.neighbors"),
    ],
)
def test_bad_router_settings_name_the_setting(router, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config(_raw(**router))
