"""One scheduler for every generation of every method (paper 3.3.3, Algorithm 1).

`Scheduler.run(jobs)` takes (model, chat request) jobs, answers what the store already holds,
and generates the rest:
- batched (default): group jobs by model, load each model once, generate its whole group in
  chunks (each chunk stored as soon as it returns), unload; several workers run whole model
  groups in parallel, largest first;
- sequential: question by question, load each needed model in turn (the naive baseline of the
  paper's Fig. 3 (II)), for the efficiency comparison.
A model whose jobs are all stored is never loaded.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .config import ModelSpec
from .engines import Engine, create_engine
from .residency import DeviceSlot, Prefetcher, footprint
from .store import GenerationStore, generation_key
from .types import ChatRequest, Completion, GenerationSettings


@dataclass(frozen=True)
class Job:
    """Generate `request` with the model named `model`; `settings` overrides the model's own."""

    model: str
    request: ChatRequest
    settings: GenerationSettings | None = None


@dataclass
class ModelUsage:
    """What one model cost in a run: loads, seconds, tokens, requests generated and reused."""

    loads: int = 0
    load_seconds: float = 0.0
    unload_seconds: float = 0.0
    generate_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generated: int = 0
    reused: int = 0


class ModelPool:
    """Named models; builds each engine on first use and keeps it (unloaded) for reuse."""

    def __init__(self, specs: dict[str, ModelSpec], data_dir: Path | None = None) -> None:
        self.specs = dict(specs)
        self.data_dir = data_dir
        self._engines: dict[str, Engine] = {}

    def engine(self, name: str) -> Engine:
        if name not in self._engines:
            spec = self.specs[name]
            options = {"data_dir": str(self.data_dir) if self.data_dir else None, **spec.options}
            self._engines[name] = create_engine(spec.engine, spec.model, options)
        return self._engines[name]

    def settings(self, name: str) -> GenerationSettings:
        return self.specs[name].settings

    def unload_all(self) -> None:
        for engine in self._engines.values():
            engine.unload()


@dataclass
class Scheduler:
    pool: ModelPool
    store: GenerationStore
    mode: str = "batched"
    workers: int = 1
    chunk_size: int = 16
    progress: bool = True
    prefetch: bool = False
    memory_budget_gb: float | None = None
    usage: dict[str, ModelUsage] = field(default_factory=lambda: defaultdict(ModelUsage))
    plans: list[dict[str, Any]] = field(default_factory=list)
    # What callers asked for, generated or reused: methods meter their cost from these.
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # One slot per worker (device): the models it holds loaded, kept across run() calls.
    slots: list[DeviceSlot] = field(default_factory=list)
    prefetcher: Prefetcher = field(default_factory=Prefetcher)

    def run(self, jobs: Sequence[Job], label: str = "generate") -> list[Completion]:
        """Completions for `jobs`, in order. Stored generations are reused, never repeated."""
        keyed = [(self._key(job), job) for job in jobs]
        results: dict[str, Completion] = self.store.get_many({k for k, _ in keyed})
        todo: dict[str, Job] = {k: j for k, j in keyed if k not in results}
        for key, job in keyed:
            if key in results:
                self.usage[job.model].reused += 1
        groups: dict[str, list[tuple[str, Job]]] = defaultdict(list)
        for key, job in todo.items():
            groups[job.model].append((key, job))
        self.plans.append(
            {
                "label": label,
                "mode": self.mode,
                "jobs": len(jobs),
                "reused": len(jobs) - len(todo),
                "groups": {model: len(items) for model, items in groups.items()},
            }
        )
        if todo:
            with self._progress(label, len(todo)) as advance:
                if self.mode == "sequential":
                    self._run_sequential(list(todo.items()), results, advance)
                else:
                    self._run_batched(groups, results, advance)
        ordered = [results[key] for key, _ in keyed]
        self.calls += len(ordered)
        self.prompt_tokens += sum(c.prompt_tokens for c in ordered)
        self.completion_tokens += sum(c.completion_tokens for c in ordered)
        return ordered

    # -- the two strategies -------------------------------------------------------------

    def _run_batched(self, groups: dict[str, list[tuple[str, Job]]], results: dict, advance) -> None:
        ordered = sorted(groups.items(), key=lambda item: -len(item[1]))  # largest first
        workers = max(1, min(self.workers, len(ordered)))
        pending: queue.SimpleQueue = queue.SimpleQueue()
        for item in ordered:
            pending.put(item)
        errors: list[BaseException] = []

        def worker(index: int) -> None:
            """Take groups in order; with prefetch, take the next one early and read it ahead."""
            slot = self._slot(index)
            current = _take(pending)
            while current is not None and not errors:
                upcoming = _take(pending) if self.prefetch else None
                if upcoming is not None:
                    self.prefetcher.start(self.pool.engine(upcoming[0]))
                try:
                    self._run_group(current[0], current[1], results, advance, slot)
                except BaseException as exc:  # stop the others; re-raised on the caller's thread
                    errors.append(exc)
                    return
                current = upcoming if upcoming is not None else _take(pending)

        if workers == 1:
            worker(0)
        else:
            threads = [threading.Thread(target=worker, args=(i,), name=f"smoe-worker-{i}") for i in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]

    def _slot(self, index: int) -> DeviceSlot:
        with self._lock:
            while len(self.slots) <= index:
                self.slots.append(DeviceSlot(self.memory_budget_gb))
            return self.slots[index]

    def release_all(self) -> None:
        """Unload every resident model (end of a run)."""
        for slot in self.slots:
            slot.clear()

    def _run_sequential(self, items: list[tuple[str, Job]], results: dict, advance) -> None:
        by_question: dict[str | None, list[tuple[str, Job]]] = defaultdict(list)
        for key, job in items:
            by_question[job.request.question_id].append((key, job))
        for question_items in by_question.values():
            # Each model a question needs is loaded once for it, even when recruited twice.
            by_model: dict[str, list[tuple[str, Job]]] = defaultdict(list)
            for key, job in question_items:
                by_model[job.model].append((key, job))
            for model, model_items in by_model.items():
                self._run_group(model, model_items, results, advance, self._slot(0))

    def _run_group(
        self, model: str, items: list[tuple[str, Job]], results: dict, advance, slot: DeviceSlot | None = None
    ) -> None:
        """Load `model` once, generate all `items` chunk by chunk (storing each completion as it
        arrives), then unload it (or keep it resident in `slot`)."""
        engine = self.pool.engine(model)
        slot = slot or DeviceSlot(None)
        usage = ModelUsage()
        before = _snapshot(engine)
        try:
            self.prefetcher.wait(engine)
            slot.acquire(model, engine, footprint(engine, self.pool.specs[model].memory_gb))
            by_settings: dict[GenerationSettings, list[tuple[str, Job]]] = defaultdict(list)
            for key, job in items:
                by_settings[self._settings(job)].append((key, job))
            for settings, same in by_settings.items():
                for start in range(0, len(same), self.chunk_size):
                    chunk = same[start : start + self.chunk_size]
                    for index, completion in _each(engine, [job.request for _, job in chunk], settings):
                        key, job = chunk[index]
                        self.store.put_many(engine.kind, engine.model, settings, [(key, job.request, completion)])
                        results[key] = completion
                        advance(1)
        finally:
            slot.release(model)
            after = _snapshot(engine)
            for name in after:
                setattr(usage, name, after[name] - before[name])
            usage.generated = len(items)
            with self._lock:
                total = self.usage[model]
                for name, value in vars(usage).items():
                    if name != "reused":
                        setattr(total, name, getattr(total, name) + value)

    # -- helpers --------------------------------------------------------------------------

    def _settings(self, job: Job) -> GenerationSettings:
        return job.settings or self.pool.settings(job.model)

    def _key(self, job: Job) -> str:
        spec = self.pool.specs[job.model]
        model = spec.model
        # A system prompt changes what the model writes: two pool entries of one GGUF with
        # different system prompts ("specialists") must not share stored generations.
        if spec.options.get("system_prompt"):
            model = f"{model}#system={spec.options['system_prompt']}"
        return generation_key(spec.engine, model, job.request, self._settings(job))

    def _progress(self, label: str, total: int):
        return _ProgressContext(label, total, self.progress)

    @property
    def loads(self) -> int:
        return sum(u.loads for u in self.usage.values())

    def describe(self) -> dict[str, Any]:
        """How generations were run (for results.json): executor, workers, prefetch, residency."""
        return {
            "executor": "local",
            "mode": self.mode,
            "workers": self.workers,
            "chunk_size": self.chunk_size,
            "prefetch": self.prefetch,
            "memory_budget_gb": self.memory_budget_gb,
            "prefetches": self.prefetcher.started,
            "resident_reuses": sum(s.reuses for s in self.slots),
            "evictions": sum(s.evictions for s in self.slots),
        }

    def report(self) -> dict[str, Any]:
        """Loads, time and tokens per model, and their totals, for results.json."""
        per_model = {name: vars(u).copy() for name, u in sorted(self.usage.items())}
        totals = {key: sum(u[key] for u in per_model.values()) for key in vars(ModelUsage())}
        return {"per_model": per_model, "totals": totals, "plans": self.plans}


def _take(pending: queue.SimpleQueue):
    try:
        return pending.get_nowait()
    except queue.Empty:
        return None


def _each(engine: Engine, requests: list[ChatRequest], settings: GenerationSettings):
    """(index, completion) as each finishes when the engine streams, else all at once."""
    each = getattr(engine, "generate_each", None)
    if each is not None:
        yield from each(requests, settings)
        return
    yield from enumerate(engine.generate(requests, settings))


def _snapshot(engine: Engine) -> dict[str, float]:
    s = engine.stats
    return {
        "loads": s.loads,
        "load_seconds": s.load_seconds,
        "unload_seconds": s.unload_seconds,
        "generate_seconds": s.generate_seconds,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
    }


class _ProgressContext:
    """A rich progress bar (or nothing), yielding a thread-safe `advance(n)`."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self._progress: Progress | None = None
        self._lock = threading.Lock()

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self._progress.start()
        task = self._progress.add_task(self.label, total=self.total)

        def advance(n: int) -> None:
            with self._lock:
                self._progress.advance(task, n)

        return advance

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
