"""What produced a results.json: the effective config, the package version, the data directory,
and the input files (benchmark splits, replay recordings) with their sha256, so any number in it
can be traced back to exactly what made it."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import __version__
from ...data import find_split

if TYPE_CHECKING:
    from ...run import Run

# Run-directory artifacts whose hashes results.json records: a report shows one only when it is
# still the file the results were computed with (a later command may rewrite it).
ARTIFACT_PATTERNS = ("predictions.jsonl", "profiles.json", "aggregator.json", "recruitment_seed*.json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file(path: Path) -> dict[str, str]:
    return {"path": str(path.resolve()), "sha256": sha256(path)}


def split_file(run: Run, split: str) -> dict[str, str]:
    """Where a benchmark split was read from, with its hash ("hub:" sets name their dataset only)."""
    benchmark = run.config.benchmark.path
    if benchmark == "demo":
        with resources.as_file(resources.files("symbolic_moe.data").joinpath("demo", f"{split}.jsonl")) as path:
            return _file(Path(path))
    if benchmark.startswith("hub:"):
        return {"path": benchmark, "sha256": "not recorded: loaded through the Hugging Face hub"}
    return _file(find_split(benchmark, split, run.data_dir))


def replay_files(run: Run) -> dict[str, dict[str, str]]:
    """The recordings behind every replay model, resolved the way the replay engine resolves them."""
    found: dict[str, dict[str, str]] = {}
    for name, spec in run.config.all_models.items():
        if spec.engine != "replay":
            continue
        path = Path(spec.model).expanduser()
        candidates = [path] if path.is_absolute() or run.data_dir is None else [run.data_dir / path, path]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is not None:
            found[name] = _file(hit)
    return found


def provenance(run: Run) -> dict[str, Any]:
    """The fields results.json records about its origin."""
    b = run.config.benchmark
    return {
        "symbolic_moe_version": __version__,
        "effective_config": run.config.model_dump(mode="json"),
        "data_dir": str(Path(run.data_dir).resolve()) if run.data_dir else None,
        "inputs": {
            "benchmark": {split: split_file(run, split) for split in dict.fromkeys((b.validation, b.test))},
            "replay": replay_files(run),
        },
    }


def artifact_hashes(out: Path) -> dict[str, str]:
    """sha256 of the run-directory artifacts present now (see ARTIFACT_PATTERNS)."""
    paths = sorted({p for pattern in ARTIFACT_PATTERNS for p in out.glob(pattern) if p.is_file()})
    return {p.name: sha256(p) for p in paths}
