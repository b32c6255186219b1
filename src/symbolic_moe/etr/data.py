"""The data ETR's evaluations read: question JSONL (SPEC 2, plus MMLU-Expert's `domain`), recorded
replay outputs, and seeded splits."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..prompts import cot_request
from ..types import Question

_FIELDS = {"id", "question", "answer", "choices", "category", "source"}


def read_questions(path: str | Path) -> list[Question]:
    """Questions of a JSONL file; fields beyond SPEC 2's go to `extra` (e.g. MMLU-Expert `domain`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such question file")
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out.append(
                    Question(
                        **{k: row[k] for k in _FIELDS if k in row},
                        extra={k: v for k, v in row.items() if k not in _FIELDS},
                    )
                )
            except (json.JSONDecodeError, TypeError, ValueError) as exc:
                raise DataError(f"{path}:{n}: malformed question ({exc})") from exc
    return out


def read_replay(path: str | Path, split: str | None = None) -> dict[str, str | None]:
    """{question id: recorded predicted letter} of one replay file (optionally one split)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such replay file")
    out: dict[str, str | None] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: malformed record ({exc})") from exc
            if split is None or row.get("split") == split:
                out[row["id"]] = row.get("pred")
    return out


def query_messages(question: Question) -> tuple[dict[str, str], ...]:
    """What the meta LLM reads for a question: the same zero-shot CoT chat every method sends."""
    return cot_request(question).messages


def split_by_group(
    questions: Sequence[Question], group: str, seed: int, first_share: float = 0.5
) -> tuple[list[Question], list[Question]]:
    """Per group (e.g. domain), a seeded shuffle cut into (first_share, rest): MMLU-Expert has only
    a test split, so one half teaches the expert tokens and the other half evaluates them."""
    groups: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        groups[str(q.field(group))].append(q)
    first: list[Question] = []
    rest: list[Question] = []
    rng = np.random.default_rng(seed)
    for name in sorted(groups):
        items = groups[name]
        order = rng.permutation(len(items))
        cut = int(round(len(items) * first_share))
        first.extend(items[i] for i in sorted(order[:cut]))
        rest.extend(items[i] for i in sorted(order[cut:]))
    return first, rest


def take_per_group(questions: Sequence[Question], group: str, n: int | None, skip: int = 0) -> list[Question]:
    """The first `n` questions of each group (all when n is None) after its first `skip`, keeping
    file order."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for q in questions:
        key = str(q.field(group))
        if skip <= seen[key] and (n is None or seen[key] < skip + n):
            out.append(q)
        seen[key] += 1
    return out
