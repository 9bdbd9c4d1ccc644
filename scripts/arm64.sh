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
#      QEMU_TESTS below; AXLLM_ARM64_FULL=1 builds and runs all of it), part
#      of it again with the 16K pages of the Pi 5's kernel, the C example
#      against the arm64 static library (4K and 16K pages), and `ollama serve`
#      of arm64 on the arm64 simulator (tests/python/test_arm64.py): a model
#      created from a package answers a greedy chat exactly as the x86_64
#      build does.
#
# Every aarch64 program runs through scripts/qemu-aarch64-run, which starts it
# through the aarch64 dynamic loader under qemu-aarch64: bookworm's qemu-user
# 7.2 hangs in the first pthread_create of a dynamically linked program
# started the usual way (`qemu-aarch64 -L /usr/aarch64-linux-gnu PROGRAM`).
#
# Environment: AXLLM_ARM64=0 skips the lane (test.sh runs it by default; its
# time is in README "Building on the Pi"); AXLLM_ARM64_FULL=1 builds the whole
# workspace (examples too) and runs the whole Rust suite under qemu;
# AXLLM_ARM64_TARGET_DIR replaces target/aarch64; GOCACHE is Go's as usual
# (the arm64 half of the cache it fills stays for the next run).
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
# libstdc++-12-dev-arm64-cross: Ollama's mlx package links -lstdc++ (no C++ is compiled).
PACKAGES=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    libstdc++-12-dev-arm64-cross qemu-user)

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
# AXLLM_ARM64_TARGET_DIR: another build directory (a cold build is measured in a fresh one).
export CARGO_TARGET_DIR=${AXLLM_ARM64_TARGET_DIR:-$PWD/target/aarch64}
export CARGO_BUILD_TARGET=$TRIPLE
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
RUN=$PWD/scripts/qemu-aarch64-run
export AXLLM_ARM64_SYSROOT=$SYSROOT
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=$RUN
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# One profile for every artifact: dev gets the test profile's opt-level
# (Cargo.toml's [profile.test]), so the test binaries, libaxllm.a and the
# simulator share each compiled crate instead of building the workspace twice.
# No debug info (a panic still names its file and line; only a backtrace
# loses them) and no incremental state: less to compile, link and store for
# a build that CI does from scratch.
export CARGO_PROFILE_DEV_OPT_LEVEL=1 CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0
# The lane's simulator library and libaxllm.a (for Ollama and the C example),
# linked here from what the test build compiled (see the cross-build below).
LANE=$CARGO_TARGET_DIR/lane
SIM=$LANE/libaxcl_sim.so
# The tests find the aarch64 simulator by this name (axllm-testkit): their
# own path, from which they would find it, is the loader's under $RUN.
export AXLLM_TEST_SIM_LIB=$SIM
QEMU=("$RUN")
# The Pi 5's kernel (bcm2712) uses 16K pages; qemu-user reports and maps with
# the page size QEMU_PAGESIZE names (its -p), which is what a program sees of it.
PI5_PAGES=16384
echo "arm64: $("$RUSTC" --version) ($RUSTC), $("$CARGO" --version), $(qemu-aarch64 --version | head -n1)"

# The Rust suite under qemu (the RUNNER above: every test binary runs as
# `scripts/qemu-aarch64-run <binary>`). By default a subset
# that fits CI's budget and covers what differs on aarch64: every unit test of
# every crate (the simulator's math, the core's parsing, packing, sampling and
# memory accounting, the C ABI's boundary with its unsigned c_char); the C
# ABI end to end (capi); the simulator as a runtime library loaded with
# dlopen, every vendor call and struct through the vendor ABI (runtime,
# optional, runtime_library); generation on the simulator across the vendor
# package layouts, checked against the reference (core); pinned host memory
# and its alignment, the memory guard (fidelity). Only those test binaries are
# built. AXLLM_ARM64_FULL=1 builds the whole workspace and runs every test.
QEMU_TESTS=(--lib --test capi --test runtime --test optional --test runtime_library --test core --test fidelity)
# Run again with the Pi 5's 16K pages: what maps files and memory.
PAGE_TESTS=(--test runtime --test runtime_library --test core --test fidelity)
if [ "${AXLLM_ARM64_FULL:-0}" = 1 ]; then
    QEMU_TESTS=()
fi

# xtask is the host's code generator (bindgen needs the host's libclang): not built.
stage "cross-build (test binaries, with them the simulator and the C ABI static library)"
# One cargo invocation, so every dependency compiles once, with the features
# the tests unify. The test binaries depend on axcl-sim and axllm-capi, which
# it therefore compiles as whole libraries: libaxcl_sim.so and libaxllm.a
# (their code is the same whatever features the tests add to third-party
# crates; axllm-core's `internals` only widens visibility). The lane uses
# those two files, named by cargo's artifact messages, rather than building
# them again in separate invocations: such a build unifies other features and
# compiled the dependencies twice; and because cargo names a path package's
# cdylib without a hash, a `cargo build -p axcl-sim` and the test build
# overwrote each other's libaxcl_sim.rlib, so each rebuilt the simulator and
# every test binary on every run, warm or not.
mkdir -p "$CARGO_TARGET_DIR"
"$CARGO" test -q --workspace --exclude xtask --no-run --message-format=json-render-diagnostics "${QEMU_TESTS[@]}" \
    >"$CARGO_TARGET_DIR/test-build.json"
# lane_lib NAME STEM EXT: links into $LANE as STEM.EXT the file STEM[-hash].EXT
# of the library target NAME that the build above wrote.
lane_lib() {
    local file
    file=$(grep '"reason":"compiler-artifact"' "$CARGO_TARGET_DIR/test-build.json" | grep -F "\"name\":\"$1\",\"src_path\"" |
        grep -oE "\"[^\"]*/$2(-[0-9a-f]+)?\.$3\"" | tr -d '"' | sort -u)
    [ -n "$file" ] && [ "$(printf '%s\n' "$file" | wc -l)" -eq 1 ] ||
        { echo "arm64: the test build wrote no single $2.$3 (found: '$file')" >&2; exit 1; }
    ln -f "$file" "$LANE/$2.$3"
}
mkdir -p "$LANE"
lane_lib axcl_sim libaxcl_sim so
lane_lib axllm libaxllm a
# machine FILE: checks that FILE (an archive's first member) is built for aarch64.
machine() {
    local m
    # All of readelf's output is read (an early exit would SIGPIPE it under pipefail).
    m=$(aarch64-linux-gnu-readelf -h "$1" 2>/dev/null | sed -n 's/^ *Machine: *//p')
    m=${m%%$'\n'*}
    printf '%s: %s\n' "${1#"$PWD"/}" "${m:-not an ELF file}"
    [ "$m" = AArch64 ] || { echo "arm64: ${1#"$PWD"/} is not an aarch64 build" >&2; exit 1; }
}
machine "$SIM"; machine "$LANE/libaxllm.a"

stage "cross-build (Ollama for linux/arm64)"
GOARCH=arm64 GOOS=linux CC=aarch64-linux-gnu-gcc AX650_LIB_DIR=$LANE OLLAMA_LLAMA_SERVER=0 \
    bash ollama-patch/build.sh ollama
machine "$CARGO_TARGET_DIR/ollama"

# cargo -v prints each binary's command line: `Running `.../qemu-aarch64-run <binary>``.
qemu_tests() {
    local log=$1 rc=0; shift
    "$CARGO" test -v --workspace --exclude xtask "$@" >"$log" 2>&1 || rc=$?
    grep -E '^\s*Running|^test result|FAILED|panicked' "$log" | sed "s|$PWD/||g" || true
    [ "$rc" -eq 0 ] || { tail -n 60 "$log" >&2; echo "arm64: Rust tests failed under qemu (log: $log)" >&2; exit 1; }
}
stage "Rust tests under qemu-aarch64 (${QEMU[*]#"$PWD"/}; ${QEMU_TESTS[*]:-the full suite})"
qemu_tests "$CARGO_TARGET_DIR/rust-tests.log" "${QEMU_TESTS[@]}"
stage "Rust tests under qemu-aarch64 with ${PI5_PAGES}-byte pages (${PAGE_TESTS[*]})"
QEMU_PAGESIZE=$PI5_PAGES qemu_tests "$CARGO_TARGET_DIR/rust-tests-16k.log" "${PAGE_TESTS[@]}"

# The host's release tools: the x86_64 side of the comparisons below, and the
# packer of the model both architectures load (packages are portable).
# host CMD...: CMD without the cross build's environment (exported above),
# which would make cargo build for aarch64 into target/aarch64 again.
host() {
    env -u RUSTC -u RUSTDOC -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u CARGO_INCREMENTAL \
        -u CARGO_PROFILE_DEV_OPT_LEVEL -u CARGO_PROFILE_DEV_DEBUG -u AXLLM_TEST_SIM_LIB "$@"
}
# Built exactly as test.sh (the simulator and the packer) and
# ollama-patch/build.sh (libaxllm.a) build them, which ./test.sh has done
# before this lane: fresh then. (Built in one invocation, the three would
# unify their dependencies' features differently and rebuild the simulator,
# whose files cargo names without a hash.)
stage "host build (x86_64 side of the comparisons)"
host cargo build -q --release -p axcl-sim -p axsim-pack
host cargo build -q --release -p axllm-capi
[ -x target/ollama ] || host env OLLAMA_LLAMA_SERVER=0 bash ollama-patch/build.sh ollama

stage "C example under qemu (arm64 libaxllm.a; 4K and ${PI5_PAGES}-byte pages) vs x86_64"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/axsim-pack random "$work/ckpt" --arch qwen3 --seed 21 --hidden 64 --layers 2 --heads 4 \
    --kv-heads 2 --head-dim 16 --intermediate 128 --vocab-target 512 >/dev/null
target/release/axsim-pack hf "$work/ckpt" "$work/model" --chunk 16 --context 127 --prefill-history 16,32,64 >/dev/null
LINK=(-ldl -lgcc_s -lutil -lrt -lpthread -lm -lc)
aarch64-linux-gnu-gcc -std=c11 -Wall -Wextra -Werror -I include examples/c/main.c "$LANE/libaxllm.a" "${LINK[@]}" -o "$work/complete-arm64"
cc -std=c11 -Wall -Wextra -Werror -I include examples/c/main.c target/release/libaxllm.a "${LINK[@]}" -o "$work/complete-x86_64"
prompt=$'<|im_start|>user\nhello, how are you?<|im_end|>\n<|im_start|>assistant\n'
AXLLM_AXCL_LIB="$PWD/target/release/libaxcl_sim.so" "$work/complete-x86_64" "$work/model" "$prompt" 24 >"$work/c-x86_64.txt" 2>/dev/null
for pages in 4096 "$PI5_PAGES"; do
    got=$work/c-arm64-$pages.txt
    QEMU_PAGESIZE=$pages AXLLM_AXCL_LIB="$SIM" "${QEMU[@]}" "$work/complete-arm64" "$work/model" "$prompt" 24 \
        >"$got" 2>"$work/c-arm64.err" || { cat "$work/c-arm64.err" >&2; exit 1; }
    if [ ! -s "$got" ] || ! cmp -s "$got" "$work/c-x86_64.txt"; then
        echo "arm64: the C example's output ($pages-byte pages) differs from x86_64's:" >&2
        diff <(cat -A "$work/c-x86_64.txt") <(cat -A "$got") >&2 || true
        exit 1
    fi
    echo "C example (QEMU_PAGESIZE=$pages qemu-aarch64 through ${QEMU[*]#"$PWD"/}): $(wc -c <"$got") bytes, equal to x86_64's: $(head -c 60 "$got" | tr '\n' ' ')..."
done

stage "ollama serve (arm64, under qemu) vs x86_64"
host env AXLLM_ARM64_TARGET="$CARGO_TARGET_DIR" AXLLM_ARM64_SIM="$SIM" AXLLM_ARM64_RUN="$RUN" \
    .venv/bin/python -m pytest -q -p no:cacheprovider tests/python/test_arm64.py

stage "done"
echo "arm64 lane CPU time (user, system; of the script, then of its children):"
times
