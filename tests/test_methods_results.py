"""Result shapes of the baselines and `smoe compare` on the replay engine (recorded MMLU-Pro
outputs), ReConcile's confidence vote, and the errors a user can cause."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from symbolic_moe.app.cli import app
from symbolic_moe.config import load_config
from symbolic_moe.errors import ConfigError
from symbolic_moe.methods import run_method
from symbolic_moe.methods.multi_agent import recalibrate, stated_confidence
from symbolic_moe.run import Run

_fresh_seeds = itertools.count(100)
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/replay-mmlu-pro-small16.toml"
N_TEST = 20
SETS = [
    f"benchmark.limit={N_TEST}",
    "benchmark.validation_limit=60",
    "keywords.skills_from_field=category",  # no keyword LLM: the MMLU-Pro category is the skill
    "scheduler.progress=false",
]


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("replay")
    return Run(load_config(CONFIG, SETS + [f"store={out / 'store.sqlite'}"], out))


@pytest.mark.parametrize(
    "name, calls",
    [
        ("task_best", 1),
        ("single:Yi-34B", 1),
        ("top_k_vote", 3),
        ("random_k_vote", 3),
        ("oracle", 16),
        ("symbolic_moe_vote", 3),
        ("symbolic_moe_weighted", 3),
    ],
)
def test_vote_methods_on_replay(replay_run: Run, name: str, calls: int) -> None:
    engines = [replay_run.pool.engine(m) for m in replay_run.experts]
    result = run_method(name, replay_run, seed=0)
    before = sum(e.stats.requests for e in engines)
    # A seed no other test uses: new settings, so every request is new to the shared store.
    again = run_method(name, replay_run, seed=next(_fresh_seeds))
    assert result.calls == again.calls == calls * N_TEST
    assert sum(e.stats.requests for e in engines) - before == again.calls  # all generated, none reused
    ids = [q.id for q in replay_run.test]
    assert [p.question_id for p in result.predictions] == ids
    for p, q in zip(result.predictions, replay_run.test, strict=True):
        assert isinstance(p.correct, bool)
        assert p.answer is None or p.answer in q.choices
        assert p.correct == (p.answer == q.answer)
    assert 0.0 < result.accuracy <= 1.0  # recorded 7-8B models get some of 20 MMLU-Pro questions right


def test_oracle_bounds_every_single_model(replay_run: Run) -> None:
    oracle = run_method("oracle", replay_run, seed=0).accuracy
    best = run_method("task_best", replay_run, seed=0).accuracy
    assert oracle >= best


@pytest.mark.parametrize("name", ["debate", "self_refine", "reconcile", "self_moa"])
def test_rounds_with_recorded_models_fail_clearly(replay_run: Run, name: str) -> None:
    with pytest.raises(ConfigError, match="replay engine"):
        run_method(name, replay_run, seed=0)


def test_unknown_names_fail_clearly(replay_run: Run) -> None:
    with pytest.raises(ConfigError, match="unknown method 'nope'.*single:<argument>"):
        run_method("nope", replay_run, seed=0)
    with pytest.raises(ConfigError, match="no model 'gpt-9'"):
        run_method("single:gpt-9", replay_run, seed=0)


def test_compare_cli_writes_the_table(tmp_path: Path) -> None:
    sets = SETS + [f"store={tmp_path / 'store.sqlite'}"]
    args = [
        "compare",
        str(CONFIG),
        "--methods",
        "task_best,top_k_vote,symbolic_moe_vote",
        "--seeds",
        "0,1",
        "--out",
        str(tmp_path / "cmp"),
    ]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Zero-shot CoT [task_best]" in result.output and "Top-k, majority [top_k_vote]" in result.output
    written = json.loads((tmp_path / "cmp/compare.json").read_text())
    assert written["format"] == 2
    table = written["methods"]
    assert list(table) == ["task_best", "top_k_vote", "symbolic_moe_vote"]
    for row in table.values():
        assert set(row) == {
            "mean", "std", "ci95", "calls_per_question", "cost_per_question", "tokens_per_question", "category",
            "label", "models"
        }  # fmt: skip
        assert 0.0 <= row["mean"] <= 1.0 and row["std"] >= 0.0
    assert table["task_best"]["calls_per_question"] == 1.0
    assert table["top_k_vote"]["calls_per_question"] == 3.0
    assert table["top_k_vote"]["cost_per_question"] > table["task_best"]["cost_per_question"] > 0  # priced pool
    assert table["task_best"]["std"] == 0.0  # replay outputs do not depend on the seed
    results = json.loads((tmp_path / "cmp/results.json").read_text())
    assert results["methods"]["symbolic_moe_vote"]["seeds"] == [0, 1]
    assert written["run_id"] == results["run_id"] and table["top_k_vote"]["label"] == "Top-k, majority"

    bad = CliRunner().invoke(app, args[:3] + ["task_best,nope"] + args[4:])
    assert bad.exit_code == 1 and "unknown method 'nope'" in bad.output


def test_reconcile_confidence_parsing_and_weights() -> None:
    assert stated_confidence("The answer is (B). Confidence: 0.85") == 0.85
    assert stated_confidence("confidence level: 90%") == 0.9
    assert stated_confidence("Confidence: 0.2 ... later Confidence: 1.0") == 1.0
    assert stated_confidence("I am fairly sure. The answer is (C).") is None
    assert [recalibrate(c) for c in (1.0, 0.95, 0.85, 0.7, 0.6, None)] == [1.0, 0.8, 0.5, 0.3, 0.1, 0.1]
