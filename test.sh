#!/usr/bin/env bash
# The test command: sets up what is missing, then runs every test.
#   - generated code is fresh (bindgen bindings, cbindgen header)
#   - Rust unit and end-to-end tests (library on the simulator)
#   - Python tests: reference comparisons (mlx-lm), the C example
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh

echo "== generated code is fresh"
cargo run -q -p xtask -- check

echo "== Rust tests"
cargo build -q -p axcl-sim            # the simulator library the tests load
cargo test -q --workspace 2>&1 | tee target/rust-tests.log
echo "== Python tests"
.venv/bin/python -m pytest -q tests/python
