"""The router methods end to end on recorded outputs, and the router's input errors."""

import json
from pathlib import Path

import pytest

from symbolic_moe import router_fit
from symbolic_moe.config import default_data_dir, parse_config
from symbolic_moe.errors import ConfigError
from symbolic_moe.methods import run_method
from symbolic_moe.run import Run

DATA = default_data_dir()
MODELS = ["Meta-Llama-3_1-8B-Instruct", "Phi-3-mini-4k-instruct", "mathstral-7B", "gemma-7b", "Mistral-7B-v0.1"]


def _tiny_benchmark(tmp_path: Path, empty_model_outputs: bool) -> dict:
    """6 validation + 2 test questions; model 'good' always answers (A), 'silent' never does."""
    folder = tmp_path / "bench"
    folder.mkdir()
    rows = {"validation": range(6), "test": range(2)}
    for split, ids in rows.items():
        with (folder / f"{split}.jsonl").open("w") as f:
            for i in ids:
                q = {"id": f"{split}-{i}", "question": f"Q{i}? (A) x (B) y", "answer": "A", "choices": ["A", "B"]}
                f.write(json.dumps(q) + "\n")
    for model, text in (("good", "The answer is (A)"), ("silent", None if empty_model_outputs else "(B)")):
        with (tmp_path / f"{model}.jsonl").open("w") as f:
            for split, ids in rows.items():
                for i in ids:
                    f.write(json.dumps({"id": f"{split}-{i}", "output": text}) + "\n")
    return {
        "out": str(tmp_path / "run"),
        "benchmark": {"path": str(folder)},
        "keywords": {"skills_from_field": "category"},
        "aggregator": {"method": "majority"},
        "scheduler": {"progress": False},
        "pool": {m: {"engine": "replay", "model": str(tmp_path / f"{m}.jsonl")} for m in ("good", "silent")},
    }


def test_pool_model_without_validation_outputs_is_named(tmp_path):
    run = Run(parse_config(_tiny_benchmark(tmp_path, empty_model_outputs=True)))
    with pytest.raises(ConfigError, match="pool model 'silent' has no stored outputs on the 'validation' split"):
        router_fit.training_set(run)


def test_unknown_fit_split_is_named(tmp_path):
    raw = _tiny_benchmark(tmp_path, empty_model_outputs=False)
    run = Run(parse_config({**raw, "router": {"fit_splits": ["train"]}}))
    with pytest.raises(ConfigError, match=r"router\.fit_splits: split 'train'"):
        router_fit.training_set(run)


@pytest.mark.slow
@pytest.mark.skipif(DATA is None or not (DATA / "replay" / "mmlu_pro").is_dir(), reason="shared data not found")
def test_router_methods_on_replay(tmp_path):
    raw = {
        "out": str(tmp_path / "run"),
        "benchmark": {"path": "benchmarks/mmlu_pro", "limit": 40, "validation_limit": 70},
        "keywords": {"skills_from_field": "category"},
        "aggregator": {"method": "majority"},
        "scheduler": {"progress": False},
        "router": {"kind": "knn", "k_max": 4, "margin": 3.0},
        "pool": {m: {"engine": "replay", "model": f"replay/mmlu_pro/{m}.jsonl.gz"} for m in MODELS},
    }
    run = Run(parse_config(raw))
    oracle = run_method("oracle", run, 0).accuracy
    single = run_method("router_single", run, 0)
    vote = run_method("router_vote", run, 0)
    casc = run_method("router_cascade", run, 0)
    assert single.calls == 40 and vote.calls == 3 * 40
    calls = casc.info["mean_calls_per_question"]
    assert casc.calls == pytest.approx(calls * 40) and 1 <= calls <= 4
    for result in (single, vote, casc):
        assert 0.2 < result.accuracy <= oracle
        for p in result.predictions:
            probs = p.detail["predicted_correct"]
            assert probs == sorted(probs, reverse=True) and all(0 < x < 1 for x in probs)  # best first
    # cascade: a question stops before k_max only once the weighted margin passed or was decided
    assert sum(len(p.detail["experts"]) for p in casc.predictions) == casc.calls
    assert (tmp_path / "run").exists() and (Path(run.config.store_path()).parent / "question_embeddings.npz").exists()


@pytest.mark.slow
@pytest.mark.skipif(DATA is None or not (DATA / "replay" / "mmlu_pro").is_dir(), reason="shared data not found")
def test_new_questions_get_the_same_prediction_as_the_scored_split(tmp_path):
    """The server path: predictions for a batch of new questions come from the same fitted router."""
    raw = {
        "out": str(tmp_path / "run"),
        "benchmark": {"path": "benchmarks/mmlu_pro", "limit": 12, "validation_limit": 40},
        "keywords": {"skills_from_field": "category"},
        "scheduler": {"progress": False},
        "router": {"kind": "knn"},
        "pool": {m: {"engine": "replay", "model": f"replay/mmlu_pro/{m}.jsonl.gz"} for m in MODELS},
    }
    run = Run(parse_config(raw))
    scored = router_fit.predict_scored(run)
    batch = router_fit.predict(run, run.test[3:7])
    assert batch.shape == (4, len(MODELS)) and abs(batch - scored[3:7]).max() < 1e-9
