"""A model that costs time but runs nothing: for planning runs at a scale this machine cannot hold.

`engine = "simulated"` answers each request with a recorded output (the replay engine's file, when
`replay` is set) or a short stand-in text ending in an answer letter, and charges the time the
request would take on real hardware from a cost model (sim_cost.py): load seconds, prefill and
decode speed, KV-cache room, optional per-request latency; from a packaged or given cost table
(`cost_table`, `profile`) and/or options. The charge is real: the engine sleeps, so the real
scheduler (workers, Ray, prefetch) sees real durations. `time_scale` divides every slept second
(a 16-model GPQA run in minutes, not hours); multiply measured seconds back by it. Every time this
engine produces is SIMULATED and must be labelled so.

Completion length: the recorded text's word count, else a log-normal draw (mean `output_tokens`,
sigma `output_spread`) seeded by the request, so a request always gets the same length; capped at
the settings' max_tokens.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from ..errors import ConfigError, EngineError
from ..types import ChatRequest, Completion, GenerationSettings
from .base import EngineOptions, TimedEngine, file_identity, format_validation
from .replay import read_records
from .sim_cost import CostProfile, batch_timeline, load_cost_table, merge_order, profile_from_table


class SimulatedOptions(EngineOptions):
    """Where the costs come from (`cost_table` + `profile`, then `costs` over them), how fast the
    clock runs (`time_scale`, speed only), and what the answers are (`replay`, `letters`)."""

    cost_table: str | None = Field(None, description="packaged table name (a6000_vllm) or TOML path")
    profile: str | None = Field(None, description="profile in the cost table; default: the model name")
    costs: dict[str, Any] = Field(default_factory=dict, description="CostProfile fields over the table's")
    time_scale: float = Field(1.0, gt=0, description="divide every slept second by this (speed only)")
    replay: str | None = Field(None, description="recorded outputs (.jsonl.gz) answering by question id")
    letters: str = Field("ABCD", min_length=1)

    @field_validator("costs")
    @classmethod
    def _known_costs(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(CostProfile.model_fields))
        if unknown:
            raise ValueError(f"unknown cost fields {unknown} (known: {', '.join(CostProfile.model_fields)})")
        return value


def cost_profile(model: str, opts: SimulatedOptions) -> CostProfile:
    merged: dict[str, Any] = {}
    if opts.cost_table:
        merged.update(profile_from_table(load_cost_table(opts.cost_table), opts.profile or model, opts.cost_table))
    merged.update(opts.costs)
    try:
        return CostProfile.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"simulated model '{model}': {format_validation(exc, 'costs.')}") from None


# Simulated seconds charged per thread (a worker thread stands for one device): the busiest
# thread of a scheduler call is that call's exact simulated makespan (bench_scale_sim.py).
CHARGES: dict[int, float] = {}
_CHARGES_LOCK = threading.Lock()


def _charge(seconds: float) -> None:
    with _CHARGES_LOCK:
        key = threading.get_ident()
        CHARGES[key] = CHARGES.get(key, 0.0) + seconds


@dataclass
class SimulatedEngine(TimedEngine):
    Options = SimulatedOptions
    # time_scale only changes how long the engine sleeps; everything else may change answers.
    output_options = frozenset({"cost_table", "profile", "costs", "replay", "letters"})
    kind: str = "simulated"
    cost: CostProfile = field(init=False)
    records: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    # Charged (simulated) seconds, before time_scale: what the run would have cost.
    simulated: dict[str, float] = field(
        default_factory=lambda: {"load": 0.0, "prefetch": 0.0, "generate": 0.0, "unload": 0.0}
    )
    _prefetched: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.settings_: SimulatedOptions = self.opts  # type: ignore[assignment]
        self.cost = cost_profile(self.model, self.settings_)

    @property
    def memory_gb(self) -> float:
        return self.cost.memory_gb

    def model_identity(self) -> dict[str, Any]:
        return {"file": file_identity(self._replay_path())} if self.settings_.replay else {}

    # -- time ----------------------------------------------------------------------------

    def _sleep(self, seconds: float, kind: str) -> None:
        self.simulated[kind] += seconds
        if kind != "prefetch":  # prefetch runs beside the device's work, on a thread of its own
            _charge(seconds)
        time.sleep(seconds / self.settings_.time_scale)

    def prefetch(self) -> None:
        """Read the weights into host memory ahead of `load` (runs beside another model's work)."""
        if not self.loaded and not self._prefetched:
            self._sleep(self.cost.load_io_seconds, "prefetch")
            self._prefetched = True

    def _load(self) -> None:
        if self.settings_.replay:
            self.records = read_records(self._replay_path())
        hidden = self.cost.load_io_seconds if self._prefetched else 0.0
        self._prefetched = False
        self._sleep(max(self.cost.load_seconds - hidden, 0.0), "load")

    def _unload(self) -> None:
        self.records = {}
        self._sleep(self.cost.unload_seconds, "unload")

    # -- answers -------------------------------------------------------------------------

    def _generate_each(
        self, requests: list[ChatRequest], settings: GenerationSettings
    ) -> Iterator[tuple[int, Completion]]:
        """Yield (index, completion) at the (scaled) moment each request would finish."""
        answers = [self._answer(r, settings) for r in requests]
        finish = batch_timeline(self.cost, [(a.prompt_tokens, a.completion_tokens) for a in answers])
        start = time.perf_counter()
        scale = self.settings_.time_scale
        charged = 0.0
        try:
            for index in merge_order(finish):
                wait = start + finish[index] / scale - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                charged = finish[index]
                yield index, answers[index].model_copy(update={"seconds": finish[index]})
        finally:
            self.simulated["generate"] += charged  # the cost model's time, not the (noisier) wall
            _charge(charged)

    def _answer(self, request: ChatRequest, settings: GenerationSettings) -> Completion:
        prompt_tokens = max(1, len(request.prompt_text) // 4)  # ~4 characters per token (English)
        if self.settings_.replay:
            record = self.records.get(request.question_id or "")
            if record is None:
                raise EngineError(f"simulated model '{self.model}': no recording for question '{request.question_id}'")
            text = record.get("output")
            tokens = max(1, round(len(text.split()) * 1.3)) if text else 1  # ~1.3 tokens per word
            return Completion(
                text=text, prompt_tokens=prompt_tokens, completion_tokens=min(tokens, settings.max_tokens)
            )
        rng = random.Random(_request_seed(self.model, request, settings))
        sigma = self.cost.output_spread
        mean = self.cost.output_tokens
        tokens = int(round(rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma))) if sigma else int(mean)
        tokens = max(1, min(tokens, settings.max_tokens))
        letter = rng.choice(self.settings_.letters)
        text = f"(simulated output of {tokens} tokens) The answer is ({letter})."
        finish = "length" if tokens == settings.max_tokens else "stop"
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=tokens, finish_reason=finish)

    def _replay_path(self) -> Path:
        path = Path(self.settings_.replay or "").expanduser()
        if not path.is_absolute() and self.settings_.data_dir and (Path(self.settings_.data_dir) / path).is_file():
            path = Path(self.settings_.data_dir) / path
        if not path.is_file():
            raise EngineError(f"simulated model '{self.model}': no recording file at {path}")
        return path


def _request_seed(model: str, request: ChatRequest, settings: GenerationSettings) -> int:
    blob = json.dumps([model, list(request.messages), request.sample, settings.seed], sort_keys=True)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big")
