"""Step 2 of preprocessing (paper 3.2.1, SPEC 4.2): a skill profile per model.

Every pool model answers every validation question once with zero-shot CoT. For each kept
keyword of a question, the model's score for that keyword goes +1 if it was right, -1 if wrong.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..grading import is_correct
from ..prompts import cot_request
from ..scheduler import Job, Scheduler
from ..types import Question

Profile = dict[str, int]


def answer_all(
    questions: Sequence[Question], models: Sequence[str], scheduler: Scheduler, label: str = "profiles"
) -> dict[str, dict[str, str | None]]:
    """Each model's zero-shot CoT output for each question: {model: {question id: text}}."""
    jobs = [Job(model, cot_request(q)) for model in models for q in questions]
    completions = scheduler.run(jobs, label=label)
    outputs: dict[str, dict[str, str | None]] = defaultdict(dict)
    for job, completion in zip(jobs, completions, strict=True):
        outputs[job.model][job.question_id] = completion.text
    return dict(outputs)


def grade_all(questions: Sequence[Question], outputs: dict[str, dict[str, str | None]]) -> dict[str, dict[str, bool]]:
    """{model: {question id: correct}}; a missing or unparseable output is wrong."""
    return {model: {q.id: is_correct(texts.get(q.id), q) for q in questions} for model, texts in outputs.items()}


def build_profiles(keywords: dict[str, list[str]], correct: dict[str, dict[str, bool]]) -> dict[str, Profile]:
    """{model: {keyword: score}}, +1 per keyword of a question the model got right, -1 if wrong."""
    profiles: dict[str, Profile] = {}
    for model, per_question in correct.items():
        profile: Profile = defaultdict(int)
        for qid, right in per_question.items():
            for keyword in keywords.get(qid, []):
                profile[keyword] += 1 if right else -1
        profiles[model] = dict(sorted(profile.items()))
    return profiles


def accuracy(correct: dict[str, dict[str, bool]]) -> dict[str, float]:
    return {m: (sum(c.values()) / len(c) if c else 0.0) for m, c in correct.items()}
