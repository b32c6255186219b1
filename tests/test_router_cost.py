"""Cost-aware routing (issue 18) on hand-made pools: expected costs, the cost weight's effect on
the ranking, the budget, the frugal order and its stopping rule, and the errors."""

import math

import numpy as np
import pytest

from symbolic_moe import frontier
from symbolic_moe.config import parse_config
from symbolic_moe.errors import ConfigError
from symbolic_moe.routing.cost import (
    NONE,
    Costs,
    affordable,
    cost_ranking,
    expert_order,
    frugal_order,
    frugal_plan,
    likely_cheapest_first,
)
from symbolic_moe.routing.decide import cascade, weights_for

MODELS = ("cheap", "middle", "dear")
# validation call costs (USD): cheap 0.1-0.3 milli-dollars, middle 1, dear 5-7
COSTS = np.array([[0.0001, 0.001, 0.005], [0.0003, 0.001, 0.007]])


def test_costs_are_the_mean_and_the_largest_call():
    costs = Costs.fit(MODELS, COSTS)
    assert np.allclose(costs.mean, [0.0002, 0.001, 0.006]) and np.allclose(costs.cap, [0.0003, 0.001, 0.007])


def test_an_unpriced_model_is_named():
    costs = COSTS.copy()
    costs[1, 1] = np.nan
    with pytest.raises(ConfigError, match="'middle' is unpriced"):
        Costs.fit(MODELS, costs)


@pytest.mark.parametrize("budget", [0.0, -1.0, 0.0002])
def test_a_budget_below_the_cheapest_call_is_refused(budget):
    with pytest.raises(ConfigError, match=r"router.budget: .* below the cheapest model's expected cost: 'cheap'"):
        Costs.fit(MODELS, COSTS).check_budget(budget)


def test_a_budget_that_fits_the_cheapest_call_is_accepted():
    Costs.fit(MODELS, COSTS).check_budget(0.0003)


@pytest.mark.parametrize(("field", "value"), [("cost_weight", -0.1), ("budget", 0), ("cost_weight", "cheap")])
def test_negative_cost_weight_and_zero_budget_are_config_errors(field, value):
    raw = {"pool": {"a": {"engine": "replay", "model": "a.jsonl"}}, "router": {field: value}}
    with pytest.raises(ConfigError, match=f"router.{field}"):
        parse_config(raw)


def test_cost_weight_moves_the_ranking_to_cheaper_models():
    p = np.array([[0.70, 0.80, 0.90]])
    mean = np.array([0.0002, 0.001, 0.006])
    assert cost_ranking(p, mean, 0.0).tolist() == [[2, 1, 0]]
    # lambda 0.01 per USD per 1,000 questions: dear 0.90 - 0.06 = 0.84, middle 0.80 - 0.01 = 0.79
    assert cost_ranking(p, mean, 0.01).tolist() == [[2, 1, 0]]
    # lambda 0.03: dear 0.72, middle 0.77, cheap 0.694
    assert cost_ranking(p, mean, 0.03).tolist() == [[1, 2, 0]]
    # lambda 0.1: cheap 0.68, middle 0.70, dear 0.30
    assert cost_ranking(p, mean, 0.1).tolist() == [[1, 0, 2]]
    assert cost_ranking(p, mean, 1.0).tolist() == [[0, 1, 2]]


def test_budget_skips_models_whose_call_no_longer_fits():
    caps = np.array([0.0003, 0.001, 0.007])
    order = np.array([[2, 1, 0], [1, 0, 2]])
    # 0.0015: the dear model never fits; middle (0.001) then cheap (0.0003) do
    assert affordable(order, caps, 0.0015, 3).tolist() == [[1, 0, NONE], [1, 0, NONE]]
    assert affordable(order, caps, 0.0015, 1).tolist() == [[1], [1]]
    assert affordable(order, caps, None, 2).tolist() == [[2, 1], [1, 0]]


def test_expert_order_without_prices_is_the_ranking():
    p = np.array([[0.7, 0.9, 0.8]])
    assert expert_order(p, None, 0.0, None, 2).tolist() == [[1, 2]]
    costs = Costs.fit(MODELS, COSTS)
    assert expert_order(p, costs, 0.0, 0.002, 3).tolist() == [[1, 0, NONE]]


def test_frugal_order_asks_cheaper_models_first_and_the_most_likely_last():
    mean = np.array([0.0002, 0.001, 0.006, 0.0003])
    p = np.array(
        [
            [0.70, 0.80, 0.90, 0.60],  # dear is the most likely: two cheaper ones before it
            [0.95, 0.80, 0.90, 0.60],  # cheap is the most likely: nobody is cheaper than it
            [0.10, 0.10, 0.20, 0.10],  # no model beats chance (1/4): the most likely alone
        ]
    )
    weights = weights_for(p, [4, 4, 4])
    # lambda 0.01: scores cheap 0.698, middle 0.79, other 0.597: middle and cheap, cheapest first
    assert frugal_order(p, mean, weights, 3, 0.01).tolist() == [[0, 1, 2], [0, NONE, NONE], [2, NONE, NONE]]
    # lambda 0.3: middle 0.5, cheap 0.64, other 0.51: cheap and other (cheaper than middle now)
    assert frugal_order(p, mean, weights, 3, 0.3).tolist()[0] == [0, 3, 2]
    # k_max 2: one cheaper model, then the most likely
    assert frugal_order(p, mean, weights, 2, 0.01).tolist()[0] == [1, 2]


def test_frugal_plan_leaves_out_models_the_budget_never_admits():
    costs = Costs.fit(MODELS, COSTS)
    p = np.array([[0.70, 0.80, 0.90]])
    weights = weights_for(p, [4])
    assert frugal_plan(p, weights, costs, None, 3, 0.01).tolist() == [[0, 1, 2]]
    # 0.0015: dear never fits, so middle is the most likely model left and comes last
    assert frugal_plan(p, weights, costs, 0.0015, 3, 0.01).tolist() == [[0, 1, NONE]]


def test_likely_order_asks_the_most_likely_models_cheapest_first():
    mean = np.array([0.0002, 0.001, 0.006, 0.0003])
    p = np.array([[0.70, 0.80, 0.90, 0.60], [0.95, 0.10, 0.90, 0.85]])
    # q0: the 3 most likely are dear, middle, cheap; q1: cheap, dear, other (middle is left out)
    assert likely_cheapest_first(p, mean, 3).tolist() == [[0, 1, 2], [0, 3, 2]]
    assert likely_cheapest_first(p, mean, 2).tolist() == [[1, 2], [0, 2]]
    # through the plan: a model no better than chance still counts among the likely ones, and the
    # budget still cuts the list (0.0015: dear never fits)
    costs = Costs.fit(MODELS, COSTS)
    q = np.array([[0.10, 0.80, 0.90]])
    weights = weights_for(q, [4])
    assert frugal_plan(q, weights, costs, None, 3, 0.01, likely=True).tolist() == [[0, 1, 2]]
    assert frugal_plan(q, weights, costs, None, 3, 0.01).tolist() == [[1, 2, NONE]]
    assert frugal_plan(q, weights, costs, 0.0015, 2, 0.01, likely=True).tolist() == [[0, 1]]


def test_frugal_cascade_stops_when_cheap_experts_agree_and_escalates_when_not():
    """Two questions, four options: on q0 the cheap and middle models agree and their weights pass
    the margin; on q1 they disagree, so the dear model decides. What is spent adds up."""
    mean = np.array([0.0002, 0.001, 0.006])
    p = np.array([[0.80, 0.90, 0.95], [0.80, 0.90, 0.95]])
    weights = weights_for(p, [4, 4])
    order = frugal_order(p, mean, weights, 3, 0.01)
    answers = {(0, 0): "A", (0, 1): "A", (0, 2): "B", (1, 0): "A", (1, 1): "C", (1, 2): "C"}
    asked: list[tuple[int, int]] = []

    def ask(batch):
        asked.extend(batch)
        return [answers[pair] for pair in batch]

    # weights: log(0.8 * 3 / 0.2) = 2.48, log(0.9 * 3 / 0.1) = 3.30: agreeing, 5.78
    assert math.isclose(weights[0, 0] + weights[0, 1], math.log(12) + math.log(27))
    result = cascade(order, weights, 5.0, 3, ask)
    assert result.asked == [[0, 1], [0, 1, 2]] and result.answers == ["A", "C"]
    spent = [sum(mean[m] for m in row) for row in result.asked]
    assert math.isclose(sum(spent), sum(mean[m] for _, m in asked))
    # a lower margin: the cheap expert alone is confident enough
    assert cascade(order, weights, 2.0, 3, ask).asked[0] == [0]
    # a higher one: 5.78 is short of 6, yet the dear model's 4.04 could not overturn it: decided
    assert cascade(order, weights, 6.0, 3, ask).asked[0] == [0, 1]


def test_cascade_with_an_empty_order_asks_nobody():
    order = np.array([[NONE, NONE]])
    result = cascade(order, np.ones((1, 2)), 1.0, 2, lambda batch: pytest.fail("asked"))
    assert result.asked == [[]] and result.answers == [None]


def test_frontier_hull_aiq_and_first_match():
    # single models: (cost, accuracy)
    points = [(1.0, 0.5), (2.0, 0.6), (3.0, 0.9), (4.0, 0.85), (10.0, 0.95)]
    # (2, 0.6) lies under the chord from (1, 0.5) to (3, 0.9); (4, 0.85) is dearer and worse
    assert frontier.hull(points) == [(1.0, 0.5), (3.0, 0.9), (10.0, 0.95)]
    assert frontier.quality_at(frontier.hull(points), 2.0) == pytest.approx(0.7)
    assert frontier.quality_at(frontier.hull(points), 0.5) == 0.0  # below the cheapest point
    # area over [1, 10]: trapezoids (1..3) 2 * 0.7 + (3..10) 7 * 0.925, divided by 9
    assert frontier.aiq(points, 1.0, 10.0) == pytest.approx((2 * 0.7 + 7 * 0.925) / 9, abs=1e-6)
    # a router that reaches 0.95 at cost 3 has a higher AIQ than the zero router
    assert frontier.aiq([(1.0, 0.5), (3.0, 0.95)], 1.0, 10.0) > frontier.aiq(points, 1.0, 10.0)
    assert frontier.first_match(points, 0.9) == (3.0, 0.9) and frontier.first_match(points, 0.99) is None
