"""Expert Token Routing as a method: the meta LLM's expert tokens pick one expert per question."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import method

if TYPE_CHECKING:
    from ..run import Run


def _prepare(run: Run) -> None:
    run.validation_correct()


@method("etr", prepare=_prepare)
def etr(run: Run, seed: int):
    from ..etr.method import etr_method  # torch is imported only when ETR runs

    return etr_method(run, seed)
