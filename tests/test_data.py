"""Benchmark loading (SPEC 2): the JSONL format, its errors, split lookup, the demo set, and the
hub converters (pure functions of one row) and failure paths."""

from __future__ import annotations

import collections
import gzip
import json
import re
import sys
import types
from pathlib import Path

import pytest

from symbolic_moe.config import default_data_dir
from symbolic_moe.data import hub, load_jsonl, load_split
from symbolic_moe.errors import DataError, MissingExtraError


def _write(path: Path, rows: list[dict | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(i: int, **fields: object) -> dict:
    return {
        "id": f"q{i}",
        "question": f"Question {i}? The options are: (A) x (B) y",
        "answer": "A",
        "choices": ["A", "B"],
        **fields,
    }


# -- load_jsonl ---------------------------------------------------------------------------------


def test_load_jsonl_reads_fields_and_keeps_extras(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "test.jsonl",
        [
            _row(0, category="biology", source="src-1", difficulty=3),
            "",
            {"id": "m1", "question": "1+1?", "answer": "2", "choices": None},
            "   ",
        ],
    )
    first, math = load_jsonl(path)
    assert (first.id, first.answer, first.choices, first.category, first.source) == (
        "q0",
        "A",
        ["A", "B"],
        "biology",
        "src-1",
    )
    assert first.extra == {"difficulty": 3}
    assert math.is_math and math.choices is None and math.category is None


def test_load_jsonl_reads_gzip(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(_row(0)) + "\n" + json.dumps(_row(1)) + "\n")
    assert [q.id for q in load_jsonl(path)] == ["q0", "q1"]


def test_numeric_answers_become_strings(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", [{"id": "a", "question": "Find n.", "answer": 33, "choices": None}])
    assert load_jsonl(path)[0].answer == "33"


def test_line_separator_characters_inside_strings(tmp_path: Path) -> None:
    # U+2028 is a line break for str.splitlines() but legal inside a JSON string
    path = _write(tmp_path / "u.jsonl", [_row(0, question="before\u2028after (A) x (B) y"), _row(1)])
    assert [q.id for q in load_jsonl(path)] == ["q0", "q1"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"id": "q9", "question": ', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ({"question": "?", "answer": "A", "choices": ["A"]}, "missing field 'id'"),
        ({"id": "q9", "answer": "A", "choices": ["A"]}, "missing field 'question'"),
        ({"id": "q9", "question": "?", "choices": ["A"]}, "missing field 'answer'"),
        ({"id": 9, "question": "?", "answer": "A", "choices": ["A"]}, "field 'id' must be a non-empty string"),
        ({"id": "q9", "question": "?", "answer": "A", "choices": "AB"}, "field 'choices'"),
        ({"id": "q9", "question": "?", "answer": "C", "choices": ["A", "B"]}, "not one of the choices"),
        ({"id": "q9", "question": "?", "answer": "A", "choices": ["A"], "category": 5}, "field 'category'"),
        (_row(0), "duplicate id 'q0' (first on line 1)"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad: dict | str, message: str) -> None:
    path = _write(tmp_path / "bad.jsonl", [_row(0), "", bad])
    with pytest.raises(DataError) as info:
        load_jsonl(path)
    assert f"{path}, line 3" in str(info.value)
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_jsonl(tmp_path / "nope.jsonl")


# -- load_split ------------------------------------------------------------------------------------


def test_load_split_relative_to_data_dir_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "bench").mkdir(parents=True)
    _write(data / "bench" / "validation.jsonl", [_row(i) for i in range(5)])
    assert len(load_split("bench", "validation", data)) == 5
    assert [q.id for q in load_split("bench", "validation", data, limit=2)] == ["q0", "q1"]
    assert len(load_split(str(data / "bench"), "validation", None)) == 5  # absolute
    monkeypatch.chdir(data)
    assert len(load_split("bench", "validation", tmp_path / "elsewhere")) == 5  # cwd fallback


def test_load_split_finds_gzip(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    with gzip.open(tmp_path / "b" / "test.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(_row(0)) + "\n")
    assert len(load_split("b", "test", tmp_path)) == 1


def test_load_split_missing_file_names_path_and_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        load_split("benchmarks/gpqa", "test", None)
    assert "benchmarks/gpqa" in str(info.value) and "test.jsonl" in str(info.value)
    assert "--data-dir" in str(info.value) and "SMOE_DATA_DIR" in str(info.value)
    with pytest.raises(DataError) as info:
        load_split("benchmarks/gpqa", "test", tmp_path / "data")
    assert str(tmp_path / "data" / "benchmarks" / "gpqa" / "test.jsonl") in str(info.value)
    assert "--data-dir" not in str(info.value)


def test_load_split_empty_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "test.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no questions"):
        load_split("b", "test", tmp_path)


_SHARED = default_data_dir()


@pytest.mark.usefixtures("shared_data")
@pytest.mark.parametrize(
    ("name", "sizes"),
    [("mmlu_pro", (350, 2100)), ("gpqa", (249, 198)), ("aime24", (354, 30)), ("medmcqa", (504, 4183))],
)
def test_shared_benchmarks_load(name: str, sizes: tuple[int, int]) -> None:
    validation = load_split(f"benchmarks/{name}", "validation", _SHARED)
    test = load_split(f"benchmarks/{name}", "test", _SHARED)
    assert (len(validation), len(test)) == sizes
    assert test[0].id == f"{name}-test-0000"
    assert all(q.is_math for q in test) == (name == "aime24")


# -- demo set ------------------------------------------------------------------------------------

_OPTIONS = re.compile(r"\(([A-D])\) (.*?)(?= \([A-D]\) |$)")


@pytest.mark.parametrize(("split", "size", "per_skill"), [("test", 36, (4, 5)), ("validation", 24, (3, 3))])
def test_demo_set(split: str, size: int, per_skill: tuple[int, int]) -> None:
    questions = load_split("demo", split, None)
    assert len(questions) == size
    assert [q.id for q in questions] == [f"demo-{split}-{i:04d}" for i in range(size)]
    skills = collections.Counter(q.category for q in questions)
    assert len(skills) == 8 and all(per_skill[0] <= n <= per_skill[1] for n in skills.values())
    letters = collections.Counter(q.answer for q in questions)
    assert set(letters) == {"A", "B", "C", "D"} and max(letters.values()) - min(letters.values()) <= 1
    for q in questions:
        assert q.choices == ["A", "B", "C", "D"]
        stem, _, options = q.question.partition(" The options are: ")
        assert stem and [m[0] for m in _OPTIONS.findall(options)] == ["A", "B", "C", "D"], q.id
        assert len({m[1] for m in _OPTIONS.findall(options)}) == 4, q.id  # no repeated option


def test_demo_answers_spot_check() -> None:
    by_stem = {}
    for q in load_split("demo", "test", None) + load_split("demo", "validation", None):
        stem, _, options = q.question.partition(" The options are: ")
        by_stem[stem] = dict(_OPTIONS.findall(options))[q.answer]
    assert by_stem["What is 7 multiplied by 8?"] == "56"
    assert by_stem["What is the chemical symbol for gold?"] == "Au"
    assert by_stem["How many bits make up one byte?"] == "8"
    assert by_stem["What is the capital city of Italy?"] == "Rome"


def test_demo_unknown_split() -> None:
    with pytest.raises(DataError, match="no split 'train'"):
        load_split("demo", "train", None)


# -- hub: converters ---------------------------------------------------------------------------------


def test_convert_mmlu_pro() -> None:
    row = {
        "question_id": 70,
        "question": "Which is a noble gas? ",
        "options": ["Neon", "Iron", "N/A", "Salt"],
        "answer": "A",
        "answer_index": 0,
        "category": "chemistry",
        "src": "ori_mmlu-chemistry",
    }
    q = hub.convert_mmlu_pro(row, "mmlu_pro-test-0000")
    assert q.question == "Which is a noble gas? The options are: (A) Neon (B) Iron (C) Salt."
    assert (q.answer, q.choices, q.category, q.source) == ("A", ["A", "B", "C"], "chemistry", "ori_mmlu-chemistry")
    assert q.extra == {"mmlu_pro_question_id": 70}


def _gpqa_row(record: str = "rec1") -> dict:
    return {
        "Question": "Which particle has no charge?",
        "Correct Answer": "neutron",
        "Incorrect Answer 1": "proton",
        "Incorrect Answer 2": "electron",
        "Incorrect Answer 3": "positron",
        "Record ID": record,
        "Subdomain": "Physics (general)",
    }


def test_convert_gpqa_shuffles_deterministically() -> None:
    q = hub.convert_gpqa(_gpqa_row(), "gpqa-test-0000", seed=0)
    stem, _, options = q.question.partition("\n\nThe options are: ")
    assert stem == "Which particle has no charge?"
    found = dict(_OPTIONS.findall(options))
    assert sorted(found.values()) == ["electron", "neutron", "positron", "proton"]
    assert found[q.answer] == "neutron" and q.choices == ["A", "B", "C", "D"]
    assert hub.convert_gpqa(_gpqa_row(), "x", seed=0).question == q.question  # same seed, same order
    # across records and seeds the correct option lands on different letters
    answers = {hub.convert_gpqa(_gpqa_row(f"rec{i}"), "x", seed=s).answer for i in range(12) for s in range(2)}
    assert answers == {"A", "B", "C", "D"}


def test_convert_aime_both_column_spellings() -> None:
    h4 = hub.convert_aime({"id": 60, "problem": "Find m+n.", "answer": "033", "year": "2024"}, "aime24-test-0000")
    assert (h4.question, h4.answer, h4.choices, h4.is_math) == ("Find m+n.", "33", None, True)
    old = hub.convert_aime({"ID": "1983-1", "Year": 1983, "Question": "Find x.", "Answer": 25}, "v")
    assert (old.question, old.answer, old.extra["year"]) == ("Find x.", "25", 1983)
    with pytest.raises(DataError, match="none of the fields"):
        hub.convert_aime({"text": "?"}, "v")
    assert hub._before_2024(0, {"Year": 1983}) and not hub._before_2024(0, {"Year": 2024})


def test_convert_medmcqa() -> None:
    row = {
        "id": "abc",
        "question": "Which vitamin prevents scurvy?",
        "opa": "A",
        "opb": "B",
        "opc": "C",
        "opd": "D",
        "cop": 2,
        "subject_name": "Biochemistry",
        "topic_name": None,
    }
    q = hub.convert_medmcqa(row, "medmcqa-test-0000")
    assert q.question == "Which vitamin prevents scurvy? The options are: (A) A (B) B (C) C (D) D"
    assert (q.answer, q.category) == ("C", "Biochemistry")
    with pytest.raises(DataError, match="no answer"):
        hub.convert_medmcqa({**row, "cop": -1}, "x")


def test_convert_math500() -> None:
    row = {
        "problem": "Compute $1/2+1/4$.",
        "answer": "\\frac{3}{4}",
        "subject": "Algebra",
        "level": 1,
        "unique_id": "test/algebra/1.json",
        "solution": "...",
    }
    q = hub.convert_math500(row, "math500-test-0000")
    assert (q.question, q.answer, q.category, q.is_math) == ("Compute $1/2+1/4$.", "\\frac{3}{4}", "Algebra", True)


def test_every_hub_split_has_a_source() -> None:
    assert set(hub.HUB_BENCHMARKS) == {"mmlu_pro", "gpqa", "aime24", "medmcqa", "math500"}
    for splits in hub.HUB_BENCHMARKS.values():
        assert set(splits) == {"validation", "test"}


# -- hub: failure paths (fault injection: a missing or failing `datasets` package) -----------------


def test_hub_without_datasets_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(MissingExtraError, match=r"symbolic-moe\[hub\]"):
        load_split("hub:gpqa", "test", None)


def test_hub_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    offline = types.ModuleType("datasets")

    def load_dataset(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'HuggingFaceH4/MATH-500' on the Hub (LocalEntryNotFoundError)")

    offline.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", offline)
    with pytest.raises(DataError) as info:
        load_split("hub:math500", "test", None)
    assert "cannot download HuggingFaceH4/MATH-500 from the Hugging Face hub: offline?" in str(info.value)
    assert "local JSONL folder" in str(info.value)
    # alternatives are tried in order; the error names the last one
    with pytest.raises(DataError, match="Maxwell-Jia/AIME_2024"):
        load_split("hub:aime24", "test", None)


def test_hub_split_selection() -> None:
    rows = [
        {"problem": f"P{i}", "answer": str(i), "subject": "Algebra", "level": 1, "unique_id": str(i)} for i in range(10)
    ]
    math500 = hub.HUB_BENCHMARKS["math500"]
    validation = hub.select(math500["validation"], rows, "math500-validation")
    test = hub.select(math500["test"], rows, "math500-test")
    assert [q.question for q in validation] == ["P0", "P5"]
    assert [q.question for q in test] == ["P1", "P2", "P3", "P4", "P6", "P7", "P8", "P9"]
    assert [q.id for q in test[:2]] == ["math500-test-0000", "math500-test-0001"]
    # gpqa validation = gpqa_main without the diamond questions
    gpqa_rows = [{**_gpqa_row(f"r{i}"), "Question": f"Q{i}"} for i in range(4)]
    kept = hub.select(hub.HUB_BENCHMARKS["gpqa"]["validation"], gpqa_rows, "gpqa-validation", {"Q1", "Q3"})
    assert [q.question.split("\n")[0] for q in kept] == ["Q0", "Q2"]
    # medmcqa validation keeps the first 500 training questions
    med = [
        {"id": str(i), "question": "?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": i % 4}
        for i in range(510)
    ]
    assert len(hub.select(hub.HUB_BENCHMARKS["medmcqa"]["validation"], med, "m")) == 500


def test_hub_unknown_names() -> None:
    with pytest.raises(DataError, match="unknown hub benchmark 'hub:mmlu'"):
        load_split("hub:mmlu", "test", None)
    with pytest.raises(DataError, match="no split 'dev'"):
        load_split("hub:gpqa", "dev", None)
