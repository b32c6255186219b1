"""The one grader (SPEC 3): find the answer in a model's output and compare it with the gold.

Multiple choice, in order of trust:
1. the last "answer is X" (also "answer: X", "answer is: **(X)**", "answer is option X",
   "answer is $\\boxed{X}$"; case-insensitive phrase) naming a valid letter wins;
2. else the last bracketed valid letter: "(C)", "[C]", "**C**";
3. else the last bare valid capital letter standing alone ("C.", " C "), except "A" and "I"
   followed by a space and a word (the English article / pronoun: "A cell wall", "I think").
A lower-case letter counts only inside brackets in rule 1 ("answer is (b)"): "the answer is a
mix of ..." must not read as (A). Letters outside the question's `choices` are ignored.

Math: the content of the last `\\boxed{...}` / `\\fbox{...}` (balanced braces), else the text
after the last "answer is" / "answer:"; equivalence by `math-verify`, falling back to comparing
normalised strings. Nothing here raises: an unparseable answer is simply wrong.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

from .types import Question

_THINK_END = "</think>"

# Decoration allowed between "answer is" and the letter: markdown, colons, math delimiters,
# \boxed{ / \text{ wrappers and the words "option"/"choice".
_FILLER = r"(?:\s|[*_:$`'\"]|\\\(|\\\[|\\boxed\{|\\text(?:bf)?\{|\\mathrm\{|\{|option\b|choice\b)*"
_ANSWER_IS = re.compile(r"answer(?:\*\*|__)?\s*(?:is\b|:)" + _FILLER, re.IGNORECASE)
# After the phrase: "(b)" / "[b]" in any case, or a capital letter that is not part of a word.
_BRACKETED_AT = re.compile(r"[(\[]([A-Za-z])[)\]]")
_CAPITAL_AT = re.compile(r"([A-Z])(?![A-Za-z0-9])")
# Several letters: "(A, B, and F)", "C, B, A", "(D, E, or G)", "(B), (D)", "(IH)".
_LIST_AT = re.compile(
    r"[(\[]?[A-Za-z][)\]]?\s*(?:,|&|/|\band\b|\bor\b)\s*(?:(?:and|or)\s+)?[(\[]?[A-Z]"
    r"(?:[)\]]|\s*(?:,|\.|$|\band\b|\bor\b))",
    re.MULTILINE,
)
_LETTERS_IN_BRACKETS = re.compile(r"[(\[][A-Z]{2,}[)\]]")
_BRACKETED = re.compile(r"(?:\(([A-Z])\)|\[([A-Z])\]|\*\*([A-Z])\*\*)")
# A capital letter alone: not inside a word, a number, a contraction or a hyphenated name.
_BARE = re.compile(r"(?<![A-Za-z0-9'\-_\\])([A-Z])(?![A-Za-z0-9'\-_])")
_WORD_AFTER = re.compile(r"\s+[A-Za-z]")
# A new question the model invents after answering (base models continuing the few-shot pattern).
_NEW_QUESTION = re.compile(r"\n\s*(?:\*\*)?(?:Question|Q)\s*\d*\s*(?:\*\*)?\s*[:.]", re.IGNORECASE)

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_BARE = re.compile(r"\\boxed\s+([^\s$]+)")
# The math fallback's answer runs to the end of its sentence or line ("The answer is 33.").
_MATH_ANSWER_IS = re.compile(
    r"answer(?:\*\*)?\s*(?:is\b|:)\s*(?:\*\*)?:?\s*(\S[^\n]*?)(?:\.?[ \t]*$|\.\s)", re.IGNORECASE | re.MULTILINE
)
# Longer expressions go to string comparison only: sympy has no timeout off the main thread.
_MAX_SYMBOLIC_CHARS = 400


def answer_part(text: str | None) -> str:
    """What a reasoning model says after its last `</think>`, else the whole text."""
    if not text:
        return ""
    head, sep, tail = text.rpartition(_THINK_END)
    return tail if sep else text


# -- multiple choice --------------------------------------------------------------------------


def _stated_letters(text: str, valid: set[str]) -> tuple[list[tuple[int, str]], bool]:
    """(position, letter) of every "answer is X" naming one valid letter, in order; and whether
    some statement named several letters ("answer is (A, C)")."""
    found, several = [], False
    for match in _ANSWER_IS.finditer(text):
        rest = text[match.end() : match.end() + 40]
        if _LIST_AT.match(rest) or _LETTERS_IN_BRACKETS.match(rest):
            several = True
            continue
        hit = _BRACKETED_AT.match(rest)
        letter = hit.group(1).upper() if hit else None
        if letter is None:
            hit = _CAPITAL_AT.match(rest)
            letter = hit.group(1) if hit else None
        if letter in valid:
            found.append((match.start(), letter))
    return found, several


def _standalone_letter(text: str, valid: set[str]) -> str | None:
    bracketed = [next(g for g in m.groups() if g) for m in _BRACKETED.finditer(text)]
    bracketed = [letter for letter in bracketed if letter in valid]
    if bracketed:
        return bracketed[-1]
    for match in reversed(list(_BARE.finditer(text))):
        letter = match.group(1)
        if letter not in valid:
            continue
        if letter in "AI" and _WORD_AFTER.match(text, match.end()):
            continue  # "A cell wall", "I think": a word, not an option
        return letter
    return None


def extract_choice(
    text: str | None, choices: Sequence[str], first_answer: bool = False, cut_new_question: bool = True
) -> str | None:
    """The option letter a model's text settles on (rules in the module docstring), or None.

    `first_answer=True` takes the first "answer is X" instead of the last: base models often go
    on past their answer into invented follow-up questions with answers of their own.
    """
    if not text:
        return None
    valid = {c.upper() for c in choices}
    stated, several = _stated_letters(text, valid)
    if stated and cut_new_question:
        cut = _NEW_QUESTION.search(text, stated[0][0])
        if cut:
            stated = [s for s in stated if s[0] < cut.start()]
    if stated:
        return stated[0][1] if first_answer else stated[-1][1]
    if several:
        return None  # the model stated an answer, just not one: guessing a letter would flatter it
    return _standalone_letter(text, valid)


# -- math ---------------------------------------------------------------------------------------


def _balanced(text: str, start: int) -> str | None:
    """The text from `start` up to the brace closing the one just before it, or None."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def extract_boxed(text: str | None) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}`, else the answer after the
    last "answer is"; None when neither is there."""
    if not text:
        return None
    for match in reversed(list(_BOXED.finditer(text))):
        content = _balanced(text, match.end())
        if content is not None and content.strip():
            return content.strip()
    bare = list(_BOXED_BARE.finditer(text))
    if bare:
        return bare[-1].group(1).strip()
    stated = list(_MATH_ANSWER_IS.finditer(text))
    if stated:
        answer = _strip_decoration(stated[-1].group(1))
        return answer or None
    return None


def _strip_decoration(answer: str) -> str:
    answer = answer.strip()
    answer = re.sub(r"^(?:\*\*|\$\$?|\\\(|\\\[)+|(?:\*\*|\$\$?|\\\)|\\\])+\.?$", "", answer.strip())
    return answer.strip().rstrip(".").strip().strip("$").strip()


def normalize_math(answer: str) -> str:
    """A plain string form for comparison when math-verify cannot parse: no spaces, `$`,
    `\\left`/`\\right`, thin spaces, `\\text{}`/`\\mathrm{}` wrappers, `dfrac`, trailing dot;
    integers without leading zeros ("033" -> "33")."""
    s = answer.strip()
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\(?:left|right)\b|\\[,!;: ]|\$", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("^\\circ", "").replace("°", "")
    s = re.sub(r"\s+", "", s).rstrip(".")
    if re.fullmatch(r"[+-]?\d+", s):
        s = str(int(s))
    return s


# math-verify times out with signal.alarm, which only works in the main thread; elsewhere
# (schedulers, servers) it must run without a timeout, hence _MAX_SYMBOLIC_CHARS.
class _QuietTimeoutWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_QuietTimeoutWarning())


def _timeout() -> int | None:
    return 5 if threading.current_thread() is threading.main_thread() else None


def _parse(answer: str) -> list[Any]:
    if len(answer) > _MAX_SYMBOLIC_CHARS:
        return []
    try:
        # heavy: math-verify (and sympy) load only for math answers
        from math_verify import parse

        return list(parse(f"\\boxed{{{answer}}}", parsing_timeout=_timeout()))
    except Exception:  # math-verify or sympy failing on odd input: fall back to strings
        return []


_MAX_EXPONENT = 1000
_HUGE_FUNCTIONS = {"factorial", "factorial2", "subfactorial", "binomial", "gamma"}


def _too_costly(value: Any) -> bool:
    """Whether comparing `value` could make sympy evaluate a gigantic number (a power tower, a
    huge factorial). Off the main thread nothing would stop it, so such answers are compared as
    strings only. Parsing keeps them unevaluated, so this walk itself is cheap."""
    try:
        # heavy: sympy loads only for math answers
        import sympy

        if not isinstance(value, sympy.Basic):
            return False
        for node in sympy.preorder_traversal(value):
            if isinstance(node, sympy.Pow) and node.exp.is_number:
                exponent = node.exp
                if not isinstance(exponent, sympy.Number) or abs(exponent) > _MAX_EXPONENT:
                    return True
            if isinstance(node, sympy.Function) and type(node).__name__ in _HUGE_FUNCTIONS:
                for arg in node.args:
                    if arg.is_number and (not isinstance(arg, sympy.Number) or abs(arg) > _MAX_EXPONENT):
                        return True
        return False
    except Exception:
        return True


def math_equal(gold: str, predicted: str) -> bool:
    """Whether two math answers are equivalent (math-verify), else equal as normalised strings."""
    if normalize_math(gold) == normalize_math(predicted):
        return True
    parsed_gold, parsed_pred = _parse(gold), _parse(predicted)
    if not parsed_gold or not parsed_pred or any(_too_costly(v) for v in (*parsed_gold, *parsed_pred)):
        return False
    try:
        # heavy: math-verify (and sympy) load only for math answers
        from math_verify import verify

        return bool(verify(parsed_gold, parsed_pred, timeout_seconds=_timeout()))
    except Exception:
        return False


def math_key(answer: str) -> str:
    """A canonical string for voting: sympy's LaTeX of the parsed value when math-verify can
    parse it ("1/2", "0.5" and "\\frac{1}{2}" all become "\\frac{1}{2}", "2^{10}" and "1024" become
    "1024"), else `normalize_math`. Non-numeric expressions keep sympy's form, so equal
    expressions written differently ("x+1" vs "1+x") agree only when sympy orders them alike.
    The key is still LaTeX, so `\\boxed{key}` grades like the original answer."""
    parsed = _parse(answer)
    if parsed and not isinstance(parsed[0], str) and not _too_costly(parsed[0]):
        try:
            # heavy: sympy loads only for math answers
            import sympy

            value = parsed[0]
            if isinstance(value, sympy.Float):  # decimals vote with the fraction they equal
                value = sympy.Rational(str(value)).limit_denominator(10**6)
            elif isinstance(value, sympy.Basic) and value.is_number and value.is_rational:
                value = sympy.Rational(value.doit())  # "2^{10}", "5!", "\\frac{2}{4}" -> one number
            return sympy.latex(value)
        except Exception:
            pass
    return normalize_math(answer)


# -- dispatch ----------------------------------------------------------------------------------


def extract_answer(text: str | None, question: Question) -> str | None:
    """The answer in the answer part of `text`: a letter, or a math expression (as written)."""
    part = answer_part(text)
    if question.is_math:
        return extract_boxed(part)
    return extract_choice(part, question.choices or [])


def is_correct(text: str | None, question: Question) -> bool:
    """Whether `text` answers `question` correctly. Never raises."""
    try:
        answer = extract_answer(text, question)
        if answer is None:
            return False
        if question.is_math:
            return math_equal(question.answer, answer)
        return answer.upper() == question.answer.strip().upper()
    except Exception:  # a grader bug must cost one answer, not a whole run
        return False


def answer_key(text: str | None, question: Question) -> str | None:
    """The extracted answer in canonical form, so equal answers vote together (None: no answer)."""
    try:
        answer = extract_answer(text, question)
        if answer is None:
            return None
        return math_key(answer) if question.is_math else answer.upper()
    except Exception:
        return None
