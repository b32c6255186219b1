"""Methods by name. Importing this module registers every built-in method."""

from . import baselines, symbolic_moe  # noqa: F401  (registers the built-in methods)
from .base import METHODS, MethodResult, Prediction, method, run_method

__all__ = ["METHODS", "MethodResult", "Prediction", "method", "run_method"]
