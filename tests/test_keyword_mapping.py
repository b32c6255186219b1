"""Keyword mapping with the real all-MiniLM-L6-v2 shipped on PyPI (offline)."""

import numpy as np

from symbolic_moe.inference.keyword_mapping import KeywordEmbedder, map_keywords, sentence_model_path


def test_model_is_the_local_packaged_copy():
    from pathlib import Path

    assert Path(sentence_model_path()).is_dir()


def test_maps_to_nearest_profile_keyword_and_caches(tmp_path):
    cache = tmp_path / "emb.npz"
    embedder = KeywordEmbedder(cache=cache)
    vocabulary = ["organic chemistry", "constitutional law", "world war ii", "algebra"]
    mapped = map_keywords(
        {"q1": ["chemical reactions", "algebra"], "q2": ["legal rights", "supreme court"], "q3": []},
        vocabulary,
        embedder,
    )
    assert mapped["q1"] == ["organic chemistry", "algebra"]
    assert mapped["q2"] == ["constitutional law"]  # both map to the same profile keyword: kept once
    assert mapped["q3"] == []
    vectors = embedder.embed(["algebra"])
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-4)
    # a fresh embedder reads the cache and needs no model
    again = KeywordEmbedder(cache=cache)
    assert again._model is None and np.allclose(again.embed(["algebra"]), vectors)
    assert again._model is None


def test_empty_vocabulary_maps_to_nothing(tmp_path):
    assert map_keywords({"q": ["x"]}, [], KeywordEmbedder()) == {"q": []}
