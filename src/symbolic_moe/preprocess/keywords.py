"""Step 1 of preprocessing (paper 3.2.1, SPEC 4.1): which skills does each question need?

A keyword LLM lists 2-5 skills per question, several times at temperature 0.7. Keywords are
normalised, and only the repeated ones are kept: per question (authors' scripts, default) or
across the whole split (the paper's wording, `filter = "global"`). For labelled data the skills
can instead come from a dataset field (`skills_from_field`), which separates routing quality
from keyword quality, or, without any keyword LLM, from the labels of the nearest labelled
validation questions by MiniLM embedding (`source = "embedding"`).

Structured answers (`structured = true`, the default): the keyword LLM answers JSON
`{"keywords": [2-5 strings]}` under a schema the engine enforces (grammar, response_format,
logits processor), parsed strictly. An answer that is not JSON at all comes from an engine that
answered free text (a server refusing `response_format`): the lenient text parser reads it. An
answer that starts as JSON but does not parse or has another shape (cut at max_tokens, an engine
that failed) counts as invalid: that sample gives no keyword, one warning names the model and
question, and `KeywordSamples.invalid` counts it for results.json.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import KeywordConfig
from ..errors import StructuredOutputWarning
from ..inference.keyword_mapping import KeywordEmbedder, nearest_labels
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
    return normalise_keywords(items, max_length)


def normalise_keywords(items: Sequence[str], max_length: int = 20) -> list[str]:
    """Lower-cased, trimmed of marks and spaces, over-long ones dropped, first occurrence kept."""
    keywords: list[str] = []
    for raw in items:
        keyword = " ".join(raw.strip().strip("*`\"'<>[]").strip().lower().rstrip(".:").split())
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


def keyword_schema(max_length: int) -> dict[str, Any]:
    """The JSON schema of a structured keyword answer: 2-5 keywords of at most `max_length`
    characters, each a word or phrase (letters, spaces, ' & / -), length-limited so that a
    constrained answer nearly always fits its token budget (2 of SmolLM2's 3,500 benchmark answers
    were cut at 96 tokens: the grammar also allows whitespace; a cut answer is warned and counted)."""
    # Words, not placeholders or code: a tiny model otherwise copies "<keyword1>" from the prompt.
    item = {"type": "string", "pattern": f"^[A-Za-z][A-Za-z '&/-]{{0,{max_length - 1}}}$"}
    return {
        "type": "object",
        "properties": {"keywords": {"type": "array", "items": item, "minItems": 2, "maxItems": 5}},
        "required": ["keywords"],
        "additionalProperties": False,
    }


def parse_json_keywords(text: str, max_length: int = 20) -> list[str] | None:
    """The keywords of a JSON answer `{"keywords": [...]}`, normalised like `parse_keywords`;
    None when the text is not such an object (invalid JSON, cut short, another shape)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    items = data.get("keywords") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(k, str) for k in items):
        return None
    return normalise_keywords(items, max_length)


def read_answer(completion: Completion, structured: bool, max_length: int) -> tuple[list[str], str | None]:
    """One sample's keywords and, when the answer is unusable, why (see the module docstring)."""
    text = completion.text
    if not structured:
        return parse_keywords(text, max_length), None
    if text is None:
        return [], f"no answer ({completion.finish_reason or 'error'})"
    if not text.lstrip().startswith("{"):
        return parse_keywords(text, max_length), None  # unconstrained free text: lenient parser
    parsed = parse_json_keywords(text, max_length)
    if parsed is None:
        cut = " (cut at max_tokens)" if completion.finish_reason == "length" else ""
        return [], f"not a JSON keyword object{cut}: {text[:60]!r}"
    return parsed, None


@dataclass
class KeywordSamples:
    """Every question's keyword samples, and the structured answers that were unusable."""

    samples: dict[str, list[list[str]]]
    invalid: dict[str, int] = field(default_factory=dict)  # question id -> unusable answers


def keyword_settings(base: GenerationSettings, config: KeywordConfig) -> GenerationSettings:
    """How the keyword LLM samples (`base`: its model's settings)."""
    return GenerationSettings(
        temperature=config.temperature,
        top_p=base.top_p,
        max_tokens=config.token_limit,
        seed=base.seed,
        json_schema=json.dumps(keyword_schema(config.max_length)) if config.structured else None,
    )


def annotate(
    questions: Sequence[Question],
    scheduler: Scheduler,
    config: KeywordConfig,
    completions: dict[str, list[Completion]] | None = None,
) -> KeywordSamples:
    """The raw keyword samples of every question, from the keyword LLM (stored generations).
    `completions`, when given, receives each question's keyword generations (for its usage)."""
    settings = keyword_settings(scheduler.pool.settings(config.model), config)
    jobs = [
        Job(config.model, keyword_request(q, sample, config.structured), settings)
        for q in questions
        for sample in range(config.samples)
    ]
    generated = scheduler.run(jobs, label=f"keywords ({config.model})")
    out = KeywordSamples({q.id: [] for q in questions})
    problems: dict[str, str] = {}
    for job, completion in zip(jobs, generated, strict=True):
        qid = job.question_id
        keywords, problem = read_answer(completion, config.structured, config.max_length)
        out.samples[qid].append(keywords)
        if problem is not None:
            out.invalid[qid] = out.invalid.get(qid, 0) + 1
            problems.setdefault(qid, problem)
        if completions is not None:
            completions.setdefault(qid, []).append(completion)
    _warn_invalid(config.model, problems, out.invalid, config.samples)
    return out


def _warn_invalid(model: str, problems: dict[str, str], invalid: dict[str, int], samples: int, shown: int = 5) -> None:
    """One warning per question with unusable answers (the first `shown`), then one summary."""
    for qid, problem in list(problems.items())[:shown]:
        warnings.warn(
            f"keyword model '{model}', question {qid}: {invalid[qid]} of {samples} answers unusable, "
            f"e.g. {problem}; those samples give no keyword",
            StructuredOutputWarning,
            stacklevel=3,
        )
    if len(problems) > shown:
        warnings.warn(
            f"keyword model '{model}': unusable answers for {len(problems)} questions in all "
            f"({sum(invalid.values())} answers); counted in results.json (keyword_fallbacks)",
            StructuredOutputWarning,
            stacklevel=3,
        )


def skills_from_field(questions: Sequence[Question], field: str) -> dict[str, list[str]]:
    """One skill per question: the value of a dataset field such as `category` or `source`."""
    skills = {}
    for q in questions:
        value = q.field(field)
        skills[q.id] = [str(value).strip().lower()] if value not in (None, "") else []
    return skills


def skills_from_neighbours(
    questions: Sequence[Question],
    labelled: Sequence[Question],
    field: str,
    embedder: KeywordEmbedder,
    neighbours: int = 5,
) -> dict[str, list[str]]:
    """Skills without a keyword LLM: a labelled question keeps its own `field` value; any other
    question gets the values of its `neighbours` nearest labelled questions (MiniLM cosine of the
    question texts) seen at least twice among them, or the nearest one's when none repeats."""
    own = skills_from_field(labelled, field)
    pool = [q for q in labelled if own[q.id]]
    skills = {q.id: own[q.id] for q in questions if q.id in own}
    rest = [q for q in questions if q.id not in own]
    if not rest:
        return skills
    if not pool:
        return {**skills, **{q.id: [] for q in rest}}
    vectors = embedder.embed([q.question for q in pool])
    queries = embedder.embed([q.question for q in rest])
    labels = [own[q.id][0] for q in pool]
    for q, chosen in zip(rest, nearest_labels(queries, vectors, labels, neighbours), strict=True):
        skills[q.id] = chosen
    return skills
