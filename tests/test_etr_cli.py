"""`smoe etr train / extend / route` end to end on SmolLM2 with a few labelled questions."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from symbolic_moe.app.etr_cli import app
from symbolic_moe.etr.plugins import load_head

pytestmark = pytest.mark.usefixtures("smollm2_installed")

ROWS = [
    ("a1", "astronomy", "Which planet is closest to the Sun?\n(A) Mercury (B) Venus (C) Mars (D) Earth", "A"),
    ("a2", "astronomy", "What is a light-year a unit of?\n(A) time (B) distance (C) mass (D) speed", "B"),
    ("l1", "law", "What does a treaty need to bind a state?\n(A) consent (B) a war (C) a king (D) gold", "A"),
    ("l2", "law", "Which court sits in The Hague?\n(A) ICJ (B) NBA (C) FIFA (D) IMF", "A"),
    ("h1", "history", "Who built the pyramids of Giza?\n(A) Romans (B) Egyptians (C) Vikings (D) Aztecs", "B"),
]


def _write(path, rows) -> None:
    with path.open("w") as f:
        for qid, domain, text, answer in rows:
            f.write(
                json.dumps(
                    {"id": qid, "domain": domain, "question": text, "answer": answer, "choices": ["A", "B", "C", "D"]}
                )
                + "\n"
            )


@pytest.mark.slow  # ~8 s idle, 20+ s on a busy machine: three commands, three model loads
def test_train_extend_route(tmp_path) -> None:
    first, later = tmp_path / "first.jsonl", tmp_path / "later.jsonl"
    _write(first, ROWS[:4])
    _write(later, ROWS[4:])
    plugins = tmp_path / "plugins"
    runner = CliRunner()
    fit = ["--lr", "5e-2", "--epochs", "30"]  # enough steps for 2-4 questions per expert
    done = runner.invoke(app, ["train", str(plugins), "--questions", str(first), "--field", "domain", *fit])
    assert done.exit_code == 0, done.output
    assert load_head(plugins).names == ["astronomy", "law"]
    choices = tmp_path / "choices.jsonl"
    done = runner.invoke(app, ["route", str(plugins), "--questions", str(first), "--out", str(choices)])
    before = [json.loads(line)["expert"] for line in choices.read_text().splitlines()]
    old_files = {p.name: p.read_bytes() for p in plugins.glob("*.npz")}
    # plug in a third expert, anchored on the first questions (they must keep their experts)
    extend = ["extend", str(plugins), "--questions", str(later), "--field", "domain", "--anchors", str(first)]
    done = runner.invoke(app, extend + fit)
    assert done.exit_code == 0, done.output
    assert load_head(plugins).names == ["astronomy", "law", "history"]
    assert {p.name: p.read_bytes() for p in plugins.glob("*.npz") if p.name in old_files} == old_files
    done = runner.invoke(app, ["route", str(plugins), "--questions", str(first), "--out", str(choices)])
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in choices.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a1", "a2", "l1", "l2"]
    assert [r["expert"] for r in rows] == before  # the anchored new token took none of them
    done = runner.invoke(app, ["route", str(plugins), "--questions", str(later), "--out", str(choices)])
    assert json.loads(choices.read_text())["expert"] == "history"
    bad = runner.invoke(app, ["train", str(tmp_path / "x"), "--questions", str(first)])
    assert bad.exit_code == 1 and "either --replay" in bad.output
    missing = runner.invoke(app, ["route", str(tmp_path / "nothing"), "--questions", str(first), "--out", str(choices)])
    assert missing.exit_code == 1 and "experts.json" in missing.output
