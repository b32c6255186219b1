"""Cost-aware routing end to end (issue 18) on a hand-made priced replay pool: router_frugal asks
the cheap model first and escalates only when unsure, dollars add up per question, budgets hold
(config and per request, Python API and server), and the errors come before any expert call."""

import json
from pathlib import Path

import httpx
import pytest

from symbolic_moe import Mixture
from symbolic_moe.app.server import BackgroundServer, create_app
from symbolic_moe.config import parse_config
from symbolic_moe.errors import ConfigError
from symbolic_moe.methods import run_method
from symbolic_moe.run import Run

CHEAP, DEAR = 0.0001, 0.005  # USD per recorded call


def _pool(tmp_path: Path, unpriced: bool = False) -> dict:
    """10 validation + 6 test questions with 4 options. 'cheap' is right on the first half of each
    split and names (B) on the rest; 'dear' is always right; 'wild' always names (C)."""
    folder = tmp_path / "bench"
    folder.mkdir(parents=True)
    sizes = {"validation": 10, "test": 6}
    for split, n in sizes.items():
        with (folder / f"{split}.jsonl").open("w") as f:
            for i in range(n):
                q = {"id": f"{split}-{i}", "question": f"Q{split}{i}? (A) w (B) x (C) y (D) z", "answer": "A"}
                f.write(json.dumps({**q, "choices": ["A", "B", "C", "D"]}) + "\n")

    def answer(model: str, i: int, n: int) -> str:
        letter = {"dear": "A", "wild": "C"}.get(model) or ("A" if i < n // 2 else "B")
        return f"The answer is ({letter})"

    for model, cost in (("cheap", CHEAP), ("dear", DEAR), ("wild", 2 * CHEAP)):
        with (tmp_path / f"{model}.jsonl").open("w") as f:
            for split, n in sizes.items():
                for i in range(n):
                    record = {"id": f"{split}-{i}", "output": answer(model, i, n)}
                    if not (unpriced and model == "wild"):
                        record["cost"] = cost
                    f.write(json.dumps(record) + "\n")
    return {
        "out": str(tmp_path / "run"),
        "benchmark": {"path": str(folder)},
        "keywords": {"skills_from_field": "category"},
        "aggregator": {"method": "majority"},
        "scheduler": {"progress": False},
        "router": {"kind": "prior", "frugal_margin": 2.0, "frugal_k_max": 3},
        "pool": {m: {"engine": "replay", "model": str(tmp_path / f"{m}.jsonl")} for m in ("cheap", "dear", "wild")},
    }


def _spent(result) -> list[float]:
    """Per question, the sum of the recorded costs of the experts it asked."""
    price = {"cheap": CHEAP, "dear": DEAR, "wild": 2 * CHEAP}
    return [sum(price[m] for m in p.detail["experts"]) for p in result.predictions]


def test_frugal_asks_cheap_first_and_dollars_add_up(tmp_path):
    run = Run(parse_config(_pool(tmp_path)))
    result = run_method("router_frugal", run, 0)
    # prior: cheap 5.5/11, dear 10.5/11, wild 0.5/11 (no better than chance: never asked);
    # cheap's weight log(0.5 * 3 / 0.5) = 1.1 < margin 2: dear is asked too and decides
    assert all(p.detail["experts"] == ["cheap", "dear"] for p in result.predictions)
    assert result.accuracy == 1.0
    assert result.cost_usd == pytest.approx(sum(_spent(result)))
    assert result.info["max_cost_per_question"] == pytest.approx(CHEAP + DEAR)
    # a margin the cheap expert passes alone: it answers alone, right on half the questions
    lenient = Run(parse_config({**_pool(tmp_path / "b"), "router": {"kind": "prior", "frugal_margin": 1.0}}))
    cheap_only = run_method("router_frugal", lenient, 0)
    assert all(p.detail["experts"] == ["cheap"] for p in cheap_only.predictions)
    assert cheap_only.accuracy == 0.5 and cheap_only.cost_usd == pytest.approx(6 * CHEAP)


def test_frugal_likely_order_asks_the_cascades_experts_cheapest_first(tmp_path):
    raw = _pool(tmp_path)
    raw["router"] = {**raw["router"], "frugal_order": "likely"}
    result = run_method("router_frugal", Run(parse_config(raw)), 0)
    # the 3 most likely (wild too, though no better than chance), cheapest first; cheap's 1.1 and
    # wild's 0 do not reach margin 2 and dear's 4.1 could still overturn them: dear decides
    assert all(p.detail["experts"] == ["cheap", "wild", "dear"] for p in result.predictions)
    assert result.accuracy == 1.0
    assert result.cost_usd == pytest.approx(sum(_spent(result)))


def test_cost_weight_and_budget_move_router_single_to_the_cheap_model(tmp_path):
    raw = _pool(tmp_path)
    assert {p.detail["experts"][0] for p in run_method("router_single", Run(parse_config(raw)), 0).predictions} == {
        "dear"
    }
    # lambda 0.1 per USD per 1,000 questions: dear 0.95 - 0.5 < cheap 0.5 - 0.01
    weighted = Run(parse_config({**raw, "out": str(tmp_path / "w"), "router": {"kind": "prior", "cost_weight": 0.1}}))
    result = run_method("router_single", weighted, 0)
    assert {p.detail["experts"][0] for p in result.predictions} == {"cheap"}
    budgeted = Run(parse_config({**raw, "out": str(tmp_path / "b"), "router": {"kind": "prior", "budget": 0.001}}))
    for method in ("router_vote", "router_cascade", "router_frugal"):
        done = run_method(method, budgeted, 0)
        assert max(_spent(done)) <= 0.001 and all("dear" not in p.detail["experts"] for p in done.predictions)


def test_errors_come_before_any_expert_call(tmp_path):
    run = Run(parse_config(_pool(tmp_path, unpriced=True)))
    with pytest.raises(ConfigError, match="model 'wild' is unpriced"):
        run_method("router_frugal", run, 0)
    raw = {**_pool(tmp_path / "b"), "router": {"kind": "prior", "budget": 0.00005}}
    with pytest.raises(ConfigError, match=r"router.budget: \$5e-05 .* below the cheapest .* 'cheap'"):
        run_method("router_vote", Run(parse_config(raw)), 0)
    # only the validation answers were read (3 models x 10 questions, for the labels and the
    # costs): no test question reached an expert
    assert run.scheduler.calls == 2 * 3 * 10


def test_per_request_budget_in_the_api_and_the_server(tmp_path):
    mixture = Mixture(Run(parse_config(_pool(tmp_path))), method="router_frugal")
    question = "Qtest0? (A) w (B) x (C) y (D) z"
    free, tight = mixture.answer(question)[0], mixture.answer(question, budget=0.001)[0]
    assert free.experts == ["cheap", "dear"] and free.usage.cost_usd == pytest.approx(CHEAP + DEAR)
    assert tight.experts == ["cheap"] and tight.usage.cost_usd == pytest.approx(CHEAP) and tight.budget == 0.001
    with pytest.raises(ConfigError, match="budget: .* below the cheapest"):
        mixture.answer(question, budget=0.00001)
    with BackgroundServer(create_app(mixture)) as url:
        body = {"messages": [{"role": "user", "content": question}], "budget": 0.001}
        reply = httpx.post(f"{url}/chat/completions", json=body, timeout=120).json()
        assert reply["usage"]["cost_usd"] == pytest.approx(CHEAP) and reply["symbolic_moe"]["experts"] == ["cheap"]
        assert reply["symbolic_moe"]["budget"] == 0.001
        refused = httpx.post(f"{url}/chat/completions", json={**body, "budget": 1e-6}, timeout=120)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "budget"
        negative = httpx.post(f"{url}/chat/completions", json={**body, "budget": -1}, timeout=120)
        assert negative.status_code == 400 and "budget" in negative.json()["error"]["message"]
