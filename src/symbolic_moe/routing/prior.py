"""The two coarse predictors: `prior` (each model's overall accuracy, the same for every question:
the baseline every router must beat) and `skills` (per category / skill accuracy, shrunk to it)."""

from __future__ import annotations

import numpy as np

from .base import GroupRates, Predictor, Signals, clip, predictor


@predictor("prior")
class PriorPredictor(Predictor):
    def fit(self, signals: Signals, correct: np.ndarray) -> PriorPredictor:
        self.rates = GroupRates(strength=1.0).fit(signals, correct)
        return self

    def predict(self, signals: Signals) -> np.ndarray:
        return clip(np.tile(self.rates.prior, (len(signals), 1)))


@predictor("skills")
class SkillPredictor(Predictor):
    """`strength`: how many questions the overall accuracy counts as inside each group."""

    def fit(self, signals: Signals, correct: np.ndarray) -> SkillPredictor:
        self.rates = GroupRates(self.params["strength"]).fit(signals, correct)
        return self

    def predict(self, signals: Signals) -> np.ndarray:
        return clip(self.rates.predict(signals))
