"""Read and check what a report is built from, before anything is drawn or written.

A run directory (`smoe run` / `smoe evaluate` / `smoe compare --out DIR`) gives results.json,
predictions.jsonl, and when present compare.json and profiles.json; an `smoe etr evaluate ...
--out FILE` JSON gives the ETR routing figures. Every problem is one `ReportError` naming the file
and what is wrong with it. Files results.json did not hash (or that changed since) are not used.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ...errors import SmoeError
from .provenance import sha256
from .results import FORMAT


class ReportError(SmoeError):
    pass


class MethodSummary(BaseModel):
    """The fields of one results.json method entry a report uses."""

    model_config = ConfigDict(extra="allow")

    accuracy: float
    std: float
    ci95: tuple[float, float]
    n: int
    seeds: list[int]
    calls_per_question: float
    tokens_per_question: float
    # USD; None: a call went to an unpriced model (or, when unset, a results.json from before prices)
    cost_per_question: float | None = None
    loads_per_seed: list[int]
    wall_seconds_per_seed: list[float | None]
    info: dict[str, dict[str, Any]]


class CompareRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    mean: float
    category: str
    label: str
    models: str


@dataclass
class Selection:
    """Expert selection counts of one recruitment plan (paper Fig. 4)."""

    title: str
    before: dict[str, int]
    after: dict[str, int]


@dataclass
class RunReport:
    source: Path
    results: dict[str, Any]
    methods: dict[str, MethodSummary]
    compare: dict[str, CompareRow] | None
    category_accuracy: dict[str, dict[str, tuple[float, int]]]  # method -> category -> (acc, n)
    selections: list[Selection]
    profiles: dict[str, Any] | None
    routing: dict[str, dict[str, tuple[float, int]]]  # ETR method -> category -> (routing acc, n)
    notes: dict[str, str] = field(default_factory=dict)  # section -> why it is empty


@dataclass
class EtrReport:
    source: Path
    results: dict[str, Any]
    per_domain: dict[str, dict[str, float]]  # method -> domain -> routing accuracy


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None


def _validated(model: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ReportError(f"{where}{'.' + loc if loc else ''}: {first['msg']}") from None


def load(path: Path, methods: list[str] | None = None) -> RunReport | EtrReport:
    """The report data of a run directory, a results.json, or an `smoe etr evaluate` JSON."""
    path = Path(path)
    if path.is_file() and path.suffix != ".json":
        raise ReportError(f"{path}: not a run directory, a results.json or an `smoe etr evaluate --out` JSON")
    if path.is_file() and path.name != "results.json":
        return load_etr(path, methods)
    run_dir = path.parent if path.is_file() else path
    if not run_dir.is_dir():
        raise ReportError(f"{path}: no such run directory")
    if not (run_dir / "results.json").is_file():
        raise ReportError(
            f"{run_dir}: no results.json (write one with `smoe run`, `smoe evaluate` or `smoe compare` --out {run_dir})"
        )
    return load_run(run_dir, methods)


def _check_format(data: Any, path: Path, command: str) -> None:
    found = data.get("format") if isinstance(data, dict) else None
    if found != FORMAT:
        written = "without a format field" if found is None else f"in format {found}"
        raise ReportError(
            f"{path}: written {written} by an older symbolic-moe, this one reads format {FORMAT}; "
            f"run `{command}` again to rewrite it (stored generations are reused)"
        )


def load_run(run_dir: Path, selected: list[str] | None = None) -> RunReport:
    results_path = run_dir / "results.json"
    results = _json(results_path)
    _check_format(results, results_path, "smoe run / smoe compare")
    raw_methods = results.get("methods") or {}
    if not raw_methods:
        raise ReportError(f"{results_path}: no methods in 'methods'")
    _unknown(selected, raw_methods)
    names = selected or list(raw_methods)
    methods = {n: _validated(MethodSummary, raw_methods[n], f"{results_path}: methods.{n}") for n in names}
    artifacts: dict[str, str] = results.get("artifacts", {})
    predictions = _predictions(run_dir, artifacts, set(names))
    report = RunReport(
        source=run_dir,
        results=results,
        methods=methods,
        compare=_compare(run_dir, results, names),
        category_accuracy=category_accuracy(predictions, names),
        selections=selections(methods),
        profiles=None,
        routing=etr_routing(predictions, names),
    )
    report.profiles = _artifact_data(run_dir, "profiles.json", artifacts, report.notes)
    if not report.selections:
        report.notes["selections"] = "no method of this run recruits experts (the Symbolic-MoE variants do)"
    if not report.category_accuracy:
        report.notes["categories"] = "the test questions have no category"
    if not report.routing:
        report.notes["routing"] = (
            "no ETR method with `oracle` beside it in this run (routing accuracy needs to know which pool "
            "models answer each question right); `smoe report` on an `smoe etr evaluate --out` file shows "
            "routing per domain"
        )
    return report


def _predictions(run_dir: Path, artifacts: dict[str, str], names: set[str]) -> list[dict[str, Any]]:
    path = run_dir / "predictions.jsonl"
    if not path.is_file():
        raise ReportError(f"{path}: file not found (results.json was written with it)")
    if artifacts.get(path.name) != sha256(path):
        raise ReportError(f"{path}: changed since results.json was written; run the command that wrote them again")
    rows = []
    with path.open() as f:
        for number, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReportError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
            if row.get("method") in names:
                rows.append(row)
    return rows


def _compare(run_dir: Path, results: dict[str, Any], names: list[str]) -> dict[str, CompareRow] | None:
    path = run_dir / "compare.json"
    if not path.is_file():
        return None
    data = _json(path)
    _check_format(data, path, "smoe compare")
    if data.get("run_id") != results.get("run_id"):
        raise ReportError(
            f"{path}: belongs to another results.json (a later command rewrote results.json); "
            "run `smoe compare` again, or delete compare.json to report on results.json alone"
        )
    rows = data.get("methods") or {}
    return {n: _validated(CompareRow, rows[n], f"{path}: methods.{n}") for n in names if n in rows}


def _artifact_data(run_dir: Path, name: str, artifacts: dict[str, str], notes: dict[str, str]) -> Any:
    """An artifact's data, when it is still the file results.json hashed; else a note says why not."""
    path = run_dir / name
    if name not in artifacts:
        notes[name] = f"{name} was not part of this run"
        return None
    if not path.is_file() or sha256(path) != artifacts[name]:
        notes[name] = f"{name} changed after results.json was written (another command rewrote it): not shown"
        return None
    return _json(path).get("data")


def category_accuracy(rows: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, tuple[float, int]]]:
    """method -> category -> (accuracy over its seeds, questions); empty without categories."""
    if not any(r.get("category") for r in rows):
        return {}
    hits: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        hits[r["method"]][r.get("category") or "(none)"].append(bool(r["correct"]))
    seeds = {n: len({r["seed"] for r in rows if r["method"] == n}) or 1 for n in names}
    return {
        n: {c: (sum(v) / len(v), len(v) // seeds[n]) for c, v in sorted(hits[n].items())} for n in names if n in hits
    }


def selections(methods: dict[str, MethodSummary]) -> list[Selection]:
    """One entry per distinct recruitment plan (methods sharing a plan are named together)."""
    plans: dict[str, tuple[str, dict[str, int], dict[str, int], list[str]]] = {}
    for name, m in methods.items():
        for seed, info in m.info.items():
            before = info.get("selection_counts_before_trimming")
            after = info.get("selection_counts_after_trimming")
            if before is None or after is None:
                continue
            key = json.dumps([seed, before, after], sort_keys=True)
            plans.setdefault(key, (seed, before, after, []))[3].append(name)
    return [Selection(f"seed {seed}: {', '.join(users)}", b, a) for seed, b, a, users in plans.values()]


def etr_routing(rows: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, tuple[float, int]]]:
    """Per category, how often ETR handed a question to a pool model that answers it right, among
    the questions some pool model answers right (`oracle`'s `right`, same seed)."""
    right = {(r["seed"], r["id"]): r.get("right") or [] for r in rows if r["method"] == "oracle"}
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for name in names:
        if not name.startswith("etr"):
            continue
        hits: dict[str, list[bool]] = defaultdict(list)
        for r in rows:
            good = right.get((r["seed"], r["id"]))
            if r["method"] == name and good and r.get("experts"):
                hits[r.get("category") or "all"].append(r["experts"][0] in good)
        if hits:
            out[name] = {c: (sum(v) / len(v), len(v)) for c, v in sorted(hits.items())}
    return out


def _unknown(selected: list[str] | None, known: Any) -> None:
    unknown = [m for m in selected or [] if m not in known]
    if unknown:
        raise ReportError(f"--methods: unknown method '{unknown[0]}' (this run has: {', '.join(known)})")


def load_etr(path: Path, selected: list[str] | None = None) -> EtrReport:
    """An `smoe etr evaluate ... --out FILE` result."""
    data = _json(path)
    methods = data.get("methods") if isinstance(data, dict) else None
    if not isinstance(methods, dict) or "setup" not in data:
        raise ReportError(
            f"{path}: neither a run directory nor an `smoe etr evaluate --out` result (no 'methods' and 'setup')"
        )
    _unknown(selected, methods)
    if selected:
        data = {**data, "methods": {m: methods[m] for m in selected}}
        methods = data["methods"]
    per_domain = {
        name: {d: v["routing_accuracy"] for d, v in m["per_domain"].items()}
        for name, m in methods.items()
        if isinstance(m, dict) and isinstance(m.get("per_domain"), dict)
    }
    return EtrReport(source=path, results=data, per_domain=per_domain)
