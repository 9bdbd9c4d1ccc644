#!/usr/bin/env bash
# Builds Ollama (the release in OLLAMA_VERSION below) with native AX650 (axmodel) support.
#
#   ollama-patch/build.sh [build]   obtain -> copy -> patch -> cargo build -> go build,
#                                   then llama-server and llama-quantize (GGUF models)
#   ollama-patch/build.sh ollama    only the ollama binary
#   ollama-patch/build.sh llama     only llama-server and llama-quantize
#   ollama-patch/build.sh test      run the AX650 Go tests in the patched tree (no Rust needed)
#   ollama-patch/build.sh test-all  run Ollama's own test suites of every patched package
#   ollama-patch/build.sh prepare   only obtain, copy and patch the source tree
#   ollama-patch/build.sh clean     remove the build directories
#
# The binary goes to <target>/ollama; llama-server, llama-quantize and their
# libraries to <target>/lib/ollama, where the binary looks for them (as a
# stock install keeps them in lib/ollama beside bin/ollama).
#
# Environment:
#   OLLAMA_SRC        use this Ollama checkout (of OLLAMA_VERSION) instead of the Go module
#   AX650_BUILD_DIR   patched source tree (default: ollama-patch/build/ollama)
#   AX650_TAG=0       build without the ax650 tag: a plain Ollama whose axmodel
#                     models fail with "built without AX650 support"
#   CARGO_TARGET_DIR  where cargo puts libaxllm.a (default: <repo>/target)
#   CARGO_BUILD_TARGET  cross-compile libaxllm.a for this Rust target (it is
#                     then in <target>/<triple>/release); set Go's GOARCH and
#                     CC to match (scripts/arm64.sh: aarch64-unknown-linux-gnu,
#                     GOARCH=arm64 CC=aarch64-linux-gnu-gcc)
#   AX650_CARGO_PROFILE=dev  link the dev-profile libaxllm.a (<target>/debug)
#                     instead of release: a build that already compiled the
#                     workspace in that profile compiles nothing twice
#   AX650_LIB_DIR     link the libaxllm.a in this directory as it is, without
#                     running cargo (scripts/arm64.sh: the one its test build
#                     compiled)
#   AXLLM_NATIVE_LIBS extra linker flags for the Rust static library
#   GO, CARGO         the toolchains to use (default: go, cargo)
#   LLAMA_CPP_SRC     build llama-server from this llama.cpp tree instead of
#                     the one vendored in llama-cpp-python's source release
#   OLLAMA_LLAMA_SERVER=0  skip llama-server: GGUF models then fail with
#                     Ollama's "llama-server binary not found" and how to build it
#   AX650_CACHE_DIR   where downloads are kept (default: ollama-patch/build/cache)
#   AX650_LLAMA_BUILD_DIR  CMake build directory of llama-server (default:
#                     ollama-patch/build/llama-server-cpu)
#
# The source tree is recreated from a pristine copy whenever the patches or
# new files change, and reused otherwise, so re-running is cheap. Needs Go
# >= 1.26 with cgo (a C compiler), Rust, and patch(1); llama-server also
# needs CMake >= 3.24, a C++ compiler, git and Python's pip. Works on x86_64
# and arm64 Linux (for example a Raspberry Pi 5 with an LLM8850 card).
set -euo pipefail

OLLAMA_MODULE=github.com/ollama/ollama
# The one place that names the Ollama release the patches are for.
OLLAMA_VERSION=v0.34.4
VERSION_STRING=${OLLAMA_VERSION#v}-ax650

# Ollama builds llama-server with CMake from llama.cpp fetched from GitHub
# (its LLAMA_CPP_VERSION). Without GitHub, the llama.cpp vendored in this
# source release of llama-cpp-python (from PyPI) stands in: llama.cpp
# 0c1e57098 (b11312, 2026-10-01), newer than Ollama v0.34.4's b11081.
LLAMA_CPP_PYTHON=0.3.36

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD_DIR=${AX650_BUILD_DIR:-$HERE/build/ollama}
GO=${GO:-go}
CARGO=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# Where cargo puts libaxllm.a (a cross build has its triple's directory).
case "${AX650_CARGO_PROFILE:-release}" in
release) CARGO_PROFILE_ARGS=(--release) PROFILE_DIR=release ;;
dev) CARGO_PROFILE_ARGS=() PROFILE_DIR=debug ;;
*) printf 'build.sh: AX650_CARGO_PROFILE is release or dev, not %s\n' "$AX650_CARGO_PROFILE" >&2; exit 1 ;;
esac
LIB_DIR=${AX650_LIB_DIR:-$TARGET_DIR/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}$PROFILE_DIR}
CACHE_DIR=${AX650_CACHE_DIR:-$HERE/build/cache}
LLAMA_BUILD_DIR=${AX650_LLAMA_BUILD_DIR:-$HERE/build/llama-server-cpu}
# -buildvcs=false: the build tree may sit inside this repository's checkout.
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

check_go() {
	command -v "$GO" >/dev/null || die "Go not found (need Go >= 1.26: https://go.dev/dl/)"
	local v
	v=$("$GO" env GOVERSION)
	v=${v#go}
	local major=${v%%.*} rest=${v#*.}
	local minor=${rest%%.*}
	if (( major < 1 || (major == 1 && minor < 26) )); then
		die "Go $v is too old: Ollama $OLLAMA_VERSION needs Go >= 1.26"
	fi
}

# source_dir prints the directory holding pristine Ollama sources.
source_dir() {
	if [[ -n "${OLLAMA_SRC:-}" ]]; then
		[[ -f "$OLLAMA_SRC/go.mod" ]] || die "OLLAMA_SRC=$OLLAMA_SRC has no go.mod"
		grep -q "^module $OLLAMA_MODULE\$" "$OLLAMA_SRC/go.mod" || die "OLLAMA_SRC=$OLLAMA_SRC is not $OLLAMA_MODULE"
		if [[ -d "$OLLAMA_SRC/.git" ]] && command -v git >/dev/null; then
			local tag
			tag=$(git -C "$OLLAMA_SRC" describe --tags --exact-match 2>/dev/null || true)
			[[ "$tag" == "$OLLAMA_VERSION" ]] || log "warning: OLLAMA_SRC is at '${tag:-an untagged commit}', the patches are for $OLLAMA_VERSION"
		fi
		(cd "$OLLAMA_SRC" && pwd)
		return
	fi
	local json dir
	# Outside any module, so that the download does not touch a go.mod.
	json=$(cd / && GO111MODULE=on GOFLAGS=-mod=mod "$GO" mod download -json "$OLLAMA_MODULE@$OLLAMA_VERSION") ||
		die "go mod download $OLLAMA_MODULE@$OLLAMA_VERSION failed (set OLLAMA_SRC to use a checkout)"
	dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
	[[ -n "$dir" && -d "$dir" ]] || die "could not find the downloaded module's directory in: $json"
	printf '%s\n' "$dir"
}

# stamp identifies the source and the patch set applied to the build tree.
stamp() {
	{
		printf '%s %s\n' "$1" "$OLLAMA_VERSION"
		(cd "$HERE" && find patches files -type f | LC_ALL=C sort | while read -r f; do
			printf '%s ' "$f"
			cksum <"$f"
		done)
	} | cksum
}

prepare() {
	check_go
	command -v patch >/dev/null || die "patch(1) not found (apt-get install patch)"
	local src want
	src=$(source_dir)
	want=$(stamp "$src")
	if [[ -f "$BUILD_DIR/.ax650-stamp" && "$(cat "$BUILD_DIR/.ax650-stamp")" == "$want" ]]; then
		log "source tree is already patched: $BUILD_DIR"
		return
	fi
	log "copying pristine Ollama $OLLAMA_VERSION from $src"
	rm -rf "$BUILD_DIR"
	mkdir -p "$(dirname "$BUILD_DIR")"
	cp -R "$src" "$BUILD_DIR"
	chmod -R u+w "$BUILD_DIR" # the module cache is read-only
	rm -rf "$BUILD_DIR/.git"

	local p
	for p in "$HERE"/patches/*.patch; do
		log "applying $(basename "$p")"
		patch -d "$BUILD_DIR" -p1 --forward --batch --no-backup-if-mismatch --quiet -i "$p" ||
			die "$(basename "$p") does not apply to $src (is it Ollama $OLLAMA_VERSION?)"
	done
	log "adding the AX650 files"
	(cd "$HERE/files" && find . -type f | while read -r f; do
		mkdir -p "$BUILD_DIR/$(dirname "$f")"
		cp "$f" "$BUILD_DIR/$f"
	done)
	printf '%s\n' "$want" >"$BUILD_DIR/.ax650-stamp"
}

build_rust() {
	if [[ -n "${AX650_LIB_DIR:-}" ]]; then
		[[ -f "$LIB_DIR/libaxllm.a" ]] || die "AX650_LIB_DIR=$LIB_DIR has no libaxllm.a"
		log "linking $LIB_DIR/libaxllm.a (AX650_LIB_DIR: cargo is not run)"
		return
	fi
	command -v "$CARGO" >/dev/null || die "cargo not found (https://rustup.rs)"
	log "building libaxllm.a (cargo build ${CARGO_PROFILE_ARGS[*]} -p axllm-capi${CARGO_BUILD_TARGET:+ for $CARGO_BUILD_TARGET})"
	(cd "$ROOT" && "$CARGO" build "${CARGO_PROFILE_ARGS[@]}" -p axllm-capi)
	[[ -f "$LIB_DIR/libaxllm.a" ]] || die "$LIB_DIR/libaxllm.a was not built"
}

build_go() {
	# One output per platform: a cross build does not replace the host's.
	local tags=() out
	out="$BUILD_DIR/ollama-$("$GO" env GOOS)-$("$GO" env GOARCH)"
	if [[ "${AX650_TAG:-1}" != 0 ]]; then
		tags=(-tags ax650)
	fi
	log "building ollama ${tags[*]:-(without AX650 support)}"
	# Go does not hash libaxllm.a: remove the binary so that it is relinked.
	rm -f "$out"
	(
		cd "$BUILD_DIR"
		export CGO_ENABLED=1
		export CGO_CFLAGS="-I$ROOT/include ${CGO_CFLAGS:--O2 -g}"
		export CGO_LDFLAGS="-L$LIB_DIR ${AXLLM_NATIVE_LIBS:-} ${CGO_LDFLAGS:--O2 -g}"
		"$GO" build "${tags[@]}" -trimpath \
			-ldflags "-X=github.com/ollama/ollama/version.Version=$VERSION_STRING -X=github.com/ollama/ollama/server.mode=release" \
			-o "$out" .
	)
	install_binary "$out" "$TARGET_DIR/ollama"
	log "built $out (installed as $TARGET_DIR/ollama)"
}

# install_binary copies src to dst through a temporary file in dst's
# directory and a rename, so a dst that is running (`ollama serve`) keeps its
# old inode and the copy never fails with "Text file busy".
install_binary() {
	local src=$1 dst=$2 tmp
	mkdir -p "$(dirname "$dst")"
	tmp=$(mktemp "$(dirname "$dst")/.$(basename "$dst").XXXXXX")
	cp "$src" "$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$dst" || { rm -f "$tmp"; die "installing $dst failed"; }
}

# The AX650 tests: untagged, so they need neither Rust nor an NPU.
AX650_TESTS='AX650|AXModel'

run_tests() {
	cd "$BUILD_DIR"
	log "go test (AX650 tests)"
	"$GO" test -count=1 -run "$AX650_TESTS" ./server/ ./llm/ ./parser/
	"$GO" test -count=1 ./x/ax650runner/
	"$GO" test -count=1 -run Completions ./middleware/
	log "go vet"
	"$GO" vet ./x/ax650runner/ ./llm/ ./server/ ./parser/ ./middleware/ ./cmd/

	# With the Rust library built: the tagged (cgo) build too, and the real
	# engine against the simulator when it is built (cargo build --release -p axcl-sim -p axsim-pack).
	local lib="$TARGET_DIR/release/libaxllm.a" sim="$TARGET_DIR/release/libaxcl_sim.so" pack="$TARGET_DIR/release/axsim-pack"
	if [[ ! -f "$lib" ]]; then
		log "skipping the tagged tests: $lib is not built"
		return
	fi
	export CGO_ENABLED=1
	export CGO_CFLAGS="-I$ROOT/include ${CGO_CFLAGS:--O2 -g}"
	export CGO_LDFLAGS="-L$TARGET_DIR/release ${AXLLM_NATIVE_LIBS:-} ${CGO_LDFLAGS:--O2 -g}"
	log "go vet -tags ax650"
	"$GO" vet -tags ax650 ./x/ax650runner/ ./llm/ ./server/ ./parser/
	if [[ -f "$sim" && -x "$pack" ]]; then
		local tmp
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' RETURN
		"$pack" random "$tmp/ckpt" --arch qwen3 >/dev/null
		"$pack" hf "$tmp/ckpt" "$tmp/model" --chunk 16 --context 255 --prefill-history 32,64,128 >/dev/null
		log "go test -tags ax650 (the axllm engine on the simulator)"
		AXLLM_AXCL_LIB="$sim" AX650_TEST_MODEL_DIR="$tmp/model" "$GO" test -count=1 -tags ax650 ./x/ax650runner/
	else
		log "go test -tags ax650 (the engine tests skip: $sim or $pack is missing)"
		"$GO" test -count=1 -tags ax650 ./x/ax650runner/
	fi
	"$GO" test -count=1 -tags ax650 -run "$AX650_TESTS" ./llm/ ./server/ ./parser/
}

# Every package the patches touch or add files to (untagged: Ollama's own
# suites need no Rust).
PATCHED_PACKAGES=(./server/ ./llm/ ./parser/ ./manifest/ ./model/renderers/ ./model/parsers/ ./cmd/ ./middleware/ ./x/ax650runner/)

run_all_tests() {
	cd "$BUILD_DIR"
	log "go test (Ollama's suites of every patched package)"
	"$GO" test -count=1 "${PATCHED_PACKAGES[@]}"
}

# llama_source prints a llama.cpp tree for FetchContent: LLAMA_CPP_SRC, or
# the one vendored in llama-cpp-python's sdist (downloaded once into the cache).
llama_source() {
	if [[ -n "${LLAMA_CPP_SRC:-}" ]]; then
		[[ -f "$LLAMA_CPP_SRC/CMakeLists.txt" && -d "$LLAMA_CPP_SRC/ggml" ]] || die "LLAMA_CPP_SRC=$LLAMA_CPP_SRC is not a llama.cpp tree"
		(cd "$LLAMA_CPP_SRC" && pwd)
		return
	fi
	local tree="$HERE/build/llama.cpp-$LLAMA_CPP_PYTHON" sdist="$CACHE_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz"
	if [[ ! -f "$tree/.ax650-extracted" ]]; then
		if [[ ! -f "$sdist" ]]; then
			local py=${PYTHON:-python3}
			if ! "$py" -m pip --version >/dev/null 2>&1 && [[ -z "${PYTHON:-}" && -x "$ROOT/.venv/bin/python" ]]; then
				py=$ROOT/.venv/bin/python # scripts/setup.sh's environment
			fi
			"$py" -m pip --version >/dev/null 2>&1 || die "pip is needed to download llama-cpp-python's source (apt-get install python3-pip), or set LLAMA_CPP_SRC"
			log "downloading llama-cpp-python $LLAMA_CPP_PYTHON's source (it vendors llama.cpp)"
			mkdir -p "$CACHE_DIR"
			"$py" -m pip download -q --no-binary :all: --no-deps -d "$CACHE_DIR" "llama-cpp-python==$LLAMA_CPP_PYTHON" >&2 ||
				[[ -f "$sdist" ]] || die "could not download llama-cpp-python==$LLAMA_CPP_PYTHON from PyPI (set LLAMA_CPP_SRC to a llama.cpp tree)"
		fi
		log "extracting llama.cpp from $(basename "$sdist")"
		rm -rf "$tree" "$tree.tmp"
		mkdir -p "$tree.tmp"
		tar -xzf "$sdist" -C "$tree.tmp" --strip-components=3 "llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp" ||
			die "$sdist has no vendor/llama.cpp"
		rm -f "$tree.tmp/.git" # a submodule link to nowhere; CMake applies Ollama's compat patch with git apply
		touch "$tree.tmp/.ax650-extracted"
		mv "$tree.tmp" "$tree"
	fi
	printf '%s\n' "$tree"
}

# build_llama builds llama-server and llama-quantize as Ollama's CMake does
# (llama/server, Ollama's compat patch applied to llama.cpp), for the CPU
# only, in one portable variant, and installs them into <target>/lib/ollama.
build_llama() {
	command -v cmake >/dev/null || die "cmake (>= 3.24) is needed for llama-server (apt-get install cmake), or set OLLAMA_LLAMA_SERVER=0"
	command -v git >/dev/null || die "git is needed to apply Ollama's llama.cpp compat patch (apt-get install git)"
	local src gen=() jobs
	src=$(llama_source)
	jobs=$(nproc 2>/dev/null || echo 2)
	command -v ninja >/dev/null && gen=(-G Ninja)
	if [[ -f "$LLAMA_BUILD_DIR/CMakeCache.txt" ]] && ! grep -q "^FETCHCONTENT_SOURCE_DIR_LLAMA_CPP:PATH=$src\$" "$LLAMA_BUILD_DIR/CMakeCache.txt"; then
		rm -rf "$LLAMA_BUILD_DIR" # configured for another llama.cpp tree
	fi
	log "building llama-server and llama-quantize (CMake, CPU, llama.cpp from $src)"
	cmake -S "$BUILD_DIR/llama/server" -B "$LLAMA_BUILD_DIR" "${gen[@]}" -Wno-dev \
		-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON \
		-DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_OPENMP=OFF -DOLLAMA_RUNNER_DIR= \
		-DFETCHCONTENT_SOURCE_DIR_LLAMA_CPP="$src" -DFETCHCONTENT_FULLY_DISCONNECTED=ON >&2
	cmake --build "$LLAMA_BUILD_DIR" -j "$jobs" --target llama-server llama-quantize ggml-cpu >&2
	# Install beside, then swap directories: a running llama-server keeps its files.
	local stage="$TARGET_DIR/lib/.ollama.new" old="$TARGET_DIR/lib/.ollama.old"
	rm -rf "$stage" "$old"
	cmake --install "$LLAMA_BUILD_DIR" --component llama-server --prefix "$TARGET_DIR/lib/.stage" >&2
	mv "$TARGET_DIR/lib/.stage/lib/ollama" "$stage"
	rm -rf "$TARGET_DIR/lib/.stage"
	[[ -x "$stage/llama-server" && -x "$stage/llama-quantize" ]] || die "llama-server or llama-quantize was not installed"
	if [[ -d "$TARGET_DIR/lib/ollama" ]]; then mv "$TARGET_DIR/lib/ollama" "$old"; fi
	mv "$stage" "$TARGET_DIR/lib/ollama"
	rm -rf "$old"
	log "installed llama-server and llama-quantize in $TARGET_DIR/lib/ollama"
}

case "${1:-build}" in
build)
	prepare
	if [[ "${AX650_TAG:-1}" != 0 ]]; then build_rust; fi
	build_go
	if [[ "${OLLAMA_LLAMA_SERVER:-1}" != 0 ]]; then build_llama; fi
	;;
ollama)
	prepare
	if [[ "${AX650_TAG:-1}" != 0 ]]; then build_rust; fi
	build_go
	;;
llama)
	prepare
	build_llama
	;;
prepare) prepare ;;
test)
	prepare
	run_tests
	;;
test-all)
	prepare
	run_all_tests
	;;
clean) rm -rf "$BUILD_DIR" "$LLAMA_BUILD_DIR" "$HERE/build/llama.cpp-$LLAMA_CPP_PYTHON" ;;
*) die "unknown command '$1' (build, ollama, llama, test, test-all, prepare, clean)" ;;
esac
