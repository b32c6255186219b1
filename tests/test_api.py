"""The Python API (`symbolic_moe.Mixture`): overrides, answers, per-request seeds, batch
independence, on the real replay pool (16 recorded MMLU-Pro models, skills from the category);
and the README's example, run as written against the embedded pool."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from symbolic_moe import Answer, Mixture, Question, Request
from symbolic_moe.config import default_data_dir
from symbolic_moe.errors import ConfigError
from symbolic_moe.grading import extract_answer

ROOT = Path(__file__).resolve().parents[1]
DATA = default_data_dir()
needs_data = pytest.mark.skipif(
    DATA is None or not (DATA / "replay" / "mmlu_pro").is_dir(), reason="benchmark data directory not found"
)


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> Mixture:
    out = tmp_path_factory.mktemp("api-replay")
    return Mixture.from_config(
        ROOT / "configs" / "replay-mmlu-pro-small16.toml",
        data_dir=DATA,
        out=str(out),
        store=str(out / "generations.sqlite"),
        keywords={"skills_from_field": "category"},  # nested, like [keywords] in the TOML
        **{"scheduler.progress": False, "recruit.k": 3},  # dotted, like --set
    )


def test_import_is_cheap():
    """`import symbolic_moe` loads neither the API nor any engine until they are used."""
    heavy = ("symbolic_moe", "torch", "llama_cpp", "numpy")
    code = f"import sys, symbolic_moe; print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['symbolic_moe']"


@needs_data
def test_overrides_nested_and_dotted(mixture):
    cfg = mixture.run.config
    assert cfg.keywords.skills_from_field == "category" and cfg.recruit.k == 3
    assert cfg.scheduler.progress is False and cfg.keywords.model == "smollm2"  # the rest is the file's


@needs_data
def test_answers_carry_experts_skills_and_usage(mixture):
    questions = mixture.run.test[:4]
    by_text = mixture.answer([q.question for q in questions], seed=3)
    by_object = mixture.answer(questions, seed=3)
    assert [a.model_dump() for a in by_text] == [a.model_dump() for a in by_object]
    for q, a in zip(questions, by_text, strict=True):
        assert isinstance(a, Answer) and a.question.id == q.id  # a benchmark text is that question
        assert a.skills == [q.category] and len(a.experts) == 3 and a.seed == 3
        assert [e.model for e in a.expert_answers] == a.experts
        assert all(e.answer == extract_answer(e.text, q) for e in a.expert_answers)
        assert a.aggregator == "majority" and a.answer == extract_answer(a.text, q)
        votes = [e.answer for e in a.expert_answers if e.answer]
        if votes:  # a majority vote: the final answer is one of the most common expert answers
            assert votes.count(a.answer) == max(votes.count(v) for v in votes)
        assert a.usage.calls == 3 and a.usage.completion_tokens == a.steps["experts"].completion_tokens
        assert a.usage.completion_tokens == sum(len(e.text.split()) for e in a.expert_answers if e.text)


@needs_data
def test_experts_do_not_depend_on_batch_position(mixture):
    q = mixture.run.test[:6]
    together = mixture.answer([q[0], q[1], q[2], q[3], q[4], q[5]], seed=7)
    reordered = mixture.answer([q[5], q[3], q[0]], seed=7)
    alone = [mixture.answer(x, seed=7)[0] for x in (q[0], q[3], q[5])]
    assert [a.experts for a in alone] == [together[0].experts, together[3].experts, together[5].experts]
    assert [a.experts for a in alone] == [reordered[2].experts, reordered[1].experts, reordered[0].experts]


@needs_data
def test_each_request_keeps_its_own_seed_in_one_batch(mixture):
    questions = mixture.run.test[10:16]
    batch = [Request(q, seed) for q in questions for seed in (1, 2)]
    together = mixture.answer_requests(batch)
    for request, answer in zip(batch, together, strict=True):
        alone = mixture.answer(request.question, seed=request.seed)[0]
        assert answer.model_dump() == alone.model_dump()
    # the seed is honoured: over six questions, seeds 1 and 2 recruit differently somewhere
    assert any(together[i].experts != together[i + 1].experts for i in range(0, len(batch), 2))


@needs_data
def test_free_text_question_and_chat(mixture):
    """A question that is not in the benchmark gets its own id (a recording cannot answer it),
    and chat() takes the last user message."""
    text = "Which planet is largest? The options are: (A) Mars (B) Jupiter (C) Venus."
    q = mixture.question(text)
    assert isinstance(q, Question) and q.id.startswith("ask-") and q.choices == ["A", "B", "C"]
    known = mixture.run.test[0]
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    reply = mixture.chat([*messages, {"role": "user", "content": known.question}], seed=3)
    assert reply.question.id == known.id and reply.model_dump() == mixture.answer(known, seed=3)[0].model_dump()
    with pytest.raises(ValueError, match="no user message"):
        mixture.chat([{"role": "system", "content": "x"}])


def readme_example() -> str:
    """The README's Python API example (the first python block under '## Python API')."""
    section = (ROOT / "README.md").read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_example_runs_as_written(embedded_demo_dir):
    """The example, unchanged, in a directory holding only the repository's configs: it answers
    with the real embedded models (SmolLM2, Gemma-3) and prints what it promises."""
    tmp_path = embedded_demo_dir
    (tmp_path / "example.py").write_text(readme_example())
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3000
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout  # the scheduler's progress bars may be in it too
    answer = re.search(r"^(A|B|C|None) \[(.+?)\] \[.*?\] (\d+)$", out, re.M)
    assert answer, out[-2000:]
    experts = re.findall(r"^  (\S+) (A|B|C|None)$", out, re.M)
    assert len(experts) == 2 and all(
        m in {"smollm2", "gemma3", "smollm2-science", "gemma3-humanities"} for m, _ in experts
    )
    assert int(answer.group(3)) > 0  # tokens used
    assert (tmp_path / "runs" / "api-demo" / "profiles.json").is_file()


@needs_data
@pytest.mark.parametrize("method", ["router_single", "router_vote", "router_cascade"])
def test_router_methods_answer_new_questions_like_the_registered_methods(mixture, method):
    """`Mixture(run, method)` (what `smoe serve --method` uses) routes each question as the
    registered method does on a test split: the same experts, the same final answer."""
    from symbolic_moe import router_fit as fit
    from symbolic_moe.methods.router import route_cascade, route_vote

    run = mixture.run
    routed = Mixture(run, method)
    questions = run.test[20:32]
    answers = routed.answer(questions, seed=0)
    probabilities = fit.fitted(run).predict(fit.signals(run, "test", questions))
    if method == "router_cascade":
        expected, _ = route_cascade(run, questions, probabilities, run.config.router.margin, run.config.router.k_max, 0)
    else:
        k = 1 if method == "router_single" else run.config.recruit.k
        expected, _ = route_vote(run, questions, probabilities, k, 0)
    assert [a.experts for a in answers] == [p.detail["experts"] for p in expected]
    assert [a.answer for a in answers] == [p.answer for p in expected]
    for a in answers:
        assert a.usage.calls == len(a.experts) and [e.model for e in a.expert_answers] == a.experts
    with pytest.raises(ConfigError, match="method: 'moa' cannot answer new questions"):
        Mixture(run, "moa")
