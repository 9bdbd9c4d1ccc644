#!/usr/bin/env bash
# The conformance kit for a card owner: one command, one markdown report.
#
#   scripts/conformance.sh [package-dir] [report.md]
#
# Runs, against the AXCL runtime selected by $AXLLM_AXCL_LIB (default: the
# vendor's /usr/lib/axcl/libaxcl_rt.so):
#   1. the runtime conformance checks and the timing probe (examples/conformance.rs),
#      each check DOCUMENTED or INFERRED with the docs/hardware-facts.md ids it settles;
#   2. `inspect` on the package (what the runtime reports about its files);
#   3. for a hybrid (Qwen3.5) package, `conform` (the facts only a card settles).
# The report (default: axllm-conformance-<date>.md here) is printed at the end:
# attach it to a bug report. Set CONFORMANCE_BIN_DIR to use prebuilt example
# binaries (a cross-build) instead of building them with cargo.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pkg="${1:-}"
out="${2:-$PWD/axllm-conformance-$(date -u +%Y%m%dT%H%M%SZ).md}"
bins="${CONFORMANCE_BIN_DIR:-}"
if [ -z "$bins" ]; then
    (cd "$root" && cargo build -q --release --example conformance --example inspect --example conform) || exit 2
    bins="$root/target/release/examples"
fi

args=(--out "$out")
[ -n "$pkg" ] && args=("$pkg" "${args[@]}")
"$bins/conformance" "${args[@]}"
status=$?
[ -f "$out" ] || { echo "conformance: no report written (exit $status)" >&2; exit 2; }

section() { # title, command...
    local title="$1"; shift
    {
        printf '\n## %s\n\n`%s`\n\n```\n' "$title" "$*"
        "$@" 2>&1
        printf '```\n(exit status %d)\n' "${PIPESTATUS[0]}"
    } >>"$out"
}
if [ -n "$pkg" ]; then
    section "Package (inspect)" "$bins/inspect" "$pkg"
    # Hybrid packages only: conform runs their linear and full layers.
    if "$bins/inspect" "$pkg" 2>/dev/null | grep -q "linear-attention layer" ||
       grep -q "linear_attention" "$pkg/config.json" 2>/dev/null; then
        section "Hybrid layers (conform)" "$bins/conform" "$pkg"
    fi
fi
{
    printf '\n## System\n\n```\n'
    uname -a
    [ -r /proc/cpuinfo ] && grep -m1 -E '^(model name|Model)[[:space:]]*:' /proc/cpuinfo
    command -v axcl-smi >/dev/null && axcl-smi 2>&1 | head -40
    printf '```\n'
} >>"$out"
echo "conformance report: $out"
exit $status
