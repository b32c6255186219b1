"""The Ray executor on a real local Ray cluster (127.0.0.1, 2 CPUs, started and stopped here):
same stored answers as the local executor, a killed worker retried without repeating what was
stored, a failing model isolated, and bad settings rejected before any generation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray

from symbolic_moe.config import ModelSpec
from symbolic_moe.errors import ConfigError
from symbolic_moe.executors.ray import RayExecutor
from symbolic_moe.scheduler import Job, ModelPool, Scheduler
from symbolic_moe.store import GenerationStore
from symbolic_moe.types import ChatRequest, GenerationSettings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    """One private cluster for the module (starting one costs seconds)."""
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        num_cpus=2,
        resources={"sim_gpu": 2},
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield
    ray.shutdown()


def slow_model(name: str, seconds_each: float = 0.25) -> ModelSpec:
    """A simulated model answering one request at a time, `seconds_each` apart (no load time)."""
    costs = {"step_seconds": seconds_each / 10, "output_tokens": 10, "output_spread": 0.0, "max_seqs": 1}
    return ModelSpec(engine="simulated", model=name, options={"costs": costs}, resources={"num_cpus": 1})


def jobs_for(models: list[str], n: int) -> list[Job]:
    return [Job(m, ChatRequest.user(f"Question {i}?", question_id=f"q{i}")) for m in models for i in range(n)]


def scheduler(specs: dict[str, ModelSpec], store: GenerationStore, executor=None) -> Scheduler:
    return Scheduler(ModelPool(specs), store, progress=False, chunk_size=64, executor=executor)


@pytest.mark.slow
def test_same_greedy_answers_as_local(cluster, tmp_path: Path) -> None:
    """A real model (SmolLM2, greedy) answers the same under Ray as in this process."""
    settings = GenerationSettings(temperature=0.0, max_tokens=12)
    options = {"n_threads": 1, "n_ctx": 1024}
    specs = {
        "a": ModelSpec(engine="llama_cpp", model="embedded:smollm2", settings=settings, options=options),
        "b": ModelSpec(
            engine="llama_cpp", model="embedded:smollm2", settings=settings, options={**options, "n_ctx": 768}
        ),
    }
    jobs = jobs_for(["a", "b"], 3)
    local = scheduler(specs, GenerationStore(tmp_path / "local.sqlite")).run(jobs)
    executor = RayExecutor(chunk_size=64)
    remote = scheduler(specs, GenerationStore(tmp_path / "ray.sqlite"), executor).run(jobs)
    assert [c.text for c in remote] == [c.text for c in local]
    assert all(c.text for c in remote)
    assert {t.model for t in executor.traces} == {"a", "b"}
    assert all(len(t.attempts) == 1 for t in executor.traces)


def test_killed_worker_is_retried_without_repeating_stored(cluster, tmp_path: Path) -> None:
    specs = {"slow": slow_model("slow")}
    executor = RayExecutor(max_retries=2, chunk_size=64)
    store = GenerationStore(tmp_path / "g.sqlite")
    sched = scheduler(specs, store, executor)
    stored_before_kill: list[int] = []
    original = store.put_many

    def put_many(*args, **kwargs):
        original(*args, **kwargs)
        trace = executor.traces[0] if executor.traces else None
        if trace is not None and len(trace.attempts) == 1 and store.count() == 5 and not stored_before_kill:
            stored_before_kill.append(store.count())
            os.kill(trace.pids[0], signal.SIGKILL)  # the worker running the group dies mid-group

    store.put_many = put_many  # type: ignore[method-assign]
    out = sched.run(jobs_for(["slow"], 20))
    trace = executor.traces[0]
    assert stored_before_kill == [5]
    assert len(trace.attempts) == 2 and trace.attempts[0] == 20
    assert trace.attempts[1] == 20 - stored_before_kill[0]  # only what was not stored yet
    assert len(set(trace.pids)) == 2  # a new worker process took over
    assert store.count() == 20 and all(c.text for c in out)
    assert sched.usage["slow"].generated == 20  # every request generated and stored once
    assert not sched.failures


def test_failing_model_is_isolated(cluster, tmp_path: Path) -> None:
    """A model whose recording is corrupt fails on its worker at load, every time: no retry helps."""
    bad = tmp_path / "corrupt.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    specs = {
        "good": slow_model("good", 0.01),
        "broken": ModelSpec(engine="simulated", model="broken", options={"replay": str(bad)}),
    }
    executor = RayExecutor(chunk_size=64)
    sched = scheduler(specs, GenerationStore(tmp_path / "g.sqlite"), executor)
    out = sched.run(jobs_for(["good", "broken"], 4))
    assert all(c.text for c in out[:4])
    assert all(c.text is None for c in out[4:])
    failure = sched.failures["broken"]
    assert "cannot read" in failure.error and "corrupt.jsonl.gz" in failure.error
    assert failure.question_ids == {"q0", "q1", "q2", "q3"}
    assert sched.report()["failed"][0]["model"] == "broken"


def test_groups_run_at_once_as_resources_allow(cluster, tmp_path: Path) -> None:
    """Two one-CPU groups on a 2-CPU cluster run side by side (distinct workers, overlapping)."""
    specs = {"x": slow_model("x", 0.3), "y": slow_model("y", 0.3)}
    executor = RayExecutor(chunk_size=64)
    spans: dict[str, list[float]] = {}
    lock = threading.Lock()
    sched = scheduler(specs, GenerationStore(tmp_path / "g.sqlite"), executor)
    deliver = sched._deliverer

    def timed(todo, results, advance):
        inner = deliver(todo, results, advance)

        def call(key, completion):
            with lock:
                spans.setdefault(todo[key].model, []).append(time.monotonic())
            inner(key, completion)

        return call

    sched._deliverer = timed  # type: ignore[method-assign]
    sched.run(jobs_for(["x", "y"], 10))
    assert min(spans["x"]) < max(spans["y"]) and min(spans["y"]) < max(spans["x"])
    assert len({t.pids[0] for t in executor.traces}) == 2


def test_bad_resources_rejected_before_generation(cluster) -> None:
    executor = RayExecutor()
    with pytest.raises(ConfigError, match=r"model 'big': resources.num_gpus.*no resource 'GPU'"):
        executor.check({"big": ModelSpec(engine="simulated", model="big", resources={"num_gpus": 1})})
    with pytest.raises(ConfigError, match=r"resources.sim_gpu = 4 but the Ray cluster has 2"):
        executor.check({"big": ModelSpec(engine="simulated", model="big", resources={"sim_gpu": 4})})
    with pytest.raises(ConfigError, match=r"resources.tpu: the Ray cluster has no resource 'tpu'"):
        executor.check({"odd": ModelSpec(engine="simulated", model="odd", resources={"tpu": 1})})
    tp2 = ModelSpec(engine="vllm", model="m", options={"tensor_parallel_size": 2}, resources={"num_gpus": 1})
    with pytest.raises(ConfigError, match=r"num_gpus = 1 is less than its options.tensor_parallel_size = 2"):
        executor.check({"tp": tp2})


def test_unreachable_address_is_one_clear_error(tmp_path: Path) -> None:
    """`smoe run` with a Ray address nobody listens on: one line naming the setting, no generation."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RAY_ADDRESS": ""}
    command = [
        sys.executable,
        "-c",
        "from symbolic_moe.app.cli import main; main()",
        "run",
        str(ROOT / "configs" / "embedded.toml"),
        "--out",
        str(tmp_path / "run"),
        "--set",
        "scheduler.executor=ray",
        "--set",
        "scheduler.ray_address=127.0.0.1:1",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    assert "scheduler.ray_address = '127.0.0.1:1'" in proc.stderr + proc.stdout
    assert not (tmp_path / "run" / "generations.sqlite").exists() or _rows(tmp_path / "run" / "generations.sqlite") == 0


def _rows(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]


@pytest.mark.server
def test_openai_engine_under_ray(cluster, llama_server: str, tmp_path: Path) -> None:
    """A remote server needs no local GPU: the openai engine runs in a Ray worker like any other."""
    settings = GenerationSettings(temperature=0.0, max_tokens=12)
    specs = {"srv": ModelSpec(engine="openai", model="smollm2", settings=settings, options={"base_url": llama_server})}
    jobs = jobs_for(["srv"], 3)
    local = scheduler(specs, GenerationStore(tmp_path / "local.sqlite")).run(jobs)
    executor = RayExecutor(chunk_size=64)
    remote = scheduler(specs, GenerationStore(tmp_path / "ray.sqlite"), executor).run(jobs)
    assert all(c.text for c in remote)
    assert [c.text for c in remote] == [c.text for c in local]
    assert executor.traces[0].pids and executor.traces[0].pids[0] != os.getpid()
