"""Learned routing (SPEC 10): calibrated P(model answers correctly) per question, and the decisions
built on it. One module per predictor (`prior`, `skills`, `knn`, `clusters`, `logistic`), all behind
`router.kind`; `decide` holds the vote weights and the cascade; `fit` connects them to a run."""

from . import clusters, knn, logistic, prior  # noqa: F401  (registers the predictors)
from .base import PREDICTORS, Predictor, Signals, brier
from .decide import cascade, log_odds_weight, ranking, should_stop, weights_for

__all__ = [
    "PREDICTORS",
    "Predictor",
    "Signals",
    "brier",
    "cascade",
    "log_odds_weight",
    "ranking",
    "should_stop",
    "weights_for",
]
