"""Benchmarks (SPEC 2): the shared JSONL format, the packaged demo set and the Hugging Face hub.

`load_split("demo", "test", None)`, `load_split("benchmarks/gpqa", "validation", data_dir)`,
`load_split("hub:math500", "test", None)`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..types import Question
from .jsonl import find_split, load_demo, load_jsonl, parse_lines

__all__ = ["load_jsonl", "load_split", "load_demo", "parse_lines", "find_split"]


def load_split(benchmark: str, split: str, data_dir: Path | None, limit: int | None = None) -> list[Question]:
    """The questions of one split, the first `limit` of them when given.

    `benchmark` is "demo" (packaged), "hub:<name>" (see `data.hub`), or a folder holding
    `<split>.jsonl` / `<split>.jsonl.gz`: absolute, or relative to `data_dir`, then to the cwd.
    """
    if limit is not None and limit < 1:
        raise DataError(f"benchmark '{benchmark}': limit must be at least 1, got {limit}")
    if benchmark == "demo":
        questions = load_demo(split)
    elif benchmark.startswith("hub:"):
        from .hub import load_hub  # imports `datasets` only when asked for

        questions = load_hub(benchmark.removeprefix("hub:"), split)
    else:
        questions = load_jsonl(find_split(benchmark, split, Path(data_dir) if data_dir else None))
    if not questions:
        raise DataError(f"benchmark '{benchmark}': split '{split}' has no questions")
    return questions[:limit] if limit is not None else questions
