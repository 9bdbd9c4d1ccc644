#!/usr/bin/env bash
# The test command: sets up what is missing, then runs every test.
#   - generated code is fresh (bindgen bindings, cbindgen header, Go status constants)
#   - the public API is documented (missing_docs denied, cargo doc clean)
#   - Rust unit and end-to-end tests (library on the simulator)
#   - fuzz targets (seeded mutations; bounded libFuzzer runs when nightly exists)
#   - the patched Ollama: build (with llama-server for GGUF models), the AX650
#     Go tests, Ollama's own test suites of every patched package
#   - Python tests: reference comparisons (mlx-lm; the real SmolLM2 model),
#     the C example, Ollama end to end with the real CLI and the official
#     ollama/openai clients, a GGUF model beside the AX650 models
#   - the arm64 lane: the workspace and the patched Ollama cross-built for
#     aarch64 and tested under qemu-aarch64 (scripts/arm64.sh; AXLLM_ARM64=0 skips it)
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh

echo "== generated code is fresh"
cargo run -q -p xtask -- check

echo "== API docs (every public item documented, no rustdoc warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps -p axllm-core -p axllm-capi

echo "== Rust tests"
cargo build -q -p axcl-sim            # the simulator library the tests load
cargo test -q --workspace 2>&1 | tee target/rust-tests.log
echo "== Fuzz targets (seeded mutations, stable)"
cargo test -q --manifest-path fuzz/Cargo.toml

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "== Fuzz targets (coverage-guided, ${FUZZ_SECONDS:-20} s each)"
    command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz
    # capi_args reads AXLLM_AXCL_LIB at its edge and loads a live model on it.
    for t in geometry sim_format model_dir capi_args; do
        (cd fuzz && AXLLM_AXCL_LIB="$PWD/../target/debug/libaxcl_sim.so" \
            cargo +nightly fuzz run "$t" --features libfuzzer -- -max_total_time="${FUZZ_SECONDS:-20}" 2>&1 | grep -E '^Done|SUMMARY|panicked' )
    done
fi

echo "== Ollama: patched build (ollama, llama-server) and its Go tests"
cargo build -q --release -p axcl-sim -p axsim-pack   # lets the tagged Go tests run the real engine on the simulator
time bash ollama-patch/build.sh
bash ollama-patch/build.sh test
echo "== Ollama's own test suites of the patched packages"
time bash ollama-patch/build.sh test-all

echo "== Python tests (reference comparisons, C example, Ollama end to end)"
.venv/bin/python -m pytest -q tests/python

echo "== arm64 lane (cross-built for aarch64, run under qemu-aarch64)"
# On by default (AXLLM_ARM64=0 skips it). From scratch (its apt packages,
# target/aarch64 and the Go cache's arm64 half empty) it costs about 19 CPU
# minutes, an estimated 13 to 17 minutes of wall time on CI's two idle cores (README
# "Building on the Pi"); warm, a few minutes.
time bash scripts/arm64.sh
