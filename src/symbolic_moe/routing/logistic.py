"""`logistic`: one L2-regularised logistic regression per model on [MiniLM embedding, one-hot
category / skills] (scikit-learn). A model that was always right or always wrong on the labelled
questions keeps its (smoothed) overall accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import GroupRates, Predictor, Signals, clip, predictor


@predictor("logistic")
class LogisticPredictor(Predictor):
    def _features(self, signals: Signals) -> np.ndarray:
        onehot = np.zeros((len(signals), len(self.vocabulary)))
        for i, groups in enumerate(signals.groups):
            for g in groups:
                if g in self.vocabulary:
                    onehot[i, self.vocabulary[g]] = 1.0
        return np.hstack([signals.embeddings, onehot])

    def fit(self, signals: Signals, correct: np.ndarray) -> LogisticPredictor:
        from sklearn.linear_model import LogisticRegression  # heavy (scikit-learn): loaded only to fit

        correct = np.asarray(correct, dtype=int)
        self.prior = GroupRates(1.0).fit(signals, correct).prior
        self.vocabulary = {g: i for i, g in enumerate(sorted({g for gs in signals.groups for g in gs}))}
        x = self._features(signals)
        self.models: list[Any] = []  # a fitted LogisticRegression per model, None where labels are all equal
        for m in range(correct.shape[1]):
            y = correct[:, m]
            fitted = None
            if 0 < y.sum() < len(y):
                fitted = LogisticRegression(C=float(self.params["c"]), max_iter=500).fit(x, y)
            self.models.append(fitted)
        return self

    def predict(self, signals: Signals) -> np.ndarray:
        x = self._features(signals)
        columns = [
            model.predict_proba(x)[:, 1] if model is not None else np.full(len(signals), self.prior[m])
            for m, model in enumerate(self.models)
        ]
        return clip(np.stack(columns, axis=1))
