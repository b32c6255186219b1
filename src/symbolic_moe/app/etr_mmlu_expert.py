"""MMLU-Expert evaluation (ETR paper 3.3-3.6, Tables 2-4) with experts that run on a CPU: a paper
experiment (`smoe etr evaluate mmlu-expert`, benchmarks/bench_etr_eval.py) built on the ETR core.

Experts: SmolLM2-135M-Instruct with one domain instruction each, appended to the user turn (no
domain fine-tunes exist here: the synthetic data covers one domain of six). Appending rather than
a system prompt lets all six experts and the meta LLM (the same SmolLM2, no instruction) share the
question's KV cache: about 6x less compute on 2 shared CPU cores.

MMLU-Expert has only a test split, so each domain is cut (seeded) into a half that supplies query
sets and a held-out half that is evaluated.

Query sets: `domain` - expert i's queries are training-half questions of domain i (what the
paper's loss filter yields when experts are real domain fine-tunes); `loss` - the paper's
pipeline (eq. 3) with reference response "The answer is (X)." for the gold X.
Answers: each routed expert's letter after "The answer is (" (scoring.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..etr.data import query_messages, read_questions, split_by_group, take_per_group
from ..etr.extend import MODES, diagnostics, extend_head
from ..etr.plugins import ExpertHead
from ..etr.query_sets import QuerySets, downsample, loss_based, response_losses
from ..etr.routing import route_states
from ..etr.scoring import AnswerCache, meta_prompting_choice
from ..etr.train import TrainConfig, train_head
from ..etr.whitebox import HiddenCache, MetaLM
from ..inference.recruit import recruit
from ..types import Question

DOMAINS = {
    "astronomy": "astronomy",
    "electrical_engineering": "electrical engineering",
    "human_sexuality": "human sexuality",
    "international_law": "international law",
    "prehistory": "prehistory",
    "security_studies": "security studies",
}


def expert_suffix(domain: str) -> str:
    label = DOMAINS[domain]
    return f"\n\nAnswer as an expert in {label}, accurately and precisely."


def routing_accuracy(chosen: list[str], questions: list[Question]) -> float:
    return float(np.mean([c == q.field("domain") for c, q in zip(chosen, questions, strict=True)]))


def mmlu_expert(
    data_dir: Path,
    out_dir: Path,
    train_per_domain: int | None = 50,
    eval_per_domain: int | None = 30,
    loss_per_domain: int = 0,
    tau: float = 0.0,
    profile_per_domain: int = 10,
    seed: int = 0,
    config: TrainConfig | None = None,
    meta_ref: str = "embedded:smollm2",
    threads: int = 2,
    routing_only: bool = False,
    dynamic_splits: int = 1,
) -> dict[str, Any]:
    """`routing_only`: ETR heads and routing accuracy only (no expert answers, no prompt baselines:
    hidden states are all it needs). `dynamic_splits`: ETR-Dynamic over this many seeded draws of
    the 4 + 2 expert groups (the first is the one reported as etr_dynamic_<mode>)."""
    config = config or TrainConfig(seed=seed)
    questions = read_questions(data_dir / "mmlu_expert" / "test.jsonl")
    train_all, held_all = split_by_group(questions, "domain", seed)
    train = take_per_group(train_all, "domain", train_per_domain)
    held = take_per_group(held_all, "domain", eval_per_domain)
    names = list(DOMAINS)
    lm, cache = MetaLM(meta_ref, n_threads=threads), HiddenCache(out_dir / "hidden")
    answers = AnswerCache(out_dir / "answers_mmlu_expert.json")
    states, mpe = _states_and_answers(lm, cache, answers, train, held, routing_only)
    eval_states = np.stack([states[q.id] for q in held])
    sets: dict[str, QuerySets] = {
        "domain": {d: downsample([q.id for q in train if q.field("domain") == d], 100, seed, d) for d in names}
    }
    if loss_per_domain:
        sets["loss"] = _loss_sets(lm, take_per_group(train, "domain", loss_per_domain), names, tau, seed)
    routes: dict[str, list[str]] = {}
    for kind, qs in sets.items():
        static = train_head(lm, states, qs, names, config)
        routes[f"etr_static_{kind}"] = [names[i] for i in route_states(eval_states, static)]
        if kind == "domain":
            static_domain = static
    # ETR-Dynamic (Table 4): 4 experts at time 0, 2 trained later and appended (etr/extend.py)
    dynamic = Dynamic(lm, states, sets["domain"], train, held, eval_states, config)
    splits, diagnosis = dynamic.run(dynamic_splits, seed, static_domain, routes)
    if routing_only:
        return _routing_result(routes, held, sets, splits, diagnosis, config, seed, lm.model_id)
    routes["random"] = [names[i] for i in np.random.default_rng(seed).integers(0, len(names), len(held))]
    routes["meta_prompting_e"] = mpe
    profile_set = take_per_group(train, "domain", profile_per_domain)
    routes["symbolic_moe_k1"] = _symbolic_moe_k1(lm, answers, profile_set, held, names, seed)
    routes["oracle_expert"] = [str(q.field("domain")) for q in held]
    result = _score(lm, answers, held, routes)
    answers.save()
    result.update(
        _description(lm, questions, train, held, sets, splits, diagnosis, config, seed, tau, profile_per_domain)
    )
    (out_dir / "mmlu_expert_routes.json").write_text(json.dumps({"ids": [q.id for q in held], **routes}))
    return result


def _states_and_answers(
    lm: MetaLM,
    cache: HiddenCache,
    answers: AnswerCache,
    train: list[Question],
    held: list[Question],
    routing_only: bool,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Hidden states of every question; unless `routing_only`, every expert's (and the meta
    model's) answer to each held-out question and the meta-prompting choice of expert."""
    names = list(DOMAINS)
    states = dict(zip([q.id for q in train], cache.last_states(lm, [query_messages(q) for q in train]), strict=True))
    descriptions = [f"an expert in {DOMAINS[d]}" for d in names]
    mpe: list[str] = []
    for q in held:  # one question at a time, so every prompt below reuses the question's KV cache
        states[q.id] = cache.last_states(lm, [query_messages(q)])[0]
        if routing_only:
            continue
        for expert in [None, *names]:
            answers.get(lm, q, query_messages(q), expert or "meta", None if expert is None else expert_suffix(expert))
        mpe.append(names[meta_prompting_choice(lm, q, descriptions)])
    answers.save()
    return states, mpe


@dataclass
class Dynamic:
    """ETR-Dynamic (Table 4): 4 experts trained at time 0, 2 trained later and appended."""

    lm: MetaLM
    states: dict[str, np.ndarray]
    domain_sets: QuerySets
    train: list[Question]
    held: list[Question]
    eval_states: np.ndarray
    config: TrainConfig

    def run(
        self, dynamic_splits: int, seed: int, static: ExpertHead, routes: dict[str, list[str]]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One row per seeded draw of the groups and the first draw's diagnostics (against the
        `static` head too); the first draw's routes join `routes`."""
        names, held = list(DOMAINS), self.held
        held_domains = [str(q.field("domain")) for q in held]
        anchors = [q.id for q in self.train]  # every training query the framework holds; the frozen head labels them
        splits, diagnosis = [], {}
        for split in range(dynamic_splits):
            rng = np.random.default_rng(seed + split)
            first = sorted(rng.choice(len(names), 4, replace=False).tolist())
            group0, group1 = [names[i] for i in first], [n for i, n in enumerate(names) if i not in first]
            head0 = train_head(self.lm, self.states, self.domain_sets, group0, self.config)
            row: dict[str, Any] = {"groups": [group0, group1]}
            for mode in MODES:
                grown = extend_head(
                    self.lm.head, self.states, self.domain_sets, group1, head0, self.config, mode, anchors
                )
                chosen = [grown.names[i] for i in route_states(self.eval_states, grown)]
                row[mode] = routing_accuracy(chosen, held)
                if split == 0:
                    routes[f"etr_dynamic_{mode}"] = chosen
                    diagnosis[mode] = diagnostics(self.eval_states, grown, group1, held_domains)
            if split == 0:
                diagnosis["static"] = diagnostics(self.eval_states, static, group1, held_domains)
            splits.append(row)
        return splits, diagnosis


def _description(
    lm: MetaLM,
    questions: list[Question],
    train: list[Question],
    held: list[Question],
    sets: dict[str, QuerySets],
    splits: list[dict[str, Any]],
    diagnosis: dict[str, Any],
    config: TrainConfig,
    seed: int,
    tau: float,
    profile_per_domain: int,
) -> dict[str, Any]:
    """What the result was computed with, beside the scores."""
    return {
        "setup": {
            "meta_model": lm.model_id,
            "experts": {d: expert_suffix(d) for d in DOMAINS},
            "seed": seed,
            "train_questions": len(train),
            "eval_questions": len(held),
            "train_config": config.to_json(),
            "query_set_sizes": {k: {d: len(v) for d, v in s.items()} for k, s in sets.items()},
            "dynamic_groups": splits[0]["groups"],
            "tau": tau,
            "symbolic_moe_profile_questions_per_domain": profile_per_domain,
        },
        "dynamic_diagnostics": diagnosis,
        "dynamic_splits": splits,
        "query_set_domain_purity": {k: {d: _purity(v, d, questions) for d, v in s.items()} for k, s in sets.items()},
    }


def _routing_result(
    routes: dict[str, list[str]],
    held: list[Question],
    sets: dict[str, QuerySets],
    splits: list[dict[str, Any]],
    diagnosis: dict[str, Any],
    config: TrainConfig,
    seed: int,
    meta_model: str,
) -> dict[str, Any]:
    methods = {}
    for name, chosen in routes.items():
        per_domain = {
            d: float(np.mean([c == d for c, q in zip(chosen, held, strict=True) if q.field("domain") == d]))
            for d in DOMAINS
        }
        methods[name] = {
            "routing_accuracy": routing_accuracy(chosen, held),
            "distribution": dict(Counter(chosen)),
            "per_domain_routing": per_domain,
        }
    means = {m: float(np.mean([s[m] for s in splits])) for m in MODES}
    return {
        "methods": methods,
        "setup": {
            "meta_model": meta_model,
            "seed": seed,
            "eval_questions": len(held),
            "train_config": config.to_json(),
            "query_set_sizes": {k: {d: len(v) for d, v in s.items()} for k, s in sets.items()},
            "routing_only": True,
        },
        "dynamic_splits": splits,
        "dynamic_mean_over_splits": means,
        "dynamic_diagnostics": diagnosis,
    }


def _purity(ids: list[str], domain: str, questions: list[Question]) -> float | None:
    by_id = {q.id: q.field("domain") for q in questions}
    return float(np.mean([by_id[i] == domain for i in ids])) if ids else None


def _loss_sets(lm: MetaLM, pool: list[Question], names: list[str], tau: float, seed: int) -> QuerySets:
    queries = {q.id: query_messages(q) for q in pool}
    responses = {q.id: f"The answer is ({q.answer})." for q in pool}
    meta = response_losses(lm, queries, responses)
    experts = {d: response_losses(lm, queries, responses, expert_suffix(d)) for d in names}
    return loss_based(meta, experts, tau, 100, seed)


def _symbolic_moe_k1(
    lm: MetaLM, answers: AnswerCache, profile_set: list[Question], held: list[Question], names: list[str], seed: int
) -> list[str]:
    """Symbolic-MoE recruitment, k = 1, with each question's skills = its domain keyword: profiles
    from the experts' answers on a small training subset (+1 right, -1 wrong)."""
    profiles: dict[str, dict[str, int]] = {d: Counter() for d in names}
    for q in profile_set:
        for d in names:
            ok = answers.get(lm, q, query_messages(q), d, expert_suffix(d)) == q.answer
            profiles[d][str(q.field("domain"))] += 1 if ok else -1
    plan = recruit(
        [q.id for q in held],
        [[str(q.field("domain"))] for q in held],
        {d: dict(p) for d, p in profiles.items()},
        names,
        k=1,
        seed=seed,
        trim_share=0.0,
    )
    return [e[0] for e in plan.experts]


def _score(lm: MetaLM, answers: AnswerCache, held: list[Question], routes: dict[str, list[str]]) -> dict[str, Any]:
    def answer(q: Question, expert: str | None) -> bool:
        prompt = None if expert is None else expert_suffix(expert)
        return answers.get(lm, q, query_messages(q), expert or "meta", prompt) == q.answer

    methods: dict[str, Any] = {}
    meta_ok = [answer(q, None) for q in held]
    methods["meta_llm"] = {"answer_accuracy": float(np.mean(meta_ok)), "routing_accuracy": None}
    for name, chosen in routes.items():
        ok = [answer(q, c) for q, c in zip(held, chosen, strict=True)]
        per_domain = {}
        for d in DOMAINS:
            idx = [i for i, q in enumerate(held) if q.field("domain") == d]
            per_domain[d] = {
                "routing_accuracy": float(np.mean([chosen[i] == d for i in idx])),
                "answer_accuracy": float(np.mean([ok[i] for i in idx])),
                "n": len(idx),
            }
        methods[name] = {
            "routing_accuracy": routing_accuracy(chosen, held),
            "answer_accuracy": float(np.mean(ok)),
            "distribution": dict(Counter(chosen)),
            "per_domain": per_domain,
        }
    return {"methods": methods}
