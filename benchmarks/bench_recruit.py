"""Recruitment and keyword-mapping speed at scale (issue 5, c).

    .venv/bin/python benchmarks/bench_recruit.py [--questions 10000] [--models 16] [--keywords 10000]

Recruitment: `symbolic_moe.inference.recruit.recruit` on --questions questions x --models models
with synthetic profiles (a 1,000-keyword vocabulary; each model scores a random 30% of it with
integers in [-5, 10]; each question has 2-5 random keywords), k = 3, softmax weighting, trimming
on. Target: < 1 s. Best of 3 runs (the first also pays numpy's warm-up).
Keyword mapping: `map_keywords` of --keywords distinct two-word keywords onto a 500-keyword
vocabulary with all-MiniLM-L6-v2, the vocabulary's embeddings cached in an .npz beforehand
(as a run caches them): (1) the queries embedded on the fly, (2) everything cached.
Writes benchmarks/results/recruit.json and prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, table, under_load, wait_for_quiet, write_result  # noqa: E402

from symbolic_moe.inference.keyword_mapping import KeywordEmbedder, map_keywords  # noqa: E402
from symbolic_moe.inference.recruit import recruit  # noqa: E402


def _words(text: str) -> list[str]:
    return text.split()


ADJECTIVES = _words("""abstract algebraic analytic applied atomic behavioral biological cellular chemical
classical clinical cognitive comparative computational constitutional criminal cultural digital
discrete ecological economic electrical environmental evolutionary experimental financial fiscal
formal genetic geometric global historical industrial inorganic legal linear linguistic literary
logical marine mechanical medical mental metabolic military modern molecular moral musical
natural neural nuclear numerical optical organic physical political probabilistic psychological
public quantitative quantum regional religious rural scientific social spatial statistical
structural surgical symbolic technical theoretical thermal urban visual agricultural ancient
architectural astronomical civil colonial commercial corporate demographic dental diplomatic
educational ethical federal geological""")
NOUNS = _words("""analysis anatomy arithmetic biology calculus chemistry circuits climate combinatorics
commerce computation contracts cryptography demography dynamics ecology economics education
electricity energy engineering epidemiology ethics evolution finance genetics geography geometry
governance grammar history hydrology immunology inference justice kinematics labor law logic
management markets mathematics mechanics medicine metabolism microbiology migration morphology
music navigation neuroscience nutrition optics optimization pharmacology philosophy phonetics
physics physiology planning policy politics population probability programming psychology
reasoning relativity religion rhetoric semantics sociology statistics surgery syntax taxation
thermodynamics topology toxicology trade transport trigonometry virology warfare waves welfare
zoology acoustics algebra astronomy botany cartography""")
SUFFIXES = ["basics", "methods", "theory", "problems", "applications"]


def synthetic_profiles(models: int, vocabulary: list[str], rng: np.random.Generator) -> dict[str, dict[str, int]]:
    profiles = {}
    for i in range(models):
        chosen = rng.choice(len(vocabulary), size=int(0.3 * len(vocabulary)), replace=False)
        profiles[f"model-{i:02d}"] = {vocabulary[j]: int(rng.integers(-5, 11)) for j in chosen}
    return profiles


def bench_recruitment(n_questions: int, n_models: int, repeats: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    vocabulary = [f"skill {i}" for i in range(1000)]
    profiles = synthetic_profiles(n_models, vocabulary, rng)
    keywords = [
        [vocabulary[j] for j in rng.choice(1000, size=int(rng.integers(2, 6)), replace=False)]
        for _ in range(n_questions)
    ]
    ids = [f"q{i}" for i in range(n_questions)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        plan = recruit(ids, keywords, profiles, list(profiles), k=3, weighting="softmax", seed=0)
        times.append(time.perf_counter() - start)
    assert len(plan.experts) == n_questions and all(len(e) == 3 for e in plan.experts)
    return {
        "questions": n_questions,
        "models": n_models,
        "seconds_best": min(times),
        "seconds_all": times,
        "target_seconds": 1.0,
        "met": min(times) < 1.0,
    }


def bench_mapping(n_keywords: int) -> dict[str, Any]:
    pairs = [f"{a} {b}" for a, b in itertools.product(ADJECTIVES, NOUNS)]
    rng = np.random.default_rng(1)
    order = rng.permutation(len(pairs))
    vocabulary = [pairs[i] for i in order[:500]]
    # Queries: the other pairs, then pairs with a suffix ("quantum optics methods"): none is
    # an exact vocabulary entry, so every one goes through the nearest-neighbour search.
    others = [pairs[i] for i in order[500:]]
    queries = (others + [f"{p} {s}" for s in SUFFIXES for p in others])[:n_keywords]
    if len(queries) < n_keywords:
        raise SystemExit(f"--keywords at most {len(queries)}")
    per_question = {f"q{i}": [k] for i, k in enumerate(queries)}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "embeddings.npz"
        start = time.perf_counter()
        KeywordEmbedder(cache=cache).embed(vocabulary)  # what a run caches once
        vocab_seconds = time.perf_counter() - start
        embedder = KeywordEmbedder(cache=cache)  # a new process: the vocabulary comes from the .npz
        embedder._encoder()  # loading MiniLM is a one-time cost, not mapping  # noqa: SLF001
        start = time.perf_counter()
        mapped = map_keywords(per_question, vocabulary, embedder)
        fresh = time.perf_counter() - start
        start = time.perf_counter()
        again = map_keywords(per_question, vocabulary, embedder)
        cached = time.perf_counter() - start
    assert mapped == again and all(v and v[0] in set(vocabulary) for v in mapped.values())
    return {
        "keywords": len(queries),
        "vocabulary": len(vocabulary),
        "vocabulary_embedding_seconds": vocab_seconds,
        "seconds_queries_embedded": fresh,
        "seconds_all_cached": cached,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", type=int, default=10000)
    p.add_argument("--models", type=int, default=16)
    p.add_argument("--keywords", type=int, default=10000)
    p.add_argument("--max-load", type=float, default=1.5)
    p.add_argument("--wait", type=float, default=1800)
    a = p.parse_args()
    load = wait_for_quiet(a.max_load, a.wait)
    rec = bench_recruitment(a.questions, a.models)
    mapping = bench_mapping(a.keywords)
    info = machine()
    result = {
        "command": "python benchmarks/bench_recruit.py " + " ".join(sys.argv[1:]),
        "machine": info,
        "machine_before": load,
        "under_load": under_load(load),
        "recruitment": rec,
        "keyword_mapping": mapping,
    }
    path = write_result("recruit", result)
    print(
        table(
            ["what", "size", "seconds", "target"],
            [
                ["recruit (best of 3)", f"{a.questions} q x {a.models} models", rec["seconds_best"], "< 1 s"],
                [
                    "map keywords, queries embedded",
                    f"{mapping['keywords']} -> {mapping['vocabulary']}",
                    mapping["seconds_queries_embedded"],
                    "-",
                ],
                [
                    "map keywords, all cached",
                    f"{mapping['keywords']} -> {mapping['vocabulary']}",
                    mapping["seconds_all_cached"],
                    "-",
                ],
            ],
        )
    )
    print(f"load before: {load}; wrote {path}")


if __name__ == "__main__":
    main()
