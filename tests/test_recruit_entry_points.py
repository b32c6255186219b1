"""One recruitment for every entry point: `smoe run` (Run.recruitment), the Python API
(`Mixture.answer`) and `smoe serve` (HTTP) recruit a question's experts from exactly the same
distribution for the same question and skills, under every weighting, and a fixed seed gives the
same experts through the API and the server (and `smoe run` too where no draw is involved: greedy).

A tiny benchmark of recorded answers (replay engine) with skills from the category field: no LLM,
so the three entry points are compared on the recruitment alone. Profiles are built so that the
linear (squared) and the softmax-style global competency differ."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from symbolic_moe import Mixture
from symbolic_moe.app.server import BackgroundServer, ServerOptions, create_app
from symbolic_moe.config import parse_config
from symbolic_moe.inference.recruit import question_rng, recruit
from symbolic_moe.run import Run

CATEGORIES = ["math", "law", "biology"]
# per model, the validation categories it answers right (else wrong): unequal totals, some negative
STRENGTHS = {"m1": {"math"}, "m2": {"math", "law"}, "m3": {"biology"}, "m4": set(), "m5": {"law", "biology"}}


def _write_benchmark(root: Path) -> dict:
    folder = root / "bench"
    folder.mkdir()
    splits = {"validation": 12, "test": 6}
    questions = {}
    for split, n in splits.items():
        rows = []
        for i in range(n):
            category = CATEGORIES[i % len(CATEGORIES)]
            text = f"{split} question {i} about {category}? (A) yes (B) no"
            rows.append(
                {"id": f"{split}-{i}", "question": text, "answer": "A", "choices": ["A", "B"], "category": category}
            )
        questions[split] = rows
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for model, strong in STRENGTHS.items():
        lines = []
        for rows in questions.values():
            for r in rows:
                right = r["category"] in strong or (model == "m4" and r["id"].endswith("0"))
                lines.append(
                    json.dumps({"id": r["id"], "output": "The answer is (A)" if right else "The answer is (B)"})
                )
        (root / f"{model}.jsonl").write_text("\n".join(lines) + "\n")
    return {
        "benchmark": {"path": str(folder)},
        "keywords": {"skills_from_field": "category"},
        "aggregator": {"method": "majority"},
        "scheduler": {"progress": False},
        "pool": {m: {"engine": "replay", "model": str(root / f"{m}.jsonl")} for m in STRENGTHS},
    }


@pytest.mark.parametrize("weighting", ["linear", "softmax", "greedy"])
def test_run_api_and_server_recruit_from_the_same_distribution(tmp_path, weighting):
    raw = _write_benchmark(tmp_path)
    raw |= {"out": str(tmp_path / "run"), "recruit": {"weighting": weighting, "k": 3, "trim_share": 0.0}}
    run = Run(parse_config(raw))
    seed = 7
    plan = run.recruitment(seed)  # what `smoe run` computes for the test split
    expected = {
        qid: dict(zip(plan.models, row.tolist(), strict=True))
        for qid, row in zip(plan.question_ids, plan.probabilities, strict=True)
    }

    mixture = Mixture(run)
    answers = mixture.answer(run.test, seed=seed)
    with BackgroundServer(create_app(mixture, ServerOptions(window=0.0))) as url:
        served = [
            httpx.post(
                f"{url}/chat/completions",
                json={"messages": [{"role": "user", "content": q.question}], "seed": seed},
                timeout=120,
            ).json()["symbolic_moe"]
            for q in run.test
        ]

    mapped = run.mapped_keywords()
    for q, answer, details in zip(run.test, answers, served, strict=True):
        assert answer.skills == mapped[q.id] == details["skills"]
        for got in (answer.recruitment, details["recruitment"]):
            assert got is not None and set(got) == set(expected[q.id])
            assert np.allclose([got[m] for m in plan.models], [expected[q.id][m] for m in plan.models], atol=1e-6)
        assert details["question_id"] == q.id and details["experts"] == answer.experts
    if weighting == "greedy":  # no draw: `smoe run` picks the same experts too
        assert [a.experts for a in answers] == plan.experts
    else:  # one draw per question from its own RNG: the same experts the one recruitment gives
        alone = [
            recruit(
                [q.id],
                [mapped[q.id]],
                run.profiles()["profiles"],
                run.experts,
                k=3,
                weighting=weighting,
                temperature=0.5,
                trim_share=0.0,
                rng=question_rng(seed, q.id),
            ).experts[0]
            for q in run.test
        ]
        assert [a.experts for a in answers] == alone
