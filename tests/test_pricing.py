"""Prices and call costs (issue 18): the arithmetic, the config's `price` and price tables, a replay
record's own `cost`, the store keeping recorded costs (and migrating schema 2 stores), prices applied
when a generation is handed out (a price change needs no new generation), and the errors."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from symbolic_moe.app.report.results import print_summary
from symbolic_moe.config import ModelSpec, load_config, parse_config
from symbolic_moe.engines import create_engine
from symbolic_moe.errors import ConfigError, DataError
from symbolic_moe.pricing import Charge, Price, Spend, call_cost, usd_text
from symbolic_moe.scheduler import Job, ModelPool, Scheduler
from symbolic_moe.store import SCHEMA_VERSION, GenerationStore
from symbolic_moe.types import ChatRequest, Completion, GenerationSettings

POOL = {"pool": {"a": {"engine": "replay", "model": "a.jsonl"}}}


def test_call_cost_per_token_per_call_recorded_and_unpriced() -> None:
    per_token = Price(input=2.0, output=8.0)
    assert call_cost(per_token, 1000, 250) == pytest.approx((1000 * 2.0 + 250 * 8.0) / 1e6)
    assert call_cost(Price(per_call=0.003), 1000, 250) == 0.003
    assert call_cost(per_token, 1000, 250, recorded=0.5) == 0.5  # a recorded cost wins
    assert call_cost(None, 1000, 250, recorded=0.5) == 0.5
    assert call_cost(None, 1000, 250) is None  # unpriced


def test_a_sum_with_an_unpriced_call_is_unpriced() -> None:
    priced = Charge("experts", "a", "q1", 10, 5, 0.25)
    spend = Spend.of([priced, priced])
    assert spend.cost_usd == 0.5 and spend.calls == 2 and spend.prompt_tokens == 20
    spend.add(Charge("experts", "b", "q2", 10, 5, None))
    assert spend.cost_usd is None and spend.priced_usd == 0.5 and spend.unpriced_models == {"b"}
    assert usd_text(None) == "unpriced" and usd_text(0.0050656) == "0.005066"


@pytest.mark.parametrize(
    "price, message",
    [
        ({"input": -1, "output": 2}, r"pool\.a\.price\.input: .*greater than or equal to 0"),
        ({"input": "0.5", "output": 2}, r"pool\.a\.price\.input: .*valid number"),
        ({"input": 1, "output": True}, r"pool\.a\.price\.output: .*valid number"),
        ({"per_call": float("nan")}, r"pool\.a\.price\.per_call: .*finite"),
        ({"input": 1, "outptu": 2}, r"pool\.a\.price\.outptu: unknown key"),
        ({"input": 1}, r"pool\.a\.price: give both input and output"),
        ({"input": 1, "output": 2, "per_call": 1}, r"pool\.a\.price: give either .* not both"),
        ({}, r"pool\.a\.price: give both input and output"),
    ],
)
def test_bad_prices_name_the_model_and_field(price: dict[str, Any], message: str) -> None:
    raw = copy.deepcopy(POOL)
    raw["pool"]["a"]["price"] = price
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, source="run.toml")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_price_table_fills_models_without_their_own(tmp_path: Path) -> None:
    _write(
        tmp_path / "prices/t.toml",
        '[prices.a]\ninput = 1.0\noutput = 4.0\nsource = "list"\n'
        "[prices.b]\nper_call = 0.01\n[prices.k]\ninput = 0.1\noutput = 0.1\n[prices.unused]\nper_call = 1\n",
    )
    config = _write(
        tmp_path / "run.toml",
        'prices = "prices/t.toml"\n'
        '[pool.a]\nengine = "replay"\nmodel = "a.jsonl"\n'
        '[pool.b]\nengine = "replay"\nmodel = "b.jsonl"\nprice = { per_call = 0.02 }\n'
        '[pool.c]\nengine = "replay"\nmodel = "c.jsonl"\n'
        '[models.k]\nengine = "replay"\nmodel = "k.jsonl"\n',
    )
    cfg = load_config(config)  # the table is found relative to the config file, not the cwd
    assert cfg.pool["a"].price == Price(input=1.0, output=4.0, source="list")
    assert cfg.pool["b"].price == Price(per_call=0.02)  # its own price wins over the table's
    assert cfg.pool["c"].price is None  # not in the table: unpriced
    assert cfg.models["k"].price == Price(input=0.1, output=0.1)
    overridden = load_config(config, ["pool.c.price={per_call=0.5}"])
    assert overridden.pool["c"].price == Price(per_call=0.5)


@pytest.mark.parametrize(
    "table, message",
    [
        ("[prices.a]\ninput = -2\noutput = 1\n", r"t\.toml: prices\.a\.input: .*greater than or equal to 0"),
        ('[prices.a]\nper_call = "cheap"\n', r"t\.toml: prices\.a\.per_call: .*valid number"),
        ("[prices.a]\nper_cal = 1\n", r"t\.toml: prices\.a\.per_cal: unknown key"),
        ("[models.a]\nper_call = 1\n", r"t\.toml: expected only a \[prices\] table"),
        ("[prices.a\n", r"t\.toml: invalid TOML"),
    ],
)
def test_bad_price_tables_name_the_file_and_model(tmp_path: Path, table: str, message: str) -> None:
    _write(tmp_path / "t.toml", table)
    config = _write(tmp_path / "run.toml", 'prices = "t.toml"\n[pool.a]\nengine = "replay"\nmodel = "a.jsonl"\n')
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_missing_price_table_is_named(tmp_path: Path) -> None:
    config = _write(tmp_path / "run.toml", 'prices = "nope.toml"\n[pool.a]\nengine = "replay"\nmodel = "a.jsonl"\n')
    with pytest.raises(ConfigError, match=r"prices: price table not found: .*nope\.toml"):
        load_config(config)


def _recording(path: Path, records: list[dict[str, Any]]) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in records))


def test_replay_record_cost_becomes_the_completions_cost(tmp_path: Path) -> None:
    rec = _recording(
        tmp_path / "m.jsonl",
        [{"id": "q1", "output": "The answer is (B).", "cost": 0.0042}, {"id": "q2", "output": "A"}],
    )
    engine = create_engine("replay", str(rec))
    one, two = engine.generate([ChatRequest.user("Which?", question_id=q) for q in ("q1", "q2")], GenerationSettings())
    assert one.cost_usd == 0.0042 and two.cost_usd is None
    assert one.prompt_tokens > 0 and one.completion_tokens >= len(one.text.split())


@pytest.mark.parametrize("cost", ["0.1", True, -0.5, [1], {"usd": 1}])
def test_replay_record_cost_must_be_a_number(tmp_path: Path, cost: Any) -> None:
    rec = _recording(
        tmp_path / "m.jsonl", [{"id": "q1", "output": "A", "cost": 0.1}, {"id": "q2", "output": "B", "cost": cost}]
    )
    with pytest.raises(DataError, match=r"m\.jsonl:2: field 'cost' must be a non-negative number"):
        create_engine("replay", str(rec)).load()


def test_store_keeps_the_recorded_cost(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "s.sqlite")
    request = ChatRequest.user("q", question_id="q1")
    store.put_many("replay", "m", GenerationSettings(), [("k1", request, Completion(text="A", cost_usd=0.25))])
    store.put_many("replay", "m", GenerationSettings(), [("k2", request, Completion(text="B"))])
    found = store.get_many(["k1", "k2"])
    assert found["k1"].cost_usd == 0.25 and found["k2"].cost_usd is None


def test_schema_2_store_gains_the_cost_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    store = GenerationStore(path)
    store.put_many("replay", "m", GenerationSettings(), [("k1", ChatRequest.user("q"), Completion(text="A"))])
    store.close()
    db = sqlite3.connect(path)  # make it what a schema 2 symbolic-moe wrote: no cost column
    with db:
        db.execute("ALTER TABLE generations DROP COLUMN cost_usd")
        db.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
    db.close()
    reopened = GenerationStore(path)
    assert reopened.get_many(["k1"])["k1"].text == "A" and reopened.get_many(["k1"])["k1"].cost_usd is None
    version = reopened._db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]  # noqa: SLF001
    assert int(version) == SCHEMA_VERSION == 3


def _scheduler(tmp_path: Path, price: Price | None, recording: Path) -> Scheduler:
    spec = ModelSpec(engine="replay", model=str(recording), price=price)
    return Scheduler(ModelPool({"m": spec}), GenerationStore(tmp_path / "s.sqlite"), progress=False)


def test_a_price_change_needs_no_new_generation(tmp_path: Path) -> None:
    rec = _recording(
        tmp_path / "m.jsonl", [{"id": f"q{i}", "output": f"The answer is ({'AB'[i % 2]})."} for i in range(4)]
    )
    jobs = [Job("m", ChatRequest.user(f"Question {i}?", question_id=f"q{i}")) for i in range(4)]
    first = _scheduler(tmp_path, Price(input=1.0, output=2.0), rec)
    before = first.run(jobs)
    for c in before:
        assert c.cost_usd == pytest.approx((c.prompt_tokens * 1.0 + c.completion_tokens * 2.0) / 1e6)
    again = _scheduler(tmp_path, Price(input=3.0, output=0.0), rec)
    after = again.run(jobs)
    assert again.pool.engine("m").stats.requests == 0 and all(c.cached for c in after)  # all from the store
    for old, new in zip(before, after, strict=True):
        assert new.cost_usd == pytest.approx(old.prompt_tokens * 3.0 / 1e6)
    unpriced = _scheduler(tmp_path, None, rec)
    assert [c.cost_usd for c in unpriced.run(jobs)] == [None] * 4


def test_recorded_cost_wins_over_the_price_and_survives_the_store(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "m.jsonl", [{"id": "q1", "output": "A", "cost": 0.007}, {"id": "q2", "output": "B"}])
    jobs = [Job("m", ChatRequest.user("Q?", question_id=q)) for q in ("q1", "q2")]
    fresh = _scheduler(tmp_path, Price(per_call=0.001), rec).run(jobs)
    stored = _scheduler(tmp_path, Price(per_call=0.002), rec).run(jobs)
    assert [c.cost_usd for c in fresh] == [0.007, 0.001] and [c.cost_usd for c in stored] == [0.007, 0.002]
    assert all(c.cached for c in stored)


def test_metering_lists_each_call_with_step_model_question_and_cost(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "m.jsonl", [{"id": "q1", "output": "A", "cost": 0.5}])
    scheduler = _scheduler(tmp_path, None, rec)
    job = Job("m", ChatRequest.user("Q?", question_id="q1"))
    scheduler.run([job])  # outside metering: nothing listed
    with scheduler.metering() as charges:
        scheduler.run([job, job], label="experts")
    assert scheduler.ledger is None
    assert [(c.step, c.model, c.question_id, c.cost_usd) for c in charges] == [("experts", "m", "q1", 0.5)] * 2


def test_tables_say_unpriced_rather_than_zero() -> None:
    method = {"accuracy": 0.5, "std": 0.0, "seeds": [0], "ci95": [0.4, 0.6], "n": 10}
    summary = {
        "config": "c",
        "benchmark": "b",
        "loads": 0,
        "wall_seconds": 0.0,
        "tokens": {"prompt": 1, "completion": 1, "generated_requests": 1, "reused_requests": 0},
        "methods": {
            "priced": {**method, "calls_per_question": 1.0, "tokens_per_question": 2, "cost_per_question": 0.00123},
            "mixed": {**method, "calls_per_question": 1.0, "tokens_per_question": 2, "cost_per_question": None},
        },
    }
    console = Console(width=200, record=True)
    print_summary(summary, console)
    text = console.export_text()
    assert "0.001230" in text and "unpriced" in text
