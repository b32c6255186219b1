"""`smoe`: the command line. Each pipeline step is a command; `smoe run` does them all.

Every command takes a run config (TOML), `--set dotted.key=value` overrides, `--out DIR` and
`--data-dir DIR`. Exit status: 0 complete; 1 a problem the user can fix (one `error:` line,
checked before the first generation where possible); 2 bad command-line usage; 3 partial (a
model failed for good: results.json lists it, the other models' results are complete, and
running again generates only what is missing); 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..config import load_config
from ..errors import ConfigError
from .cli_errors import console, friendly

EXIT_PARTIAL = 3  # results written, but a model failed for good (results.json "failed")

app = typer.Typer(
    help="Symbolic-MoE: per-question, skill-based routing over a pool of LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigArg = Annotated[Path, typer.Argument(help="run config (TOML), e.g. configs/embedded.toml")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config value: dotted.key=value")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="run directory (default: config's `out`)")]
DataOpt = Annotated[Path | None, typer.Option("--data-dir", help="data directory (default: $SMOE_DATA_DIR)")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="recruitment/generation seed")]


def open_run(config: Path, sets: list[str] | None, out: Path | None, data_dir: Path | None, methods=()):
    """The run of a config, checked (config, method options, `methods`, both splits, models) before
    any generation."""
    # CLI start-up: the methods and the run (numpy, engines' registry) load only when a command runs
    from ..methods import check_config
    from ..run import Run

    loaded = load_config(config, sets or [], out)
    check_config(loaded, str(config), methods)
    run = Run(loaded, data_dir)
    run.check()
    return run


def _table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*[str(x) for x in row])
    Console().print(table)


@app.command()
@friendly
def annotate(config: ConfigArg, set_: SetOpt = None, out: OutOpt = None, data_dir: DataOpt = None) -> None:
    """Infer the skills each validation and test question needs (keyword LLM, SPEC 4.1)."""
    run = open_run(config, set_, out, data_dir)
    for split in ("validation", "test"):
        kws = run.keywords(split)
        empty = sum(1 for k in kws.values() if not k)
        unusable = run.keyword_fallbacks.get(split, {}).get("unusable_answers", 0)
        console.print(
            f"{split}: {len(kws)} questions, {len({k for v in kws.values() for k in v})} "
            f"distinct keywords, {empty} questions without a kept keyword"
            + (f", {unusable} unusable structured answers" if unusable else "")
        )


@app.command()
@friendly
def profile(config: ConfigArg, set_: SetOpt = None, out: OutOpt = None, data_dir: DataOpt = None) -> None:
    """Build each pool model's skill profile on the validation split (SPEC 4.2)."""
    run = open_run(config, set_, out, data_dir)
    data = run.profiles()
    rows = [
        [m, f"{100 * a:.1f}", len(data["profiles"][m]), sum(data["profiles"][m].values())]
        for m, a in sorted(data["accuracy"].items(), key=lambda x: -x[1])
    ]
    _table("validation profiles", ["model", "accuracy %", "keywords", "total score"], rows)


@app.command("choose-aggregator")
@friendly
def choose_aggregator(config: ConfigArg, set_: SetOpt = None, out: OutOpt = None, data_dir: DataOpt = None) -> None:
    """Pick the task aggregator with the synthetic aggregation benchmark (SPEC 4.3)."""
    run = open_run(config, set_, out, data_dir)
    data = run.aggregator_benchmark()
    rows = [[m, f"{100 * s:.1f}"] for m, s in sorted(data["scores"].items(), key=lambda x: -x[1])]
    _table(
        f"aggregator benchmark: {data['usable_questions']} of {data['validation_questions']} "
        "validation questions usable",
        ["candidate", "accuracy %"],
        rows,
    )
    console.print(f"chosen aggregator: {data['chosen']}")


@app.command()
@friendly
def recruit(
    config: ConfigArg, set_: SetOpt = None, out: OutOpt = None, data_dir: DataOpt = None, seed: SeedOpt = None
) -> None:
    """Recruit k experts per test question (SPEC 5.1-5.4) and write the plan."""
    run = open_run(config, set_, out, data_dir)
    plan = run.recruitment(seed)
    rows = [[m, plan.counts_before[m], plan.counts_after[m]] for m in plan.models]
    _table("selections per model", ["model", "before trimming", "after trimming"], rows)


@app.command()
@friendly
def infer(
    config: ConfigArg, set_: SetOpt = None, out: OutOpt = None, data_dir: DataOpt = None, seed: SeedOpt = None
) -> None:
    """Run the recruited experts, batched per model: each model loads once (SPEC 5.5)."""
    run = open_run(config, set_, out, data_dir)
    seed = run.config.seed if seed is None else seed
    run.expert_outputs(run.recruitment(seed), seed)
    report = run.scheduler.report()
    console.print(json.dumps(report["totals"]))
    exit_if_partial({"status": "partial" if report["failed"] else "complete"})


@app.command()
@friendly
def aggregate(
    config: ConfigArg, set_: SetOpt = None, out: OutOpt = None, data_dir: DataOpt = None, seed: SeedOpt = None
) -> None:
    """Aggregate the experts' answers into final answers (SPEC 5.6)."""
    _evaluate(config, set_, out, data_dir, ["symbolic_moe"], seed)


@app.command()
@friendly
def evaluate(
    config: ConfigArg,
    set_: SetOpt = None,
    out: OutOpt = None,
    data_dir: DataOpt = None,
    methods: Annotated[str | None, typer.Option(help="comma-separated methods")] = None,
    seeds: Annotated[str | None, typer.Option(help="comma-separated seeds")] = None,
) -> None:
    """Score methods on the test split; write results.json and predictions.jsonl."""
    _evaluate(
        config,
        set_,
        out,
        data_dir,
        [m.strip() for m in methods.split(",") if m.strip()] if methods else None,
        None,
        parse_seeds(seeds) if seeds else None,
    )


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0,1,2`; anything else is one error line naming the option."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got '{text}'") from None


@app.command("run")
@friendly
def run_all(
    config: ConfigArg, set_: SetOpt = None, out: OutOpt = None, data_dir: DataOpt = None, seed: SeedOpt = None
) -> None:
    """Every step in order: annotate, profile, choose aggregator, recruit, infer, aggregate, evaluate."""
    _evaluate(config, set_, out, data_dir, None, seed)


def _evaluate(config, sets, out, data_dir, methods, seed, seeds=None) -> None:
    # CLI start-up: loaded when a command runs, not for `smoe --help`
    from ..methods import check_config

    # CLI start-up: the report loads matplotlib
    from .report import evaluate as evaluate_methods
    from .report import print_summary

    # CLI start-up: the report loads matplotlib
    from .report.html import write_report

    run = open_run(config, sets, out, data_dir)
    seeds = seeds or [run.config.seed if seed is None else seed]
    methods = methods or run.config.methods
    check_config(run.config, str(config), methods)  # the config's methods, now that they are known
    summary = evaluate_methods(run, methods, seeds)
    print_summary(summary)
    console.print(f"wrote {run.out / 'results.json'} and {write_report(run.out)}")
    exit_if_partial(summary)


def exit_if_partial(summary: dict) -> None:
    if summary.get("status") == "partial":
        raise typer.Exit(EXIT_PARTIAL)


@app.command("report")
@friendly
def report(
    source: Annotated[
        Path, typer.Argument(help="run directory (or its results.json), or an `smoe etr evaluate --out` JSON")
    ],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file (default: report.html in the run dir)")] = None,
    methods: Annotated[str | None, typer.Option(help="comma-separated methods to show (default: all)")] = None,
) -> None:
    """One self-contained HTML report (tables, figures inline) of a run, a comparison or an ETR evaluation."""
    # CLI start-up: the report loads matplotlib
    from .report.html import write_report

    selected = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    console.print(f"wrote {write_report(source, out, selected)}")


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])


@app.command()
@friendly
def serve(
    config: ConfigArg,
    set_: SetOpt = None,
    out: OutOpt = None,
    data_dir: DataOpt = None,
    host: Annotated[str, typer.Option(help="address to bind (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    api_key: Annotated[
        str | None, typer.Option(envvar="SMOE_API_KEY", help="require Authorization: Bearer KEY on /v1 calls")
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="larger request bodies get 413")] = 256 * 1024,
    max_question_bytes: Annotated[int, typer.Option(help="longer questions (UTF-8 bytes) get 400")] = 16 * 1024,
    window: Annotated[float, typer.Option(help="seconds a micro-batch waits for more requests")] = 0.05,
    method: Annotated[
        str, typer.Option(help="symbolic_moe (skill recruitment) or a router: router_single/vote/cascade/frugal")
    ] = "symbolic_moe",
) -> None:
    """Serve the mixture as one model behind an OpenAI-compatible /v1/chat/completions."""
    # CLI start-up: the web server loads only for `smoe serve`
    import uvicorn

    from ..api import Mixture
    from .server import ServerOptions, create_app

    options = ServerOptions(
        api_key=api_key, max_body_bytes=max_body_bytes, max_question_bytes=max_question_bytes, window=window
    )
    run = open_run(config, (set_ or []) + ["scheduler.progress=false"], out, data_dir)
    uvicorn.run(create_app(Mixture(run, method), options), host=host, port=port)


@app.command("compare")
@friendly
def compare_methods(
    config: ConfigArg,
    methods: Annotated[str, typer.Option(help="comma-separated methods, e.g. task_best,self_consistency,moa")],
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "0",
    set_: SetOpt = None,
    out: OutOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Compare methods on one pool and benchmark (shared store); write compare.json and a Table-1 view."""
    # CLI start-up: loaded when `smoe compare` runs
    from .compare import compare, print_compare

    # CLI start-up: the report loads matplotlib
    from .report.html import write_report

    seed_list = parse_seeds(seeds)
    names = [m.strip() for m in methods.split(",") if m.strip()]
    run = open_run(config, set_, out, data_dir, names)
    _, summary = compare(run, names, seed_list)
    print_compare(summary)
    console.print(f"wrote {run.out / 'compare.json'}, {run.out / 'results.json'} and {write_report(run.out)}")
    exit_if_partial(summary)


def _mount_etr() -> None:
    # CLI start-up: the ETR sub-commands load torch/llama.cpp lazily too
    from .etr_cli import app as etr_app

    app.add_typer(etr_app, name="etr", help="Expert Token Routing: train, extend, route, evaluate.")


_mount_etr()
