"""`smoe report`: one self-contained HTML file (inline CSS, figures as base64 PNG; no script, no
link, nothing fetched) from a run's or a compare's outputs, or from an ETR evaluation.

Everything is read, checked and drawn before the file is written, and it is written through a
temporary file and a rename: a bad input leaves no file, and a reader never sees half a report.
"""

from __future__ import annotations

import base64
import json
import os
from html import escape
from pathlib import Path
from typing import Any

from . import figures
from .load import EtrReport, RunReport, load
from .results import interval

TOP_SKILLS = 30  # profile heatmap columns: more are unreadable; the caption says how many exist

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 0.9em; } code, pre { font-size: 0.85em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
"""


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    def cell(tag: str, i: int, value: Any) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _mean(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _results_table(report: RunReport) -> str:
    compare = report.compare or {}
    header = ["method", "accuracy %", "95% interval", "std over seeds", "n", "seeds", "calls/q", "tokens/q"]
    header += ["loads/seed", "wall s/seed"]
    if compare:
        header = ["category", "label", "models"] + header
    rows = []
    for name, m in report.methods.items():
        wall = _mean(m.wall_seconds_per_seed)
        row = [
            name,
            f"{100 * m.accuracy:.2f}",
            interval(m.ci95),
            f"{100 * m.std:.2f}",
            m.n,
            ",".join(map(str, m.seeds)),
            f"{m.calls_per_question:.2f}",
            f"{m.tokens_per_question:.0f}",
            f"{_mean(m.loads_per_seed) or 0:.1f}",
            "-" if wall is None else f"{wall:.1f}",
        ]
        if compare:
            c = compare.get(name)
            row = [c.category, c.label, c.models, *row] if c else ["", "", "", *row]
        rows.append(row)
    return _table(header, rows, left=4 if compare else 1)


def _provenance(results: dict[str, Any]) -> str:
    inputs = results.get("inputs", {})
    files = [[f"benchmark {split}", f["path"], f["sha256"]] for split, f in inputs.get("benchmark", {}).items()]
    files += [[f"replay {model}", f["path"], f["sha256"]] for model, f in inputs.get("replay", {}).items()]
    artifacts = [[name, digest] for name, digest in results.get("artifacts", {}).items()]
    config = json.dumps(results.get("effective_config"), indent=1)
    return (
        "<h2>Provenance</h2>"
        + _table(
            ["field", "value"],
            [
                ["symbolic-moe version", results.get("symbolic_moe_version")],
                ["created (UTC)", results.get("created")],
                ["run id", results.get("run_id")],
                ["data dir", results.get("data_dir")],
                ["bootstrap", json.dumps(results.get("bootstrap"))],
            ],
            left=2,
        )
        + "<p>Input files</p>"
        + _table(["input", "path", "sha256"], files, left=3)
        + "<p>Run-directory artifacts the results were computed with</p>"
        + _table(["file", "sha256"], artifacts, left=2)
        + f"<details><summary>Effective config (after --set)</summary><pre>{escape(config)}</pre></details>"
    )


def _profiles_section(report: RunReport) -> str:
    """The model x skill heatmap of the profiles."""
    parts = ["<h2>Model profiles</h2>"]
    n_skills = len({k for p in (report.profiles or {}).get("profiles", {}).values() for k in p})
    if report.profiles and n_skills:
        parts.append(
            _figure(
                figures.profile_heatmap(report.profiles["profiles"], report.profiles["accuracy"], TOP_SKILLS),
                "model by skill profile heatmap",
                f"Profile score per model and skill (+1 per right, -1 per wrong validation answer); the "
                f"{min(TOP_SKILLS, n_skills)} of {n_skills} skills with the largest total |score|. "
                "Rows: validation accuracy in brackets.",
            )
        )
    else:
        parts.append(_note(report.notes.get("profiles.json", "the profiles have no skill: no keyword was kept")))
    return "".join(parts)


def _categories_section(report: RunReport) -> str:
    """Accuracy per category and method."""
    parts = ["<h2>Accuracy per category</h2>"]
    if report.category_accuracy:
        acc = {m: {c: a for c, (a, _) in cats.items()} for m, cats in report.category_accuracy.items()}
        sizes = next(iter(report.category_accuracy.values()))
        parts.append(
            _figure(
                figures.method_by_group(acc, "accuracy %"),
                "accuracy per category and method",
                "Accuracy % per category, averaged over seeds. Questions per category: "
                + ", ".join(f"{c} {n}" for c, (_, n) in sizes.items())
                + ".",
            )
        )
    else:
        parts.append(_note(report.notes["categories"]))
    return "".join(parts)


def _routing_section(report: RunReport) -> str:
    """ETR's routing accuracy per category."""
    parts = ["<h2>ETR routing accuracy per category</h2>"]
    if report.routing:
        routing = {m: {c: a for c, (a, _) in cats.items()} for m, cats in report.routing.items()}
        parts.append(
            _figure(
                figures.method_by_group(routing, "routing accuracy %"),
                "ETR routing accuracy per category",
                "Share of questions ETR hands to a pool model that answers them right, among the questions "
                "some pool model answers right (from `oracle`, same seed).",
            )
        )
    else:
        parts.append(_note(report.notes["routing"]))
    return "".join(parts)


def run_html(report: RunReport) -> str:
    r = report.results
    parts = [
        f"<h1>{escape(str(r['config']))} on {escape(str(r['benchmark']))}</h1>",
        _note(
            f"{report.source}: {'comparison' if report.compare else 'run'} of {len(report.methods)} method(s); "
            f"loads {r['loads']}, wall {r['wall_seconds']:.1f} s, {r['tokens']['prompt']} prompt + "
            f"{r['tokens']['completion']} completion tokens, {r['tokens']['generated_requests']} requests "
            f"generated, {r['tokens']['reused_requests']} reused from the store."
        ),
        "<h2>Results</h2>",
        _results_table(report),
        _note(
            "95% interval: percentile bootstrap over questions (each question's correctness averaged over "
            f"seeds; {r['bootstrap']['resamples']} resamples, seed {r['bootstrap']['seed']}). Calls and tokens "
            "count every call a method makes, generated now or reused from the store."
        ),
        "<h2>Accuracy against cost</h2>",
        _figure(
            figures.accuracy_vs_calls(report.methods),
            "accuracy against calls per question",
            "Accuracy (95% interval) against LLM calls per question, every method.",
        ),
        "<h2>Expert selection counts (paper Fig. 4)</h2>",
    ]
    parts += [
        _figure(figures.selection_counts(s), f"selection counts, {s.title}", f"Recruitment plan of {s.title}.")
        for s in report.selections
    ] or [_note(report.notes["selections"])]
    parts += [_profiles_section(report), _categories_section(report), _routing_section(report)]
    parts.append(_provenance(r))
    return _page(f"symbolic-moe report: {r['config']}", "".join(parts))


def etr_html(report: EtrReport) -> str:
    methods = report.results["methods"]
    rows = []
    for name, m in methods.items():
        accuracy = m.get("answer_accuracy", m.get("accuracy"))
        routing = m.get("routing_accuracy")
        rows.append(
            [
                name,
                "-" if accuracy is None else f"{100 * accuracy:.1f}",
                "-" if routing is None else f"{100 * routing:.1f}",
                ", ".join(f"{e} {n}" for e, n in m.get("distribution", {}).items()),
            ]
        )
    parts = [
        f"<h1>Expert Token Routing evaluation: {escape(report.source.name)}</h1>",
        "<h2>Methods</h2>",
        _table(["method", "answer accuracy %", "routing accuracy %", "chosen experts"], rows),
        "<h2>Routing accuracy per domain</h2>",
    ]
    if report.per_domain:
        parts.append(
            _figure(
                figures.method_by_group(report.per_domain, "routing accuracy %"),
                "routing accuracy per domain and method",
                "Share of each domain's questions routed to that domain's expert.",
            )
        )
    else:
        parts.append(_note("this evaluation records no per-domain routing (its experts have no domains)"))
    setup = json.dumps(report.results.get("setup"), indent=1)
    parts.append(f"<h2>Setup</h2><pre>{escape(setup)}</pre>")
    return _page(f"ETR report: {report.source.name}", "".join(parts))


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def write_report(source: Path, out: Path | None = None, methods: list[str] | None = None) -> Path:
    """Build the report of `source` (run directory, results.json or ETR evaluation JSON) and write
    it to `out` (default: report.html beside the results). Returns the path written."""
    source = Path(source)
    report = load(source, methods)
    html = etr_html(report) if isinstance(report, EtrReport) else run_html(report)
    if out is None:
        base = source.parent if source.is_file() else source
        out = base / ("report.html" if isinstance(report, RunReport) else f"{source.stem}.html")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
