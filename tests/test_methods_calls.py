"""Call patterns of the baselines on a real engine (issue 4): LLM calls per question match the
paper, every metered call is a real generation or served by one, and each round loads each of
its models once.

The embedded pool (SmolLM2 / Gemma-3 through llama.cpp) generates 8 tokens per call on 2 demo
questions; each method runs under its own seed, so nothing comes from earlier methods. Within a
method two calls can be the very same request (e.g. two agents of a discussion round whose
previous answers happened to be identical, which depends on the CPU's float rounding): the
scheduler generates it once and serves the other from it, so the check is
generated + reused == calls, with the engines' request counters as the generated count. Each
method's dollars equal the sum of its calls' costs (per token and per call prices), also summed per
question, model and step (issue 18): multi-round methods included.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from cost_check import assert_costs_add_up

from symbolic_moe.config import load_config
from symbolic_moe.run import Run

pytestmark = pytest.mark.slow  # real models: a few minutes on a shared 2-core CPU

ROOT = Path(__file__).resolve().parents[1]
N_TEST = 2
POOL = ["smollm2", "gemma3", "smollm2-science", "gemma3-humanities"]
_seeds = itertools.count(100)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    # One thread per model: on a shared 2-core machine two spinning threads are several times slower.
    sets = (
        [f"pool.{m}.settings.max_tokens=8" for m in POOL]
        + [f"pool.{m}.options.n_threads=1" for m in POOL]
        + [
            *[f"pool.{m}.options.n_ctx=2048" for m in POOL],
            f"benchmark.limit={N_TEST}",
            "benchmark.validation_limit=4",
            "aggregator.model=smollm2",  # fixed task aggregator: no aggregator benchmark needed here
            "keywords.max_tokens=16",
            "keywords.structured=false",  # 16 tokens: free text (a JSON answer would be cut short)
            "scheduler.progress=false",
        ]
    )
    # Priced per token and per call (issue 18), so each method's dollars are checked call by call.
    sets += [
        "pool.smollm2.price={input=0.5,output=2.0}",
        "pool.gemma3.price={per_call=0.001}",
        "pool.smollm2-science.price={input=1.0,output=4.0}",
        "pool.gemma3-humanities.price={per_call=0.002}",
    ]
    r = Run(load_config(ROOT / "configs/embedded.toml", sets, tmp_path_factory.mktemp("embedded")))
    assert len(r.test) == N_TEST
    return r


def _generated(run: Run) -> int:
    return sum(run.pool.engine(name).stats.requests for name in run.config.all_models)


def _reused(run: Run) -> int:
    return sum(u.reused for u in run.scheduler.usage.values())


def _measure(run: Run, name: str):
    """(result, calls served: generated now + reused, loads) of one method."""
    from symbolic_moe.methods import method_spec

    spec = method_spec(name)
    if spec.prepare is not None:
        spec.prepare(run)  # preprocessing is not the method's cost
    before = (_generated(run), _reused(run), run.scheduler.loads)
    result = assert_costs_add_up(run, name, next(_seeds))  # run_method, and its dollars checked call by call
    served = (_generated(run) - before[0]) + (_reused(run) - before[1])
    return result, served, run.scheduler.loads - before[2]


# method -> (LLM calls per question, loads: models per round summed over rounds)
FIXED = {
    "task_best": (1, 1),
    "single:gemma3": (1, 1),
    "self_consistency": (5, 1),  # task-best x5 in one round
    "self_refine": (3, 3),  # answer, feedback, refinement: three rounds of one model
    "debate": (6, 2),  # task-best x3, 2 rounds
    "self_moa": (6, 2),  # task-best x3 proposals, task-best x3 syntheses
    "moa": (6, 4),  # top-3 proposals (3 models), aggregator x3 (1 model)
    "reconcile": (9, 9),  # top-3, 3 rounds
    "top_k_llm": (4, 4),  # top-3 experts, then the aggregator in its own round
    "random_k_llm": (4, None),  # random-3 experts, then the aggregator
}


@pytest.mark.parametrize("name", list(FIXED))
def test_calls_per_question_and_loads_per_round(run: Run, name: str) -> None:
    calls, loads = FIXED[name]
    result, served, measured_loads = _measure(run, name)
    assert result.calls == calls * N_TEST
    assert served == result.calls  # each metered call was a real engine request, or served by one
    if loads is None:
        loads = len({m for p in result.predictions for m in p.detail["experts"]}) + 1
    assert measured_loads == loads
    assert result.n == N_TEST and result.prompt_tokens > 0 and result.completion_tokens > 0


@pytest.mark.parametrize(
    "name, rounds",
    [
        ("symbolic_moe_llm", 1),
        ("symbolic_moe_discussion", 2),
        ("symbolic_moe_agg_random", 1),
        ("symbolic_moe_agg_adaptive", 1),
        ("symbolic_moe_agg_task_best", 1),
        ("symbolic_moe_agg_task_specific_discussion", 2),
    ],
)
def test_symbolic_moe_is_k_experts_plus_one_aggregator(run: Run, name: str, rounds: int) -> None:
    result, served, loads = _measure(run, name)
    assert result.calls == (3 * rounds + 1) * N_TEST  # paper: k = 3 experts + 1 aggregator = 4
    assert served == result.calls
    experts = {m for p in result.predictions for m in p.detail["experts"]}
    aggregators = {p.detail["aggregator"] for p in result.predictions} if "agg_" in name else {"smollm2"}
    assert loads == rounds * len(experts) + len(aggregators)


def test_adaptive_aggregator_is_a_recruited_expert(run: Run) -> None:
    result, _, _ = _measure(run, "symbolic_moe_agg_adaptive")
    for p in result.predictions:
        assert p.detail["aggregator"] in p.detail["experts"]
