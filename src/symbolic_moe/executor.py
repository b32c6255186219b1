"""The executor seam of the scheduler: how model groups (Algorithm 1) are run.

    class Executor(Protocol):
        def run_groups(self, groups: list[ModelGroup], deliver: Deliver) -> list[GroupOutcome]: ...

A `ModelGroup` carries the model name, its `ModelSpec`, the data dir and its pending
`(key, request, settings)` items. The executor calls `deliver(key, completion)` in the driver
process for every finished generation, as soon as it finishes (possibly from several threads:
the scheduler's `deliver` is thread-safe); `deliver` stores the generation in its own
transaction and advances progress. For each group it returns a `GroupOutcome`: engine time and
loads, and, when the group failed for good, the error text and the keys left undone. It never
raises for a model's failure: the run goes on without that model (fault isolation).

`execute_group(engine, group, deliver)` runs one group on one engine (load, `generate_each`,
unload) and builds its outcome; `LocalExecutor(pool, workers)` runs groups on threads of this
process with the pool's engines, optionally with prefetch and residency (residency.py);
`split_groups` halves the largest groups while workers would idle. executors/ray.py is the
Ray executor. A distributed executor builds the engine from `group.spec`
with `create_engine(group.spec.engine, group.spec.model, group.engine_options())` wherever it
runs the group, and calls `execute_group` there.
"""

from __future__ import annotations

import collections
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .config import ModelSpec
from .engines import Engine
from .errors import SmoeError
from .residency import DeviceSlot, Prefetcher, footprint
from .types import ChatRequest, Completion, GenerationSettings

Item = tuple[str, ChatRequest, GenerationSettings]  # (store key, request, settings)
Deliver = Callable[[str, Completion], None]


@dataclass
class ModelGroup:
    """One model's pending generations: what an executor needs to run them anywhere."""

    model: str
    spec: ModelSpec
    data_dir: Path | None
    items: list[Item]
    shard: int = 0  # > 0: a part of a split group, run by an engine of its own (split_groups)

    def engine_options(self) -> dict[str, Any]:
        """The options to build this model's engine with (the pool adds `data_dir`)."""
        return {"data_dir": str(self.data_dir) if self.data_dir else None, **self.spec.options}


@dataclass
class GroupOutcome:
    """What running one group cost, and whether it failed for good (`error`, `undone` keys)."""

    model: str
    loads: int = 0
    load_seconds: float = 0.0
    unload_seconds: float = 0.0
    generate_seconds: float = 0.0
    error: str | None = None
    undone: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.error is not None


class Executor(Protocol):
    def run_groups(self, groups: list[ModelGroup], deliver: Deliver) -> list[GroupOutcome]: ...


def split_groups(groups: list[ModelGroup], workers: int, min_items: int = 8) -> list[ModelGroup]:
    """Beyond the paper: while there are fewer groups than workers (devices), halve the largest
    group, so idle devices share it (each part loads the model once more). Largest first."""
    groups = list(groups)
    while len(groups) < workers:
        largest = max(groups, key=lambda g: len(g.items))
        if len(largest.items) < 2 * min_items:
            break
        groups.remove(largest)
        half = len(largest.items) // 2
        shards = 1 + max((g.shard for g in groups if g.model == largest.model), default=largest.shard)
        groups.append(ModelGroup(largest.model, largest.spec, largest.data_dir, largest.items[:half], largest.shard))
        groups.append(ModelGroup(largest.model, largest.spec, largest.data_dir, largest.items[half:], shards))
    return sorted(groups, key=lambda g: -len(g.items))


def describe_error(exc: BaseException) -> str:
    """One line for results.json: our own errors as they are, others with their type."""
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    return text if isinstance(exc, SmoeError) else f"{type(exc).__name__}: {text}"


def _generate_group(engine: Engine, group: ModelGroup, deliver: Deliver, chunk_size: int, done: set[str]) -> None:
    """Generate every item of `group` on the loaded `engine`, by settings, `chunk_size` requests per
    engine call, delivering each completion as it comes (its key then joins `done`)."""
    by_settings: dict[GenerationSettings, list[tuple[str, ChatRequest]]] = defaultdict(list)
    for key, request, settings in group.items:
        by_settings[settings].append((key, request))
    for settings, same in by_settings.items():
        for start in range(0, len(same), chunk_size):
            chunk = same[start : start + chunk_size]
            stream = engine.generate_each([request for _, request in chunk], settings)
            try:
                while True:
                    try:
                        index, completion = next(stream)
                    except StopIteration:
                        break
                    key = chunk[index][0]
                    deliver(key, completion)
                    done.add(key)
            finally:
                close = getattr(stream, "close", None)  # a generator: stop the engine's work now
                if close is not None:
                    close()


def execute_group(
    engine: Engine, group: ModelGroup, deliver: Deliver, chunk_size: int = 16, slot: DeviceSlot | None = None
) -> GroupOutcome:
    """Load `engine` once, generate every item of `group` (by settings, `chunk_size` requests
    per engine call), deliver each completion as the engine hands it back, unload. A failure of
    the engine ends the group with an outcome naming the error and the keys not delivered; an
    error raised by `deliver` (e.g. the store's disk is full) is not the model's and propagates."""
    stats = engine.stats
    before = (stats.loads, stats.load_seconds, stats.unload_seconds, stats.generate_seconds)
    done: set[str] = set()
    error: str | None = None
    try:
        if slot is not None:
            slot.acquire(f"{group.model}#{group.shard}", engine, footprint(engine, group.spec.memory_gb))
        else:
            engine.load()
        _generate_group(engine, group, deliver, chunk_size, done)
    except Exception as exc:  # the model failed: isolate it, keep everything delivered
        if isinstance(exc, _DeliverError):
            raise exc.cause from None
        error = describe_error(exc)
    finally:
        try:
            if slot is not None and error is None:
                slot.release(f"{group.model}#{group.shard}")
            else:
                if slot is not None:
                    slot.forget(f"{group.model}#{group.shard}")
                engine.unload()
        except Exception as exc:  # pragma: no cover - a failed unload after the work is done
            error = error or f"unload failed: {describe_error(exc)}"
    after = (stats.loads, stats.load_seconds, stats.unload_seconds, stats.generate_seconds)
    deltas = [a - b for a, b in zip(after, before, strict=True)]
    undone = [key for key, _, _ in group.items if key not in done] if error else []
    return GroupOutcome(
        group.model,
        loads=int(deltas[0]),
        load_seconds=deltas[1],
        unload_seconds=deltas[2],
        generate_seconds=deltas[3],
        error=error,
        undone=undone,
    )


class _DeliverError(Exception):
    """Wraps an exception raised by `deliver`, so `execute_group` does not blame the model."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _guarded(deliver: Deliver) -> Deliver:
    def call(key: str, completion: Completion) -> None:
        try:
            deliver(key, completion)
        except Exception as exc:
            raise _DeliverError(exc) from exc

    return call


class EnginePool(Protocol):
    """What LocalExecutor needs of a pool: the (unloaded, reusable) engine of a model."""

    def engine(self, name: str, shard: int = 0) -> Engine: ...


class LocalExecutor:
    """Groups on threads of this process, with the pool's engines: one group at a time, or up to
    `workers` groups at once (in the order given: the scheduler passes largest first). Each worker
    stands for one device: with `memory_budget_gb` it keeps models resident between groups (and
    between scheduler calls); with `prefetch` it takes its next group early and lets that engine
    read its weights (`engine.prefetch()`) while the current group generates (residency.py)."""

    name = "local"

    def __init__(
        self,
        pool: EnginePool,
        workers: int = 1,
        chunk_size: int = 16,
        prefetch: bool = False,
        memory_budget_gb: float | None = None,
    ) -> None:
        self.pool, self.workers, self.chunk_size = pool, workers, chunk_size
        self.prefetch, self.memory_budget_gb = prefetch, memory_budget_gb
        self.slots: list[DeviceSlot] = []
        self.prefetcher = Prefetcher()
        self._lock = threading.Lock()

    def run_groups(self, groups: list[ModelGroup], deliver: Deliver) -> list[GroupOutcome]:
        guarded = _guarded(deliver)
        pending = collections.deque(enumerate(groups))
        taking = threading.Lock()
        outcomes: list[GroupOutcome | None] = [None] * len(groups)
        errors: list[BaseException] = []

        def take(peek: bool = False) -> tuple[int, ModelGroup] | None:
            with taking:
                if not pending:
                    return None
                return pending[0] if peek else pending.popleft()

        def worker(number: int) -> None:
            slot = self._slot(number) if (self.memory_budget_gb or self.prefetch) else None
            current = take()
            while current is not None and not errors:
                # Prefetch the next group's weights without claiming it: whichever worker takes
                # it finds them read (claiming it here would keep it from an idle worker).
                upcoming = take(peek=True) if self.prefetch else None
                if upcoming is not None:
                    self.prefetcher.start(self.pool.engine(upcoming[1].model, upcoming[1].shard))
                index, group = current
                engine = self.pool.engine(group.model, group.shard)
                try:
                    self.prefetcher.wait(engine)
                    outcomes[index] = execute_group(engine, group, guarded, self.chunk_size, slot)
                except BaseException as exc:  # not the model's (e.g. the store): stop, re-raise below
                    errors.append(exc)
                    return
                current = take()

        count = max(1, min(self.workers, len(groups)))
        if count == 1:
            worker(0)
        else:
            threads = [threading.Thread(target=worker, args=(i,), name=f"smoe-worker-{i}") for i in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return [o for o in outcomes if o is not None]

    def _slot(self, number: int) -> DeviceSlot:
        with self._lock:
            while len(self.slots) <= number:
                self.slots.append(DeviceSlot(self.memory_budget_gb))
            return self.slots[number]

    def release(self) -> None:
        """Unload every resident model (end of a run)."""
        for slot in self.slots:
            slot.clear()

    def describe(self) -> dict[str, Any]:
        return {
            "executor": self.name,
            "workers": self.workers,
            "prefetch": self.prefetch,
            "memory_budget_gb": self.memory_budget_gb,
            "prefetches": self.prefetcher.started,
            "resident_reuses": sum(s.reuses for s in self.slots),
            "evictions": sum(s.evictions for s in self.slots),
        }
