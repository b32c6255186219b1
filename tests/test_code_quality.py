"""The code's own rules, checked by the test command so a break fails CI with the offending lines:
ruff (lint and format), mypy (config: [tool.mypy]), the layers contract (import-linter, config:
[tool.importlinter]), imports inside functions only with a one-line reason, `import
symbolic_moe.config` loading no heavy library, and the size limits of modules and functions."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "symbolic_moe"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LENGTH_REASON = "Length:"  # a function over the limit says why in its docstring, after this marker


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _clean(*command: str) -> None:
    result = _run(*command)
    assert result.returncode == 0, f"`{' '.join(command[1:])}` found problems:\n{result.stdout}\n{result.stderr}"


def test_ruff_check() -> None:
    _clean(sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks")


def test_ruff_format() -> None:
    _clean(sys.executable, "-m", "ruff", "format", "--diff", "src", "tests", "benchmarks")


def test_mypy() -> None:
    _clean(sys.executable, "-m", "mypy")


def test_import_layers() -> None:
    """No import up the layers (each broken import is listed with its file and line)."""
    _clean(sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()")


def _imports_inside_functions(path: Path) -> list[tuple[int, str, bool]]:
    """(line, source, has a reason) of every import inside a function of `path`. The reason is a
    comment on the import's line or on the line above; imports following it directly share it."""
    lines = path.read_text().splitlines()
    found: list[tuple[int, str, bool]] = []

    def visit(body: list[ast.stmt]) -> None:
        previous_ok = False
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                line = lines[node.lineno - 1]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                ok = "#" in line or above.startswith("#") or previous_ok
                found.append((node.lineno, line.strip(), ok))
                previous_ok = ok
                continue
            previous_ok = False
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])
            for name in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(node, name, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt | ast.ExceptHandler):
                    visit([b for b in block if isinstance(b, ast.stmt)] or [s for h in block for s in h.body])

    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            visit(node.body)
    return sorted(set(found))


def test_imports_inside_functions_say_why() -> None:
    """Only optional or heavy dependencies (and CLI start-up) are imported inside functions, each
    with a one-line comment saying why; everything else is imported at the top of its module."""
    bare = [
        f"{path.relative_to(ROOT)}:{line}: {source}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, source, ok in _imports_inside_functions(path)
        if not ok
    ]
    assert not bare, "imports inside functions without a reason comment:\n" + "\n".join(bare)


def test_reading_a_config_loads_nothing_heavy() -> None:
    heavy = ("sklearn", "torch", "ray", "llama_cpp", "transformers", "sentence_transformers", "vllm")
    code = f"import sys, symbolic_moe.config; print([m for m in {heavy!r} if m in sys.modules])"
    result = _run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"`import symbolic_moe.config` loaded {result.stdout.strip()}"


def test_modules_and_functions_stay_small() -> None:
    """Modules up to 400 lines; functions up to 60 lines unless their docstring gives the reason
    after "Length:"."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        n = len(source.splitlines())
        if n > MAX_MODULE_LINES:
            problems.append(f"{path.relative_to(ROOT)}: {n} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.end_lineno is None:
                continue
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and LENGTH_REASON not in (ast.get_docstring(node) or ""):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                problems.append(f"{where}: {node.name} has {length} lines and no '{LENGTH_REASON}' in its docstring")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["symbolic_moe", "symbolic_moe.api", "symbolic_moe.app.cli"])
def test_package_imports_cleanly(name: str) -> None:
    """Every layer imports on its own (no import order hides a circle)."""
    result = _run(sys.executable, "-c", f"import {name}")
    assert result.returncode == 0, result.stderr
