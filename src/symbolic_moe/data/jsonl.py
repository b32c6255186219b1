"""Benchmark files in the shared JSONL format (SPEC 2) and where a split's file is found."""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..types import Question

_REQUIRED_STR = ("id", "question", "answer")
_OPTIONAL_STR = ("category", "source")
_KNOWN = {*_REQUIRED_STR, *_OPTIONAL_STR, "choices"}


def _question(record: Any, where: str) -> Question:
    """One parsed line -> Question; every problem names the line and the field."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in _REQUIRED_STR:
        value = record.get(name)
        if value is None:
            raise DataError(f"{where}: missing field '{name}'")
        if isinstance(value, int | float) and not isinstance(value, bool) and name == "answer":
            record[name] = value = str(value)  # AIME answers written as JSON numbers
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: field '{name}' must be a non-empty string")
    choices = record.get("choices")
    if choices is not None:
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) and c for c in choices):
            raise DataError(f"{where}: field 'choices' must be a non-empty list of letters or null")
        if record["answer"].strip().upper() not in {c.upper() for c in choices}:
            raise DataError(f"{where}: answer '{record['answer']}' is not one of the choices {choices}")
    for name in _OPTIONAL_STR:
        if record.get(name) is not None and not isinstance(record[name], str):
            raise DataError(f"{where}: field '{name}' must be a string or null")
    return Question(
        id=record["id"],
        question=record["question"],
        answer=record["answer"].strip(),
        choices=choices,
        category=record.get("category"),
        source=record.get("source"),
        extra={k: v for k, v in record.items() if k not in _KNOWN},
    )


def parse_lines(lines: list[str], name: str) -> list[Question]:
    """Questions from JSONL lines; `name` (a file name) is used in error messages."""
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        question = _question(record, where)
        if question.id in seen:
            raise DataError(f"{where}: duplicate id '{question.id}' (first on line {seen[question.id]})")
        seen[question.id] = number
        questions.append(question)
    return questions


def load_jsonl(path: Path) -> list[Question]:
    """Every question of a `.jsonl` or `.jsonl.gz` file, in file order."""
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    return parse_lines(text.split("\n"), str(path))  # not splitlines(): \u2028 can sit inside strings


DEMO_SPLITS = ("validation", "test")


def load_demo(split: str) -> list[Question]:
    """The small demo set packaged with symbolic-moe (original questions, 8 skills)."""
    if split not in DEMO_SPLITS:
        raise DataError(f"the demo benchmark has no split '{split}': choose one of {list(DEMO_SPLITS)}")
    resource = resources.files("symbolic_moe.data").joinpath("demo", f"{split}.jsonl")
    return parse_lines(resource.read_text(encoding="utf-8").split("\n"), f"demo/{split}.jsonl")


def find_split(benchmark: str, split: str, data_dir: Path | None) -> Path:
    """The file of `split` in the benchmark folder: absolute, else under data_dir, else cwd."""
    folder = Path(benchmark).expanduser()
    bases = [folder] if folder.is_absolute() else [b / folder for b in (data_dir, Path.cwd()) if b is not None]
    tried = []
    for base in bases:
        for name in (f"{split}.jsonl", f"{split}.jsonl.gz"):
            tried.append(base / name)
            if tried[-1].is_file():
                return tried[-1]
    hint = "" if data_dir is not None else "; set --data-dir or SMOE_DATA_DIR to the folder holding the benchmarks"
    raise DataError(f"benchmark '{benchmark}': no {split}.jsonl found (looked for {tried[0]}){hint}")
