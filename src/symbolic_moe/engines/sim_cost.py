"""The cost model of the `simulated` engine: what a load and a batch of generations would cost on
real hardware (SIMULATED time, never a measurement).

A batch runs like vLLM's continuous batching: up to `max_seqs` sequences decode together while
their KV cache fits in `kv_cache_gb`; a waiting sequence joins when one finishes. One decode step
costs a fixed part (reading the weights: memory-bandwidth bound), a part per running sequence, and
the attention reads of every running sequence's context (`kv_bytes_per_token` over the memory
bandwidth). A joining sequence first costs its prefill (`prompt_tokens / prefill_tps`). Between two
events (a sequence joining or finishing) the running set is fixed, so the time of the next event
has a closed form: the simulation steps from event to event, not token by token.

Cost tables (TOML, e.g. the packaged `a6000_vllm`) hold `[profiles.<name>]` of these fields and a
`[sources]` table saying where each number comes from.
"""

from __future__ import annotations

import heapq
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError


class CostProfile(BaseModel):
    """What one model costs on one device (all seconds are simulated seconds)."""

    model_config = ConfigDict(extra="forbid")

    load_seconds: float = Field(0.0, ge=0, description="engine start + weights onto the device")
    load_io_seconds: float = Field(
        0.0, ge=0, description="part of load_seconds reading weights from disk (prefetchable)"
    )
    unload_seconds: float = Field(0.0, ge=0)
    weights_gb: float = Field(0.0, ge=0, description="device memory the weights take")
    kv_cache_gb: float = Field(16.0, gt=0, description="device memory for the KV cache")
    kv_bytes_per_token: float = Field(0.0, ge=0, description="KV cache bytes of one token of context")
    bandwidth_gbps: float = Field(768.0, gt=0, description="device memory bandwidth, GB/s")
    step_seconds: float = Field(0.02, ge=0, description="one decode step with one sequence, short context")
    step_seconds_per_seq: float = Field(0.0, ge=0, description="added per running sequence and step")
    prefill_tps: float = Field(10000.0, gt=0, description="prompt tokens per second")
    max_seqs: int = Field(256, ge=1, description="sequences decoding at once at most")
    latency_seconds: float = Field(0.0, ge=0, description="fixed per-request latency (remote APIs)")
    output_tokens: float = Field(256.0, gt=0, description="mean completion length when none is recorded")
    output_spread: float = Field(0.5, ge=0, description="sigma of the log-normal completion length")

    @property
    def memory_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb

    def kv_capacity_tokens(self) -> float:
        if self.kv_bytes_per_token <= 0:
            return math.inf
        return self.kv_cache_gb * 1e9 / self.kv_bytes_per_token


def load_cost_table(name_or_path: str) -> dict[str, Any]:
    """A cost table by packaged name (`a6000_vllm`) or TOML path; errors name the table."""
    path = Path(name_or_path)
    try:
        if path.suffix == ".toml" or path.exists():
            text = path.read_text(encoding="utf-8")
        else:
            text = (
                resources.files("symbolic_moe.engines.sim").joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
            )
    except (FileNotFoundError, ModuleNotFoundError):
        raise ConfigError(
            f"simulated engine: cost table '{name_or_path}' not found (a packaged name or a .toml path)"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cost table {name_or_path}: invalid TOML: {exc}") from None


def profile_from_table(table: dict[str, Any], profile: str, source: str) -> dict[str, Any]:
    profiles = table.get("profiles", {})
    if profile not in profiles:
        raise ConfigError(f"cost table {source}: no profile '{profile}' (known: {', '.join(sorted(profiles))})")
    return {**table.get("defaults", {}), **profiles[profile]}


@dataclass
class _Seq:
    index: int
    prompt: int
    output: int
    done: int = 0


def batch_timeline(cost: CostProfile, lengths: list[tuple[int, int]]) -> list[float]:
    """Finish time (simulated seconds from the batch start) of each (prompt_tokens, output_tokens)."""
    finish = [0.0] * len(lengths)
    waiting = [_Seq(i, p, max(o, 1)) for i, (p, o) in enumerate(lengths)]
    waiting.reverse()  # pop() takes them in order
    running: list[_Seq] = []
    capacity = cost.kv_capacity_tokens()
    now = 0.0
    while waiting or running:
        reserved = sum(s.prompt + s.output for s in running)
        while waiting and len(running) < cost.max_seqs:
            nxt = waiting[-1]
            if running and reserved + nxt.prompt + nxt.output > capacity:
                break  # KV cache full: wait for a sequence to finish
            waiting.pop()
            running.append(nxt)
            reserved += nxt.prompt + nxt.output
            now += nxt.prompt / cost.prefill_tps
        # Decode until the first running sequence finishes: n steps with b sequences whose total
        # context grows by b per step.
        b = len(running)
        n = min(s.output - s.done for s in running)
        context = sum(s.prompt + s.done for s in running)
        per_step = cost.step_seconds + cost.step_seconds_per_seq * b
        kv = cost.kv_bytes_per_token / (cost.bandwidth_gbps * 1e9)
        now += n * (per_step + kv * context) + kv * b * n * (n - 1) / 2
        still = []
        for s in running:
            s.done += n
            if s.done >= s.output:
                finish[s.index] = now + cost.latency_seconds
            else:
                still.append(s)
        running = still
    return finish


def merge_order(finish: list[float]) -> list[int]:
    """Indices in finishing order (ties: request order)."""
    return [i for _, i in heapq.nsmallest(len(finish), ((t, i) for i, t in enumerate(finish)))]
