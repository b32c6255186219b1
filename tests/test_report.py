"""`smoe report` and what results.json records, on a real replay comparison (`smoe compare` on 16
recorded MMLU-Pro models, skills from the category field: no LLM, seconds). The HTML is rendered
in headless Chromium: a screenshot must not be blank and every figure must be in the DOM."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import chromium_binary
from PIL import Image
from typer.testing import CliRunner

from symbolic_moe import __version__
from symbolic_moe.app.cli import app
from symbolic_moe.config import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "replay-mmlu-pro-small16.toml"
DATA = default_data_dir()
LIMIT = 70  # every 30th MMLU-Pro test question: 5 per category
METHODS = "task_best,top_k_vote,symbolic_moe_vote,symbolic_moe_weighted,oracle"
needs_data = pytest.mark.usefixtures("shared_data")


def smoe(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def replay_sets(tmp: Path) -> list[str]:
    sets = ["keywords.skills_from_field=category", f"benchmark.limit={LIMIT}", "benchmark.stride=30"]
    sets += ["scheduler.progress=false", f"store={tmp / 'store.sqlite'}"]
    return [arg for s in sets for arg in ("--set", s)]


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    code, output = smoe(
        "compare", CONFIG, "--methods", METHODS, "--seeds", "0,1", *replay_sets(tmp), "--out", tmp / "cmp"
    )
    assert code == 0, output
    return tmp / "cmp"


def chromium(tmp: Path, page: Path, *args: str) -> str:
    """Run headless Chromium on a local file; stdout (the DOM with --dump-dom)."""
    command = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",  # root in CI containers
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        *args,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def not_blank(image: Image.Image) -> bool:
    """More than a sliver of the image differs from its most common (background) colour."""
    pixels = np.asarray(image.convert("L"), dtype=float)
    values, counts = np.unique(pixels, return_counts=True)
    background = values[np.argmax(counts)]
    return pixels.std() > 5 and float(np.mean(np.abs(pixels - background) > 30)) > 0.01


def expected_figures(results: dict, run_dir: Path) -> int:
    """Cost/quality (calls, and dollars when a method is priced) + one per distinct recruitment
    plan + categories (MMLU-Pro has them) + profiles (when the run built them) + ETR routing (when
    ETR ran beside `oracle`)."""
    plans = {
        json.dumps([seed, info["selection_counts_before_trimming"], info["selection_counts_after_trimming"]])
        for m in results["methods"].values()
        for seed, info in m["info"].items()
        if "selection_counts_before_trimming" in info
    }
    etr = "etr" in results["methods"] and "oracle" in results["methods"]
    profiles = run_dir / "profiles.json"
    skills = profiles.is_file() and any(json.loads(profiles.read_text())["data"]["profiles"].values())
    priced = any(m.get("cost_per_question") is not None for m in results["methods"].values())
    return 2 + priced + len(plans) + skills + etr


def check_rendered(tmp: Path, page: Path, figures: int) -> Path:
    """Every figure is an inline PNG in Chromium's DOM and not blank; the page's screenshot is not blank."""
    html = page.read_text()
    assert not re.search(r"<script|<link|https?://|url\(", html), "the report must not fetch anything"
    dom = chromium(tmp, page, "--dump-dom")
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', dom)
    assert len(sources) == figures
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.width > 200 and image.height > 100 and not_blank(image)
    shot = tmp / f"{page.stem}.png"
    chromium(tmp, page, f"--screenshot={shot}", "--window-size=1280,3000")
    assert not_blank(Image.open(shot))
    return shot


@needs_data
def test_results_json_records_what_produced_it(compare_dir: Path) -> None:
    results = json.loads((compare_dir / "results.json").read_text())
    assert results["format"] == 2 and results["symbolic_moe_version"] == __version__
    assert results["simulated"] is False and results["simulated_models"] == []  # recorded outputs, real answers
    config = results["effective_config"]
    assert config["benchmark"]["limit"] == LIMIT and config["benchmark"]["stride"] == 30  # from --set
    assert config["keywords"]["skills_from_field"] == "category" and config["recruit"]["k"] == 3  # set / default
    assert Path(results["data_dir"]) == DATA.resolve()
    test_file = DATA / "benchmarks" / "mmlu_pro" / "test.jsonl"
    recorded = results["inputs"]["benchmark"]["test"]
    assert recorded == {"path": str(test_file.resolve()), "sha256": hashlib.sha256(test_file.read_bytes()).hexdigest()}
    assert set(results["inputs"]["replay"]) == set(config["pool"])
    yi = results["inputs"]["replay"]["Yi-34B"]
    assert yi["sha256"] == hashlib.sha256(Path(yi["path"]).read_bytes()).hexdigest()
    predictions = (compare_dir / "predictions.jsonl").read_bytes()
    assert results["artifacts"]["predictions.jsonl"] == hashlib.sha256(predictions).hexdigest()
    for name, m in results["methods"].items():
        low, high = m["ci95"]
        assert 0 <= low <= m["accuracy"] <= high <= 1 and high > low, name
        assert all(w is not None and w >= 0 for w in m["wall_seconds_per_seed"]), name
    rows = [json.loads(line) for line in predictions.decode().splitlines()]
    assert len({r["category"] for r in rows}) == 14  # MMLU-Pro's categories, for per-category accuracy
    table = json.loads((compare_dir / "compare.json").read_text())
    assert table["format"] == 2 and table["run_id"] == results["run_id"] and table["simulated"] is False
    assert table["methods"]["task_best"]["ci95"] == results["methods"]["task_best"]["ci95"]


@needs_data
def test_compare_report_renders_every_figure(compare_dir: Path, tmp_path: Path) -> None:
    results = json.loads((compare_dir / "results.json").read_text())
    page = compare_dir / "report.html"  # written by `smoe compare` itself
    html = page.read_text()
    for name in results["methods"]:
        assert f"<td>{name}</td>" in html or f'<td class="l">{name}</td>' in html
    assert results["inputs"]["benchmark"]["test"]["sha256"] in html  # provenance is shown
    shot = check_rendered(tmp_path, page, expected_figures(results, compare_dir))
    shutil.copy(shot, Path("/tmp") / "smoe-report-screenshot.png")  # for a person to look at


@needs_data
def test_report_of_selected_methods(compare_dir: Path, tmp_path: Path) -> None:
    code, output = smoe("report", compare_dir, "--methods", "task_best,oracle", "--out", tmp_path / "two.html")
    assert code == 0, output
    html = (tmp_path / "two.html").read_text()
    assert "symbolic_moe_vote" not in html and "no method of this run recruits experts" in html
    priced = json.loads((compare_dir / "results.json").read_text())["methods"]["task_best"].get("cost_per_question")
    check_rendered(tmp_path, tmp_path / "two.html", 3 + (priced is not None))  # + dollars when priced


def _copy(compare_dir: Path, tmp: Path) -> Path:
    run = tmp / "copy"
    shutil.copytree(compare_dir, run)
    (run / "report.html").write_text("the previous report")
    return run


def _refused(args: list, message: str, untouched: Path) -> None:
    code, output = smoe("report", *args)
    assert code == 1 and message in output, output
    assert len([line for line in output.splitlines() if line.startswith("error:")]) == 1
    assert untouched.read_text() == "the previous report"
    assert not list(untouched.parent.glob(".*tmp")), "no temporary file is left behind"


@needs_data
def test_bad_input_is_one_error_line_and_nothing_written(compare_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = smoe("report", empty)
    assert code == 1 and "no results.json" in output and not list(empty.iterdir())
    run = _copy(compare_dir, tmp_path)
    page = run / "report.html"
    _refused([run, "--methods", "task_best,nope"], "unknown method 'nope'", page)
    results = json.loads((run / "results.json").read_text())
    compare = json.loads((run / "compare.json").read_text())
    old = {m: {k: row[k] for k in ("mean", "std", "calls_per_question", "tokens_per_question")} for m, row in
           compare["methods"].items()}  # fmt: skip
    (run / "compare.json").write_text(json.dumps(old))  # the format before provenance
    _refused([run], "compare.json: written without a format field", page)
    (run / "compare.json").write_text(json.dumps({**compare, "run_id": "another"}))
    _refused([run], "belongs to another results.json", page)
    (run / "compare.json").write_text(json.dumps(compare))
    (run / "predictions.jsonl").write_text(
        (run / "predictions.jsonl").read_text().replace('"correct": false', '"correct": true')
    )
    _refused([run], "predictions.jsonl: changed since results.json was written", page)
    (run / "results.json").write_text(json.dumps({k: v for k, v in results.items() if k != "format"}))
    _refused([run], "results.json: written without a format field", page)
    (run / "results.json").write_text("{ not json")
    _refused([run], "not valid JSON", page)


@needs_data
def test_smoe_run_writes_the_report(compare_dir: Path, tmp_path: Path) -> None:
    # the comparison's store: its generations are reused, only the run's own files are new
    sets = replay_sets(compare_dir.parent) + ["--set", "methods=['symbolic_moe']"]
    code, output = smoe("run", CONFIG, *sets, "--out", tmp_path / "run")
    assert code == 0, output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    check_rendered(tmp_path, tmp_path / "run" / "report.html", expected_figures(results, tmp_path / "run"))


def test_etr_evaluation_report(tmp_path: Path) -> None:
    """`smoe etr evaluate mmlu-expert --out FILE` output (a committed one): routing per domain."""
    source = ROOT / "benchmarks" / "results" / "etr_mmlu_expert.json"
    code, output = smoe("report", source, "--out", tmp_path / "etr.html")
    assert code == 0, output
    html = (tmp_path / "etr.html").read_text()
    assert all(name in html for name in json.loads(source.read_text())["methods"])
    check_rendered(tmp_path, tmp_path / "etr.html", 1)


@pytest.mark.slow
@needs_data
def test_etr_run_report_shows_routing_per_category(tmp_path: Path) -> None:
    """ETR as a method beside `oracle`: routing accuracy per category from the run's predictions."""
    sets = ["keywords.skills_from_field=category", "benchmark.limit=7", "benchmark.stride=300"]
    sets += ["benchmark.validation_limit=14", "scheduler.progress=false", "methods=['etr','oracle']"]
    sets += [f"store={tmp_path / 'store.sqlite'}"]
    args = [a for s in sets for a in ("--set", s)]
    code, output = smoe("run", CONFIG, *args, "--out", tmp_path / "run")
    assert code == 0, output
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").open()]
    right = {r["id"]: r["right"] for r in rows if r["method"] == "oracle"}
    routed = [r["experts"][0] in right[r["id"]] for r in rows if r["method"] == "etr" and right[r["id"]]]
    html = (tmp_path / "run" / "report.html").read_text()
    assert "ETR routing accuracy per category" in html and routed
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    check_rendered(tmp_path, tmp_path / "run" / "report.html", expected_figures(results, tmp_path / "run"))


@pytest.mark.slow
def test_embedded_main_job_writes_a_report(tmp_path: Path) -> None:
    """The README's main job (`smoe run configs/embedded.toml`, real SmolLM2 and Gemma-3 through
    llama.cpp), shrunk to a few questions and short answers: it leaves report.html beside
    results.json, and the page renders with every figure."""
    sets = ["benchmark.limit=3", "benchmark.validation_limit=4", "keywords.samples=2", "keywords.min_count=1"]
    sets += ["scheduler.progress=false"]
    for m in ("smollm2", "gemma3", "smollm2-science", "gemma3-humanities"):
        # one thread: llama.cpp's threads wait on each other on a busy machine
        sets += [f"pool.{m}.settings.max_tokens=24", f"pool.{m}.options.n_threads=1"]
    args = [a for s in sets for a in ("--set", s)]
    code, output = smoe("run", ROOT / "configs" / "embedded.toml", *args, "--out", tmp_path / "embedded")
    assert code == 0, output
    results = json.loads((tmp_path / "embedded" / "results.json").read_text())
    assert results["effective_config"]["benchmark"]["limit"] == 3
    assert results["inputs"]["benchmark"]["test"]["path"].endswith("demo/test.jsonl")
    check_rendered(tmp_path, tmp_path / "embedded" / "report.html", expected_figures(results, tmp_path / "embedded"))
