"""Bad input fails before the first generation, as one `error:` line naming the setting
(issue 11): malformed test split, engine options, method options, seeds, model references."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_fault_isolation import write_recording
from typer.testing import CliRunner

from symbolic_moe.app.cli import app
from symbolic_moe.config import load_config

DEMO = Path(__file__).resolve().parents[1] / "src/symbolic_moe/data/demo"


def replay_config(tmp_path: Path, benchmark: str = "demo") -> Path:
    good = write_recording(tmp_path / "good.jsonl", right=True)
    weak = write_recording(tmp_path / "weak.jsonl", right=False)
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
out = "{tmp_path / "run"}"
methods = ["top_k_vote"]
[benchmark]
path = "{benchmark}"
[keywords]
skills_from_field = "category"
[aggregator]
method = "majority"
[scheduler]
progress = false
[pool.good]
engine = "replay"
model = "{good}"
[pool.weak]
engine = "replay"
model = "{weak}"
"""
    )
    return path


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, result.output.strip()


def test_malformed_test_split_fails_before_any_generation(tmp_path: Path) -> None:
    data = tmp_path / "bench"
    data.mkdir()
    shutil.copy(DEMO / "validation.jsonl", data / "validation.jsonl")
    lines = (DEMO / "test.jsonl").read_text().splitlines()
    lines[2] = '{"id": "broken", "question": '  # line 3 is cut off
    (data / "test.jsonl").write_text("\n".join(lines) + "\n")
    config = replay_config(tmp_path, benchmark=str(data))
    result, output = invoke("run", str(config))
    assert result.exit_code == 1
    assert "test.jsonl, line 3" in output and "Traceback" not in output
    store = tmp_path / "run" / "generations.sqlite"
    # Nothing was generated: not even the validation answers that come first in the pipeline.
    assert not (tmp_path / "run" / "validation_outputs.json").exists()
    if store.exists():
        import sqlite3

        assert sqlite3.connect(store).execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("method_options.debate.agnets=1", "method_options.debate.agnets: unknown key"),
        ("method_options.debate.agents=0", "method_options.debate.agents: Input should be greater than or equal to 1"),
        ('method_options.debate.agents="three"', "method_options.debate.agents: Input should be a valid integer"),
        ("method_options.self_consistency.samples=-1", "method_options.self_consistency.samples"),
        ("method_options.nonsense.x=1", "method_options.nonsense: unknown method 'nonsense'"),
        ("method_options.task_best.agents=3", "method_options.task_best.agents: unknown key"),
        ("pool.good.options.n_ctx=64", "pool.good.options.n_ctx: unknown option"),
        ("pool.good.engine=llama", "pool.good.engine: unknown engine 'llama'"),
        ("aggregator.model=nope", "aggregator.model: model 'nope' is neither in [pool] nor in [models]"),
    ],
)
def test_bad_settings_are_one_line(tmp_path: Path, setting: str, expected: str) -> None:
    config = replay_config(tmp_path)
    result, output = invoke("run", str(config), "--set", setting)
    assert result.exit_code == 1, output
    assert expected in output and "Traceback" not in output
    assert len(output.splitlines()) == 1 or output.startswith("error:")
    assert not (tmp_path / "run" / "generations.sqlite").exists() or not (tmp_path / "run/results.json").exists()


LLAMA = '[pool.a]\nengine = "llama_cpp"\nmodel = "embedded:smollm2"\noptions = {{ {} }}\n'


def test_llama_option_typos_fail_at_config_load(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(LLAMA.format("n_ctxx = 512"))
    from symbolic_moe.errors import ConfigError

    with pytest.raises(ConfigError, match=r"c.toml: pool.a.options.n_ctxx: unknown option"):
        load_config(path)
    path.write_text(LLAMA.format('requantize = "q3"'))
    with pytest.raises(ConfigError, match=r"pool.a.options.requantize: .*unknown type 'q3'"):
        load_config(path)


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_bad_seeds_are_one_line(tmp_path: Path, command: str) -> None:
    config = replay_config(tmp_path)
    extra = ["--methods", "top_k_vote"] if command == "compare" else []
    result, output = invoke(command, str(config), "--seeds", "0,x", *extra)
    assert result.exit_code == 1, output
    assert output == "error: --seeds expects comma-separated integers, got '0,x'"


def test_method_options_take_effect(tmp_path: Path) -> None:
    config = replay_config(tmp_path)
    result, output = invoke(
        "run",
        str(config),
        "--set",
        "methods=['self_consistency']",
        "--set",
        "method_options.self_consistency.samples=3",
    )
    assert result.exit_code == 0, output
    results = json.loads((tmp_path / "run/results.json").read_text())
    assert results["methods"]["self_consistency"]["info"]["0"]["samples"] == 3
    assert results["methods"]["self_consistency"]["calls_per_question"] == 3.0
