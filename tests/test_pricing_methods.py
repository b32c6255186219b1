"""Dollars add up for every method on the two real priced pools (issue 18): the recorded MMLU-Pro
models priced by configs/prices/mmlu-pro.toml, and RouterBench's ARC-Challenge recordings, whose
every call carries its own recorded cost. Also what results.json, predictions.jsonl, compare.json
and the tables show, and that RouterBench's recordings are read and graded as published."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
from cost_check import assert_costs_add_up
from rich.console import Console

from symbolic_moe.app.compare import compare, print_compare
from symbolic_moe.config import default_data_dir, load_config
from symbolic_moe.methods import run_method
from symbolic_moe.run import Run
from symbolic_moe.scheduler import Job

ROOT = Path(__file__).resolve().parents[1]
DATA = default_data_dir()
needs_data = pytest.mark.skipif(
    DATA is None or not (DATA / "replay" / "routerbench_arc" / "models.json").is_file(),
    reason="replay data not found: set SMOE_DATA_DIR to the folder holding replay/",
)
N_TEST = 20


@pytest.fixture(scope="module")
def mmlu(tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("priced-mmlu")
    sets = [
        f"benchmark.limit={N_TEST}",
        "benchmark.validation_limit=60",
        "keywords.skills_from_field=category",  # no keyword LLM: the MMLU-Pro category is the skill
        'router.kind="skills"',
        "scheduler.progress=false",
        f"store={out / 'store.sqlite'}",
    ]
    return Run(load_config(ROOT / "configs/replay-mmlu-pro-small16.toml", sets, out), DATA)


@pytest.fixture(scope="module")
def arc(tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("priced-arc")
    sets = [
        'router.kind="prior"',
        "keywords.skills_from_field=category",  # ARC has none: no keyword LLM, routing by the prior alone
        "scheduler.progress=false",
        f"store={out / 'store.sqlite'}",
    ]
    return Run(load_config(ROOT / "configs/replay-routerbench-arc.toml", sets, out), DATA)


@needs_data
def test_every_mmlu_pro_model_has_a_sourced_price() -> None:
    for config in ("replay-mmlu-pro.toml", "replay-mmlu-pro-small16.toml"):
        cfg = load_config(ROOT / "configs" / config)
        for name, spec in cfg.all_models.items():
            assert spec.price is not None and spec.price.input is not None, name
            assert spec.price.source and len(spec.price.source) > 40, name
    assert len(load_config(ROOT / "configs/replay-mmlu-pro.toml").pool) == 29


@needs_data
@pytest.mark.parametrize(
    "name",
    ["task_best", "top_k_vote", "random_k_vote", "oracle", "symbolic_moe_weighted", "router_vote", "router_cascade"],
)
def test_dollars_add_up_on_the_priced_mmlu_pro_pool(mmlu: Run, name: str) -> None:
    result = assert_costs_add_up(mmlu, name, seed=0)
    assert result.cost_usd is not None and result.n == N_TEST


def _recorded_costs(run: Run) -> dict[tuple[str, str], float]:
    """(model, question id) -> the cost RouterBench recorded, read straight from the files."""
    costs = {}
    for model, spec in run.config.pool.items():
        with gzip.open(run.data_dir / spec.model, "rt", encoding="utf-8") as lines:
            for record in map(json.loads, lines):
                costs[model, record["id"]] = record["cost"]
    return costs


@needs_data
@pytest.mark.parametrize("name", ["single:gpt-4-1106-preview", "top_k_vote", "router_cascade", "oracle"])
def test_recorded_costs_add_up_on_routerbench(arc: Run, name: str) -> None:
    costs = _recorded_costs(arc)

    def recorded(job: Job) -> float:
        return costs[job.model, job.request.question_id]

    assert_costs_add_up(arc, name, seed=0, recorded=recorded)


@needs_data
def test_routerbench_recordings_graded_and_costed_as_published(arc: Run) -> None:
    """Every model's test accuracy by this project's grader and its mean recorded cost are the
    figures models.json publishes (GPT-4-1106: 96.36%, $5.066 per 1,000 questions)."""
    published = json.loads((arc.data_dir / "replay/routerbench_arc/models.json").read_text())["models"]
    assert len(arc.test) == 440 and len(arc.validation) == 1027 and len(published) == len(arc.experts) == 11
    for entry in published:
        result = run_method(f"single:{entry['name']}", arc, seed=0)
        assert result.accuracy == pytest.approx(entry["test"]["letter_accuracy"], abs=5e-5), entry["name"]
        assert result.cost_usd / result.n == pytest.approx(entry["test"]["mean_cost_usd"], abs=5e-8), entry["name"]
    gpt4 = run_method("single:gpt-4-1106-preview", arc, seed=0)
    assert round(100 * gpt4.accuracy, 1) == 96.4


@needs_data
def test_results_compare_and_predictions_carry_dollars(mmlu: Run) -> None:
    table, summary = compare(mmlu, ["task_best", "top_k_vote"], [0, 1])
    results = json.loads((mmlu.out / "results.json").read_text())
    rows = [json.loads(line) for line in (mmlu.out / "predictions.jsonl").read_text().splitlines()]
    for name in ("task_best", "top_k_vote"):
        m = results["methods"][name]
        totals = m["cost_usd_per_seed"]
        assert m["cost_per_question"] == pytest.approx(sum(totals) / len(totals) / N_TEST)
        assert table["methods"][name]["cost_per_question"] == m["cost_per_question"] > 0
        for seed, total in zip((0, 1), totals, strict=True):
            spent = [r["cost_usd"] for r in rows if r["method"] == name and r["seed"] == seed]
            assert len(spent) == N_TEST and math.fsum(spent) == pytest.approx(total)
        by_model = m["cost"]["by_model"]
        assert math.fsum(s["cost_usd"] for s in by_model.values()) == pytest.approx(sum(totals))
        assert sum(s["calls"] for s in m["cost"]["by_step"].values()) == m["calls_per_question"] * N_TEST * 2
        assert m["cost"]["unpriced_models"] == []
    compare_json = json.loads((mmlu.out / "compare.json").read_text())
    assert (
        compare_json["methods"]["top_k_vote"]["cost_per_question"]
        == table["methods"]["top_k_vote"]["cost_per_question"]
    )
    console = Console(width=220, record=True)
    print_compare(summary, console)
    assert "USD/q" in console.export_text()


@needs_data
def test_an_unpriced_model_makes_the_method_unpriced(tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = [
        f"benchmark.limit={N_TEST}",
        "benchmark.validation_limit=60",
        "keywords.skills_from_field=category",
        "scheduler.progress=false",
        'prices="none.toml"',
        f"store={tmp_path / 'store.sqlite'}",
    ]
    (tmp_path / "cfg").mkdir()
    config = tmp_path / "cfg" / "run.toml"
    config.write_text((ROOT / "configs/replay-mmlu-pro-small16.toml").read_text())
    (tmp_path / "cfg" / "none.toml").write_text('[prices."Yi-34B"]\ninput = 0.8\noutput = 0.8\n')
    run = Run(load_config(config, sets, out), DATA)
    result = assert_costs_add_up(run, "oracle", seed=0)  # every model asked; only Yi-34B is priced
    assert result.cost_usd is None and "Yi-34B" not in result.spend.unpriced_models
    assert result.cost_by("model")["Yi-34B"].cost_usd is not None
