#!/usr/bin/env bash
# The arm64 lane (test.sh's "== arm64 lane"): the Raspberry Pi 5's
# architecture, cross-built on x86_64 and run under qemu-user.
#
#   1. installs what it needs when missing (Debian bookworm: rustc-web and
#      cargo-web with libstd-rust-web-dev:arm64, the aarch64 gcc and libc,
#      qemu-user), idempotent as scripts/setup.sh;
#   2. cross-builds the workspace for aarch64-unknown-linux-gnu with Debian's
#      rustc (rustup cannot fetch the aarch64 std here) into target/aarch64,
#      leaving the host build (rustup's toolchain, target/) alone: the
#      simulator, core, the C ABI static library, examples and tests; and the
#      patched Ollama for linux/arm64 linking that libaxllm.a;
#   3. runs under qemu-aarch64 the Rust test suite (a subset by default, see
#      QEMU_TESTS below; AXLLM_ARM64_FULL=1 runs all of it), the C example
#      against the arm64 static library, and `ollama serve` of arm64 on the
#      arm64 simulator (tests/python/test_arm64.py): a model created from a
#      package answers a greedy chat exactly as the x86_64 build does.
#
# Environment: AXLLM_ARM64=0 skips the lane (test.sh runs it only with
# AXLLM_ARM64=1 for now); AXLLM_ARM64_FULL=1 runs the whole Rust suite under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${AXLLM_ARM64:-1}" = 0 ]; then
    echo "arm64 lane skipped (AXLLM_ARM64=0)"
    exit 0
fi
lane_start=$SECONDS
stage() { printf -- '-- arm64: %s (%ds into the lane)\n' "$*" $((SECONDS - lane_start)); }

TRIPLE=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
PACKAGES=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)

stage "packages"
missing=()
for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The vendor ABI's bindings are committed as bindgen wrote them on x86_64:
# parsed for aarch64 (clang --target, the aarch64 libc headers) they must
# come out the same, or a struct's layout differs between the two.
stage "vendor ABI bindings for $TRIPLE"
cargo run -q -p xtask -- bindings --check --target "$TRIPLE"

# Debian's toolchain, by absolute path: rustup's cargo and rustc come first on
# PATH and stay the host's. cargo-web's cargo runs the rustc named by RUSTC.
CARGO=/usr/bin/cargo
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
[ -d "/usr/lib/rustlib/$TRIPLE/lib" ] || { echo "arm64: no $TRIPLE std in /usr/lib/rustlib (libstd-rust-web-dev:arm64)" >&2; exit 1; }
export CARGO_TARGET_DIR=$PWD/target/aarch64
export CARGO_BUILD_TARGET=$TRIPLE
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
OUT=$CARGO_TARGET_DIR/$TRIPLE/debug
QEMU=(qemu-aarch64 -L "$SYSROOT")
echo "arm64: $("$RUSTC" --version) ($RUSTC), $("$CARGO" --version), $(qemu-aarch64 --version | head -n1)"

# One build profile for everything (dev: dependencies and the simulator at
# opt-level 2, see Cargo.toml), so that nothing is compiled twice. xtask is
# the host's code generator (bindgen needs the host's libclang): not built.
stage "cross-build (simulator, core, C ABI, examples, tests)"
"$CARGO" build -q -p axcl-sim        # the simulator library the tests load
"$CARGO" test -q --workspace --exclude xtask --no-run
"$CARGO" build -q -p axllm-capi -p axsim-pack --examples
# machine FILE: the ELF machine FILE is built for (of its first member, for an archive).
machine() { printf '%s: %s\n' "${1#"$PWD"/}" "$(aarch64-linux-gnu-readelf -h "$1" | sed -n 's/^ *Machine: *//p' | head -n1)"; }
machine "$OUT/libaxcl_sim.so"; machine "$OUT/libaxllm.a"; machine "$OUT/axsim-pack"

stage "cross-build (Ollama for linux/arm64)"
GOARCH=arm64 GOOS=linux CC=aarch64-linux-gnu-gcc CARGO=$CARGO AX650_CARGO_PROFILE=dev OLLAMA_LLAMA_SERVER=0 \
    bash ollama-patch/build.sh ollama
machine "$CARGO_TARGET_DIR/ollama"

# The Rust suite under qemu (the RUNNER above: every test binary runs as
# `qemu-aarch64 -L /usr/aarch64-linux-gnu <binary>`). By default a subset
# that fits CI's budget: every unit test of every crate (the simulator's
# math, the core's parsing, packing, sampling and memory accounting, the C
# ABI's boundary) and the end-to-end suites that load models through the
# whole stack. AXLLM_ARM64_FULL=1 adds the rest of the integration tests.
QEMU_TESTS=(--lib --bins --test capi --test core --test runtime_library --test bad_models --test package_check)
if [ "${AXLLM_ARM64_FULL:-0}" = 1 ]; then
    QEMU_TESTS=()
fi
stage "Rust tests under ${QEMU[*]} (${QEMU_TESTS[*]:-the full suite})"
log=$CARGO_TARGET_DIR/rust-tests.log
rc=0
"$CARGO" test --workspace --exclude xtask "${QEMU_TESTS[@]}" >"$log" 2>&1 || rc=$?
# Each binary's line names its runner: `Running ... (qemu-aarch64 -L ... target/aarch64/...)`.
grep -E '^\s*Running|^test result|FAILED|panicked' "$log" | sed "s|$PWD/||g" || true
[ "$rc" -eq 0 ] || { tail -n 60 "$log" >&2; echo "arm64: Rust tests failed under qemu (log: $log)" >&2; exit 1; }

# The host's release tools: the x86_64 side of the comparisons below, and the
# packer of the model both architectures load (packages are portable).
stage "host build (x86_64 side of the comparisons)"
cargo build -q --release -p axcl-sim -p axsim-pack -p axllm-capi
[ -x target/ollama ] || OLLAMA_LLAMA_SERVER=0 bash ollama-patch/build.sh ollama

stage "C example under qemu (arm64 libaxllm.a) vs x86_64"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/axsim-pack random "$work/ckpt" --arch qwen3 --seed 21 --hidden 64 --layers 2 --heads 4 \
    --kv-heads 2 --head-dim 16 --intermediate 128 --vocab-target 512 >/dev/null
target/release/axsim-pack hf "$work/ckpt" "$work/model" --chunk 16 --context 127 --prefill-history 16,32,64 >/dev/null
LINK=(-ldl -lgcc_s -lutil -lrt -lpthread -lm -lc)
aarch64-linux-gnu-gcc -std=c11 -Wall -Wextra -Werror -I include examples/c/main.c "$OUT/libaxllm.a" "${LINK[@]}" -o "$work/complete-arm64"
cc -std=c11 -Wall -Wextra -Werror -I include examples/c/main.c target/release/libaxllm.a "${LINK[@]}" -o "$work/complete-x86_64"
prompt=$'<|im_start|>user\nhello, how are you?<|im_end|>\n<|im_start|>assistant\n'
AXLLM_AXCL_LIB="$OUT/libaxcl_sim.so" "${QEMU[@]}" "$work/complete-arm64" "$work/model" "$prompt" 24 >"$work/c-arm64.txt" 2>"$work/c-arm64.err" ||
    { cat "$work/c-arm64.err" >&2; exit 1; }
AXLLM_AXCL_LIB="$PWD/target/release/libaxcl_sim.so" "$work/complete-x86_64" "$work/model" "$prompt" 24 >"$work/c-x86_64.txt" 2>/dev/null
if [ ! -s "$work/c-arm64.txt" ] || ! cmp -s "$work/c-arm64.txt" "$work/c-x86_64.txt"; then
    echo "arm64: the C example's output differs from x86_64's:" >&2
    diff <(cat -A "$work/c-x86_64.txt") <(cat -A "$work/c-arm64.txt") >&2 || true
    exit 1
fi
echo "C example (qemu-aarch64): $(wc -c <"$work/c-arm64.txt") bytes, equal to x86_64's: $(head -c 60 "$work/c-arm64.txt" | tr '\n' ' ')..."

stage "ollama serve (arm64, under qemu) vs x86_64"
AXLLM_ARM64_TARGET=$CARGO_TARGET_DIR AXLLM_ARM64_SYSROOT=$SYSROOT \
    .venv/bin/python -m pytest -q -p no:cacheprovider tests/python/test_arm64.py

stage "done"
