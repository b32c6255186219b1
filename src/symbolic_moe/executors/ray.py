"""Model groups on a Ray cluster (`scheduler.executor = "ray"`), behind the scheduler's Executor seam.

Each model group of Algorithm 1 runs as one Ray task that builds the model's engine on its worker
(from the group's ModelSpec), loads it once, generates the group and unloads. The task is a Ray
streaming generator: it yields every completion as the engine finishes it, and the driver
delivers (stores) each one as it arrives, so the SQLite store stays the single writer and a killed
driver resumes as always. Resources per group come from the spec (`resources = {num_gpus = 1}`,
`{num_cpus = 2}` or a custom resource of the cluster; default one CPU); groups are submitted
largest first and Ray runs as many at once as the cluster holds.

Faults: a worker that dies mid-group (killed, out of memory, node lost) is retried up to
`max_retries` times with only the items not yet delivered; a group whose engine fails (or that
keeps dying) comes back as a failed GroupOutcome and the run goes on without that model.

`ray_address`: "local" starts a private cluster on 127.0.0.1 (stopped at the end of the run);
"auto" joins the cluster of this machine (`ray start --head`); "ray://host:port" joins a remote
one through Ray Client. Every node must have symbolic-moe installed (and the engines' extras).
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..engines import create_engine, engine_class
from ..errors import ConfigError
from ..executor import Deliver, GroupOutcome, ModelGroup, describe_error, execute_group
from ..types import Completion

_STANDARD = {"num_cpus": "CPU", "num_gpus": "GPU"}


# Per worker process: engines built once and reused (unloaded) by later groups of the same model.
_ENGINES: dict[str, Any] = {}


def _worker_engine(group: ModelGroup) -> Any:
    key = json.dumps([group.spec.engine, group.spec.model, group.engine_options()], sort_keys=True, default=str)
    if key not in _ENGINES:
        _ENGINES[key] = create_engine(group.spec.engine, group.spec.model, group.engine_options())
    return _ENGINES[key]


def run_group_stream(group: ModelGroup, chunk_size: int) -> Iterator[tuple[str, Any]]:
    """On the worker: the scheduler's own `execute_group` (load once, generate, unload) on a thread,
    its deliveries yielded to the driver as they come. Events: ("started", pid), ("done", (key,
    completion)), ("outcome", (GroupOutcome, task start time)), ("error", text: the engine could
    not even be built)."""
    started = time.time()
    events: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            engine = _worker_engine(group)
            outcome = execute_group(engine, group, lambda k, c: events.put(("done", (k, c))), chunk_size)
            events.put(("outcome", (outcome, started)))
        except Exception as exc:  # e.g. bad options on this node: the model fails, not the run
            events.put(("error", describe_error(exc)))
        finally:
            events.put(None)

    yield "started", os.getpid()
    threading.Thread(target=work, name="smoe-group", daemon=True).start()
    while (event := events.get()) is not None:
        yield event


@dataclass
class GroupTrace:
    """What the driver saw of one group: attempts (items sent each time), worker pids, times."""

    model: str
    attempts: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    wall_seconds: float = 0.0  # submission to the last event, waiting for resources included
    task_seconds: float = 0.0  # the task's start on its worker to the driver holding its last event
    engine_seconds: float = 0.0  # the engine's own load + generate + unload

    @property
    def overhead_seconds(self) -> float:
        """What Ray added to the group: building the engine on the worker, shipping every
        completion to the driver, and the task's end (not the wait for a free resource)."""
        return max(self.task_seconds - self.engine_seconds, 0.0)


class RayExecutor:
    """Runs groups as Ray streaming-generator tasks (see the module docstring)."""

    name = "ray"

    def __init__(
        self,
        address: str = "local",
        max_retries: int = 2,
        chunk_size: int = 16,
        cluster_resources: dict[str, float] | None = None,
        num_cpus: int | None = None,
    ) -> None:
        self.address, self.max_retries, self.chunk_size = address, max_retries, chunk_size
        self.cluster_resources = dict(cluster_resources or {})
        self.num_cpus = num_cpus
        self.traces: list[GroupTrace] = []
        self._started = False
        self._lock = threading.Lock()
        self._remote: Any = None
        self._warm = False

    # -- cluster ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Start or join the cluster; an unreachable address is one ConfigError naming it."""
        # heavy: ray loads only when a Ray executor starts or joins a cluster
        import ray

        if ray.is_initialized():
            return
        _reachable(self.address)
        try:
            if self.address == "local":
                ray.init(
                    address="local",
                    _node_ip_address="127.0.0.1",
                    num_cpus=self.num_cpus,
                    resources=self.cluster_resources or None,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
                self._started = True
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except Exception as exc:
            raise ConfigError(
                f"scheduler.ray_address = '{self.address}': cannot start or reach a Ray cluster "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
            ) from None

    def warm(self, kinds: AbstractSet[str] = frozenset()) -> None:
        """Start worker processes (importing the engines) before the first group, so that start-up
        is paid once with the cluster, not by the groups: one per CPU of the cluster, at most 8."""
        # heavy: ray loads only when a Ray executor starts or joins a cluster
        import ray

        if self._warm:
            return
        count = int(min(max(ray.cluster_resources().get("CPU", 1), 1), 8))
        task = ray.remote(num_cpus=1, max_retries=0)(_warm_worker)
        ray.get([task.remote(0.5, sorted(kinds)) for _ in range(count)])
        self._warm = True

    def check(self, specs: dict[str, Any]) -> None:
        """Every model's resources exist in the cluster and fit one node's... the cluster's total."""
        # heavy: ray loads only when a Ray executor starts or joins a cluster
        import ray

        self.connect()
        total = ray.cluster_resources()
        for name, spec in specs.items():
            tp = int(spec.options.get("tensor_parallel_size") or 1) if spec.engine == "vllm" else 0
            if tp and spec.resources.get("num_gpus", tp) < tp:
                raise ConfigError(
                    f"model '{name}': resources.num_gpus = {spec.resources['num_gpus']:g} is less than its "
                    f"options.tensor_parallel_size = {tp} (vLLM needs one GPU per tensor-parallel rank)"
                )
            for key, amount in group_resources(spec).items():
                resource = _STANDARD.get(key, key)
                if resource in ("CPU", "GPU") and key not in _STANDARD:
                    raise ConfigError(f"model '{name}': resources.{key}: write num_cpus / num_gpus")
                if resource not in total and amount > 0:
                    known = ", ".join(sorted(k for k in total if not k.startswith("node:") and "memory" not in k))
                    raise ConfigError(
                        f"model '{name}': resources.{key}: the Ray cluster has no resource '{resource}' "
                        f"(it has: {known})"
                    )
                if amount > total.get(resource, 0.0):
                    raise ConfigError(
                        f"model '{name}': resources.{key} = {amount:g} but the Ray cluster has "
                        f"{total.get(resource, 0.0):g} {resource} in all"
                    )

    def release(self) -> None:
        """Stop the private cluster this executor started (a joined cluster keeps running)."""
        if self._started:
            # heavy: ray loads only when a Ray executor starts or joins a cluster
            import ray

            ray.shutdown()
            self._started = False

    def describe(self) -> dict[str, Any]:
        groups = [t for t in self.traces if t.attempts]
        return {
            "executor": self.name,
            "ray_address": self.address,
            "max_retries": self.max_retries,
            "groups": len(groups),
            "retried_groups": sum(len(t.attempts) > 1 for t in groups),
            "overhead_seconds_per_group": (sum(t.overhead_seconds for t in groups) / len(groups) if groups else 0.0),
        }

    # -- running ---------------------------------------------------------------------------

    def _task(self):
        # heavy: ray loads only when a Ray executor starts or joins a cluster
        import ray

        if self._remote is None:
            self._remote = ray.remote(max_retries=0)(run_group_stream)
        return self._remote

    def run_groups(self, groups: list[ModelGroup], deliver: Deliver) -> list[GroupOutcome]:
        if not groups:
            return []
        self.connect()
        self.warm({g.spec.engine for g in groups})
        with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="smoe-ray") as threads:
            futures = [threads.submit(self._run_one, group, deliver) for group in groups]  # largest first
            return [f.result() for f in futures]

    def _run_one(self, group: ModelGroup, deliver: Deliver) -> GroupOutcome:
        # heavy: ray loads only when a Ray executor starts or joins a cluster
        import ray

        trace = GroupTrace(group.model)
        with self._lock:
            self.traces.append(trace)
        options = _ray_options(group_resources(group.spec))
        outcome = GroupOutcome(group.model)
        pending = list(group.items)
        start = time.perf_counter()
        while True:
            trace.attempts.append(len(pending))
            gen = (
                self._task()
                .options(**options)
                .remote(ModelGroup(group.model, group.spec, group.data_dir, pending), self.chunk_size)
            )
            delivered: set[str] = set()
            try:
                for ref in gen:
                    kind, payload = ray.get(ref)
                    if kind == "started":
                        trace.pids.append(payload)
                    elif kind == "done":
                        key, completion = payload
                        deliver(key, completion if isinstance(completion, Completion) else Completion(**completion))
                        delivered.add(key)
                    elif kind == "outcome":
                        done, started = payload
                        outcome.loads += done.loads
                        outcome.load_seconds += done.load_seconds
                        outcome.generate_seconds += done.generate_seconds
                        outcome.unload_seconds += done.unload_seconds
                        outcome.error = done.error
                        trace.task_seconds += time.time() - started
                    elif kind == "error":
                        outcome.error = payload
                pending = [item for item in pending if item[0] not in delivered]
                if outcome.error is not None:
                    outcome.undone = [key for key, _, _ in pending]
                break
            except ray.exceptions.RayTaskError as exc:  # our task's own code raised: not a lost worker
                pending = [item for item in pending if item[0] not in delivered]
                outcome.error = describe_error(exc)
                outcome.undone = [key for key, _, _ in pending]
                break
            except ray.exceptions.RayError as exc:  # the worker or its node died: retry what is left
                pending = [item for item in pending if item[0] not in delivered]
                if not pending:
                    break
                if len(trace.attempts) > self.max_retries:
                    outcome.error = f"worker died {len(trace.attempts)} times (max_retries={self.max_retries}): " + (
                        f"{type(exc).__name__}"
                    )
                    outcome.undone = [key for key, _, _ in pending]
                    break
        trace.wall_seconds = time.perf_counter() - start
        trace.engine_seconds = outcome.load_seconds + outcome.generate_seconds + outcome.unload_seconds
        return outcome


def _reachable(address: str, timeout: float = 5.0) -> None:
    """host:port addresses (plain or ray://) must accept a connection within `timeout` seconds;
    Ray itself would keep retrying for minutes."""
    if address in ("local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"scheduler.ray_address = '{address}': expected local, auto, host:port or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"scheduler.ray_address = '{address}': no Ray cluster answers there ({exc})") from None


# Backends worth importing ahead (about a second each); vllm and torch stay lazy (GPU set-up).
_WARM_BACKENDS = {"llama_cpp": "llama_cpp"}


def _warm_worker(seconds: float, kinds: list[str]) -> int:
    for kind in kinds:  # import the engine modules (and light backends) once per worker process
        engine_class(kind)
        if kind in _WARM_BACKENDS:
            importlib.import_module(_WARM_BACKENDS[kind])

    time.sleep(seconds)  # held long enough that each warm-up task gets a worker of its own
    return os.getpid()


def group_resources(spec: Any) -> dict[str, float]:
    """The spec's resources; a vLLM model without them asks for one GPU per tensor-parallel rank."""
    resources = dict(spec.resources)
    if spec.engine == "vllm" and "num_gpus" not in resources:
        resources["num_gpus"] = float(spec.options.get("tensor_parallel_size") or 1)
    return resources


def _ray_options(resources: dict[str, float]) -> dict[str, Any]:
    """A spec's resources as Ray task options; no resources: one CPU."""
    options: dict[str, Any] = {"num_cpus": resources.get("num_cpus", 1 if "num_gpus" not in resources else 0)}
    if "num_gpus" in resources:
        options["num_gpus"] = resources["num_gpus"]
    custom = {k: v for k, v in resources.items() if k not in _STANDARD}
    if custom:
        options["resources"] = custom
    return options
