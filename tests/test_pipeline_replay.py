"""Symbolic-MoE end to end on real recorded outputs (replay engine, shared data)."""

import json
from pathlib import Path

import pytest

from symbolic_moe.app.report import evaluate
from symbolic_moe.config import default_data_dir, parse_config
from symbolic_moe.run import Run

DATA = default_data_dir()
pytestmark = pytest.mark.usefixtures("shared_data")
MODELS = ["Meta-Llama-3_1-8B-Instruct", "Phi-3-mini-4k-instruct", "mathstral-7B", "gemma-7b", "Mistral-7B-v0.1"]


def replay_config(out: Path, **extra) -> dict:
    raw = {
        "name": "replay-test",
        "out": str(out),
        "benchmark": {"path": "benchmarks/mmlu_pro", "limit": 120, "validation_limit": 150},
        "keywords": {"skills_from_field": "category"},
        "aggregator": {"method": "majority"},
        "scheduler": {"progress": False},
        "pool": {m: {"engine": "replay", "model": f"replay/mmlu_pro/{m}.jsonl.gz"} for m in MODELS},
    }
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return raw


def test_symbolic_moe_and_baselines_on_replay(tmp_path):
    run = Run(parse_config(replay_config(tmp_path / "run")))
    summary = evaluate(run, ["symbolic_moe", "symbolic_moe_weighted", "task_best", "top_k_vote", "oracle"], [0, 1])
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["methods"].keys() == summary["methods"].keys()
    for name, m in written["methods"].items():
        assert 0.0 <= m["accuracy"] <= 1.0 and m["n"] == 120, name
    smoe = written["methods"]["symbolic_moe"]
    assert smoe["calls_per_question"] == pytest.approx(3.0)  # k experts, vote needs no LLM
    # each seed loads exactly the distinct recruited experts (each once)
    for seed, loads in zip(smoe["seeds"], smoe["loads_per_seed"], strict=True):
        after = smoe["info"][str(seed)]["selection_counts_after_trimming"]
        assert loads == sum(1 for c in after.values() if c > 0)
    # the oracle bounds every method from above; recorded outputs give real, non-trivial accuracy
    oracle = written["methods"]["oracle"]["accuracy"]
    assert all(m["accuracy"] <= oracle for m in written["methods"].values())
    assert 0.25 < written["methods"]["task_best"]["accuracy"] < oracle
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").open()]
    assert {r["method"] for r in rows} == set(written["methods"])
    for artifact in ("profiles.json", "validation_outputs.json", "keywords_test_mapped.json", "recruitment_seed0.json"):
        assert (tmp_path / "run" / artifact).exists()


def test_rerun_reuses_every_generation(tmp_path):
    config = parse_config(replay_config(tmp_path / "run"))
    evaluate(Run(config), ["symbolic_moe"], [0])
    again = Run(config)
    summary = evaluate(again, ["symbolic_moe"], [0])
    assert summary["tokens"]["generated_requests"] == 0 and summary["loads"] == 0
    assert summary["tokens"]["reused_requests"] > 0


def test_trimming_and_linear_weighting_are_recorded(tmp_path):
    run = Run(parse_config(replay_config(tmp_path / "run", recruit={"trim_share": 0.3, "weighting": "linear"})))
    info = evaluate(run, ["symbolic_moe"], [0])["methods"]["symbolic_moe"]["info"]["0"]
    before, after = info["selection_counts_before_trimming"], info["selection_counts_after_trimming"]
    assert sum(before.values()) == sum(after.values()) == 360
    for model in info["trimmed"]:
        assert before[model] < 0.3 * 360 and after[model] == 0
