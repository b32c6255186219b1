"""One scheduler for every generation of every method (paper 3.3.3, Algorithm 1).

`Scheduler.run(jobs)` takes (model, chat request) jobs, answers what the store already holds,
and generates the rest:
- batched (default): group jobs by model; each group loads its model once, generates all its
  jobs, unloads; groups run largest first, several at once with `workers` > 1;
- sequential: question by question, load each needed model in turn (the naive baseline of the
  paper's Fig. 3 (II)), for the efficiency comparison.
A model whose jobs are all stored is never loaded.

Model groups are run by an `Executor` (the seam in executor.py: `run_groups(groups, deliver)`,
`ModelGroup`, `GroupOutcome`, `execute_group`); the default `LocalExecutor(pool, workers,
chunk_size)` runs them on threads of this process, `Scheduler(executor=...)` takes another.

Faults: a model whose group fails is recorded in `Scheduler.failures` (error, keys, questions)
and not tried again in this run (its later jobs fail at once with the same error). Jobs without
an answer come back as `Completion(text=None, finish_reason="error")`, which methods treat like
an unparseable answer; nothing about them is stored, so running again generates only them.

Accounting: `usage[model]` counts this process's generations and engine time, and separately
(`run_*` fields) the tokens and seconds of every distinct generation the run used, whether
generated now or read from the store (e.g. made by an earlier process that was killed).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .config import ModelSpec
from .engines import Engine, EngineStats, create_engine
from .executor import (
    Deliver,
    Executor,
    GroupOutcome,
    Item,
    LocalExecutor,
    ModelGroup,
    describe_error,
    execute_group,
    split_groups,
)
from .store import GenerationStore, generation_key
from .types import ChatRequest, Completion, GenerationSettings

__all__ = [
    "Deliver",
    "Executor",
    "GroupOutcome",
    "Job",
    "LocalExecutor",
    "ModelGroup",
    "ModelPool",
    "Scheduler",
    "describe_error",
    "execute_group",
    "split_groups",
]


@dataclass(frozen=True)
class Job:
    """Generate `request` with the model named `model`; `settings` overrides the model's own."""

    model: str
    request: ChatRequest
    settings: GenerationSettings | None = None

    @property
    def question_id(self) -> str:
        """The id of the question the request asks (every pipeline step's requests carry one)."""
        if self.request.question_id is None:
            raise ValueError(f"a job for {self.model} without a question id")
        return self.request.question_id


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


@dataclass
class ModelUsage(EngineStats):
    """What one model cost in a run: the engine's counters (loads, seconds, tokens: this
    process's), plus `generated`; `failed` counts jobs left without an answer; the `run_*` fields
    cover every distinct generation the run used, generated now or read from the store (an
    earlier process's)."""

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
        progress = self._progress
        progress.start()
        task = progress.add_task(self.label, total=self.total)

        def advance(n: int) -> None:
            with self._lock:
                progress.advance(task, n)

        return advance

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
