"""The mixture as a Python object (issue 13): `Mixture.from_config(path, **overrides)`, then
`.answer(questions)` or `.chat(messages)`.

The steps are the ones `smoe run` takes on a test question, and `smoe serve` answers through this
module: skills from the keyword LLM (or a dataset field) -> mapped onto the profile vocabulary
(MiniLM) -> k experts recruited -> experts run, batched per model -> optional discussion ->
aggregation (`pipeline.synthesize`). Two differences follow from questions arriving
one by one instead of as a test split:
- recruitment (`Run.recruit`, the one `smoe run` uses, with the config's weighting and
  temperature) draws each question's experts from an RNG seeded by its seed and id
  (`recruit.question_rng`), so an answer never depends on what else is asked with it, and skips
  the 5% trimming (a statistic over a whole test set);
- keywords are filtered per question (the `global` filter would count over whatever else is asked).
With `method` one of the learned routers (`router_single`, `router_vote`, `router_cascade`; issue
10) the experts are the pool models with the highest predicted correctness instead (the router
fitted on `router.fit_splits`, as in `smoe run`), voted with their log-odds weights (or
synthesized by the task aggregator for `router_vote` with `aggregator.method = "llm"`), or asked
best-first until the vote's margin passes `router.margin`; `router_frugal` (issue 18) asks them
cheapest first (`methods.router.plan_order`). A request's `budget` (USD) bounds its expert calls.
A question given as text that is a question of the config's benchmark splits (same text up to
whitespace) is that question: its id, options and fields, so stored generations, recordings
(replay pools) and `skills_from_field` apply to it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from . import router_fit
from .answers import Answer, ExpertAnswer, Request, Usage, last_user_message, normal_text, question_from_text
from .config import load_config
from .errors import ConfigError, EngineError
from .grading import extract_answer
from .inference.recruit import Recruitment, question_rng
from .methods import check_config
from .methods.router import frugal_rule, plan_order
from .pipeline import Synthesis, cascade_experts, routed_plan, synthesize
from .preprocess import keywords
from .routing.base import Signals, groups_of
from .routing.cost import Costs
from .run import Run
from .types import Completion, Question
from .voting import answer_as_text

__all__ = [
    "METHODS",
    "Answer",
    "ExpertAnswer",
    "Mixture",
    "Request",
    "Usage",
    "last_user_message",
    "question_from_text",
]

# what a Mixture answers with
METHODS = ("symbolic_moe", "router_single", "router_vote", "router_cascade", "router_frugal")


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keyword arguments as dotted keys: recruit={"k": 2} -> {"recruit.k": 2}."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class Mixture:
    """A pool of LLMs answering as one. Thread-safe: calls are answered one batch at a time."""

    def __init__(self, run: Run, method: str = "symbolic_moe") -> None:
        if method not in METHODS:
            raise ConfigError(f"method: '{method}' cannot answer new questions (one of: {', '.join(METHODS)})")
        self.run, self.method = run, method
        self._lock = threading.RLock()
        self._ready = False

    @classmethod
    def from_config(
        cls, path: str | Path, *, data_dir: str | Path | None = None, method: str = "symbolic_moe", **overrides: Any
    ) -> Mixture:
        """A mixture from a run config (TOML). `overrides` are applied like `--set`: dotted keys
        (`**{"recruit.k": 2}`) or nested keyword arguments (`recruit={"k": 2}`), merged key by key.
        `method`: one of METHODS (Symbolic-MoE recruitment, or a learned router)."""
        config = load_config(path, values=_flatten(overrides))
        check_config(config, str(path))
        return cls(Run(config, data_dir), method)

    def prepare(self) -> None:
        """Profiles (and the aggregator choice when an LLM aggregates): computed once, from the
        validation split, and kept in the run directory. `smoe serve` calls it before it listens."""
        with self._lock:
            if self._ready:
                return
            self.run.profiles()
            if self.method != "symbolic_moe":
                router_fit.fitted(self.run)  # labels from the stored validation outputs, embeddings
                try:  # prices, for budgets; a setting that needs them fails now on an unpriced model
                    self._costs: Costs | ConfigError = router_fit.costs(self.run)
                except ConfigError as exc:
                    if self.method == "router_frugal" or router_fit.cost_aware(self.run):
                        raise
                    self._costs = exc
            if self.run.config.aggregator.method == "llm" and self.method in ("symbolic_moe", "router_vote"):
                self.run.aggregator()
            _ = self._known  # the benchmark's questions, read now rather than on a first request
            self._ready = True

    @cached_property
    def _known(self) -> dict[str, Question]:
        """The benchmark's questions by (whitespace-normalised) text; test first, then validation."""
        known: dict[str, Question] = {}
        for q in [*self.run.test, *self.run.validation]:
            known.setdefault(normal_text(q.question), q)
        return known

    def question(self, item: str | Question) -> Question:
        """`item` as a Question: a benchmark question when its text is one, else a new one."""
        if isinstance(item, Question):
            return item
        return self._known.get(normal_text(item)) or question_from_text(item)

    def answer(
        self,
        questions: str | Question | Sequence[str | Question],
        *,
        seed: int | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        budget: float | None = None,
    ) -> list[Answer]:
        """Answer questions (texts or `Question`s) as one batch: each expert model loads once.
        `max_tokens` and `temperature` apply to the LLM aggregator (a vote has no generation);
        `budget`: USD each question's expert calls may cost (learned routers)."""
        items = [questions] if isinstance(questions, str | Question) else list(questions)
        seed = self.run.config.seed if seed is None else seed
        self.check_budget(budget)
        return self.answer_requests([Request(self.question(q), seed, max_tokens, temperature, budget) for q in items])

    def check_budget(self, budget: float | None) -> None:
        """A per-request budget: only a learned router honours one, and it must admit the
        cheapest model's call (ConfigError, before any generation)."""
        if budget is None:
            return
        if self.method == "symbolic_moe":
            raise ConfigError(f"budget: method '{self.method}' cannot keep to a budget (a learned router can)")
        if not self._ready:
            self.prepare()
        if isinstance(self._costs, ConfigError):
            raise ConfigError(f"budget: {self._costs}")
        self._costs.check_budget(budget, "budget")

    def chat(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> Answer:
        """Answer the last user message of an OpenAI-style message list."""
        return self.answer(last_user_message(messages), **options)[0]

    def answer_requests(self, requests: Sequence[Request]) -> list[Answer]:
        """Answer requests that may each carry their own seed and settings, in one batch."""
        unique = list({r.key: r for r in requests}.values())
        if not unique:
            return []
        with self._lock:
            self.prepare()
            failures = self.run.scheduler.failures
            before = set(failures)
            try:
                answers = self._answer(unique)
            finally:
                # A run isolates a failing model for the rest of the run; a mixture answering
                # request after request must not: what failed fails this batch (the server then
                # answers its halves apart) and is tried again with the next one.
                failed = {m: failures.pop(m) for m in list(failures) if m not in before}
            if failed:
                raise EngineError("; ".join(f"model '{m}' failed: {f.error}" for m, f in failed.items()))
        by_key = {r.key: a for r, a in zip(unique, answers, strict=True)}
        return [by_key[r.key] for r in requests]

    # -- the steps ----------------------------------------------------------------------------

    def _skills(self, questions: list[Question]) -> tuple[dict[str, list[str]], dict[str, list[Completion]]]:
        """Each question's skills mapped onto the profiles, and its keyword generations."""
        cfg = self.run.config.keywords
        used: dict[str, list[Completion]] = {}
        if cfg.skills_from_field:
            kept = keywords.skills_from_field(questions, cfg.skills_from_field)
        elif cfg.source == "embedding":
            run = self.run
            kept = keywords.skills_from_neighbours(
                questions, run.validation, cfg.embedding_field, run.embedder, cfg.neighbours
            )
        else:
            rows = self.run.annotate(questions, used)
            kept = {
                qid: keywords.filter_keywords({qid: row["samples"]}, cfg.filter, cfg.min_count)[qid]
                for qid, row in rows.items()
            }
        return self.run.map_to_profiles(kept), used

    def _answer(self, requests: list[Request]) -> list[Answer]:
        run, cfg = self.run, self.run.config
        questions = [r.question for r in requests]
        mapped, keyword_generations = self._skills(list({q.id: q for q in questions}.values()))
        if self.method in ("router_cascade", "router_frugal"):
            return self._cascade(requests, mapped, keyword_generations)
        if self.method != "symbolic_moe":
            plan = self._routed_plan(requests, mapped)
            aggregation = "llm" if self.method == "router_vote" and cfg.aggregator.method == "llm" else "weighted"
            return self._answers(requests, mapped, keyword_generations, plan, aggregation, discussion=False)
        plan = run.recruit(
            [q.id for q in questions],
            [mapped[q.id] for q in questions],
            cfg.seed,
            rng=[question_rng(r.seed, q.id) for r, q in zip(requests, questions, strict=True)],
            trim_share=0.0,  # the 5% rule is a statistic over a whole test set, not one question
        )
        answers = self._answers(
            requests, mapped, keyword_generations, plan, cfg.aggregator.method, cfg.aggregator.discussion
        )
        for answer, row in zip(answers, plan.probabilities, strict=True):
            answer.recruitment = {m: float(p) for m, p in zip(plan.models, row, strict=True)}
        return answers

    def _probabilities(self, questions: list[Question], mapped: dict[str, list[str]]) -> Any:
        """Each pool model's predicted correctness on `questions` (the fitted router, the skills
        the keyword step gave them)."""
        embeddings = router_fit.question_embedder(self.run).embed([q.question for q in questions])
        signals = Signals(np.asarray(embeddings, dtype=np.float64), groups_of(questions, mapped))
        return router_fit.fitted(self.run).predict(signals)

    def _routed_plan(self, requests: list[Request], mapped: dict[str, list[str]]) -> Recruitment:
        """The k (1 for router_single) most likely correct models (cost-aware: by p - cost_weight
        x cost, within each request's budget); their log-odds vote weights stand where a
        recruitment keeps its probabilities, so a weighted vote counts them."""
        k = 1 if self.method == "router_single" else self.run.config.recruit.k
        questions = [r.question for r in requests]
        probabilities = self._probabilities(questions, mapped)
        order = plan_order(self.run, self.method, probabilities, questions, [r.budget for r in requests])
        return routed_plan(self.run, questions, probabilities, k, order)

    def _cascade(
        self, requests: list[Request], mapped: dict[str, list[str]], keyword_generations: dict[str, list[Completion]]
    ) -> list[Answer]:
        """router_cascade (best-first) or router_frugal (cheapest first), within each budget."""
        questions, cfg = [r.question for r in requests], self.run.config.router
        probabilities = self._probabilities(questions, mapped)
        order = plan_order(self.run, self.method, probabilities, questions, [r.budget for r in requests])
        frugal = frugal_rule(self.run, self.method)
        own = self.method == "router_frugal"
        margin, k_max = (cfg.frugal_margin, cfg.frugal_k_max) if own else (cfg.margin, cfg.k_max)
        seeds = [r.seed for r in requests]
        result = cascade_experts(self.run, questions, probabilities, margin, k_max, seeds, order=order, frugal=frugal)
        models = self.run.experts
        synthesis = Synthesis(
            [answer_as_text(a, q) for a, q in zip(result.answers, questions, strict=True)],
            [[c.text for c in row] for row in result.completions],
            "confidence-weighted cascade",
            [{"experts": row} for row in result.completions],
        )
        plan_experts = [[models[m] for m in asked] for asked in result.asked]
        return self._build(requests, mapped, keyword_generations, plan_experts, synthesis)

    def _answers(
        self,
        requests: list[Request],
        mapped: dict[str, list[str]],
        keyword_generations: dict[str, list[Completion]],
        plan: Recruitment,
        aggregation: str,
        discussion: bool,
    ) -> list[Answer]:
        """The recruited experts answer, then aggregation (pipeline.synthesize)."""
        result = synthesize(
            self.run,
            [r.question for r in requests],
            plan,
            [r.seed for r in requests],
            aggregation,
            discussion,
            write=False,
            aggregator_settings=[r.aggregator_settings() for r in requests],
        )
        return self._build(requests, mapped, keyword_generations, plan.experts, result)

    def _build(
        self,
        requests: list[Request],
        mapped: dict[str, list[str]],
        keyword_generations: dict[str, list[Completion]],
        experts: list[list[str]],
        result: Synthesis,
    ) -> list[Answer]:
        questions = [r.question for r in requests]
        answers = []
        for i, (request, q) in enumerate(zip(requests, questions, strict=True)):
            steps = {"keywords": keyword_generations.get(q.id, []), **result.completions[i]}
            answers.append(
                Answer(
                    question=q,
                    text=result.finals[i],
                    answer=extract_answer(result.finals[i], q),
                    experts=experts[i],
                    skills=mapped[q.id],
                    expert_answers=[
                        ExpertAnswer(model=m, text=t, answer=extract_answer(t, q))
                        for m, t in zip(experts[i], result.texts[i], strict=True)
                    ],
                    aggregator=result.aggregator,
                    seed=request.seed,
                    budget=request.budget if request.budget is not None else self.run.config.router.budget,
                    usage=Usage.of(c for step in steps.values() for c in step),
                    steps={name: Usage.of(step) for name, step in steps.items() if step},
                )
            )
        return answers
