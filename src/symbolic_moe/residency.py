"""Beyond the paper's scheduler: keep models loaded between groups, and load the next one early.

- Residency: each worker (one device) keeps the models it ran loaded while they fit its memory
  budget (`scheduler.memory_budget_gb`), least recently used evicted first. A model asked for
  again (the aggregator after the experts, the next method of a comparison) then costs no load.
- Prefetch (`scheduler.prefetch`): while a worker generates one group, the part of the next
  group's load that does not need the device (reading weights from disk into host memory; the
  engine's `prefetch()`) runs in the background. Engines without `prefetch()` are unaffected.

A model's footprint is the engine's `memory_gb` (the simulated engine knows it from its cost
profile), else the model spec's `memory_gb`, else 0 (always fits).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .engines import Engine


def footprint(engine: Engine, spec_memory_gb: float | None) -> float:
    value = getattr(engine, "memory_gb", None)
    if value is None:
        value = spec_memory_gb
    return float(value or 0.0)


class DeviceSlot:
    """The engines one worker holds loaded. Without a budget nothing stays resident."""

    def __init__(self, budget_gb: float | None) -> None:
        self.budget_gb = budget_gb
        self.resident: OrderedDict[str, tuple[Engine, float]] = OrderedDict()
        self.evictions = 0
        self.reuses = 0

    def acquire(self, name: str, engine: Engine, memory_gb: float) -> None:
        """Make `engine` loaded on this device, evicting least recently used models to fit."""
        if name in self.resident:
            self.resident.move_to_end(name)
            self.reuses += 1
            return
        if self.budget_gb is not None:
            while self.resident and self.used_gb() + memory_gb > self.budget_gb:
                _, (old, _) = self.resident.popitem(last=False)
                old.unload()
                self.evictions += 1
        engine.load()
        self.resident[name] = (engine, memory_gb)

    def release(self, name: str) -> None:
        """Done with `name` for now: unload it unless residency keeps it."""
        if self.budget_gb is None and name in self.resident:
            engine, _ = self.resident.pop(name)
            engine.unload()

    def forget(self, name: str) -> None:
        """Drop `name` without unloading it (the caller unloads a failed engine itself)."""
        self.resident.pop(name, None)

    def used_gb(self) -> float:
        return sum(m for _, m in self.resident.values())

    def clear(self) -> None:
        while self.resident:
            _, (engine, _) = self.resident.popitem(last=False)
            engine.unload()


class Prefetcher:
    """Runs `engine.prefetch()` in the background; `wait(engine)` before loading it."""

    def __init__(self) -> None:
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self.started = 0

    def start(self, engine: Any) -> None:
        prefetch = getattr(engine, "prefetch", None)
        with self._lock:
            if prefetch is None or getattr(engine, "loaded", False) or id(engine) in self._threads:
                return
            thread = threading.Thread(target=prefetch, name="smoe-prefetch", daemon=True)
            thread.start()  # under the lock: a waiter must never find it registered but not started
            self._threads[id(engine)] = thread
            self.started += 1

    def wait(self, engine: Any) -> None:
        with self._lock:
            thread = self._threads.pop(id(engine), None)
        if thread is not None:
            thread.join()
