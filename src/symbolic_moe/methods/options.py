"""Typed options of the methods that have any (`[method_options.<method>]` in a run config).

Checked when the config loads (config.parse_config), so `agnets = 1`, `agents = 0` or
`agents = "three"` is one error line naming the setting before any generation. A method without
options accepts an empty table only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from ..run import Run


class MethodOptions(BaseModel):
    """No options; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DebateOptions(MethodOptions):
    agents: int = Field(3, ge=1, description="copies of the task-best model")
    rounds: int = Field(2, ge=1, description="round 1 answers, later rounds discuss")


class MixtureOptions(MethodOptions):
    agents: int = Field(3, ge=1, description="proposers (top-k models, or task-best copies for self_moa)")
    samples: int | None = Field(None, ge=1, description="aggregator syntheses; default: as many as proposers")


class ReconcileOptions(MethodOptions):
    agents: int = Field(3, ge=1, description="top-k models")
    rounds: int = Field(3, ge=1)


class SelfConsistencyOptions(MethodOptions):
    samples: int = Field(5, ge=1, description="samples of the task-best model (odd avoids ties)")


OPTIONS: dict[str, type[MethodOptions]] = {
    "debate": DebateOptions,
    "self_moa": MixtureOptions,
    "moa": MixtureOptions,
    "reconcile": ReconcileOptions,
    "self_consistency": SelfConsistencyOptions,
}


def options_model(name: str) -> type[MethodOptions]:
    """The options model of method `name`; a ConfigError for a name that is no method."""
    if name in OPTIONS:
        return OPTIONS[name]
    from .base import method_spec

    method_spec(name)  # raises ConfigError naming the known methods
    return MethodOptions


def method_options(run: Run, name: str) -> MethodOptions:
    """The validated `[method_options.<name>]` of a run (defaults where not set)."""
    return options_model(name).model_validate(run.config.method_options.get(name, {}))
