#!/usr/bin/env bash
# The main job: build everything, start an Ollama with AX650 support, create a
# model from a Modelfile, and print a chat answer; then keep serving.
#
#   ./run.sh [MODEL_DIR] [--name NAME] [--once]
#
# MODEL_DIR  an AX650 model package (for example AXERA's Qwen3-4B). Without it,
#            a small demo model is packed for the simulator (random weights:
#            expect gibberish; the point is the whole path).
# --name     the Ollama model name (default: the directory's name, or qwen3-tiny-ax650)
# --once     stop the server after printing the answer
#
# The card is used when the AXCL runtime is installed (libaxcl_rt.so through the
# dynamic loader or /usr/lib/axcl); otherwise the simulator. AXLLM_AXCL_LIB
# forces a library. OLLAMA_HOST (default 127.0.0.1:11434) and OLLAMA_MODELS
# (default ./build/models) are honoured.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

MODEL_DIR="" NAME="" ONCE=0
while (($#)); do
    case "$1" in
        --name) NAME=$2; shift 2 ;;
        --once) ONCE=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) MODEL_DIR=$1; shift ;;
    esac
done

log() { printf '\n==> %s\n' "$*" >&2; }

log "building the simulator and packer, libaxllm.a and the patched Ollama"
cargo build --release -q -p axcl-sim -p axsim-pack
bash ollama-patch/build.sh >&2
OLLAMA=$ROOT/target/ollama

if [[ -n "${AXLLM_AXCL_LIB:-}" ]]; then
    log "runtime: $AXLLM_AXCL_LIB"
elif ldconfig -p 2>/dev/null | grep -q 'libaxcl_rt\.so' || [[ -e /usr/lib/axcl/libaxcl_rt.so ]]; then
    log "runtime: the AXCL runtime (AX650 card)"
    CARD=1
else
    export AXLLM_AXCL_LIB=$ROOT/target/release/libaxcl_sim.so
    log "runtime: no AXCL runtime found, using the simulator"
fi

if [[ -z "$MODEL_DIR" ]]; then
    if [[ -n "${CARD:-}" ]]; then
        echo "run.sh: pass the model package to serve, e.g. ./run.sh ~/Qwen3-4B" >&2
        exit 2
    fi
    MODEL_DIR=$ROOT/build/demo/qwen3-tiny-ax650
    if [[ ! -f $MODEL_DIR/config.json ]]; then
        log "packing a demo model (random Qwen3 weights, real tokenizer) into $MODEL_DIR"
        target/release/axsim-pack random "$ROOT/build/demo/ckpt" --arch qwen3 --hidden 128 --layers 4 \
            --heads 4 --kv-heads 2 --head-dim 32 --intermediate 384 --seed 42
        target/release/axsim-pack hf "$ROOT/build/demo/ckpt" "$MODEL_DIR" --chunk 32 --context 1023 \
            --prefill-history 128,256,512 --name qwen3-tiny
    fi
    NAME=${NAME:-qwen3-tiny-ax650}
    DEMO=1
fi
MODEL_DIR=$(cd "$MODEL_DIR" && pwd)
NAME=${NAME:-$(basename "$MODEL_DIR" | tr 'A-Z' 'a-z')}

export OLLAMA_HOST=${OLLAMA_HOST:-127.0.0.1:11434}
export OLLAMA_MODELS=${OLLAMA_MODELS:-$ROOT/build/models}
mkdir -p "$OLLAMA_MODELS" build
log "starting ollama serve on $OLLAMA_HOST (log: build/ollama-serve.log)"
"$OLLAMA" serve > build/ollama-serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    "$OLLAMA" list >/dev/null 2>&1 && break
    kill -0 $SERVER 2>/dev/null || { cat build/ollama-serve.log >&2; exit 1; }
    sleep 0.2
done

log "ollama create $NAME (FROM $MODEL_DIR)"
printf 'FROM %s\n' "$MODEL_DIR" > build/Modelfile
# The demo's random weights never end a thought or an answer: keep it short.
[[ -n "${DEMO:-}" ]] && printf 'PARAMETER num_predict 48\n' >> build/Modelfile
"$OLLAMA" create "$NAME" -f build/Modelfile

log "ollama run $NAME"
THINK=()
[[ -n "${DEMO:-}" ]] && THINK=(--think=false)
"$OLLAMA" run --verbose "${THINK[@]}" "$NAME" "Hello! Who are you? Answer in one sentence."

if ((ONCE)); then
    exit 0
fi
log "serving $NAME at http://$OLLAMA_HOST (Ollama API and /v1); Ctrl-C stops"
wait $SERVER
