"""Benchmarks from the Hugging Face hub (SPEC 2), converted to the shared JSONL format.

`benchmark = "hub:<name>"` with name one of `HUB_BENCHMARKS`. Each split comes from one hub
dataset; where the hub has no separate validation set, the choice is documented below:

- mmlu_pro: TIGER-Lab/MMLU-Pro, validation = its 70-question `validation` split, test = `test`.
- gpqa: Idavidrein/gpqa (gated: needs `huggingface-cli login`), test = gpqa_diamond, validation =
  gpqa_main without the diamond questions (250; the paper's validation set has 249).
  Options are shuffled deterministically (seeded by the record id), letters A-D.
- aime24: test = HuggingFaceH4/aime_2024 (else Maxwell-Jia/AIME_2024), validation = earlier
  AIME problems (di-zhang-fdu/AIME_1983_2024, years before 2024), as in the paper.
- medmcqa: openlifescienceai/medmcqa, test = its dev split (4183, the paper's test set; the hub
  test split has no answers), validation = the first 500 training questions.
- math500: HuggingFaceH4/MATH-500, which has one split: every fifth problem is validation
  (100), the rest test (400).

The converters are pure functions of one hub row, so they are tested without a network.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import DataError, MissingExtraError
from ..types import Question

LETTERS = "ABCDEFGHIJKLMNOP"

Row = dict[str, Any]


def options_text(options: Iterable[str]) -> str:
    """`(A) x (B) y ...`, the way the shared data lists options."""
    return " ".join(f"({LETTERS[i]}) {str(opt).strip()}" for i, opt in enumerate(options))


def _pick(row: Row, *names: str) -> Any:
    """The first of `names` the row has (hub copies of one dataset differ in column case)."""
    for name in names:
        if row.get(name) is not None:
            return row[name]
    raise DataError(f"hub row has none of the fields {names}: fields are {sorted(row)}")


# -- converters: one hub row -> one Question -----------------------------------------------------


def convert_mmlu_pro(row: Row, qid: str) -> Question:
    options = [o for o in row["options"] if str(o).strip() != "N/A"]
    answer = str(row["answer"]).strip() if row.get("answer") else LETTERS[int(row["answer_index"])]
    return Question(
        id=qid,
        question=f"{str(row['question']).strip()} The options are: {options_text(options)}.",
        answer=answer,
        choices=list(LETTERS[: len(options)]),
        category=row.get("category"),
        source=row.get("src"),
        extra={"mmlu_pro_question_id": row.get("question_id")},
    )


def convert_gpqa(row: Row, qid: str, seed: int = 0) -> Question:
    correct = str(row["Correct Answer"]).strip()
    options = [correct] + [str(row[f"Incorrect Answer {i}"]).strip() for i in (1, 2, 3)]
    # Seeded by the record, not by position, so a question keeps its letters in any subset.
    key = row.get("Record ID") or row["Question"]
    random.Random(f"{seed}:{key}").shuffle(options)
    return Question(
        id=qid,
        question=f"{str(row['Question']).strip()}\n\nThe options are: {options_text(options)}",
        answer=LETTERS[options.index(correct)],
        choices=list(LETTERS[:4]),
        category=row.get("Subdomain") or row.get("High-level domain"),
        source="gpqa",
        extra={"record_id": row.get("Record ID")},
    )


def _integer_text(value: Any) -> str:
    text = str(value).strip()
    return str(int(text)) if text.lstrip("+-").isdigit() else text


def convert_aime(row: Row, qid: str) -> Question:
    return Question(
        id=qid,
        question=str(_pick(row, "problem", "Problem", "Question", "question")).strip(),
        answer=_integer_text(_pick(row, "answer", "Answer")),
        choices=None,
        source="aime",
        extra={"year": row.get("year", row.get("Year"))},
    )


def convert_medmcqa(row: Row, qid: str) -> Question:
    options = [row["opa"], row["opb"], row["opc"], row["opd"]]
    cop = int(row["cop"])
    if not 0 <= cop < 4:
        raise DataError(f"medmcqa row {row.get('id')}: no answer (cop={cop})")
    return Question(
        id=qid,
        question=f"{str(row['question']).strip()} The options are: {options_text(options)}",
        answer=LETTERS[cop],
        choices=list(LETTERS[:4]),
        category=row.get("subject_name"),
        source="medmcqa",
        extra={"medmcqa_id": row.get("id"), "topic": row.get("topic_name")},
    )


def convert_math500(row: Row, qid: str) -> Question:
    return Question(
        id=qid,
        question=str(row["problem"]).strip(),
        answer=str(row["answer"]).strip(),
        choices=None,
        category=row.get("subject"),
        source="math500",
        extra={"level": row.get("level"), "unique_id": row.get("unique_id")},
    )


# -- where each split comes from --------------------------------------------------------------------


@dataclass(frozen=True)
class HubSource:
    """One split: hub dataset(s) to try in order, config, split, row converter, row filter."""

    datasets: tuple[str, ...]
    split: str
    convert: Callable[[Row, str], Question]
    config: str | None = None
    keep: Callable[[int, Row], bool] = lambda index, row: True
    exclude_from: tuple[str, str, str] | None = None  # (dataset, config, field): drop rows seen there
    limit: int | None = None


def _before_2024(index: int, row: Row) -> bool:
    year = row.get("Year", row.get("year"))
    return year is not None and int(str(year)[:4]) < 2024


HUB_BENCHMARKS: dict[str, dict[str, HubSource]] = {
    "mmlu_pro": {
        "validation": HubSource(("TIGER-Lab/MMLU-Pro",), "validation", convert_mmlu_pro),
        "test": HubSource(("TIGER-Lab/MMLU-Pro",), "test", convert_mmlu_pro),
    },
    "gpqa": {
        "validation": HubSource(
            ("Idavidrein/gpqa",),
            "train",
            convert_gpqa,
            "gpqa_main",
            exclude_from=("Idavidrein/gpqa", "gpqa_diamond", "Question"),
        ),
        "test": HubSource(("Idavidrein/gpqa",), "train", convert_gpqa, "gpqa_diamond"),
    },
    "aime24": {
        "validation": HubSource(("di-zhang-fdu/AIME_1983_2024",), "train", convert_aime, keep=_before_2024),
        "test": HubSource(("HuggingFaceH4/aime_2024", "Maxwell-Jia/AIME_2024"), "train", convert_aime),
    },
    "medmcqa": {
        "validation": HubSource(("openlifescienceai/medmcqa",), "train", convert_medmcqa, limit=500),
        "test": HubSource(("openlifescienceai/medmcqa",), "validation", convert_medmcqa),
    },
    "math500": {
        "validation": HubSource(("HuggingFaceH4/MATH-500",), "test", convert_math500, keep=lambda i, row: i % 5 == 0),
        "test": HubSource(("HuggingFaceH4/MATH-500",), "test", convert_math500, keep=lambda i, row: i % 5 != 0),
    },
}


def _download(name: str, config: str | None, split: str) -> list[Row]:
    try:
        # optional dependency (the `hub` extra)
        import datasets
    except ImportError:
        raise MissingExtraError("datasets", "hub", "Loading benchmarks from the Hugging Face hub") from None
    where = f"{name}" + (f" ({config})" if config else "")
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        offline_hint = " (HF_HUB_OFFLINE is set)"
    else:
        offline_hint = ""
    try:
        return [dict(row) for row in datasets.load_dataset(name, config, split=split)]
    except Exception as exc:  # the hub's errors are many (HTTP, offline, gated, cache); one message
        gated = "gated" in str(exc).lower() or "401" in str(exc)
        hint = " It is gated: accept its terms on the hub and run `huggingface-cli login`." if gated else ""
        raise DataError(
            f"cannot download {where} from the Hugging Face hub: offline?{offline_hint} "
            f"Use a local JSONL folder instead.{hint} ({type(exc).__name__}: {exc})"
        ) from None


def _rows(source: HubSource) -> list[Row]:
    failure: DataError | None = None
    for name in source.datasets:  # alternatives: the first that downloads wins
        try:
            return _download(name, source.config, source.split)
        except DataError as exc:
            failure = exc
    assert failure is not None
    raise failure


def load_hub(name: str, split: str, seed: int = 0) -> list[Question]:
    """The `split` of hub benchmark `name`, converted; ids are `<name>-<split>-<4 digits>`."""
    if name not in HUB_BENCHMARKS:
        raise DataError(f"unknown hub benchmark 'hub:{name}': choose one of {sorted(HUB_BENCHMARKS)}")
    sources = HUB_BENCHMARKS[name]
    if split not in sources:
        raise DataError(f"hub:{name} has no split '{split}': choose one of {sorted(sources)}")
    source = sources[split]
    excluded: set[str] = set()
    if source.exclude_from is not None:
        other, config, field = source.exclude_from
        excluded = {str(row[field]).strip() for row in _download(other, config, source.split)}
    return select(source, _rows(source), f"{name}-{split}", excluded, seed)


def select(
    source: HubSource, rows: list[Row], prefix: str, excluded: Collection[str] = (), seed: int = 0
) -> list[Question]:
    """The rows a split keeps, converted, with ids `<prefix>-0000`... (pure: tested offline)."""
    kept = [row for i, row in enumerate(rows) if source.keep(i, row)]
    if source.exclude_from is not None:
        field = source.exclude_from[2]
        kept = [row for row in kept if str(row[field]).strip() not in excluded]
    if source.limit is not None:
        kept = kept[: source.limit]
    questions = []
    for i, row in enumerate(kept):
        qid = f"{prefix}-{i:04d}"
        questions.append(convert_gpqa(row, qid, seed) if source.convert is convert_gpqa else source.convert(row, qid))
    return questions
