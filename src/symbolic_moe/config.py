"""A run is one TOML file (SPEC 1, issue 2): pool, benchmark, method settings, seed, output dir.

Unknown keys are errors; `--set dotted.key=value` overrides any value. Paths of data (benchmark
folders, replay files) are relative to the data directory: `--data-dir`, else `SMOE_DATA_DIR`,
else `../shared/data` when it exists.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .engines import engine_options
from .errors import ConfigError
from .pricing import Price
from .types import GenerationSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """One named model: which engine runs it, which model, how it generates."""

    engine: str
    model: str
    settings: GenerationSettings = GenerationSettings()
    # Engine-specific options: n_ctx, n_threads, batch_size (llama_cpp); base_url, api_key_env,
    # concurrency, timeout (openai); ...
    options: dict[str, Any] = Field(default_factory=dict)
    # What one group of this model needs on a Ray worker: num_gpus, num_cpus, or a custom resource
    # of the cluster (e.g. {num_gpus = 1}, {num_cpus = 2}, {sim_gpu = 1}). Local runs ignore it.
    resources: dict[str, float] = Field(default_factory=dict)
    # Device memory the loaded model takes (residency budget); engines that know it override it.
    memory_gb: float | None = Field(None, ge=0)
    # USD: {input, output} per 1M tokens or {per_call}; None: unpriced (pricing.py). Default:
    # the entry of this name in the config's `prices` table.
    price: Price | None = None


class BenchmarkConfig(_Strict):
    path: str = "demo"  # "demo", a folder of <split>.jsonl under the data dir, or "hub:<name>"
    validation: str = "validation"
    test: str = "test"
    limit: int | None = Field(None, ge=1, description="use only the first N test questions")
    stride: int = Field(1, ge=1, description="use every N-th test question (before limit): a spread subset")
    validation_limit: int | None = Field(None, ge=1)


class KeywordConfig(_Strict):
    """The keyword step (SPEC 4.1). `source`: "llm" (the keyword LLM) or "embedding" (no LLM:
    the `embedding_field` labels of the nearest validation questions by MiniLM embedding)."""

    model: str = "smollm2"
    samples: int = Field(5, ge=1)
    # per_question, 2 (the authors' scripts): the best of per_question/global x min_count 1-3 in a
    # 2-fold cross-validation of Symbolic-MoE on small16's 350 validation questions with structured
    # SmolLM2 keywords (BENCHMARKS.md, issue 16), a tie with global, 2 (49.81 vs 49.71 %); on the
    # first 100 questions global had led (52.0 vs 49.7), so the larger sample decides
    filter: Literal["per_question", "global"] = "per_question"
    min_count: int = Field(2, ge=1)
    max_length: int = Field(20, ge=1)
    # None: 40 for free text (2-5 keywords fit; tiny models ramble on past them), 96 for JSON
    # (the schema bounds the answer; a cut one is invalid JSON)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = 0.7
    # JSON answers constrained by a schema (engines that refuse it answer free text, parsed leniently)
    structured: bool = True
    skills_from_field: str | None = None
    source: Literal["llm", "embedding"] = "llm"
    embedding_field: str = "category"
    neighbours: int = Field(5, ge=1, description="embedding: labelled neighbours per question")

    @property
    def token_limit(self) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        return 96 if self.structured else 40


class RecruitConfig(_Strict):
    k: int = Field(3, ge=1)
    # softmax: paper (T = 0.5); linear: authors' scripts, the default because it measured better on
    # the validation split (BENCHMARKS.md); greedy: ours, deterministic top-k by skill score
    weighting: Literal["softmax", "linear", "greedy"] = "linear"
    temperature: float = Field(0.5, gt=0)
    # paper: 0.05; the authors' scripts never trim (0). 0.05 kept: better on validation for the
    # paper's two weightings (BENCHMARKS.md, learned routing: trimming)
    trim_share: float = Field(0.05, ge=0, lt=1)
    embedding_model: str = "all-MiniLM-L6-v2"


class RouterConfig(_Strict):
    """The learned router (SPEC 10; methods router_single / router_vote / router_cascade). Defaults:
    the best setting of a 5-fold cross-validation on the small16 pool's validation split (cascade
    accuracy within 4 calls per question; BENCHMARKS.md, learned routing)."""

    # prior: overall accuracy only; skills: per category/skill; knn: embedding neighbours;
    # clusters: k-means clusters (Avengers-style); logistic: logistic regression on embeddings
    kind: Literal["prior", "skills", "knn", "clusters", "logistic"] = "clusters"
    k_max: int = Field(5, ge=1, description="router_cascade: at most this many experts per question")
    margin: float = Field(
        5.0, ge=0, description="router_cascade: stop once the leading answer's log-odds margin reaches it"
    )
    fit_splits: list[str] = Field(default_factory=lambda: ["validation"], min_length=1)
    cross_fit_folds: int = Field(0, ge=0, description="K > 1: also fit on the scored split by K-fold cross-fitting")
    strength: float = Field(20.0, gt=0, description="shrinkage: questions the coarser estimate counts as")
    neighbours: int = Field(20, ge=1, description="knn: labelled neighbours per question")
    clusters: int = Field(4, ge=1, description="clusters: k-means clusters")
    c: float = Field(0.1, gt=0, description="logistic: inverse L2 strength")
    # cost-aware routing (issue 18; needs every pool model's price)
    cost_weight: float = Field(
        0.0, ge=0, description="router_single / router_vote: rank by p - cost_weight x USD per 1,000 questions"
    )
    budget: float | None = Field(None, gt=0, description="USD per question no question may spend more than")
    frugal_margin: float = Field(
        6.0, ge=0, description="router_frugal: stop once the leading answer's log-odds margin reaches it"
    )
    frugal_k_max: int = Field(3, ge=1, description="router_frugal: at most this many experts per question")
    frugal_cost_weight: float = Field(
        0.1, ge=0, description="router_frugal: its cheaper experts are the best by p - this x USD per 1,000 questions"
    )
    frugal_order: Literal["cheaper", "likely"] = Field(
        "cheaper",
        description="router_frugal: 'cheaper' experts before the most likely one, or the frugal_k_max most "
        "'likely' ones asked cheapest first under router_cascade's stopping rule",
    )


class AggregatorConfig(_Strict):
    method: Literal["llm", "majority", "weighted"] = "llm"
    model: str | None = None  # fixed aggregator; None: chosen by the synthetic benchmark
    candidates: list[str] | None = None  # None: every model with an LLM engine (not replay)
    discussion: bool = False
    max_tokens: int | None = None


class SchedulerConfig(_Strict):
    mode: Literal["batched", "sequential"] = "batched"
    workers: int = Field(1, ge=1)
    progress: bool = True
    chunk_size: int = Field(16, ge=1, description="requests handed to an engine at once")
    executor: Literal["local", "ray"] = "local"
    # "local": start a private Ray cluster on 127.0.0.1; "auto" or "ray://host:port": join one
    ray_address: str = "local"
    max_retries: int = Field(2, ge=0, description="re-runs of a model group whose worker died")
    # Only for ray_address = "local" (the private cluster): its CPUs and custom resources
    ray_num_cpus: int | None = Field(None, ge=1)
    ray_resources: dict[str, float] = Field(default_factory=dict)
    prefetch: bool = False  # load the next group's weights from disk while the current one generates
    memory_budget_gb: float | None = Field(None, gt=0, description="per worker: keep models resident within it")
    split_groups: bool = False  # fewer groups than workers: split the largest so every worker has one


class RunConfig(_Strict):
    name: str = "run"
    seed: int = 0
    out: str = "runs/run"
    data_dir: str | None = None
    store: str | None = None  # default: <out>/generations.sqlite
    methods: list[str] = Field(default_factory=lambda: ["symbolic_moe"])
    benchmark: BenchmarkConfig = BenchmarkConfig()
    pool: dict[str, ModelSpec]
    models: dict[str, ModelSpec] = Field(default_factory=dict)  # keyword LLM, aggregators, meta LLM
    keywords: KeywordConfig = KeywordConfig()
    recruit: RecruitConfig = RecruitConfig()
    aggregator: AggregatorConfig = AggregatorConfig()
    router: RouterConfig = RouterConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    method_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # A price table (TOML, relative to the config file): `[prices."<model name>"]` entries, each a
    # `price`, for the pool and extra models that state none of their own.
    prices: str | None = None

    @model_validator(mode="after")
    def _names_resolve(self) -> RunConfig:
        if not self.pool:
            raise ValueError("pool: at least one model is needed")
        both = set(self.pool) & set(self.models)
        if both:
            raise ValueError(f"models: names also used in pool: {sorted(both)}")
        scored = self.benchmark.test
        if scored in self.router.fit_splits:
            raise ValueError(f"router.fit_splits: '{scored}' is the split being scored (benchmark.test)")
        if self.router.cross_fit_folds == 1:
            raise ValueError("router.cross_fit_folds: 0 (off) or at least 2 folds")
        return self

    def check_references(self) -> None:
        """Every setting that names a model names one of [pool] or [models] (checked by
        `Run.check`, before the first generation; a config may leave unused defaults dangling)."""
        no_llm = self.keywords.skills_from_field or self.keywords.source == "embedding"
        references = [("keywords.model", None if no_llm else self.keywords.model)]
        references.append(("aggregator.model", self.aggregator.model))
        references += [("aggregator.candidates", name) for name in self.aggregator.candidates or []]
        for setting, name in references:
            if name is not None and name not in self.all_models:
                raise ConfigError(f"{setting}: model '{name}' is neither in [pool] nor in [models]")

    def spec(self, name: str) -> ModelSpec:
        """The model called `name`, from the pool or the extra models."""
        if name in self.pool:
            return self.pool[name]
        if name in self.models:
            return self.models[name]
        raise ConfigError(f"model '{name}' is neither in [pool] nor in [models]")

    @property
    def all_models(self) -> dict[str, ModelSpec]:
        return {**self.pool, **self.models}

    def out_dir(self) -> Path:
        return Path(self.out)

    def store_path(self) -> Path:
        return Path(self.store) if self.store else self.out_dir() / "generations.sqlite"


def default_data_dir() -> Path | None:
    """`SMOE_DATA_DIR`, else `../shared/data` seen from the working directory or the checkout."""
    env = os.environ.get("SMOE_DATA_DIR")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def resolve_data_dir(config: RunConfig, override: str | Path | None = None) -> Path | None:
    if override:
        return Path(override)
    if config.data_dir:
        return Path(config.data_dir)
    return default_data_dir()


def _parse_value(text: str) -> Any:
    """A `--set` value: TOML syntax when it parses (numbers, booleans, lists), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_dotted(raw: dict[str, Any], dotted: str, value: Any, what: str = "--set") -> None:
    """Set `a.b.c` in a raw config (tables created as needed): one override, from the command
    line's `--set` or the Python API's keyword arguments."""
    keys = dotted.strip().split(".")
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{what} {dotted}: '{key}' is not a table")
    node[keys[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects dotted.key=value, got '{item}'")
        dotted, value = item.split("=", 1)
        set_dotted(raw, dotted, _parse_value(value.strip()))
    return raw


def load_config(
    path: str | Path,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    values: dict[str, Any] | None = None,
) -> RunConfig:
    """Read a run TOML, apply `--set` overrides, then `values` ({dotted key: Python value}, the
    Python API's overrides), and `--out`; errors name the file and field."""
    path = Path(path)
    raw = _read_toml(path, f"{path}: config file not found")
    raw = apply_overrides(raw, overrides or [])
    for dotted, value in (values or {}).items():
        set_dotted(raw, dotted, value, what="override")
    if out is not None:
        raw["out"] = str(out)
    return parse_config(raw, source=str(path), base_dir=path.parent)


def _read_toml(path: Path, missing: str) -> dict[str, Any]:
    """A TOML file's contents; `missing` is the error line when the file is not there."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(missing) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def parse_config(raw: dict[str, Any], source: str = "<config>", base_dir: Path | None = None) -> RunConfig:
    """A validated RunConfig: the price table merged in (`prices`, relative to `base_dir`), the
    schema, every model's engine options (against its engine's Options). Method names and options
    are the methods layer's to check (`methods.check_config`)."""
    if isinstance(raw.get("prices"), str):
        _merge_prices(raw, _read_prices(Path(base_dir or ".") / raw["prices"]))
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {first_error(exc)}") from None
    for section, models in (("pool", config.pool), ("models", config.models)):
        for name, spec in models.items():
            _check_engine_options(source, f"{section}.{name}", spec)
    return config


def _read_prices(path: Path) -> dict[str, dict[str, Any]]:
    """A price table: `[prices."<model>"]` entries, each checked as a Price (errors name the file
    and model)."""
    raw = _read_toml(path, f"prices: price table not found: {path}")
    unknown = sorted(set(raw) - {"prices"})
    table = raw.get("prices")
    if unknown or not isinstance(table, dict):
        raise ConfigError(f"{path}: expected only a [prices] table of models (found {unknown or 'no prices'})")
    for name, entry in table.items():
        try:
            Price.model_validate(entry)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {first_error(exc, f'prices.{name}.')}") from None
    return table


def _merge_prices(raw: dict[str, Any], table: dict[str, dict[str, Any]]) -> None:
    """Give each pool and extra model without a `price` of its own the table's entry of its name."""
    for section in ("pool", "models"):
        models = raw.get(section)
        for name, spec in models.items() if isinstance(models, dict) else ():
            if isinstance(spec, dict) and "price" not in spec and name in table:
                spec["price"] = dict(table[name])


def first_error(exc: ValidationError, prefix: str = "", unknown: str = "unknown key") -> str:
    """pydantic's first error as `dotted.field: message (and N more)`."""
    first = exc.errors()[0]
    where = prefix + ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = unknown if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{where}: {message}{more}"


def _check_engine_options(source: str, where: str, spec: ModelSpec) -> None:
    """A misspelt or mistyped engine option fails here, before anything loads."""
    try:
        options_cls = engine_options(spec.engine)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {where}.engine: {exc}") from None
    try:
        options_cls.model_validate(spec.options)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {first_error(exc, f'{where}.options.', 'unknown option')}") from None
