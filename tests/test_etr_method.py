"""ETR as methods of `smoe run`: the SmolLM2 router picks recorded experts per question."""

import ast
import json
import re
from pathlib import Path

import pytest

import symbolic_moe.etr
from symbolic_moe.app.report import evaluate
from symbolic_moe.config import default_data_dir, parse_config
from symbolic_moe.methods.base import method_spec
from symbolic_moe.run import Run

DATA = default_data_dir()
MODELS = ["Yi-34B", "gemma-7b", "mathstral-7B"]


def test_etr_methods_are_registered_and_etr_does_not_import_methods() -> None:
    assert method_spec("etr").prepare is not None and method_spec("etr_vote").prepare is not None
    for path in Path(symbolic_moe.etr.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                assert not target.startswith(("..methods", "symbolic_moe.methods")), f"{path.name} imports {target}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": "fast"}, "method_options.etr.lr: Input should be a valid number"),
        ({"epochs": 2.5}, "method_options.etr.epochs: Input should be a valid integer"),
        ({"size": -1}, "method_options.etr.size: Input should be greater than or equal to 0"),
        ({"meta_filter": "yes"}, "method_options.etr.meta_filter"),
        ({"epochz": 3}, "method_options.etr.epochz"),
    ],
)
def test_bad_router_settings_name_the_setting(options, message) -> None:
    from symbolic_moe.errors import ConfigError
    from symbolic_moe.methods.etr import router_settings

    raw = {"pool": {"a": {"engine": "replay", "model": "x.jsonl.gz"}}, "method_options": {"etr": options}}
    from symbolic_moe.methods import check_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(parse_config(raw))  # the methods layer checks it, before any generation
    good = router_settings(Run(parse_config({**raw, "method_options": {"etr": {"size": 100, "lr": 0.002}}})))
    assert good.size == 100 and good.train.lr == 0.002 and good.train.epochs == 5


@pytest.mark.slow
@pytest.mark.skipif(DATA is None or not (DATA / "replay").is_dir(), reason="shared data directory not found")
def test_etr_methods_route_each_question_to_pool_experts(tmp_path):
    raw = {
        "out": str(tmp_path / "run"),
        "benchmark": {"path": "benchmarks/mmlu_pro", "limit": 4, "stride": 500, "validation_limit": 14},
        "keywords": {"skills_from_field": "category"},
        "aggregator": {"method": "majority"},
        "recruit": {"k": 2},
        "scheduler": {"progress": False},
        "method_options": {"etr": {"cache_dir": str(tmp_path / "cache"), "threads": 1}},
        "pool": {m: {"engine": "replay", "model": f"replay/mmlu_pro/{m}.jsonl.gz"} for m in MODELS},
    }
    summary = evaluate(Run(parse_config(raw)), ["etr", "etr_vote"], [0])
    etr, vote = summary["methods"]["etr"], summary["methods"]["etr_vote"]
    assert etr["n"] == 4 and etr["calls_per_question"] == 1.0
    assert vote["n"] == 4 and vote["calls_per_question"] == 2.0
    info = etr["info"]["0"]
    assert sum(info["selection_counts"].values()) == 4 and set(info["selection_counts"]) == set(MODELS)
    # fitted on the 14 validation questions only: every query comes from the validation split
    assert sum(info["query_set_sizes"].values()) > 0 and info["settings"]["size"] is None
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").open()]
    for r in rows:
        assert len(r["experts"]) == (1 if r["method"] == "etr" else 2)
        assert set(r["experts"]) <= set(MODELS) and len(set(r["experts"])) == len(r["experts"])
    # the k = 1 pick is the first (most likely) expert of the vote
    first = {r["id"]: r["experts"][0] for r in rows if r["method"] == "etr"}
    assert all(first[r["id"]] == r["experts"][0] for r in rows if r["method"] == "etr_vote")
    assert (tmp_path / "run" / "etr" / "plugins_seed0" / "experts.json").is_file()
    assert any((tmp_path / "cache" / "hidden").rglob("*.npy"))
