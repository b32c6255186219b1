"""The grader (SPEC 3): extraction rules, math equivalence, never raising, and agreement with the
letters MMLU-Pro's own evaluation recorded for 29 real models."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic_moe.config import default_data_dir
from symbolic_moe.grading import (
    answer_key,
    answer_part,
    extract_answer,
    extract_boxed,
    extract_choice,
    is_correct,
    math_equal,
    math_key,
)
from symbolic_moe.types import Question

ABCD = ["A", "B", "C", "D"]
MC = Question(id="q1", question="Pick one. The options are: (A) a (B) b (C) c (D) d", answer="B", choices=ABCD)
MATH = Question(id="m1", question="Compute 1/2.", answer="\\frac{1}{2}")
AIME = Question(id="a1", question="Find m+n.", answer="33")


# -- answer part --------------------------------------------------------------------------------


def test_answer_part_takes_text_after_last_think() -> None:
    assert answer_part("<think>The answer is (A)</think>reasoning</think> The answer is (C)") == " The answer is (C)"
    assert answer_part("no reasoning block") == "no reasoning block"
    assert answer_part(None) == ""
    assert answer_part("") == ""


def test_think_block_is_not_graded() -> None:
    text = "<think>Maybe the answer is (B).</think>The answer is (D)."
    assert extract_answer(text, MC) == "D"
    assert not is_correct(text, MC)
    assert is_correct("<think>hmm, \\boxed{7}</think> so \\boxed{0.5}", MATH)


# -- multiple choice ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is (B).", "B"),
        ("the answer is c", None),  # a bare lower-case letter is a word, not an option
        ("So the answer is (c).", "C"),
        ("The answer is: **(B)**", "B"),
        ("The answer is **D**.", "D"),
        ("The correct answer is option C, because ...", "C"),
        ("Final Answer: The final answer is $\\boxed{A}$", "A"),
        ("Answer: D", "D"),
        ("The answer is \\(\\boxed{\\text{C}}\\)", "C"),
        ("I think the answer is (A). Wait, no: the answer is (D).", "D"),  # last wins
        ("The answer is (B). Then again the answer is (K).", "B"),  # K is not a choice
        ("The answer is (E).", None),  # invalid letter, nothing else
        ("Option (C) fits best.", "C"),  # fallback: bracketed letter
        ("(A) is wrong and (D) is right", "D"),  # fallback: the last bracketed letter
        ("Looking at B, the better option is D.", "D"),  # fallback: last bare capital letter
        ("A cell wall is not found in animals. I think B", "B"),
        ("A cell wall is not found in animals.", None),  # the article "A" is not an answer
        ("I would say B. I guess so.", "B"),
        ("Mutations in DNA, RNA and ATP.", None),  # letters inside words do not count
        ("", None),
    ],
)
def test_extract_choice_rules(text: str, expected: str | None) -> None:
    assert extract_choice(text, ABCD) == expected


def test_several_letters_in_one_statement_are_no_answer() -> None:
    assert extract_choice("The answer is (A, C).", ABCD) is None
    assert extract_choice("The answer is (B) or (D).", ABCD) is None
    assert extract_choice("So the answer is (A), (B), and (C).", ABCD) is None
    # ...but never outvote a single stated letter
    assert extract_choice("The answer is (C).\n\nFinal Answer: The answer is (B), (D) and (A).", ABCD) == "C"
    # "answer is A, I believe" is one letter, not a list
    assert extract_choice("The answer is A, I believe.", ABCD) == "A"


def test_letters_limited_to_the_questions_choices() -> None:
    ten = list("ABCDEFGHIJ")
    assert extract_choice("The answer is (J).", ten) == "J"
    assert extract_choice("The answer is (J).", ABCD) is None
    assert extract_choice("The answer is (J). Option (B) maybe.", ABCD) == "B"


def test_invented_follow_up_questions_are_cut() -> None:
    text = (
        "Darwin said so. The answer is (B).\n\nQuestion:\nWhich is a mammal?\nOptions:\nA. shark\n"
        "B. whale\nAnswer: Let's think step by step. The answer is (D)."
    )
    assert extract_choice(text, ABCD) == "B"
    assert extract_choice(text, ABCD, cut_new_question=False) == "D"
    # without a new question in between, the last statement wins
    assert extract_choice("The answer is (B).\nOn reflection the answer is (D).", ABCD) == "D"


def test_first_answer_option() -> None:
    text = "The answer is (A).\n\nFinal answer: the answer is (C)."
    assert extract_choice(text, ABCD, first_answer=True) == "A"
    assert extract_choice(text, ABCD) == "C"


def test_is_correct_multiple_choice() -> None:
    assert is_correct("Reasoning... The answer is (B).", MC)
    assert is_correct("the answer is (b)", MC)
    assert not is_correct("The answer is (A).", MC)
    assert not is_correct(None, MC)
    assert not is_correct("I do not know.", MC)
    lower_gold = MC.model_copy(update={"answer": "b"})
    assert is_correct("The answer is (B).", lower_gold)


def test_answer_key_multiple_choice() -> None:
    assert answer_key("the answer is (b)", MC) == "B"
    assert answer_key("no idea", MC) is None
    assert answer_key(None, MC) is None


# -- math -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{\\frac{a}{b^{2}}} follows", "\\frac{a}{b^{2}}"),  # nested braces
        ("\\boxed{1} then \\boxed{2}", "2"),  # last wins
        ("\\boxed{1} then \\boxed{2", "1"),  # an unclosed box is skipped
        ("\\fbox{42}", "42"),
        ("\\boxed {x+1}", "x+1"),
        ("The answer is $33$.", "33"),  # fallback
        ("Final answer: 204", "204"),
        ("no answer here", None),
        ("\\boxed{}", None),
        (None, None),
    ],
)
def test_extract_boxed(text: str | None, expected: str | None) -> None:
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("gold", "predicted", "equal"),
    [
        ("\\frac{1}{2}", "0.5", True),
        ("\\frac{1}{2}", "1/2", True),
        ("\\frac{1}{2}", "\\dfrac{1}{2}", True),
        ("33", "033", True),  # AIME answers with leading zeros
        ("33", "33.", True),
        ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2", True),
        ("x^2+1", "1+x^2", True),
        ("33", "34", False),
        ("\\frac{1}{2}", "\\frac{1}{3}", False),
        ("33", "banana", False),
    ],
)
def test_math_equivalence(gold: str, predicted: str, equal: bool) -> None:
    assert math_equal(gold, predicted) is equal
    question = Question(id="m", question="?", answer=gold)
    assert is_correct(f"Work... The answer is \\boxed{{{predicted}}}", question) is equal


def test_aime_grading() -> None:
    assert is_correct("so m+n = \\boxed{033}", AIME)
    assert is_correct("The answer is 33.", AIME)
    assert not is_correct("\\boxed{32}", AIME)
    assert not is_correct("", AIME)


def test_math_keys_agree_for_equal_answers_and_still_grade() -> None:
    keys = {answer_key(f"\\boxed{{{a}}}", MATH) for a in ("1/2", "\\frac{1}{2}", "0.5", "\\dfrac12")}
    assert len(keys) == 1
    assert answer_key("\\boxed{033}", AIME) == answer_key("\\boxed{33}", AIME) == "33"
    assert answer_key("\\boxed{1/3}", MATH) != answer_key("\\boxed{1/2}", MATH)
    # a key written back as "\boxed{key}" (majority vote) grades like the original answer
    for answer in ("\\frac{1}{2}", "x^2+1", "\\sqrt{2}/2", "(1,2)", "3\\pi"):
        key = math_key(answer)
        assert math_equal(answer, key), (answer, key)


def test_math_grading_works_off_the_main_thread() -> None:
    # math-verify's default timeout uses signal.alarm, which fails outside the main thread
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.extend([is_correct("\\boxed{0.5}", MATH), math_equal("1", "2")]))
    worker.start()
    worker.join(timeout=60)
    assert results == [True, False]


def test_gigantic_numbers_do_not_hang_off_the_main_thread() -> None:
    # sympy would evaluate these forever; without signal timeouts they must be refused up front
    towers = ["9^{9^{9^{9}}}", "10^{10^{10}}", "(10^{100})!", "\\binom{10^{9}}{10^{5}}"]
    results: list[bool] = []
    keys: list[str] = []

    def grade() -> None:
        for tower in towers:
            results.append(math_equal("33", tower))
            keys.append(math_key(tower))

    worker = threading.Thread(target=grade, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert results == [False] * len(towers)
    assert math_equal("2^{2^{40}}", "2^{2^{40}}")  # the same text still matches
    assert math_equal("1024", "2^{10}") and math_key("2^{10}") == "1024"


# -- nothing raises ---------------------------------------------------------------------------------

_TRICKY = st.sampled_from(
    ["\\boxed{", "}", "{", "\\fbox", "</think>", "The answer is", "(A)", "answer:", "$", "\\frac", "^", "**", " ", "\n"]
)
_TEXT = st.one_of(st.none(), st.text(max_size=200), st.lists(st.one_of(_TRICKY, st.text(max_size=5))).map("".join))


@settings(max_examples=300, deadline=None)
@given(text=_TEXT)
def test_extractors_never_raise(text: str | None) -> None:
    answer_part(text)
    letter = extract_choice(text, ABCD)
    assert letter is None or letter in ABCD
    extract_boxed(text)
    for question in (MC, MATH):
        extract_answer(text, question)
        answer_key(text, question)


@settings(max_examples=100, deadline=None)
@given(text=_TEXT, gold=st.text(max_size=20))
def test_is_correct_never_raises(text: str | None, gold: str) -> None:
    assert isinstance(is_correct(text, Question(id="m", question="?", answer=gold or "0")), bool)
    assert isinstance(is_correct(text, MC), bool)


# -- agreement with MMLU-Pro's recorded predictions -------------------------------------------------

_DATA = default_data_dir()
_REPLAY = _DATA / "replay" / "mmlu_pro" if _DATA else None
needs_replay = pytest.mark.usefixtures("shared_data")


def _agreement(model_file: Path, choices: dict[str, list[str]], **options: bool) -> tuple[int, int]:
    """(agreeing, compared) over items with a recorded letter and the benchmark's own prompt."""
    agree = total = 0
    with gzip.open(model_file, "rt") as handle:
        for line in handle:
            row = json.loads(line)
            if row["output"] is None or row["pred"] is None or not row["same_prompt"]:
                continue
            total += 1
            agree += extract_choice(row["output"], choices[row["id"]], **options) == row["pred"]
    return agree, total


@pytest.fixture(scope="module")
def mmlu_pro_choices() -> dict[str, list[str]]:
    assert _DATA is not None
    choices = {}
    for split in ("validation", "test"):
        for line in (_DATA / "benchmarks" / "mmlu_pro" / f"{split}.jsonl").open():
            row = json.loads(line)
            choices[row["id"]] = row["choices"]
    return choices


@needs_replay
def test_agrees_with_recorded_mmlu_pro_letters(mmlu_pro_choices: dict[str, list[str]]) -> None:
    # Measured: 0.981 over all 29 models (0.953 with plain "last wins", which misreads base models
    # that invent follow-up questions). Most remaining differences are the recorders' doing: some
    # fill in a random letter when the output states none (Llama-3.1, mathstral, Gemini), and
    # MMLU-Pro's own regex takes the *first* "answer is" and the first letter of "(A, C)".
    assert _REPLAY is not None
    agree = total = 0
    for model_file in sorted(_REPLAY.glob("*.jsonl.gz")):
        a, n = _agreement(model_file, mmlu_pro_choices)
        assert a / n >= 0.88, (model_file.name, a / n)
        agree, total = agree + a, total + n
    assert total > 50_000
    assert agree / total >= 0.97


@needs_replay
def test_base_model_follow_up_questions(mmlu_pro_choices: dict[str, list[str]]) -> None:
    # Llama-3-8B (base) goes on past "The answer is (X)." into invented questions: cutting there
    # restores agreement from ~0.61 to >0.99.
    assert _REPLAY is not None
    a, n = _agreement(_REPLAY / "Meta-Llama-3-8B.jsonl.gz", mmlu_pro_choices)
    assert a / n >= 0.99
    a_plain, _ = _agreement(_REPLAY / "Meta-Llama-3-8B.jsonl.gz", mmlu_pro_choices, cut_new_question=False)
    assert a_plain / n < 0.8
