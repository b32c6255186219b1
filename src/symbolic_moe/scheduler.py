"""One scheduler for every generation of every method (paper 3.3.3, Algorithm 1).

`Scheduler.run(jobs)` takes (model, chat request) jobs, answers what the store already holds,
and generates the rest:
- batched (default): group jobs by model; each group loads its model once, generates all its
  jobs, unloads; groups run largest first, several at once with `workers` > 1;
- sequential: question by question, load each needed model in turn (the naive baseline of the
  paper's Fig. 3 (II)), for the efficiency comparison.
A model whose jobs are all stored is never loaded.

The executor seam. Model groups are run by an `Executor`:

    class Executor(Protocol):
        def run_groups(self, groups: list[ModelGroup], deliver: Deliver) -> list[GroupOutcome]: ...

A `ModelGroup` carries the model name, its `ModelSpec`, the data dir and its pending
`(key, request, settings)` items. The executor calls `deliver(key, completion)` in the driver
process for every finished generation, as soon as it finishes (it may call it from several
threads: the scheduler's `deliver` is thread-safe); `deliver` stores the generation in its own
transaction and advances progress. For each group it returns a `GroupOutcome`: engine time and
loads, and, when the group failed for good, the error text and the keys left undone. It never
raises for a model's failure: the run goes on without that model (fault isolation).
`execute_group(engine, group, deliver)` runs one group on one engine (load, `generate_each`,
unload) and builds its outcome; `LocalExecutor(pool, workers)` runs groups on threads of this
process with the pool's engines (today's behaviour), optionally with prefetch and residency
(residency.py); `split_groups` halves the largest groups while workers would idle.
`executors/ray.py` is the Ray executor. A distributed executor builds the engine
from `group.spec` with `create_engine` wherever it runs the group and calls `execute_group` there.

Faults: a model whose group fails is recorded in `Scheduler.failures` (error, keys, questions)
and not tried again in this run (its later jobs fail at once with the same error). Jobs without
an answer come back as `Completion(text=None, finish_reason="error")`, which methods treat like
an unparseable answer; nothing about them is stored, so running again generates only them.

Accounting: `usage[model]` counts this process's generations and engine time, and separately
(`run_*` fields) the tokens and seconds of every distinct generation the run used, whether
generated now or read from the store (e.g. made by an earlier process that was killed).
"""

from __future__ import annotations

import collections
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .config import ModelSpec
from .engines import Engine, create_engine
from .errors import SmoeError
from .residency import DeviceSlot, Prefetcher, footprint
from .store import GenerationStore, generation_key
from .types import ChatRequest, Completion, GenerationSettings

Item = tuple[str, ChatRequest, GenerationSettings]  # (store key, request, settings)
Deliver = Callable[[str, Completion], None]


@dataclass(frozen=True)
class Job:
    """Generate `request` with the model named `model`; `settings` overrides the model's own."""

    model: str
    request: ChatRequest
    settings: GenerationSettings | None = None


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
                    stream.close()
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
    return GroupOutcome(group.model, int(deltas[0]), *deltas[1:], error=error, undone=undone)


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


class ModelPool:
    """Named models; builds each engine on first use and keeps it (unloaded) for reuse."""

    def __init__(self, specs: dict[str, ModelSpec], data_dir: Path | None = None) -> None:
        self.specs = dict(specs)
        self.data_dir = data_dir
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def group(self, name: str, items: list[Item]) -> ModelGroup:
        return ModelGroup(name, self.specs[name], self.data_dir, items)

    def engine(self, name: str, shard: int = 0) -> Engine:
        """The engine of model `name` (another instance for each shard of a split group)."""
        key = name if shard == 0 else f"{name}#shard{shard}"
        with self._lock:
            if key not in self._engines:
                spec = self.specs[name]
                options = self.group(name, []).engine_options()
                self._engines[key] = create_engine(spec.engine, spec.model, options)
            return self._engines[key]

    def settings(self, name: str) -> GenerationSettings:
        return self.specs[name].settings

    def unload_all(self) -> None:
        for engine in self._engines.values():
            engine.unload()


class LocalExecutor:
    """Groups on threads of this process, with the pool's engines: one group at a time, or up to
    `workers` groups at once (in the order given: the scheduler passes largest first). Each worker
    stands for one device: with `memory_budget_gb` it keeps models resident between groups (and
    between scheduler calls); with `prefetch` it takes its next group early and lets that engine
    read its weights (`engine.prefetch()`) while the current group generates (residency.py)."""

    name = "local"

    def __init__(
        self,
        pool: ModelPool,
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


@dataclass
class ModelUsage:
    """What one model cost in a run. Loads, seconds, tokens and `generated` are this process's;
    `failed` counts jobs left without an answer; the `run_*` fields cover every distinct
    generation the run used, generated now or read from the store (an earlier process's)."""

    loads: int = 0
    load_seconds: float = 0.0
    unload_seconds: float = 0.0
    generate_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generated: int = 0
    reused: int = 0
    failed: int = 0
    run_generations: int = 0
    run_prompt_tokens: int = 0
    run_completion_tokens: int = 0
    run_generation_seconds: float = 0.0


@dataclass
class ModelFailure:
    """A model that failed for good in this run: the error and the jobs left without its answer."""

    model: str
    error: str
    keys: set[str] = field(default_factory=set)
    question_ids: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "error": self.error,
            "generations_missing": len(self.keys),
            "questions": sorted(self.question_ids),
        }


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
    split_groups: bool = False  # split the largest groups while fewer groups than workers
    executor: Executor | None = None  # default: LocalExecutor(pool, workers, chunk_size, ...)
    usage: dict[str, ModelUsage] = field(default_factory=lambda: defaultdict(ModelUsage))
    plans: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, ModelFailure] = field(default_factory=dict)
    # What callers asked for, generated or reused: methods meter their cost from these.
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    _used: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.executor is None:
            self.executor = LocalExecutor(
                self.pool, self.workers, self.chunk_size, self.prefetch, self.memory_budget_gb
            )

    def run(self, jobs: Sequence[Job], label: str = "generate") -> list[Completion]:
        """Completions for `jobs`, in order. Stored generations are reused, never repeated; jobs
        of a model that failed come back with `text=None` (see the module docstring)."""
        keyed = [(self._key(job), job) for job in jobs]
        results: dict[str, Completion] = self.store.get_many({k for k, _ in keyed})
        todo: dict[str, Job] = {k: j for k, j in keyed if k not in results}
        with self._lock:
            seen: set[str] = set()
            for key, job in keyed:
                # Served without a generation of its own: stored already, or the same request
                # asked twice in this call (generated once, so generated + reused == jobs).
                if key in results or key in seen:
                    self.usage[job.model].reused += 1
                if key in results:
                    self._account(key, job.model, results[key])
                seen.add(key)
        sizes: dict[str, int] = defaultdict(int)
        for job in todo.values():
            sizes[job.model] += 1
        self.plans.append(
            {
                "label": label,
                "mode": self.mode,
                "jobs": len(jobs),
                "reused": len(jobs) - len(todo),
                "groups": sizes,
            }
        )
        if todo:
            with self._progress(label, len(todo)) as advance:
                deliver = self._deliverer(todo, results, advance)
                for batch in self._plan(todo):
                    runnable = [g for g in batch if g.model not in self.failures]
                    for group in batch:
                        if group.model in self.failures:  # failed earlier in this run: not tried again
                            keys = [k for k, _, _ in group.items]
                            self._fail(group.model, self.failures[group.model].error, keys, todo)
                            advance(len(keys))
                    assert self.executor is not None
                    for outcome in self.executor.run_groups(runnable, deliver) if runnable else []:
                        self._record(outcome, todo)
                        advance(len(outcome.undone))
        ordered = [results.get(key) or Completion(text=None, finish_reason="error") for key, _ in keyed]
        self.calls += len(ordered)
        self.prompt_tokens += sum(c.prompt_tokens for c in ordered)
        self.completion_tokens += sum(c.completion_tokens for c in ordered)
        return ordered

    # -- planning, delivery, outcomes ----------------------------------------------------------

    def _plan(self, todo: dict[str, Job]) -> list[list[ModelGroup]]:
        """Batches of groups for the executor, run one batch after another. Batched: one batch,
        largest group first. Sequential: question by question, each of its models in turn (a
        model recruited twice for a question is loaded once for it)."""
        if self.mode != "sequential":
            groups: dict[str, list[tuple[str, Job]]] = defaultdict(list)
            for key, job in todo.items():
                groups[job.model].append((key, job))
            ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
            planned = [self.pool.group(model, self._items(items)) for model, items in ordered]
            return [split_groups(planned, self.workers) if self.split_groups else planned]
        by_question: dict[str | None, dict[str, list[tuple[str, Job]]]] = defaultdict(lambda: defaultdict(list))
        for key, job in todo.items():
            by_question[job.request.question_id][job.model].append((key, job))
        return [
            [self.pool.group(model, self._items(items))]
            for by_model in by_question.values()
            for model, items in by_model.items()
        ]

    def _items(self, items: list[tuple[str, Job]]) -> list[Item]:
        return [(key, job.request, self._settings(job)) for key, job in items]

    def _deliverer(self, todo: dict[str, Job], results: dict[str, Completion], advance) -> Deliver:
        def deliver(key: str, completion: Completion) -> None:
            job = todo[key]
            engine = self.pool.engine(job.model)
            settings = self._settings(job)
            self.store.put_many(
                engine.kind, engine.model, settings, [(key, job.request, completion)], self._identity(job.model)
            )
            with self._lock:
                results[key] = completion
                usage = self.usage[job.model]
                usage.generated += 1
                usage.prompt_tokens += completion.prompt_tokens
                usage.completion_tokens += completion.completion_tokens
                self._account(key, job.model, completion)
            advance(1)

        return deliver

    def _account(self, key: str, model: str, completion: Completion) -> None:
        """Count a generation the run used once, however many jobs ask for it (lock held)."""
        if key in self._used:
            return
        self._used.add(key)
        usage = self.usage[model]
        usage.run_generations += 1
        usage.run_prompt_tokens += completion.prompt_tokens
        usage.run_completion_tokens += completion.completion_tokens
        usage.run_generation_seconds += completion.seconds

    def _record(self, outcome: GroupOutcome, todo: dict[str, Job]) -> None:
        with self._lock:
            usage = self.usage[outcome.model]
            usage.loads += outcome.loads
            usage.load_seconds += outcome.load_seconds
            usage.unload_seconds += outcome.unload_seconds
            usage.generate_seconds += outcome.generate_seconds
        if outcome.error is not None:
            self._fail(outcome.model, outcome.error, outcome.undone, todo)

    def _fail(self, model: str, error: str, keys: list[str], todo: dict[str, Job]) -> None:
        with self._lock:
            failure = self.failures.setdefault(model, ModelFailure(model, error))
            failure.keys.update(keys)
            self.usage[model].failed += len(keys)
            for key in keys:
                question = todo[key].request.question_id
                if question is not None:
                    failure.question_ids.add(question)

    # -- helpers --------------------------------------------------------------------------

    def _settings(self, job: Job) -> GenerationSettings:
        return job.settings or self.pool.settings(job.model)

    def _identity(self, model: str) -> dict[str, Any]:
        """The engine's identity (output options, model file), once per model per run."""
        if model not in self._identities:
            self._identities[model] = self.pool.engine(model).identity()
        return self._identities[model]

    def identities(self) -> dict[str, dict[str, Any]]:
        """Every pool model's identity: building them checks options and finds model files."""
        return {name: self._identity(name) for name in self.pool.specs}

    def _key(self, job: Job) -> str:
        spec = self.pool.specs[job.model]
        return generation_key(spec.engine, spec.model, job.request, self._settings(job), self._identity(job.model))

    def _progress(self, label: str, total: int):
        return _ProgressContext(label, total, self.progress)

    @property
    def failed_jobs(self) -> int:
        """Jobs answered without a generation so far (a model failed); grows with every such job."""
        return sum(u.failed for u in self.usage.values())

    @property
    def loads(self) -> int:
        return sum(u.loads for u in self.usage.values())

    def describe(self) -> dict[str, Any]:
        """Which executor ran the groups and how (for results.json)."""
        about = getattr(self.executor, "describe", None)
        info = about() if about is not None else {"executor": type(self.executor).__name__}
        return {"mode": self.mode, "chunk_size": self.chunk_size, **info}

    def release_all(self) -> None:
        """End of a run: unload resident models, let a distributed executor go."""
        release = getattr(self.executor, "release", None)
        if release is not None:
            release()

    def report(self) -> dict[str, Any]:
        """Loads, time and tokens per model, their totals, and failed models, for results.json."""
        per_model = {name: vars(u).copy() for name, u in sorted(self.usage.items())}
        totals = {key: sum(u[key] for u in per_model.values()) for key in vars(ModelUsage())}
        failed = [f.to_json() for f in self.failures.values()]
        return {"per_model": per_model, "totals": totals, "plans": self.plans, "failed": failed}


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
