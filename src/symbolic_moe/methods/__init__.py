"""Methods by name. Importing this module registers every built-in method."""

from . import ablations, baselines, etr, multi_agent, router, symbolic_moe  # noqa: F401  (registers the built-in methods)
from .base import (
    FAMILIES,
    METHODS,
    MethodOptions,
    MethodResult,
    Prediction,
    check_config,
    method,
    method_spec,
    run_method,
)

__all__ = [
    "FAMILIES",
    "METHODS",
    "MethodOptions",
    "MethodResult",
    "Prediction",
    "check_config",
    "method",
    "method_spec",
    "run_method",
]
