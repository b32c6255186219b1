"""Cached re-quantisation of a GGUF model (the `llama_cpp` engine's `requantize` option).

Why: at load, llama.cpp repacks Q4_0 (also Q4_K, IQ4_NL) weights into interleaved layouts whose
AVX2 matrix kernels multiply several rows at once, so batched decoding and prefill really share
the weight reads. The shipped SmolLM2 is Q4_1 and Gemma-3-270M keeps its 262k-token embedding in
Q6_K/Q8_0, which have no such kernel. BENCHMARKS.md measures speed and answer agreement.
The copy is written once into a cache folder, named after the source file's identity (path, size,
mtime), so a changed source is re-quantised again; it is written under a temporary name and
renamed, so a killed run leaves no half-written model.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path

from ..errors import ConfigError, EngineError

# name -> (llama.cpp ftype constant name, pure). "pure" quantises every tensor to the type,
# embeddings and output included (llama.cpp otherwise keeps those in a higher-precision type).
TYPES = {
    "q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", False),
    "q4_0_pure": ("LLAMA_FTYPE_MOSTLY_Q4_0", True),
    "q5_0": ("LLAMA_FTYPE_MOSTLY_Q5_0", False),
    "q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", False),
    "q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", False),
}


def cache_dir() -> Path:
    """Where re-quantised models are kept: $SMOE_CACHE_DIR, else ~/.cache/symbolic-moe/gguf."""
    if os.environ.get("SMOE_CACHE_DIR"):
        return Path(os.environ["SMOE_CACHE_DIR"]) / "gguf"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "symbolic-moe" / "gguf"


def requantized_gguf(source: Path, kind: str, out_dir: Path | None = None) -> Path:
    """`source` re-quantised to `kind` (one of TYPES), made on first use and reused after."""
    if kind not in TYPES:
        raise ConfigError(f"requantize: unknown type {kind!r}; choose one of {', '.join(TYPES)}")
    # heavy: llama_cpp (the C library) loads only to re-quantise
    import llama_cpp

    stat = source.stat()
    identity = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    out_dir = out_dir or cache_dir()
    out = out_dir / f"{source.stem}.{hashlib.sha1(identity.encode()).hexdigest()[:10]}.{kind}.gguf"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    ftype, pure = TYPES[kind]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype)
    params.allow_requantize = True
    params.pure = pure
    partial = out.with_name(out.name + ".partial")
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    if rc != 0:
        partial.unlink(missing_ok=True)
        raise EngineError(f"re-quantising {source} to {kind} failed (llama.cpp returned {rc})")
    partial.replace(out)
    return out
