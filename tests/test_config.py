from pathlib import Path

import pytest

from symbolic_moe.config import load_config
from symbolic_moe.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["embedded.toml", "replay-mmlu-pro.toml", "replay-mmlu-pro-small16.toml"])
def test_committed_configs_parse(name):
    config = load_config(CONFIGS / name)
    assert config.pool


def test_replay_pools_have_the_documented_sizes():
    assert len(load_config(CONFIGS / "replay-mmlu-pro.toml").pool) == 29
    small = load_config(CONFIGS / "replay-mmlu-pro-small16.toml").pool
    assert len(small) == 16 and "gemini-1.5-pro-002" not in small and "Yi-6B" not in small


def test_set_overrides_and_out(tmp_path):
    config = load_config(
        CONFIGS / "embedded.toml",
        ["recruit.k=5", "recruit.weighting=linear", "pool.smollm2.settings.max_tokens=32", "methods=['a','b']"],
        out=tmp_path / "x",
    )
    assert config.recruit.k == 5 and config.recruit.weighting == "linear"
    assert config.pool["smollm2"].settings.max_tokens == 32
    assert config.methods == ["a", "b"] and config.out == str(tmp_path / "x")


def test_unknown_key_names_the_field(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[pool.a]\nengine = "replay"\nmodel = "x"\n[recruit]\nkk = 3\n')
    with pytest.raises(ConfigError, match=r"c.toml: recruit.kk: unknown key"):
        load_config(path)


def test_bad_value_and_missing_file_and_bad_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[pool.a]\nengine = "replay"\nmodel = "x"\n')
    with pytest.raises(ConfigError, match="recruit.weighting"):
        load_config(path, ["recruit.weighting=cubic"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    path.write_text("[pool\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(CONFIGS / "embedded.toml", ["recruit.k"])
