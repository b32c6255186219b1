"""Issue 18: the cost/quality frontier of the learned routers on three priced replay pools.

    .venv/bin/python benchmarks/bench_cost.py                       # routerbench, all29, small16
    .venv/bin/python benchmarks/bench_cost.py --pools routerbench

Per pool: every single model's (USD per question, accuracy) point, the zero router (the upper
convex hull of the single models' points) and, per router, a sweep of its knob: `router_single`
and `router_vote` over `router.cost_weight`, `router_cascade` over `router.margin`, `router_frugal`
over `router.frugal_margin` x `router.frugal_k_max` x `router.frugal_cost_weight` (its "cheaper"
order) and `router.frugal_margin` x `router.frugal_k_max` (its "likely" order); each router's
AIQ (symbolic_moe.frontier), the cost at which it first matches the best single model (as a share
of that model's cost), 95% bootstrap intervals over questions (symbolic_moe.stats) for accuracy and cost, and a paired
bootstrap against the best single model for the chosen defaults.

Validation only decides: the router is the config's, fitted on the validation split; the sweeps are
first replayed out-of-fold on validation (5 folds x 3 shuffles; `routing.select.Replay`, the same
`decide` / `cost` functions the methods call), and the defaults are chosen there:
- "match" rule (the config defaults of frugal_margin, frugal_k_max and cost_weight): the cheapest
  setting not significantly less accurate than the best single model on validation (paired
  bootstrap over questions, each question's correctness averaged over the fold shuffles: the 95%
  interval of the difference reaches 0); if none, the most accurate one;
- "beat" rule (the other named setting of frugal's knob): the most accurate setting costing at
  most the best single model's validation cost;
- "cascade" rule (router_frugal_cascade): the cheapest frugal setting at least as accurate as the
  config's own router_cascade (its margin and k_max) on validation; if none, the most accurate.
The test split is then scored once per setting (replayed from the stored test answers), and the
defaults are run for real through `smoe compare`'s code path (its dollars from the accounting).
Writes benchmarks/results/cost_<pool>.json and cost_frontier.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import router_cv
from bench_common import RESULTS, ROOT, machine
from bench_cost_report import plot, table
from bench_routing_replay import run_methods

from symbolic_moe import frontier, router_fit
from symbolic_moe.config import load_config
from symbolic_moe.grading import answer_key
from symbolic_moe.preprocess import profiles
from symbolic_moe.routing.cost import Costs, expert_order, frugal_plan
from symbolic_moe.routing.decide import ranking, weights_for
from symbolic_moe.routing.select import Outcome, Replay, out_of_fold
from symbolic_moe.run import Run
from symbolic_moe.stats import bootstrap_ci, paired_bootstrap_diff

SKILLS = ["keywords.skills_from_field=category"]
POOLS = {
    "routerbench": "configs/replay-routerbench-arc.toml",
    "all29": "configs/replay-mmlu-pro.toml",
    "small16": "configs/replay-mmlu-pro-small16.toml",
}
LAMBDAS = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
CASCADE_MARGINS = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
FRUGAL_K = [2, 3, 4, 5]  # up to router_cascade's own k_max (5); 4 cut off RouterBench's cheaper matches
FRUGAL_LAMBDAS = [0.01, 0.03, 0.1, 0.3, 1.0]
FRUGAL_MARGINS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
FOLD_SEEDS = [0, 1, 2]
METHODS = ["task_best", "top_k_vote", "router_vote", "router_cascade", "router_frugal"]


def split_replay(run: Run, split: str, questions: list) -> Replay:
    """Every pool model's stored answer to every question of a split, and each call's USD."""
    generations = profiles.completions_all(questions, run.experts, run.scheduler, f"bench cost ({split})")
    answers = [[answer_key(generations[m][q.id].text, q) for m in run.experts] for q in questions]
    costs = router_fit.call_costs(run, split, questions)
    return Replay(answers, [q.answer for q in questions], [q.n_options for q in questions], costs)


def settings(run: Run) -> list[tuple[str, dict[str, Any]]]:
    cfg = run.config
    rows = [("router_single", {"cost_weight": lam}) for lam in LAMBDAS]
    rows += [("router_vote", {"cost_weight": lam, "k": cfg.recruit.k}) for lam in LAMBDAS]
    rows += [("router_cascade", {"margin": m, "k_max": cfg.router.k_max}) for m in CASCADE_MARGINS]
    rows += [
        ("router_frugal", {"frugal_order": "cheaper", "frugal_margin": m, "frugal_k_max": k, "frugal_cost_weight": lam})
        for lam in FRUGAL_LAMBDAS
        for k in FRUGAL_K
        for m in FRUGAL_MARGINS
    ]
    # the "likely" order ignores frugal_cost_weight
    rows += [
        ("router_frugal", {"frugal_order": "likely", "frugal_margin": m, "frugal_k_max": k})
        for k in FRUGAL_K
        for m in FRUGAL_MARGINS
    ]
    return rows


def play(replay: Replay, p: np.ndarray, costs: Costs, family: str, s: dict[str, Any]) -> Outcome:
    """One setting of one router on one split, replayed (the methods' own decision functions)."""
    if family in ("router_single", "router_vote"):
        k = 1 if family == "router_single" else int(s["k"])
        return replay.voted(p, expert_order(p, costs, s["cost_weight"], None, k))
    if family == "router_cascade":
        return replay.cascaded(p, ranking(p), s["margin"], int(s["k_max"]))
    likely, k = s["frugal_order"] == "likely", int(s["frugal_k_max"])
    order = frugal_plan(p, weights_for(p, replay.options), costs, None, k, s.get("frugal_cost_weight", 0.0), likely)
    return replay.cascaded(p, order, s["frugal_margin"], k, frugal=not likely)  # as methods.router.frugal_rule


def singles(replay: Replay, models: list[str]) -> list[dict[str, Any]]:
    outcomes = [single_outcome(replay, j) for j in range(len(models))]
    return [
        {"model": m, "accuracy": o.accuracy, "cost": o.cost, "j": j}
        for j, (m, o) in enumerate(zip(models, outcomes, strict=True))
    ]


def choose(rows: list[dict[str, Any]], target: dict[str, Any], family: str, rule: str) -> dict[str, Any]:
    """The validation rule's setting of one family (module docstring); `target`: the best single
    model's validation row, or for the "cascade" rule the config's router_cascade's."""
    mine = [r for r in rows if r["family"] == family]
    if rule == "cascade":
        level = [r for r in mine if r["accuracy"] >= target["accuracy"] - 1e-9]
        return min(level, key=lambda r: (r["cost"], -r["accuracy"])) if level else choose(rows, target, family, "beat")
    if rule == "beat":
        within = [r for r in mine if r["cost"] <= target["cost"]] or mine
        return max(within, key=lambda r: (round(r["accuracy"], 9), -r["cost"]))
    matching = [r for r in mine if r["vs_best"]["high"] >= 0]
    if matching:
        return min(matching, key=lambda r: (r["cost"], -r["accuracy"]))
    return max(mine, key=lambda r: (round(r["accuracy"], 9), -r["cost"]))


def validation_sweep(run: Run, replay: Replay, costs: Costs, best: np.ndarray) -> list[dict[str, Any]]:
    """Every setting's out-of-fold validation accuracy and cost (mean over the fold shuffles), and
    its paired bootstrap against the best single model (`best`: its per-question correctness)."""
    signals, correct, _ = router_cv.validation_data(run)
    preds = [out_of_fold(lambda: router_fit.make_predictor(run), signals, correct, 5, s) for s in FOLD_SEEDS]
    rows = []
    for family, s in settings(run):
        done = [play(replay, p, costs, family, s) for p in preds]
        rows.append(
            {
                "family": family,
                "setting": s,
                "accuracy": float(np.mean([d.accuracy for d in done])),
                "cost": float(np.mean([d.cost for d in done])),
                "calls": float(np.mean([d.calls.mean() for d in done])),
                "vs_best": paired_bootstrap_diff(np.stack([d.correct for d in done]), best),
            }
        )
    return rows


def point(outcome: Outcome) -> dict[str, Any]:
    spent = outcome.spent
    idx = np.random.default_rng(0).integers(0, len(spent), size=(2000, len(spent)))
    means = spent[idx].mean(axis=1)
    return {
        "accuracy": outcome.accuracy,
        "accuracy_ci95": bootstrap_ci(outcome.correct),
        "cost": outcome.cost,
        "cost_ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
        "calls": float(outcome.calls.mean()),
    }


def bench_pool(pool: str, work: Path) -> dict[str, Any]:
    config, started = POOLS[pool], time.perf_counter()
    run = Run(load_config(ROOT / config, SKILLS + ["scheduler.progress=false"], out=work / "sweep"))
    val = split_replay(run, "validation", run.validation)
    assert val.costs is not None
    costs = Costs.fit(run.experts, val.costs)
    val_singles = singles(val, run.experts)
    best = max(val_singles, key=lambda r: (r["accuracy"], -r["cost"]))
    val_rows = validation_sweep(run, val, costs, single_outcome(val, best["j"]).correct)
    chosen = {f: choose(val_rows, best, f, "match") for f in ("router_single", "router_vote", "router_frugal")}
    chosen["router_frugal_beat"] = choose(val_rows, best, "router_frugal", "beat")
    chosen["router_cascade"] = choose(val_rows, best, "router_cascade", "match")
    own = {"margin": run.config.router.margin, "k_max": run.config.router.k_max}
    today = next(r for r in val_rows if r["family"] == "router_cascade" and r["setting"] == own)
    chosen["router_frugal_cascade"] = choose(val_rows, today, "router_frugal", "cascade")
    # -- test: scored once per setting ----------------------------------------------------------
    test = split_replay(run, "test", run.test)
    assert test.costs is not None
    p = router_fit.predict_scored(run)
    test_singles = singles(test, run.experts)
    best_test = test_singles[best["j"]]
    best_correct = single_outcome(test, best["j"]).correct
    rows = []
    for family, s in settings(run):
        outcome = play(test, p, costs, family, s)
        row = {"family": family, "setting": s, **point(outcome)}
        row["vs_best"] = paired_bootstrap_diff(outcome.correct, best_correct)
        rows.append(row)
    single_points = [(r["cost"], r["accuracy"]) for r in test_singles]
    low, high = min(c for c, _ in single_points), max(c for c, _ in single_points)
    families = {}
    for family in ("router_single", "router_vote", "router_cascade", "router_frugal"):
        pts = [(r["cost"], r["accuracy"]) for r in rows if r["family"] == family]
        match = frontier.first_match(pts, best_test["accuracy"])
        families[family] = {
            "aiq": frontier.aiq(pts, low, high),
            "hull": frontier.hull(pts),
            "first_match_cost_share": None if match is None else match[0] / best_test["cost"],
        }
    families["zero_router"] = {"aiq": frontier.aiq(single_points, low, high), "hull": frontier.hull(single_points)}
    measured = measure(config, pool, chosen, work)
    return {
        "config": config,
        "best_single_by_validation": best["model"],
        "validation": {"singles": val_singles, "sweep": val_rows, "chosen": chosen},
        "test": {
            "n": len(run.test),
            "singles": [{**r, **point(single_outcome(test, r["j"]))} for r in test_singles],
            "sweep": rows,
            "frontier": families,
            "cost_range": [low, high],
            "measured": measured,
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def single_outcome(replay: Replay, j: int) -> Outcome:
    """One pool model alone on every question."""
    return replay.outcome([[j] for _ in replay.gold], [row[j] for row in replay.answers])


def default_sets(chosen: dict[str, Any]) -> list[str]:
    frugal, vote = chosen["router_frugal"]["setting"], chosen["router_vote"]["setting"]
    return [*frugal_sets(frugal), f"router.cost_weight={vote['cost_weight']}"]


def frugal_sets(s: dict[str, Any]) -> list[str]:
    return [
        f"router.frugal_order={s['frugal_order']}",
        f"router.frugal_margin={s['frugal_margin']}",
        f"router.frugal_k_max={int(s['frugal_k_max'])}",
        *([f"router.frugal_cost_weight={s['frugal_cost_weight']}"] if "frugal_cost_weight" in s else []),
    ]


def measure(config: str, pool: str, chosen: dict[str, Any], work: Path) -> dict[str, Any]:
    """The chosen defaults run for real (`smoe compare`'s code path, seed 0): accuracy, calls and
    the dollars of the accounting, beside the replayed figures above."""
    results = run_methods(config, SKILLS + default_sets(chosen), work / "measured", METHODS, [0])
    keep = ("accuracy", "ci95", "calls_per_question", "cost_per_question")
    out = {m: {k: results[m].get(k) for k in keep} for m in METHODS}
    for rule in ("beat", "cascade"):
        knob = frugal_sets(chosen[f"router_frugal_{rule}"]["setting"])
        named = run_methods(config, SKILLS + knob, work / f"measured-{rule}", ["router_frugal"], [0])
        out[f"router_frugal ({rule} setting)"] = {k: named["router_frugal"].get(k) for k in keep}
    out["sets"] = default_sets(chosen)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pools", default="routerbench,all29,small16")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-cost")
    parser.add_argument("--measure-only", action="store_true", help="rerun only the real runs of the chosen defaults")
    args = parser.parse_args()
    for pool in args.pools.split(","):
        path = RESULTS / f"cost_{pool}.json"
        if args.measure_only:
            data = json.loads(path.read_text())
            data["test"]["measured"] = measure(POOLS[pool], pool, data["validation"]["chosen"], args.out / pool)
        else:
            data = {"machine": machine(), **bench_pool(pool, args.out / pool)}
        path.write_text(json.dumps(data, indent=1, default=str))
        print(f"wrote {path}")
    results = {
        p: json.loads((RESULTS / f"cost_{p}.json").read_text()) for p in POOLS if (RESULTS / f"cost_{p}.json").exists()
    }
    plot(results, RESULTS / "cost_frontier.png")
    for pool, data in results.items():
        print(table(pool, data))


if __name__ == "__main__":
    main()
