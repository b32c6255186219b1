"""Every prompt, in one place: the paper's Appendix G texts and the baselines' follow-ups."""

from __future__ import annotations

from collections.abc import Sequence

from .types import ChatRequest, Question

# The authors' keyword prompt (annotate_keywords.py), kept apart from the answer format line:
# their own line for free text, a JSON line for structured answers (the schema enforces it).
KEYWORDS_TASK = (
    "Question: {question}\n\n"
    "What are the core knowledge, subjects or skills needed to solve this problem? "
    "List 2-5 keywords separated in comma. Example keywords: psychology, virology, behavioral theory, "
    "microbiology, diplomacy, political science, property law, finance, business. "
    "Give ONLY the keywords, no other words or explanation."
)
KEYWORDS_FORMAT_TEXT = "Follow this format: Keywords: <keyword1>, <keyword2>..."
KEYWORDS_FORMAT_JSON = 'Answer in JSON: {"keywords": [...]}'
KEYWORDS = KEYWORDS_TASK + "\n\n" + KEYWORDS_FORMAT_TEXT

_ANSWER_CHOICE = (
    'Provide your step-by-step reasoning first, and then print "The answer is (X)" where X is the '
    "answer choice (one capital letter), at the end of your response."
)
_ANSWER_MATH = (
    'Provide your step-by-step reasoning first, and then print "The answer is \\boxed{X}", where X is '
    "the final answer, at the end of your response."
)

COT = "Question: {question}\n\n{instruction}"

AGGREGATE = (
    "You have been provided with a set of responses from various open-source models to the latest user "
    "query. Your task is to synthesize these responses into a single, high-quality response. It is crucial "
    "to critically evaluate the information provided in these responses, recognizing that some of it may be "
    "biased or incorrect. Your response should not simply replicate the given answers but should offer a "
    "refined, accurate, and comprehensive reply to the instruction. Ensure your response is well-structured, "
    "coherent, and adheres to the highest standards of accuracy and reliability.\n\n"
    "Responses from models:\n\n{responses}\n\n"
    "Question: {question}\n\n{instruction}"
)

# One discussion round (paper Table 3; multi-agent debate, Du et al. 2023).
DISCUSS = (
    "Question: {question}\n\n"
    "These are the solutions to the problem from other agents:\n\n{responses}\n\n"
    "Using the reasoning from other agents as additional advice, can you give an updated answer? "
    "Examine your solution and that of other agents step by step. {instruction}"
)

# Self-Refine (Madaan et al. 2023): feedback on one's own answer, then a refined answer.
FEEDBACK = (
    "Question: {question}\n\nHere is a proposed solution:\n\n{answer}\n\n"
    "Review this solution step by step. Point out any errors in reasoning or calculation and say how to "
    "fix them. Do not write a new solution."
)
REFINE = (
    "Question: {question}\n\nHere is a proposed solution:\n\n{answer}\n\n"
    "Here is feedback on that solution:\n\n{feedback}\n\n"
    "Taking the feedback into account, write an improved solution. {instruction}"
)

# ReConcile (Chen et al. 2024) asks each agent for a confidence with its answer.
CONFIDENCE = ' Also state your confidence in your answer as a number between 0.0 and 1.0, as "Confidence: X".'


def answer_instruction(question: Question) -> str:
    return _ANSWER_MATH if question.is_math else _ANSWER_CHOICE


def keyword_request(question: Question, sample: int, structured: bool = False) -> ChatRequest:
    fmt = KEYWORDS_FORMAT_JSON if structured else KEYWORDS_FORMAT_TEXT
    text = KEYWORDS_TASK.format(question=question.question) + "\n\n" + fmt
    return ChatRequest.user(text, question.id, sample)


def cot_request(question: Question, sample: int = 0, suffix: str = "") -> ChatRequest:
    text = COT.format(question=question.question, instruction=answer_instruction(question) + suffix)
    return ChatRequest.user(text, question.id, sample)


def _numbered(responses: Sequence[str]) -> str:
    return "\n\n".join(f"{i}. {text.strip()}" for i, text in enumerate(responses, start=1))


def aggregate_request(question: Question, responses: Sequence[str], sample: int = 0) -> ChatRequest:
    text = AGGREGATE.format(
        responses=_numbered(responses), question=question.question, instruction=answer_instruction(question)
    )
    return ChatRequest.user(text, question.id, sample)


def discuss_request(question: Question, others: Sequence[str], sample: int = 0, suffix: str = "") -> ChatRequest:
    text = DISCUSS.format(
        question=question.question,
        responses=_numbered(others),
        instruction=answer_instruction(question) + suffix,
    )
    return ChatRequest.user(text, question.id, sample)


def feedback_request(question: Question, answer: str, sample: int = 0) -> ChatRequest:
    return ChatRequest.user(FEEDBACK.format(question=question.question, answer=answer), question.id, sample)


def refine_request(question: Question, answer: str, feedback: str, sample: int = 0) -> ChatRequest:
    text = REFINE.format(
        question=question.question, answer=answer, feedback=feedback, instruction=answer_instruction(question)
    )
    return ChatRequest.user(text, question.id, sample)
