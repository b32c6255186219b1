"""The results table's 95% interval: a seeded percentile bootstrap over questions."""

import numpy as np

from symbolic_moe.app.report.results import accuracy_text
from symbolic_moe.stats import bootstrap_ci


def test_bootstrap_interval_properties() -> None:
    assert bootstrap_ci(np.ones((1, 40)), 500, 0) == [1.0, 1.0]
    half = np.array([[1, 0] * 50])
    low, high = bootstrap_ci(half, 2000, 0)
    assert low < 0.5 < high and 0.1 < high - low < 0.3  # about +-1.96 * sqrt(.25 / 100)
    assert bootstrap_ci(half, 2000, 0) == [low, high]  # seeded: the same interval every time
    small_low, small_high = bootstrap_ci(np.array([[1, 0] * 5]), 2000, 0)
    assert small_high - small_low > high - low  # fewer questions, wider interval
    # questions count with their mean over seeds: two seeds that disagree everywhere give 0.5 each
    assert bootstrap_ci(np.array([[1, 0] * 20, [0, 1] * 20]), 500, 0) == [0.5, 0.5]


def test_paired_bootstrap_diff_sees_a_consistent_gain_and_no_gain():
    from symbolic_moe.stats import paired_bootstrap_diff

    base = np.array([1, 0] * 50)
    better = base.copy()
    better[1:40:2] = 1  # 20 questions more right, none less
    gain = paired_bootstrap_diff(better, base)
    assert gain["diff"] == 0.2 and gain["significant"] and 0 < gain["low"] <= 0.2 <= gain["high"]
    same = paired_bootstrap_diff(base, base)
    assert same == {"diff": 0.0, "low": 0.0, "high": 0.0, "significant": False}
    swapped = paired_bootstrap_diff(np.array([1, 0] * 50), np.array([0, 1] * 50))  # same accuracy
    assert swapped["diff"] == 0.0 and not swapped["significant"]


def test_accuracy_cell_shows_the_spread_over_seeds_only_where_there_is_one() -> None:
    assert accuracy_text({"accuracy": 0.5, "std": 0.0, "seeds": [0, 1, 2]}) == "50.00"  # seeds changed nothing
    assert accuracy_text({"accuracy": 0.5, "std": 0.0123, "seeds": [0, 1, 2]}) == "50.00 ± 1.23"
    assert accuracy_text({"accuracy": 0.5, "std": 0.0, "seeds": [0]}) == "50.00"
