"""The `replay` engine over the real recorded MMLU-Pro outputs in the shared data folder."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from symbolic_moe.config import default_data_dir
from symbolic_moe.engines import create_engine
from symbolic_moe.engines.replay import ReplayEngine, read_records, replay_models
from symbolic_moe.errors import ConfigError, DataError, EngineError
from symbolic_moe.types import ChatRequest, GenerationSettings

DATA_DIR = default_data_dir()
REPLAY = DATA_DIR / "replay" / "mmlu_pro" if DATA_DIR else None
needs_data = pytest.mark.skipif(
    REPLAY is None or not (REPLAY / "models.json").is_file(),
    reason="replay data not found: set SMOE_DATA_DIR to the folder holding replay/mmlu_pro/",
)
SETTINGS = GenerationSettings()


def raw(model: str) -> dict[str, dict]:
    assert REPLAY is not None
    with gzip.open(REPLAY / f"{model}.jsonl.gz", "rt", encoding="utf-8") as lines:
        return {r["id"]: r for r in map(json.loads, lines)}


@needs_data
def test_replay_models_lists_all_29() -> None:
    names = replay_models(REPLAY)
    assert len(names) == 29 and len(set(names)) == 29
    assert names[0] == "gemini-1.5-pro-002"  # models.json is sorted by test accuracy
    assert all((REPLAY / f"{name}.jsonl.gz").is_file() for name in names)


@needs_data
def test_returns_recorded_outputs_relative_to_data_dir() -> None:
    engine = create_engine("replay", "replay/mmlu_pro/Llama-2-7b-hf.jsonl.gz", {"data_dir": str(DATA_DIR)})
    ids = ["mmlu_pro-test-0007", "mmlu_pro-validation-0000", "mmlu_pro-test-2099"]
    completions = engine.generate([ChatRequest.user("any prompt", question_id=i) for i in ids], SETTINGS)
    recorded = raw("Llama-2-7b-hf")
    assert [c.text for c in completions] == [recorded[i]["output"] for i in ids]
    for completion in completions:
        # SmolLM2's BPE: at least a token per word (more for numbers and punctuation)
        assert len(completion.text) > completion.completion_tokens >= len(completion.text.split()) > 0
        assert completion.prompt_tokens == 2  # "any" + " prompt": the request as sent
        assert completion.cost_usd is None  # MMLU-Pro recordings carry no cost: the price decides
    assert engine.stats.loads == 1 and engine.stats.requests == 3
    assert len(engine.records) == 2450
    engine.unload()
    assert engine.records == {}


@needs_data
def test_missing_output_is_no_answer() -> None:
    # DeepSeek-Coder-V2 has no recording for most chemistry and engineering items.
    missing = [i for i, r in raw("DeepSeek-Coder-V2").items() if r["output"] is None]
    assert len(missing) == 2450 - 2177
    engine = create_engine("replay", str(REPLAY / "DeepSeek-Coder-V2.jsonl.gz"))  # absolute path
    completion = engine.generate([ChatRequest.user("q", question_id=missing[0])], SETTINGS)[0]
    assert completion.text is None and completion.completion_tokens == 0


@needs_data
def test_unknown_or_missing_question_id_names_model_and_id() -> None:
    engine = create_engine("replay", "replay/mmlu_pro/gemma-7b.jsonl.gz", {"data_dir": str(DATA_DIR)})
    with pytest.raises(EngineError, match=r"gemma-7b.*'gpqa-test-0001'"):
        engine.generate([ChatRequest.user("q", question_id="gpqa-test-0001")], SETTINGS)
    with pytest.raises(EngineError, match=r"gemma-7b.*without question_id"):
        engine.generate([ChatRequest.user("q")], SETTINGS)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    engine = create_engine("replay", "replay/none.jsonl.gz", {"data_dir": str(tmp_path)})
    with pytest.raises(EngineError, match=str(tmp_path / "replay/none.jsonl.gz")):
        engine.load()


def test_plain_jsonl_and_malformed_lines(tmp_path: Path) -> None:
    good = tmp_path / "m.jsonl"
    good.write_text('{"id": "a", "output": "The answer is (B)."}\n\n{"id": "b", "output": null}\n')
    engine = ReplayEngine(model="m.jsonl", options={"data_dir": str(tmp_path)})
    texts = [c.text for c in engine.generate([ChatRequest.user("", question_id=q) for q in "ab"], SETTINGS)]
    assert texts == ["The answer is (B).", None]

    cases = {
        '{"id": "a", "output": "x"}\n{"id": "b", "output": "y"\n': r"bad\.jsonl:2: not valid JSON",
        '{"id": 3, "output": "x"}\n': r"bad\.jsonl:1: field 'id'",
        '{"id": "a"}\n': r"bad\.jsonl:1: field 'output'",
        "[1, 2]\n": r"bad\.jsonl:1: expected a JSON object",
        '{"id": "a", "output": "x"}\n{"id": "a", "output": "y"}\n': r"bad\.jsonl:2: duplicate id 'a'",
    }
    for content, message in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(content)
        with pytest.raises(DataError, match=message):
            read_records(bad)


def test_gzip_and_models_json_errors(tmp_path: Path) -> None:
    truncated = tmp_path / "t.jsonl.gz"
    lines = "".join(f'{{"id": "q{i}", "output": "x"}}\n' for i in range(50))
    truncated.write_bytes(gzip.compress(lines.encode())[:-12])
    with pytest.raises(DataError, match=r"t\.jsonl\.gz: cannot read"):
        read_records(truncated)
    with pytest.raises(DataError, match=r"models\.json: no such file"):
        replay_models(tmp_path)
    (tmp_path / "models.json").write_text('{"models": [{"name": "a"}, {"nom": "b"}]}')
    with pytest.raises(DataError, match=r"models\[1\]"):
        replay_models(tmp_path)


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"replay.*'x'.*options.n_ctx: unknown option"):
        create_engine("replay", "x", {"data_dir": None, "n_ctx": 2})
