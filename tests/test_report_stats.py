"""The results table's 95% interval: a seeded percentile bootstrap over questions."""

import numpy as np

from symbolic_moe.app.report.results import bootstrap_ci


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
