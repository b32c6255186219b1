"""Step 1 of preprocessing (paper 3.2.1, SPEC 4.1): which skills does each question need?

A keyword LLM lists 2-5 skills per question, several times at temperature 0.7. Keywords are
normalised, and only the repeated ones are kept: per question (authors' scripts, default) or
across the whole split (the paper's wording, `filter = "global"`). For labelled data the skills
can instead come from a dataset field (`skills_from_field`), which separates routing quality
from keyword quality.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from ..config import KeywordConfig
from ..prompts import keyword_request
from ..scheduler import Job, Scheduler
from ..types import Completion, GenerationSettings, Question

_PREFIX = re.compile(r"keywords?\s*:", re.IGNORECASE)
_LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")
_LABEL = re.compile(r"^[^:]{1,40}:\s*")


def parse_keywords(text: str | None, max_length: int = 20) -> list[str]:
    """Keywords after the last `Keywords:`, split on commas, normalised (SPEC 4.1).

    Tiny keyword LLMs often ignore the format and write a bulleted or numbered list instead; with
    no `Keywords:` in the text, every line's items count (list marks and "Label:" prefixes
    removed). Over-long items are dropped, so prose never becomes a keyword, and the repeated-
    keyword filter removes what a single sample invents."""
    if not text:
        return []
    matches = list(_PREFIX.finditer(text))
    if matches:
        body = text[matches[-1].end() :].strip()
        items = body.splitlines()[0].split(",") if body else []
    else:
        items = []
        for line in text.splitlines():
            line = _LIST_MARK.sub("", line).strip()
            if line.endswith(":"):
                continue  # a heading such as "The skills needed are:"
            parts = _LABEL.sub("", line).split(",")
            if all(len(p.strip()) <= 2 * max_length for p in parts):  # else prose, not a list
                items += parts
    keywords = []
    for raw in items:
        keyword = raw.strip().strip("*`\"'<>[]").strip().lower().rstrip(".:").strip()
        if keyword and len(keyword) <= max_length and keyword not in keywords:
            keywords.append(keyword)
    return keywords


def filter_keywords(
    samples: dict[str, list[list[str]]], mode: str = "per_question", min_count: int = 2
) -> dict[str, list[str]]:
    """Keep keywords seen at least `min_count` times among a question's samples (per_question)
    or across all samples of the split (global); order of first appearance is kept."""
    if mode == "global":
        split_counts = Counter(k for per_q in samples.values() for sample in per_q for k in set(sample))
    kept: dict[str, list[str]] = {}
    for qid, per_question in samples.items():
        counts = Counter(k for sample in per_question for k in set(sample))
        if mode == "global":
            counts = Counter({k: split_counts[k] for k in counts})
        ordered = list(dict.fromkeys(k for sample in per_question for k in sample))
        kept[qid] = [k for k in ordered if counts[k] >= min_count]
    return kept


def annotate(
    questions: Sequence[Question],
    scheduler: Scheduler,
    config: KeywordConfig,
    completions: dict[str, list[Completion]] | None = None,
) -> dict[str, list[list[str]]]:
    """The raw keyword samples of every question, from the keyword LLM (stored generations).
    `completions`, when given, receives each question's keyword generations (for its usage)."""
    base = scheduler.pool.settings(config.model)
    settings = GenerationSettings(
        temperature=config.temperature, top_p=base.top_p, max_tokens=config.max_tokens, seed=base.seed
    )
    jobs = [
        Job(config.model, keyword_request(q, sample), settings) for q in questions for sample in range(config.samples)
    ]
    generated = scheduler.run(jobs, label=f"keywords ({config.model})")
    samples: dict[str, list[list[str]]] = {q.id: [] for q in questions}
    for job, completion in zip(jobs, generated, strict=True):
        samples[job.question_id].append(parse_keywords(completion.text, config.max_length))
        if completions is not None:
            completions.setdefault(job.question_id, []).append(completion)
    return samples


def skills_from_field(questions: Sequence[Question], field: str) -> dict[str, list[str]]:
    """One skill per question: the value of a dataset field such as `category` or `source`."""
    skills = {}
    for q in questions:
        value = q.field(field)
        skills[q.id] = [str(value).strip().lower()] if value not in (None, "") else []
    return skills
