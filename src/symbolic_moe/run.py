"""A run: one config, its data, its store and its artifacts in one directory.

Each pipeline step is a method that writes a readable artifact into the run directory and reuses
it when it is present and was made from the same inputs (a fingerprint of the config parts and
question ids it depends on). Generations themselves always come through the store, so a step
recomputed after a config change repeats no generation it already made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig, resolve_data_dir
from .data import load_split
from .executors import make_executor
from .inference.experts import Seeds, run_experts
from .inference.keyword_mapping import KeywordEmbedder, map_keywords
from .inference.recruit import Recruitment, recruit
from .preprocess import aggregator_choice, keywords, profiles
from .scheduler import ModelPool, Scheduler
from .store import GenerationStore
from .types import Completion, Question


def _fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Run:
    """Shared state of every step and method: config, questions, models, scheduler, artifacts."""

    def __init__(self, config: RunConfig, data_dir: str | Path | None = None) -> None:
        self.config = config
        self.data_dir = resolve_data_dir(config, data_dir)
        self.out = config.out_dir()
        self.out.mkdir(parents=True, exist_ok=True)
        self.store = GenerationStore(config.store_path())
        self.pool = ModelPool(config.all_models, self.data_dir)
        self.scheduler = Scheduler(
            self.pool,
            self.store,
            mode=config.scheduler.mode,
            workers=config.scheduler.workers,
            progress=config.scheduler.progress,
            chunk_size=config.scheduler.chunk_size,
            prefetch=config.scheduler.prefetch,
            memory_budget_gb=config.scheduler.memory_budget_gb,
            split_groups=config.scheduler.split_groups,
            executor=make_executor(config, self.pool),
        )
        # Per split: questions left without skills and unusable keyword answers (results.json).
        self.keyword_fallbacks: dict[str, dict[str, int]] = {}

    # -- data -----------------------------------------------------------------------------

    @cached_property
    def validation(self) -> list[Question]:
        b = self.config.benchmark
        return load_split(b.path, b.validation, self.data_dir, b.validation_limit)

    @cached_property
    def test(self) -> list[Question]:
        b = self.config.benchmark
        questions = load_split(b.path, b.test, self.data_dir)[:: b.stride]
        return questions[: b.limit] if b.limit else questions

    def check(self) -> None:
        """Everything about the run's data and models that can be checked before the first
        generation, each failing with one clear line: both splits (a malformed test line fails now,
        not after the validation preprocessing) and every model's engine and model file
        (`identity()` builds each engine, which validates its options, and finds its GGUF or
        recording). Method names and options are the methods layer's (`methods.check_config`)."""
        self.config.check_references()
        _ = self.validation, self.test
        self.scheduler.identities()
        check = getattr(self.scheduler.executor, "check", None)
        if check is not None:  # Ray: the cluster is reachable and holds every model's resources
            check(self.config.all_models)

    def split(self, name: str) -> list[Question]:
        return self.validation if name == "validation" else self.test

    @property
    def experts(self) -> list[str]:
        return list(self.config.pool)

    # -- artifacts ------------------------------------------------------------------------

    def artifact(self, name: str, depends_on: Any, compute: Callable[[], Any]) -> Any:
        """The JSON artifact `name`, recomputed only when what it depends on changed."""
        path = self.out / name
        fingerprint = _fingerprint(depends_on)
        if path.exists():
            stored = json.loads(path.read_text())
            if stored.get("fingerprint") == fingerprint:
                return stored["data"]
        failed_before = self.scheduler.failed_jobs
        data = compute()
        if self.scheduler.failed_jobs != failed_before:
            return data  # made with missing answers: not kept, so the next run fills them in
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "data": data}, indent=1, ensure_ascii=False))
        tmp.replace(path)
        return data

    def _ids(self, split: str) -> list[str]:
        return [q.id for q in self.split(split)]

    # -- preprocessing (paper 3.2) --------------------------------------------------------

    def keywords(self, split: str) -> dict[str, list[str]]:
        """Kept skills per question of `split` (SPEC 4.1): {question id: [keyword, ...]}."""
        cfg = self.config.keywords
        questions = self.split(split)
        if cfg.skills_from_field:
            return keywords.skills_from_field(questions, cfg.skills_from_field)
        if cfg.source == "embedding":
            labelled = self.validation
            return keywords.skills_from_neighbours(
                questions, labelled, cfg.embedding_field, self.embedder, cfg.neighbours
            )

        def compute() -> dict:
            return self.annotate(questions)

        depends = [cfg.model_dump(), self.config.spec(cfg.model).model_dump(), self._ids(split)]
        data = self.artifact(f"keywords_{split}.json", depends, compute)
        self.keyword_fallbacks[split] = {
            "questions": len(data),
            "without_skills": sum(1 for row in data.values() if not row["kept"]),
            "unusable_answers": sum(row.get("invalid", 0) for row in data.values()),
            "questions_with_unusable_answers": sum(1 for row in data.values() if row.get("invalid", 0)),
        }
        return {qid: row["kept"] for qid, row in data.items()}

    def annotate(
        self, questions: list[Question], completions: dict[str, list[Completion]] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Keyword samples and kept keywords of any questions: {qid: {"samples", "kept"}}
        (`completions` receives each question's keyword generations)."""
        cfg = self.config.keywords
        answered = keywords.annotate(questions, self.scheduler, cfg, completions)
        samples = answered.samples
        kept = keywords.filter_keywords(samples, cfg.filter, cfg.min_count)
        invalid = answered.invalid
        return {qid: {"samples": samples[qid], "kept": kept[qid], "invalid": invalid.get(qid, 0)} for qid in samples}

    def validation_outputs(self) -> dict[str, dict[str, str | None]]:
        """Every pool model's CoT answer to every validation question: {model: {qid: text}}."""
        depends = [{m: self.config.pool[m].model_dump() for m in self.experts}, self._ids("validation")]
        return self.artifact(
            "validation_outputs.json",
            depends,
            lambda: profiles.answer_all(self.validation, self.experts, self.scheduler, "profiles"),
        )

    def validation_correct(self) -> dict[str, dict[str, bool]]:
        return profiles.grade_all(self.validation, self.validation_outputs())

    def validation_accuracy(self) -> dict[str, float]:
        return profiles.accuracy(self.validation_correct())

    def ranked_models(self) -> list[str]:
        """Pool models by validation accuracy, best first (ties: config order)."""
        accuracy = self.validation_accuracy()
        return sorted(self.experts, key=lambda m: -accuracy[m])

    def profiles(self) -> dict[str, Any]:
        """{"accuracy": {model: acc}, "profiles": {model: {keyword: score}}} (SPEC 4.2)."""
        correct = self.validation_correct()
        kws = self.keywords("validation")

        def compute() -> dict:
            return {"accuracy": profiles.accuracy(correct), "profiles": profiles.build_profiles(kws, correct)}

        return self.artifact("profiles.json", [correct, kws], compute)

    def aggregator(self) -> str:
        """The task aggregator: fixed in the config, or the winner of the synthetic benchmark."""
        cfg = self.config.aggregator
        if cfg.model:
            return cfg.model
        return self.aggregator_benchmark()["chosen"]

    def aggregator_candidates(self) -> list[str]:
        cfg = self.config.aggregator
        if cfg.candidates is not None:
            return list(cfg.candidates)
        return [name for name, spec in self.config.all_models.items() if spec.engine != "replay"]

    def aggregator_benchmark(self) -> dict[str, Any]:
        """SPEC 4.3: usable questions, each candidate's accuracy, the chosen aggregator."""
        outputs, correct = self.validation_outputs(), self.validation_correct()
        candidates = self.aggregator_candidates()
        accuracy = self.profiles()["accuracy"]

        def compute() -> dict:
            items = aggregator_choice.build_benchmark(self.validation, outputs, correct, self.config.seed)
            if not candidates:
                raise ValueError("aggregator: no candidate with an LLM engine; set aggregator.candidates")
            scores = aggregator_choice.score_candidates(items, self.validation, candidates, self.scheduler)
            return {
                "usable_questions": len(items),
                "validation_questions": len(self.validation),
                "scores": scores,
                "chosen": aggregator_choice.pick(scores, accuracy),
                "items": aggregator_choice.items_to_json(items),
            }

        depends = [candidates, {m: self.config.spec(m).model_dump() for m in candidates}, correct, self.config.seed]
        return self.artifact("aggregator.json", depends, compute)

    # -- inference (paper 3.3) ------------------------------------------------------------

    def mapped_keywords(self) -> dict[str, list[str]]:
        """Test keywords mapped onto the profile vocabulary (SPEC 5.1)."""
        vocabulary = sorted({k for p in self.profiles()["profiles"].values() for k in p})
        test_keywords = self.keywords("test")

        return self.artifact(
            "keywords_test_mapped.json", [vocabulary, test_keywords], lambda: self.map_to_profiles(test_keywords)
        )

    @cached_property
    def embedder(self) -> KeywordEmbedder:
        return KeywordEmbedder(self.config.recruit.embedding_model, self.out / "embeddings.npz")

    def map_to_profiles(self, question_keywords: dict[str, list[str]]) -> dict[str, list[str]]:
        """Replace each keyword by its nearest profile keyword (Sentence-BERT cosine)."""
        vocabulary = sorted({k for p in self.profiles()["profiles"].values() for k in p})
        return map_keywords(question_keywords, vocabulary, self.embedder)

    def recruitment(self, seed: int | None = None, **overrides: Any) -> Recruitment:
        """The recruitment plan for the test split (SPEC 5.2-5.4); `overrides` change
        fields of the recruit config (e.g. weighting) for ablations."""
        seed = self.config.seed if seed is None else seed
        mapped = self.mapped_keywords()
        plan = self.recruit(self._ids("test"), [mapped[q.id] for q in self.test], seed, **overrides)
        suffix = "" if not overrides else "_" + "_".join(f"{k}-{v}" for k, v in sorted(overrides.items()))
        path = self.out / f"recruitment_seed{seed}{suffix}.json"
        path.write_text(json.dumps(plan.to_json(), indent=1))
        return plan

    def recruit(
        self,
        question_ids: list[str],
        mapped: list[list[str]],
        seed: int,
        rng: Sequence[np.random.Generator] | None = None,
        **overrides: Any,
    ) -> Recruitment:
        """Recruit experts for any questions from their mapped keywords, with the config's recruit
        settings (`overrides` replace some); `rng`: one generator per question (serving)."""
        cfg = self.config.recruit.model_copy(update=overrides)
        return recruit(
            question_ids,
            mapped,
            self.profiles()["profiles"],
            self.experts,
            k=cfg.k,
            weighting=cfg.weighting,
            temperature=cfg.temperature,
            trim_share=cfg.trim_share,
            seed=seed,
            rng=rng,
        )

    def expert_outputs(
        self,
        plan: Recruitment,
        seed: Seeds,
        questions: list[Question] | None = None,
        write: bool = True,
        label: str = "experts",
    ) -> list[list[Completion]]:
        """The recruited experts' answers (batched per model), written as JSONL for the test split
        (`seed`: one for all questions, or one per question when serving; `label`: the scheduler's)."""
        questions = self.test if questions is None else questions
        outputs = run_experts(questions, plan.experts, self.scheduler, seed, label)
        if not write:
            return outputs
        with (self.out / f"expert_outputs_seed{seed}.jsonl").open("w") as f:
            for q, experts, row in zip(questions, plan.experts, outputs, strict=True):
                record = {"id": q.id, "experts": experts, "outputs": [c.text for c in row]}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        return outputs
