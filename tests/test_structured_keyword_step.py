"""The keyword step end to end through a Run: structured answers cut at max_tokens (real
SmolLM2), a server that refuses response_format (fault server on 127.0.0.1), and skills from
MiniLM neighbours without any keyword LLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fault_server import FaultServer, chat_reply

from symbolic_moe.config import parse_config
from symbolic_moe.errors import StructuredOutputWarning
from symbolic_moe.run import Run

needs_smol = pytest.mark.usefixtures("smollm2_installed")  # a skip, or a failure under SMOE_REQUIRE=models


def _run(tmp_path: Path, keyword_model: dict[str, Any], **keywords: Any) -> Run:
    raw = {
        "name": "kw",
        "out": str(tmp_path / "out"),
        "benchmark": {"path": "demo", "limit": 2, "validation_limit": 2},
        "keywords": {"model": "kw", "samples": 3, **keywords},
        "scheduler": {"progress": False},
        "models": {"kw": keyword_model},
        "pool": {"a": {"engine": "llama_cpp", "model": "embedded:smollm2"}},
    }
    return Run(parse_config(raw))


@pytest.mark.slow
@needs_smol
def test_answers_cut_at_max_tokens_fall_back_to_no_skills_and_are_counted(tmp_path: Path) -> None:
    smol = {"engine": "llama_cpp", "model": "embedded:smollm2", "options": {"n_threads": 1}}
    run = _run(tmp_path, smol, max_tokens=3)  # too few tokens for any JSON object
    cut = r"keyword model 'kw', question demo-test-000\d.*cut at max_tokens"
    with pytest.warns(StructuredOutputWarning, match=cut):
        skills = run.keywords("test")
    assert skills == {"demo-test-0000": [], "demo-test-0001": []}  # no skills: global competency
    assert run.keyword_fallbacks["test"] == {
        "questions": 2,
        "without_skills": 2,
        "unusable_answers": 6,
        "questions_with_unusable_answers": 2,
    }


def test_a_server_refusing_response_format_gives_free_text_read_leniently(tmp_path: Path) -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[Any, ...]:
        if "response_format" in body:
            return 400, {"error": {"message": "unsupported parameter: response_format"}}, 0.0
        return 200, chat_reply("Keywords: arithmetic, multiplication"), 0.0

    server = FaultServer(script)
    try:
        model = {"engine": "openai", "model": "fake", "options": {"base_url": server.url, "backoff": 0.01}}
        run = _run(tmp_path, model)
        with pytest.warns(StructuredOutputWarning, match="'fake'.*refused response_format"):
            skills = run.keywords("test")
    finally:
        server.close()
    assert skills == {q: ["arithmetic", "multiplication"] for q in ("demo-test-0000", "demo-test-0001")}
    assert run.keyword_fallbacks["test"]["unusable_answers"] == 0


@pytest.mark.slow
def test_embedding_source_takes_the_neighbours_categories_without_a_keyword_llm(tmp_path: Path) -> None:
    raw = {
        "name": "kw",
        "out": str(tmp_path / "out"),
        "benchmark": {"path": "demo", "limit": 12},
        "keywords": {"source": "embedding", "neighbours": 3},
        "scheduler": {"progress": False},
        "pool": {"a": {"engine": "llama_cpp", "model": "embedded:smollm2"}},
    }
    run = Run(parse_config(raw))
    validation = run.keywords("validation")
    assert all(validation[q.id] == [q.category] for q in run.validation)  # labelled: their own
    test = run.keywords("test")
    labels = {q.category for q in run.validation}
    assert all(skills and set(skills) <= labels for skills in test.values())
    hits = sum(test[q.id][0] == q.category for q in run.test if q.category in labels)
    assert hits >= len(run.test) // 2  # near questions share a category far more often than not
