"""symbolic-moe: per-question, skill-based routing over a pool of LLMs (Symbolic-MoE), and
Expert Token Routing. See README.md for the pipeline and `smoe --help` for the commands.

The Python API (`Mixture` in `symbolic_moe.api`; `Answer`, ... in `symbolic_moe.answers`) is
imported on first use, so `import symbolic_moe` stays cheap (no engines, no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Answer", "ExpertAnswer", "Mixture", "Question", "Request", "Usage", "__version__"]

if TYPE_CHECKING:
    from .answers import Answer, ExpertAnswer, Request, Usage

    # first use only: the API loads the whole pipeline (numpy, engines' registry)
    from .api import Mixture

    # first use only (PEP 562): `import symbolic_moe` stays cheap
    from .types import Question


def __getattr__(name: str) -> Any:
    if name == "Question":
        # first use only (PEP 562): `import symbolic_moe` stays cheap
        from .types import Question

        return Question
    if name == "Mixture":
        # first use only: the API loads the whole pipeline (numpy, engines' registry)
        from .api import Mixture

        return Mixture
    if name in __all__:
        # first use only: `import symbolic_moe` stays cheap
        from . import answers

        return getattr(answers, name)
    raise AttributeError(f"module 'symbolic_moe' has no attribute '{name}'")
