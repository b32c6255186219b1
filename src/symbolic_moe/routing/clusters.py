"""`clusters` (Avengers-style, Zhang et al. 2026): k-means over the labelled questions' MiniLM
embeddings; each model's accuracy per cluster, shrunk towards the category / skill estimate,
ranks the models for every question falling into that cluster (nearest centroid)."""

from __future__ import annotations

import numpy as np

from .base import GroupRates, Predictor, Signals, clip, predictor


@predictor("clusters")
class ClusterPredictor(Predictor):
    def fit(self, signals: Signals, correct: np.ndarray) -> ClusterPredictor:
        from sklearn.cluster import KMeans  # heavy (scikit-learn): loaded only when this router fits

        correct = np.asarray(correct, dtype=float)
        self.base = GroupRates(self.params["strength"]).fit(signals, correct)
        n_clusters = max(1, min(int(self.params["clusters"]), len(signals)))
        self.kmeans = KMeans(n_clusters=n_clusters, n_init=4, random_state=0).fit(signals.embeddings)
        labels = self.kmeans.labels_
        self.sums = np.stack([correct[labels == c].sum(axis=0) for c in range(n_clusters)])
        self.counts = np.bincount(labels, minlength=n_clusters).astype(float)[:, None]
        return self

    def predict(self, signals: Signals) -> np.ndarray:
        cluster = self.kmeans.predict(signals.embeddings.astype(self.kmeans.cluster_centers_.dtype))
        strength = self.params["strength"]
        base = self.base.predict(signals)
        return clip((self.sums[cluster] + strength * base) / (self.counts[cluster] + strength))
