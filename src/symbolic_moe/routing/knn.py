"""`knn`: the labelled questions nearest in MiniLM embedding space vote on each model's chance,
weighted by cosine similarity and shrunk towards the category / skill estimate (`GroupRates`):

    p(m | q) = (sum_j w_j y_jm + strength * base_m(q)) / (sum_j w_j + strength),
    w_j = max(cos(q, q_j), 0) over the `neighbours` nearest labelled questions q_j.
"""

from __future__ import annotations

import numpy as np

from .base import GroupRates, Predictor, Signals, clip, predictor


@predictor("knn")
class KnnPredictor(Predictor):
    def fit(self, signals: Signals, correct: np.ndarray) -> KnnPredictor:
        self.base = GroupRates(self.params["strength"]).fit(signals, correct)
        self.vectors = signals.embeddings
        self.correct = np.asarray(correct, dtype=float)
        return self

    def predict(self, signals: Signals) -> np.ndarray:
        k = min(int(self.params["neighbours"]), len(self.vectors))
        similarity = signals.embeddings @ self.vectors.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.clip(np.take_along_axis(similarity, nearest, axis=1), 0.0, None)
        votes = np.einsum("nk,nkm->nm", weights, self.correct[nearest])
        strength = self.params["strength"]
        return clip((votes + strength * self.base.predict(signals)) / (weights.sum(axis=1, keepdims=True) + strength))
