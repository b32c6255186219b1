"""ETR as a method of `smoe run`: the SmolLM2 router picks one recorded expert per question."""

import json

import pytest

from symbolic_moe.config import default_data_dir, parse_config
from symbolic_moe.report import evaluate
from symbolic_moe.run import Run

DATA = default_data_dir()
MODELS = ["Yi-34B", "gemma-7b", "mathstral-7B"]


@pytest.mark.slow
@pytest.mark.skipif(DATA is None or not (DATA / "replay").is_dir(), reason="shared data directory not found")
def test_etr_method_routes_each_question_to_one_pool_expert(tmp_path):
    raw = {
        "out": str(tmp_path / "run"),
        "benchmark": {"path": "benchmarks/mmlu_pro", "limit": 4, "stride": 500, "validation_limit": 14},
        "keywords": {"skills_from_field": "category"},
        "aggregator": {"method": "majority"},
        "scheduler": {"progress": False},
        "pool": {m: {"engine": "replay", "model": f"replay/mmlu_pro/{m}.jsonl.gz"} for m in MODELS},
    }
    summary = evaluate(Run(parse_config(raw)), ["etr"], [0])
    etr = summary["methods"]["etr"]
    assert etr["n"] == 4 and etr["calls_per_question"] == 1.0
    info = etr["info"]["0"]
    assert sum(info["selection_counts"].values()) == 4 and set(info["selection_counts"]) == set(MODELS)
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").open()]
    assert all(len(r["experts"]) == 1 and r["experts"][0] in MODELS for r in rows)
    assert (tmp_path / "run" / "etr" / "plugins").is_dir()
