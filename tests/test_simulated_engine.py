"""The simulated engine's cost model and answers, and the scheduler's prefetch, residency and group
splitting (measured with simulated engines: their charged time is exact, no clock window)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from symbolic_moe.app.compare import compare, print_compare
from symbolic_moe.app.report.html import write_report
from symbolic_moe.app.report.results import print_summary
from symbolic_moe.config import ModelSpec, parse_config
from symbolic_moe.engines import create_engine
from symbolic_moe.engines.sim_cost import CostProfile, batch_timeline
from symbolic_moe.errors import ConfigError
from symbolic_moe.run import Run
from symbolic_moe.scheduler import Job, ModelPool, Scheduler, split_groups
from symbolic_moe.store import GenerationStore
from symbolic_moe.types import ChatRequest, GenerationSettings

FAST = {"time_scale": 1e6}  # sleeps vanish; charged (simulated) time is what the tests read


def requests(n: int) -> list[ChatRequest]:
    return [ChatRequest.user(f"Question {i}: which option?", question_id=f"q{i}") for i in range(n)]


def test_answers_are_deterministic_and_time_scale_is_speed_only() -> None:
    a = create_engine("simulated", "QwenR1", {"cost_table": "a6000_vllm", **FAST})
    b = create_engine("simulated", "QwenR1", {"cost_table": "a6000_vllm", "time_scale": 1e5})
    settings = GenerationSettings(max_tokens=32768)
    first, second = a.generate(requests(5), settings), b.generate(requests(5), settings)
    assert [c.text for c in first] == [c.text for c in second]
    assert [c.completion_tokens for c in first] == [c.completion_tokens for c in second]
    assert all("The answer is (" in c.text for c in first)
    assert a.identity() == b.identity()  # same store key: time_scale changes no answer
    capped = a.generate(requests(5), GenerationSettings(max_tokens=7))
    assert all(c.completion_tokens <= 7 for c in capped)


def test_batching_is_faster_than_one_at_a_time_and_kv_room_limits_it() -> None:
    cost = CostProfile(step_seconds=0.02, step_seconds_per_seq=0.0001, kv_bytes_per_token=0, prefill_tps=1e9)
    lengths = [(100, 500)] * 32
    together = max(batch_timeline(cost, lengths))
    alone = max(batch_timeline(cost, lengths[:1]))
    assert together < 32 * alone / 4  # 32 sequences decode together
    one_at_a_time = cost.model_copy(update={"max_seqs": 1})
    assert max(batch_timeline(one_at_a_time, lengths)) == pytest.approx(32 * alone)
    tight = cost.model_copy(update={"kv_bytes_per_token": 1e6, "kv_cache_gb": 1.2})  # room for 2 sequences
    assert max(batch_timeline(tight, lengths)) > 10 * together


def test_prefetch_hides_the_disk_part_of_a_load() -> None:
    engine = create_engine("simulated", "m", {"costs": {"load_seconds": 30, "load_io_seconds": 12}, **FAST})
    engine.load()
    engine.unload()
    engine.prefetch()
    engine.load()
    assert engine.simulated["load"] == pytest.approx(30 + 18)
    assert engine.simulated["prefetch"] == pytest.approx(12)


def test_bad_cost_options_name_the_option() -> None:
    with pytest.raises(ConfigError, match="unknown cost fields"):
        create_engine("simulated", "m", {"costs": {"load_secs": 1}})
    with pytest.raises(ConfigError, match="no profile 'nope'"):
        create_engine("simulated", "nope", {"cost_table": "a6000_vllm"})


def spec(name: str, memory_gb: float, load: float = 10.0) -> ModelSpec:
    costs = {"load_seconds": load, "load_io_seconds": load / 2, "output_tokens": 20, "output_spread": 0.0}
    return ModelSpec(engine="simulated", model=name, options={"costs": costs, **FAST}, memory_gb=memory_gb)


def make(tmp_path: Path, budget: float | None, prefetch: bool = False, workers: int = 1, split: bool = False):
    specs = {name: spec(name, 20) for name in "abc"}
    return Scheduler(
        ModelPool(specs),
        GenerationStore(tmp_path / "g.sqlite"),
        progress=False,
        workers=workers,
        prefetch=prefetch,
        memory_budget_gb=budget,
        split_groups=split,
    )


def jobs(models: str, n: int, tag: str = "") -> list[Job]:
    return [Job(m, ChatRequest.user(f"{tag}Q{i}", question_id=f"q{i}")) for m in models for i in range(n)]


def test_residency_keeps_models_within_the_budget(tmp_path: Path) -> None:
    plain = make(tmp_path / "plain", None)
    plain.run(jobs("ab", 3))
    plain.run(jobs("ab", 3, "again "))
    resident = make(tmp_path / "resident", 45.0)  # two 20 GB models fit, not three
    resident.run(jobs("ab", 3))
    resident.run(jobs("ab", 3, "again "))  # both still loaded: no load
    assert plain.loads == 4 and resident.loads == 2
    resident.run(jobs("c", 3))  # evicts the least recently used
    assert resident.describe()["evictions"] == 1
    resident.release_all()
    assert not any(e.loaded for e in resident.pool._engines.values())


def test_prefetch_overlaps_the_next_load(tmp_path: Path) -> None:
    sched = make(tmp_path, None, prefetch=True)
    sched.run(jobs("abc", 4))
    engines = sched.pool._engines
    assert sched.describe()["prefetches"] == 2  # the 2nd and 3rd groups were read ahead
    assert sum(e.simulated["load"] for e in engines.values()) == pytest.approx(10 + 5 + 5)


def test_split_groups_gives_idle_workers_a_share(tmp_path: Path) -> None:
    sched = make(tmp_path, None, workers=4, split=True)
    out = sched.run(jobs("a", 40))
    assert all(c.text for c in out)
    assert sched.loads == 4  # one model, four parts, one load each
    groups = split_groups([sched.pool.group("a", [("k", None, None)] * 40)], 4)
    assert sorted(len(g.items) for g in groups) == [10, 10, 10, 10]
    assert len({g.shard for g in groups}) == 4


def test_a_run_with_simulated_models_says_so_everywhere(tmp_path: Path) -> None:
    """results.json, compare.json, the printed tables and report.html all mark a run in which
    any model is simulated; a replay run says `simulated: false` (tests/test_report.py)."""
    pool = {"sim": {"engine": "simulated", "model": "m", "options": FAST}}
    raw = {
        "out": str(tmp_path / "run"),
        "benchmark": {"path": "demo", "limit": 3, "validation_limit": 4},
        "keywords": {"skills_from_field": "category"},
        "aggregator": {"method": "majority"},
        "scheduler": {"progress": False},
        "pool": pool,
    }
    table, summary = compare(Run(parse_config(raw)), ["task_best"], [0])
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["simulated"] is True and written["simulated_models"] == ["sim"]
    assert table["simulated"] is True
    for show in (print_summary, print_compare):
        console = Console(record=True, width=200)
        show(summary, console)
        assert "SIMULATED: sim ran on the simulated engine" in console.export_text()
    html = write_report(tmp_path / "run").read_text()
    assert '<p class="banner">SIMULATED: sim ran on the simulated engine' in html
