"""`smoe etr`: train expert tokens, extend them, route questions, evaluate (thin over etr.api)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..config import default_data_dir
from ..errors import ConfigError
from ..types import Question
from .cli_errors import friendly

app = typer.Typer(
    help="Expert Token Routing: expert tokens on a frozen meta LLM, plug-in experts, routing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Plugins = Annotated[Path, typer.Argument(help="expert-token plug-in directory")]
QuestionsOpt = Annotated[
    Path | None, typer.Option("--questions", help="question JSONL (default: <data>/benchmarks/mmlu_pro/<split>.jsonl)")
]
SplitOpt = Annotated[str, typer.Option("--split", help="benchmark split when --questions is not given")]
ReplayOpt = Annotated[
    list[str] | None, typer.Option("--replay", help="replay model (correctness-based query set); repeat")
]
FieldOpt = Annotated[str | None, typer.Option("--field", help="one expert per value of this question field")]
MetaOpt = Annotated[str, typer.Option("--meta", help="meta LLM: embedded:smollm2, embedded:gemma3-270m or a GGUF")]
DataOpt = Annotated[Path | None, typer.Option("--data-dir", help="data directory (default: $SMOE_DATA_DIR)")]
SeedOpt = Annotated[int, typer.Option("--seed")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="paper: 5")]
LrOpt = Annotated[float, typer.Option("--lr", help="paper: 5e-4; 5e-3 with ~20 queries per expert (ETR.md)")]
PerGroupOpt = Annotated[int | None, typer.Option("--per-category", help="first N questions per category")]


def _data(data_dir: Path | None) -> Path:
    found = data_dir or default_data_dir()
    if found is None:
        raise ConfigError("no data directory: pass --data-dir or set SMOE_DATA_DIR")
    return Path(found)


def _questions(questions: Path | None, split: str, data_dir: Path | None, per_category: int | None) -> list[Question]:
    # CLI start-up: the etr package loads its white-box engines (`smoe --help` stays quick)
    from ..etr.data import read_questions, take_per_group

    path = questions or _data(data_dir) / "benchmarks" / "mmlu_pro" / f"{split}.jsonl"
    return take_per_group(read_questions(path), "category", per_category)


def _train(
    out: Path,
    questions: list[Question],
    replay: list[str] | None,
    field: str | None,
    meta: str,
    data_dir: Path | None,
    seed: int,
    epochs: int,
    lr: float,
    extend: bool,
    anchors: list[Question] | None = None,
) -> None:
    # CLI start-up: ETR loads llama.cpp/torch
    from ..etr.api import labelled_query_sets, replay_query_sets, train_plugins
    from ..etr.train import TrainConfig
    from ..etr.whitebox import MetaLM

    if bool(replay) == bool(field):
        raise ConfigError("give either --replay MODEL (repeatable) or --field NAME")
    if replay:
        sets = replay_query_sets(MetaLM(meta), _data(data_dir), questions, list(replay), out / "cache", seed)
    else:
        sets = labelled_query_sets(questions, str(field), seed)
    config = TrainConfig(lr=lr, epochs=epochs, seed=seed)
    pool = questions + [q for q in anchors or [] if q.id not in {x.id for x in questions}]
    head = train_plugins(pool, sets, out, meta, config, out / "cache" / "hidden", extend=extend)
    sizes = ", ".join(f"{n}={len(sets.get(n, []))}" for n in head.names)
    skipped = [n for n, ids in sets.items() if not ids]
    note = f"; no token for {', '.join(skipped)} (empty query set)" if skipped else ""
    typer.echo(f"{out}: {len(head)} expert tokens for {head.meta_model} (query sets: {sizes}){note}")


@app.command()
@friendly
def train(
    out: Plugins,
    questions: QuestionsOpt = None,
    split: SplitOpt = "validation",
    replay: ReplayOpt = None,
    field: FieldOpt = None,
    meta: MetaOpt = "embedded:smollm2",
    data_dir: DataOpt = None,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = 5,
    lr: LrOpt = 5e-4,
    per_category: PerGroupOpt = None,
) -> None:
    """Build expert query sets, train the expert tokens, write one plug-in file per expert."""
    _train(
        out,
        _questions(questions, split, data_dir, per_category),
        replay,
        field,
        meta,
        data_dir,
        seed,
        epochs,
        lr,
        False,
    )


@app.command()
@friendly
def extend(
    out: Plugins,
    questions: QuestionsOpt = None,
    split: SplitOpt = "validation",
    replay: ReplayOpt = None,
    field: FieldOpt = None,
    meta: MetaOpt = "embedded:smollm2",
    data_dir: DataOpt = None,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = 5,
    lr: LrOpt = 5e-4,
    per_category: PerGroupOpt = None,
    anchors: Annotated[
        Path | None,
        typer.Option("--anchors", help="question JSONL the current experts should keep (labelled by their head)"),
    ] = None,
) -> None:
    """Train tokens for new experts and append them to an existing plug-in directory (old files
    untouched). The new tokens are trained against the old ones: besides their own query sets,
    every other question (and those in --anchors) must stay with the expert the head routes it to."""
    # CLI start-up: the etr package loads its white-box engines
    from ..etr.data import read_questions

    qs = _questions(questions, split, data_dir, per_category)
    extra = read_questions(anchors) if anchors else None
    _train(out, qs, replay, field, meta, data_dir, seed, epochs, lr, True, extra)


@app.command()
@friendly
def route(
    plugins: Plugins,
    output: Annotated[Path, typer.Option("--out", help="choices JSONL to write")],
    questions: QuestionsOpt = None,
    split: SplitOpt = "test",
    meta: MetaOpt = "embedded:smollm2",
    data_dir: DataOpt = None,
    per_category: PerGroupOpt = None,
) -> None:
    """Router-only ETR: the chosen expert of every question, as JSONL {id, expert}."""
    # CLI start-up: ETR loads llama.cpp/torch
    from ..etr.api import route_questions

    qs = _questions(questions, split, data_dir, per_category)
    chosen = route_questions(qs, plugins, meta, plugins / "cache" / "hidden")
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w") as f:
        for q, name in zip(qs, chosen, strict=True):
            f.write(json.dumps({"id": q.id, "expert": name}) + "\n")
    typer.echo(f"{output}: {len(qs)} routed; " + ", ".join(f"{n}={chosen.count(n)}" for n in sorted(set(chosen))))


@app.command()
@friendly
def evaluate(
    which: Annotated[str, typer.Argument(help="mmlu-expert or replay")],
    work: Annotated[Path, typer.Option("--work", help="cache directory")] = Path("runs/etr"),
    out: Annotated[Path | None, typer.Option("--out", help="results JSON")] = None,
    train_per_domain: Annotated[int, typer.Option("--train")] = 20,
    eval_per_domain: Annotated[int, typer.Option("--eval")] = 10,
    test_per_category: Annotated[int, typer.Option("--test-per-category")] = 5,
    val_per_category: Annotated[int | None, typer.Option("--val-per-category")] = 5,
    threads: Annotated[int, typer.Option("--threads", help="llama.cpp threads (1 on a busy machine)")] = 2,
    data_dir: DataOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """MMLU-Expert routing/answer accuracy, or the MMLU-Pro replay router (writes results JSON)."""
    work.mkdir(parents=True, exist_ok=True)
    if which == "mmlu-expert":
        # CLI start-up: ETR loads llama.cpp/torch
        from .etr_mmlu_expert import mmlu_expert

        result = mmlu_expert(_data(data_dir), work, train_per_domain, eval_per_domain, seed=seed, threads=threads)
    elif which == "replay":
        # CLI start-up: ETR loads llama.cpp/torch
        from ..etr.replay_pool import replay_router

        result = replay_router(_data(data_dir), work, None, test_per_category, val_per_category, seed, threads=threads)
    else:
        raise ConfigError(f"unknown evaluation '{which}' (mmlu-expert or replay)")
    text = json.dumps(result, indent=1)
    if out:
        out.write_text(text)
    typer.echo(json.dumps(result["methods"], indent=1))
