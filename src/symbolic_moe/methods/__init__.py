"""Methods by name. Importing this module registers every built-in method."""

from . import ablations, baselines, etr, multi_agent, router, symbolic_moe  # noqa: F401  (registers the built-in methods)
from .base import FAMILIES, METHODS, MethodResult, Prediction, method, method_spec, run_method

__all__ = ["FAMILIES", "METHODS", "MethodResult", "Prediction", "method", "method_spec", "run_method"]
