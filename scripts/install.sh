#!/usr/bin/env bash
# Installs our Ollama (with AX650 NPU support) as a systemd service, over a
# stock Ollama or on its own, the way Ollama's installer lays things out.
#
#   scripts/install.sh [--prefix DIR] [--simulator] [--rebuild] [--from DIR]
#   scripts/install.sh --check         report what is present and missing; change nothing
#   scripts/install.sh --uninstall     put back what the install replaced, remove what it added
#
# Install:
#   - builds target/ollama if it is missing (or with --rebuild); run the script
#     as your user: it builds as you and asks sudo for the steps that need root
#   - <prefix>/bin/ollama: ours; a previous binary is kept in <prefix>/lib/axllm/install
#   - <prefix>/lib/ollama: an existing one (a stock Ollama's llama-server and GPU
#     backends) is kept as it is; ours is installed only where there is none
#   - /etc/systemd/system/ollama.service: user and group ollama (home
#     /usr/share/ollama, created when missing), OLLAMA_MAX_LOADED_MODELS=1, the
#     AXCL runtime from /usr/lib/axcl, Restart=always; a previous unit is kept
#   - /etc/udev/rules.d/axllm-axcl.rules: the card's device nodes belong to group
#     axcl (created when missing), a supplementary group of the service
#   - then enables and (re)starts the service
#
# --prefix DIR   default: the prefix of the existing unit's ExecStart, else /usr/local
# --simulator    the service runs AX650 models on the CPU simulator (no card needed;
#                slow, for trying the install); installs <prefix>/lib/axllm/libaxcl_sim.so
# --rebuild      build even if target/ollama exists
# --from DIR     install DIR/ollama and DIR/lib/ollama (and DIR/release/libaxcl_sim.so)
#                instead of the build in target/ (CARGO_TARGET_DIR)
# --force        uninstall even if someone changed the installed binary or unit since
# DESTDIR=DIR    stage the files under DIR; no users, groups, udev or systemd changes
#
# Environment: AXLLM_AXCL_DIR (default /usr/lib/axcl), AXLLM_INSTALL_PROBE_ROOT
# (tests: look for the card and runtime under this directory instead of /).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

ACTION=install PREFIX="" SIMULATOR=0 REBUILD=0 FORCE=0 FROM="" ELEVATED=0
ARGS=("$@")
while (($#)); do
    case "$1" in
        --prefix) [[ $# -ge 2 ]] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }
                  PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#--prefix=}; shift ;;
        --from) [[ $# -ge 2 ]] || { echo "install.sh: --from needs a directory" >&2; exit 2; }
                FROM=$2; shift 2 ;;
        --from=*) FROM=${1#--from=}; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        --check) ACTION=check; shift ;;
        --simulator) SIMULATOR=1; shift ;;
        --rebuild) REBUILD=1; shift ;;
        --force) FORCE=1; shift ;;
        --elevated) ELEVATED=1; shift ;;   # internal: the sudo re-run after building
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

D=${DESTDIR:-}
D=${D%/}
if [[ -n "$D" && "$D" != /* ]]; then
    D=$(pwd)/$D
fi
REAL=1
[[ -n "$D" ]] && REAL=0
PROBE=${AXLLM_INSTALL_PROBE_ROOT:-}
PROBE=${PROBE%/}
AXCL_DIR=${AXLLM_AXCL_DIR:-/usr/lib/axcl}
CARD_GROUP=axcl
SVC_USER=ollama
SVC_HOME=/usr/share/ollama
UNIT=/etc/systemd/system/ollama.service
UDEV_RULE=/etc/udev/rules.d/axllm-axcl.rules
# The AXCL device nodes (contract §11.5); p2p belongs to an optional module.
CARD_NODES=(axcl_host ax_mmb_dev msg_userdev p2p)
# The one place that names the Ollama release: ollama-patch/build.sh.
OUR_VERSION=$(sed -n 's/^OLLAMA_VERSION=v//p' "$ROOT/ollama-patch/build.sh")

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# The prefix of an existing unit's `ExecStart=<prefix>/bin/ollama serve`.
unit_prefix() {
    [[ -f "$D$UNIT" ]] || return 0
    sed -n 's|^ExecStart=\(/.*\)/bin/ollama serve.*$|\1|p' "$D$UNIT" | head -n1
}
if [[ -z "$PREFIX" ]]; then
    PREFIX=$(unit_prefix)
    PREFIX_FROM="the existing unit's ExecStart"
    if [[ -z "$PREFIX" ]]; then
        PREFIX=/usr/local PREFIX_FROM="default"
    fi
else
    PREFIX_FROM="--prefix"
fi
[[ "$PREFIX" == /* ]] || die "--prefix must be an absolute path, not '$PREFIX'"
PREFIX=${PREFIX%/}
BINDIR=$PREFIX/bin
LIBDIR=$PREFIX/lib/ollama
OURDIR=$PREFIX/lib/axllm
STATE=$OURDIR/install
SIM_LIB=$OURDIR/libaxcl_sim.so
FROM_DEFAULT=0
if [[ -z "$FROM" ]]; then
    FROM=$TARGET FROM_DEFAULT=1
fi
if [[ -d "$FROM" ]]; then
    FROM=$(cd "$FROM" && pwd)
elif ((!FROM_DEFAULT)); then
    die "--from: no directory '$FROM'"
fi

# version_of BINARY prints the client version an ollama binary reports, or nothing.
version_of() {
    OLLAMA_HOST=127.0.0.1:9 timeout 10 "$1" --version 2>&1 </dev/null |
        sed -n 's/.*version is \([^[:space:]]*\).*/\1/p' | tail -n1 || true
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- checks -------------------------------------------------------------------

RUNTIME=0 NODES=0 PCI=0 BLOCKERS=0 NEED_BUILD=0 NEED_LLAMA=0 SYSTEMD=0

check_card() {
    say "The card and its runtime:"
    if [[ -e "$PROBE$AXCL_DIR/libaxcl_rt.so" ]]; then
        RUNTIME=1
        say "  ok       AXCL runtime: $AXCL_DIR/libaxcl_rt.so"
    elif [[ -z "$PROBE" ]] && ldconfig -p 2>/dev/null | grep -q 'libaxcl_rt\.so'; then
        RUNTIME=1
        say "  ok       AXCL runtime: libaxcl_rt.so through the dynamic loader"
    else
        say "  missing  AXCL runtime (libaxcl_rt.so in $AXCL_DIR). Install AXERA's host"
        say "           package (deb 'axclhost', built for the LLM8850 by M5Stack too): it puts the"
        say "           runtime in /usr/lib/axcl, builds the kernel modules and adds the udev rule."
    fi
    local dev
    for dev in "$PROBE"/sys/bus/pci/devices/*; do
        if [[ -r "$dev/vendor" && -r "$dev/device" ]] &&
            [[ "$(cat "$dev/vendor")" == 0x1f4b && "$(cat "$dev/device")" == 0x0650 ]]; then
            PCI=1
            say "  ok       AX650 card on the PCIe bus: ${dev##*/}"
        fi
    done
    if ((!PCI)); then
        say "  missing  AX650 card on the PCIe bus (vendor 1f4b, device 0650). On a Raspberry Pi 5,"
        say "           /boot/firmware/config.txt needs 'dtparam=pciex1' and"
        say "           'dtoverlay=pciex1-compat-pi5,no-mip', then a reboot; 'lspci' should list it."
    fi
    local node missing=() mode group
    for node in "${CARD_NODES[@]}"; do
        if [[ -e "$PROBE/dev/$node" ]]; then
            mode=$(stat -c '%a' "$PROBE/dev/$node") group=$(stat -c '%G' "$PROBE/dev/$node")
            if (( (8#$mode & 8#006) == 8#006 )) || { [[ "$group" == "$CARD_GROUP" ]] && (( (8#$mode & 8#060) == 8#060 )); }; then
                say "  ok       /dev/$node (mode $mode, group $group): the service can open it"
            else
                say "  note     /dev/$node (mode $mode, group $group): the service reaches it once the"
                say "           udev rule gives it group $CARD_GROUP with read/write for the group"
            fi
        elif [[ "$node" != p2p ]]; then
            missing+=("/dev/$node")
        fi
    done
    if ((${#missing[@]})); then
        say "  missing  device nodes ${missing[*]}: the axclhost kernel modules are not loaded"
        say "           (sudo modprobe -a ax_pcie_host_dev ax_pcie_msg ax_pcie_mmb axcl_host; 'dmesg' says why)"
    else
        NODES=1
    fi
    if ((RUNTIME && NODES)); then
        if ((SIMULATOR)); then
            say "  => the card is ready, but --simulator: the service will run AX650 models on the CPU simulator"
        else
            say "  => the service will run AX650 models on the card"
        fi
    elif ((SIMULATOR)); then
        say "  => no usable card: the service will run AX650 models on the CPU simulator"
        say "     (--simulator; slow, for trying the install). GGUF models run on the CPU as usual."
    else
        say "  => no usable card: the service will install and run GGUF models, but AX650 models"
        say "     fail to load until the runtime and card above are in place. It uses the CPU"
        say "     simulator only if asked to: --simulator."
    fi
}

check_install() {
    say "Installing into ${D:-/} with prefix $PREFIX ($PREFIX_FROM):"
    local bin=$D$BINDIR/ollama v
    if [[ -f "$D$STATE/record" ]]; then
        say "  found    our install (record in $STATE): installing again keeps its backups"
    fi
    if [[ -e "$bin" || -L "$bin" ]]; then
        v=$(version_of "$bin")
        say "  found    $BINDIR/ollama (version ${v:-unknown})"
        if [[ -n "$v" && "$v" != *-ax650 && "$v" != "$OUR_VERSION" ]]; then
            warn "the existing Ollama is $v, ours is $OUR_VERSION: its lib/ollama (llama-server) follows"
            warn "its release; GGUF models may fail. Install stock Ollama $OUR_VERSION first to be safe."
        fi
    else
        say "  none     $BINDIR/ollama"
    fi
    if [[ -d "$D$LIBDIR" ]]; then
        if [[ -e "$D$LIBDIR/llama-server" ]]; then
            say "  found    $LIBDIR with llama-server: kept as it is (GGUF models keep working)"
        else
            say "  found    $LIBDIR without llama-server: kept as it is; GGUF models need a"
            say "           llama-server there (reinstall stock Ollama $OUR_VERSION, then this)"
        fi
    else
        say "  none     $LIBDIR: ours goes there (llama-server for GGUF models)"
        NEED_LLAMA=1
    fi
    if [[ -f "$D$UNIT" ]]; then
        say "  found    $UNIT: replaced, and kept for --uninstall"
    else
        say "  none     $UNIT"
    fi
    if [[ -d "$D$UNIT.d" ]]; then
        say "  found    $UNIT.d/ (local settings): left as it is; it applies to our unit too"
    fi
}

check_tools() {
    say "Building:"
    if [[ -x "$FROM/ollama" ]] && ((!REBUILD)); then
        say "  ok       $FROM/ollama (built $(date -r "$FROM/ollama" '+%Y-%m-%d %H:%M')); --rebuild builds it again"
    else
        NEED_BUILD=1
    fi
    if ((NEED_LLAMA)) && [[ ! -x "$FROM/lib/ollama/llama-server" ]]; then
        NEED_BUILD=1
    fi
    if ((SIMULATOR)) && [[ ! -f "$FROM/release/libaxcl_sim.so" ]]; then
        NEED_BUILD=1
    fi
    if ((!NEED_BUILD)); then
        return
    fi
    if ((!FROM_DEFAULT)); then
        say "  missing  in --from $FROM: ollama, lib/ollama/llama-server or release/libaxcl_sim.so"
        BLOCKERS=$((BLOCKERS + 1))
        return
    fi
    if [[ -x "$FROM/ollama" ]] && ((!REBUILD)); then
        say "  build    $FROM/lib/ollama/llama-server or release/libaxcl_sim.so is missing"
    else
        say "  build    $FROM/ollama (ollama-patch/build.sh)"
    fi
    local gov minor
    if command -v "${GO:-go}" >/dev/null; then
        gov=$("${GO:-go}" env GOVERSION 2>/dev/null || true)
        minor=$(printf '%s\n' "$gov" | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
        if [[ -n "$minor" ]] && ((minor >= 26)); then
            say "  ok       Go: $gov"
        else
            say "  missing  Go >= 1.26 (found ${gov:-an unknown version}; https://go.dev/dl/)"
            BLOCKERS=$((BLOCKERS + 1))
        fi
    else
        say "  missing  Go >= 1.26 with cgo (https://go.dev/dl/, the arm64 tarball on a Pi)"
        BLOCKERS=$((BLOCKERS + 1))
    fi
    if command -v "${CARGO:-cargo}" >/dev/null; then
        say "  ok       Rust: $("${CARGO:-cargo}" --version 2>/dev/null)"
    else
        say "  missing  Rust (cargo; https://rustup.rs)"
        BLOCKERS=$((BLOCKERS + 1))
    fi
    if ((NEED_LLAMA)); then
        local t missing=()
        for t in cmake c++ git; do
            command -v "$t" >/dev/null || missing+=("$t")
        done
        if ((${#missing[@]})); then
            say "  missing  ${missing[*]} (llama-server for GGUF models; sudo apt-get install cmake g++ git)"
            BLOCKERS=$((BLOCKERS + 1))
        else
            say "  ok       cmake, c++, git (llama-server for GGUF models; about 7 minutes of"
            say "           building on an idle 2-core x86 machine, not measured on a Pi)"
        fi
    fi
}

check_service() {
    say "The service:"
    if ((!REAL)); then
        say "  skipped  DESTDIR is set: no ollama user, $CARD_GROUP group, udev or systemd changes"
        return
    fi
    if ! command -v systemctl >/dev/null; then
        say "  missing  systemd (systemctl): files are installed, the service is not started"
        return
    fi
    local state
    state=$(systemctl is-system-running 2>/dev/null || true)
    case "$state" in
        running|degraded) SYSTEMD=1; say "  ok       systemd ($state)" ;;
        *) say "  missing  a running systemd ('${state:-unknown}'): the unit is installed, not started" ;;
    esac
    if id "$SVC_USER" >/dev/null 2>&1; then
        say "  found    user $SVC_USER"
    else
        say "  none     user $SVC_USER: created (system user, home $SVC_HOME, as Ollama's installer does)"
    fi
}

report() {
    check_card
    check_install
    check_tools
    check_service
}

# --- recording what the install did -----------------------------------------

declare -A REC=()
CREATED_DIRS=()

load_record() {
    local k v
    while IFS='=' read -r k v; do
        [[ -n "$k" ]] && REC[$k]=$v
    done <"$D$STATE/record"
    if [[ -f "$D$STATE/dirs" ]]; then
        mapfile -t CREATED_DIRS <"$D$STATE/dirs"
    fi
}

save_record() {
    local k
    for k in "${!REC[@]}"; do
        printf '%s=%s\n' "$k" "${REC[$k]}"
    done | LC_ALL=C sort >"$D$STATE/record.new"
    mv -f "$D$STATE/record.new" "$D$STATE/record"
    printf '%s\n' "${CREATED_DIRS[@]}" | sed '/^$/d' >"$D$STATE/dirs"
}

# mkdirs DIR creates DIR (a path on the target) and its parents, recording each
# one it creates so that --uninstall removes it again when empty.
mkdirs() {
    local path=$1 parts=() p
    while [[ "$path" != / && ! -d "$D$path" ]]; do
        parts=("$path" "${parts[@]}")
        path=$(dirname "$path")
    done
    for p in "${parts[@]}"; do
        mkdir -m 755 "$D$p"
        CREATED_DIRS+=("$p")
    done
}

# put SRC DEST MODE installs a file through a temporary name and a rename, so a
# running program keeps its old file.
put() {
    local tmp
    tmp="$(dirname "$2")/.$(basename "$2").axllm-new"
    cp "$1" "$tmp"
    chmod "$3" "$tmp"
    if ((REAL)); then chown 0:0 "$tmp"; fi
    mv -f "$tmp" "$2"
}

# restore BACKUP DEST puts a backup back with its bytes, mode, owner and times.
restore() {
    local tmp
    tmp="$(dirname "$2")/.$(basename "$2").axllm-restore"
    rm -f "$tmp"
    cp -a "$1" "$tmp"
    mv -f "$tmp" "$2"
}

# keep_previous NAME DEST: before DEST is replaced, back it up as NAME unless
# the file there is the one we installed (installing again).
keep_previous() {
    local name=$1 dest=$2
    if [[ -e "$dest" || -L "$dest" ]]; then
        if [[ -n "${REC[${name}_sha]:-}" && -f "$dest" && ! -L "$dest" ]] &&
            [[ "$(sha "$dest")" == "${REC[${name}_sha]}" ]]; then
            return
        fi
        if [[ -n "${REC[${name}_sha]:-}" ]]; then
            say "   $dest changed since our install: keeping the new one as the one to restore"
        fi
        rm -f "$D$STATE/backup/$name"
        cp -a "$dest" "$D$STATE/backup/$name"
        REC[had_$name]=1
    elif [[ -z "${REC[had_$name]:-}" ]]; then
        REC[had_$name]=0
    fi
}

render_unit() {
    local runtime_env path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    case ":$path:" in *":$BINDIR:"*) ;; *) path=$BINDIR:$path ;; esac
    runtime_env="# The AXCL runtime and the libraries it loads (AXERA's host package puts them there).
Environment=\"LD_LIBRARY_PATH=$AXCL_DIR\""
    if ((SIMULATOR)); then
        runtime_env+="
# --simulator: AX650 models run on the CPU stand-in for the runtime, not the card.
Environment=\"AXLLM_AXCL_LIB=$SIM_LIB\""
    fi
    local line
    while IFS= read -r line || [[ -n "$line" ]]; do
        case "$line" in
            @RUNTIME_ENV@) printf '%s\n' "$runtime_env" ;;
            *)
                line=${line//@BINDIR@/$BINDIR}
                line=${line//@CARD_GROUP@/$CARD_GROUP}
                line=${line//@UDEV_RULE@/$UDEV_RULE}
                line=${line//@PATH@/$path}
                printf '%s\n' "$line" ;;
        esac
    done <"$HERE/ollama-ax650.service.in"
}

render_udev_rule() {
    cat <<EOF
# Written by axllm's scripts/install.sh (removed by --uninstall). The device
# nodes of an AX650 / LLM8850 card belong to group $CARD_GROUP, a supplementary
# group of the ollama service. The mode stays what AXERA's axcl_host.rules sets;
# this file's name sorts after it so that the group holds.
KERNEL=="$(IFS='|'; echo "${CARD_NODES[*]}")", GROUP="$CARD_GROUP"
EOF
}

# --- install --------------------------------------------------------------------

build() {
    ((NEED_BUILD)) || return 0
    if ((REAL)) && [[ $(id -u) -eq 0 && -n "${SUDO_USER:-}" ]]; then
        die "a build is needed; run this script as $SUDO_USER, without sudo (it asks for sudo to install), or build first: bash ollama-patch/build.sh"
    fi
    if ((SIMULATOR)) && [[ ! -f "$FROM/release/libaxcl_sim.so" ]]; then
        step "building the simulator (cargo build --release -p axcl-sim)"
        (cd "$ROOT" && "${CARGO:-cargo}" build --release -q -p axcl-sim)
    fi
    local what=""
    if ((REBUILD)) || [[ ! -x "$FROM/ollama" ]]; then
        what=ollama
    fi
    if ((NEED_LLAMA)) && { ((REBUILD)) || [[ ! -x "$FROM/lib/ollama/llama-server" ]]; }; then
        what+=" llama"
    fi
    case "$what" in
        "ollama llama") step "building Ollama $OUR_VERSION with AX650 support and llama-server (bash ollama-patch/build.sh)"
                        bash "$ROOT/ollama-patch/build.sh" ;;
        ollama) step "building Ollama $OUR_VERSION with AX650 support (bash ollama-patch/build.sh ollama)"
                bash "$ROOT/ollama-patch/build.sh" ollama ;;
        " llama") step "building llama-server for GGUF models (bash ollama-patch/build.sh llama)"
                  bash "$ROOT/ollama-patch/build.sh" llama ;;
    esac
}

system_state() {
    # What to give back on --uninstall: was the previous service enabled, running?
    REC[prev_enabled]=$(systemctl is-enabled ollama 2>/dev/null || true)
    REC[prev_active]=$(systemctl is-active ollama 2>/dev/null || true)
}

do_install() {
    [[ -x "$FROM/ollama" ]] || die "no $FROM/ollama to install"
    if ((SIMULATOR)) && [[ ! -f "$FROM/release/libaxcl_sim.so" ]]; then
        die "--simulator: no $FROM/release/libaxcl_sim.so (cargo build --release -p axcl-sim)"
    fi
    local again=0
    if [[ -f "$D$STATE/record" ]]; then
        load_record
        again=1
    else
        if ((REAL && SYSTEMD)); then system_state; fi
        REC[prefix]=$PREFIX
    fi
    [[ "${REC[prefix]}" == "$PREFIX" ]] || die "the record in $STATE names prefix ${REC[prefix]}"
    mkdirs "$STATE/backup"
    save_record   # from here on, --uninstall can undo a half-done install

    step "installing $BINDIR/ollama"
    mkdirs "$BINDIR"
    keep_previous ollama "$D$BINDIR/ollama"
    put "$FROM/ollama" "$D$BINDIR/ollama" 755
    REC[ollama_sha]=$(sha "$D$BINDIR/ollama")
    save_record

    if [[ -d "$D$LIBDIR" && "${REC[added_lib]:-0}" != 1 ]]; then
        REC[added_lib]=0
        say "   kept $LIBDIR as it is"
    elif [[ -d "$FROM/lib/ollama" ]]; then
        step "installing $LIBDIR (llama-server for GGUF models)"
        REC[added_lib]=1
        save_record
        mkdirs "$(dirname "$LIBDIR")"
        rm -rf "$D$LIBDIR.axllm-new"
        cp -R "$FROM/lib/ollama" "$D$LIBDIR.axllm-new"
        chmod -R u+rwX,go+rX,go-w "$D$LIBDIR.axllm-new"
        if ((REAL)); then chown -R 0:0 "$D$LIBDIR.axllm-new"; fi
        rm -rf "$D$LIBDIR"
        mv "$D$LIBDIR.axllm-new" "$D$LIBDIR"
    else
        warn "no $FROM/lib/ollama and no $LIBDIR: GGUF models will not run (build it: bash ollama-patch/build.sh llama)"
    fi

    if ((SIMULATOR)); then
        step "installing $SIM_LIB (--simulator)"
        put "$FROM/release/libaxcl_sim.so" "$D$SIM_LIB" 644
    else
        rm -f "$D$SIM_LIB"
    fi

    step "installing $UNIT"
    mkdirs "$(dirname "$UNIT")"
    keep_previous unit "$D$UNIT"
    render_unit >"$D$STATE/ollama.service"
    put "$D$STATE/ollama.service" "$D$UNIT" 644
    rm -f "$D$STATE/ollama.service"
    REC[unit_sha]=$(sha "$D$UNIT")
    save_record

    step "installing $UDEV_RULE"
    mkdirs "$(dirname "$UDEV_RULE")"
    render_udev_rule >"$D$STATE/udev.rules"
    put "$D$STATE/udev.rules" "$D$UDEV_RULE" 644
    rm -f "$D$STATE/udev.rules"
    REC[sim]=$SIMULATOR
    save_record
    if ((again)); then say "   (installed again over our previous install)"; fi

    if ((!REAL)); then
        say "DESTDIR install: on the target system, as root:"
        say "  getent group $CARD_GROUP || groupadd -r $CARD_GROUP"
        say "  id $SVC_USER || useradd -r -s /bin/false -U -m -d $SVC_HOME $SVC_USER"
        say "  udevadm control --reload-rules && udevadm trigger"
        say "  systemctl daemon-reload && systemctl enable ollama && systemctl restart ollama"
        return
    fi
    if ! getent group "$CARD_GROUP" >/dev/null; then
        step "creating group $CARD_GROUP (the card's device nodes)"
        groupadd -r "$CARD_GROUP"
        REC[created_group]=1
    elif [[ -z "${REC[created_group]:-}" ]]; then
        REC[created_group]=0
    fi
    if ! id "$SVC_USER" >/dev/null 2>&1; then
        step "creating user $SVC_USER (home $SVC_HOME)"
        useradd -r -s /bin/false -U -m -d "$SVC_HOME" "$SVC_USER"
        REC[created_user]=1
    elif [[ -z "${REC[created_user]:-}" ]]; then
        REC[created_user]=0
    fi
    save_record
    if command -v udevadm >/dev/null; then
        udevadm control --reload-rules || true
        udevadm trigger --action=change "${CARD_NODES[@]/#/--sysname-match=}" || true
    fi
    if ((SYSTEMD)); then
        step "enabling and starting the ollama service"
        systemctl daemon-reload
        systemctl enable ollama
        systemctl restart ollama
    fi
}

summary() {
    say ""
    say "Installed Ollama $OUR_VERSION with AX650 support: $BINDIR/ollama"
    say "  create a model:  printf 'FROM /path/to/Qwen3-4B\\n' > Modelfile && ollama create qwen3-4b-ax650 -f Modelfile"
    say "  run it:          ollama run qwen3-4b-ax650"
    say "  logs:            journalctl -u ollama -f"
    say "  back to before:  scripts/install.sh --uninstall${PREFIX_ARG:-}"
}

# --- uninstall ------------------------------------------------------------------

do_uninstall() {
    [[ -f "$D$STATE/record" ]] ||
        die "nothing to uninstall: no record of our install in ${D}$STATE (wrong --prefix or DESTDIR?)"
    load_record
    local name dest changed=()
    for name in ollama unit; do
        case $name in ollama) dest=$D$BINDIR/ollama ;; unit) dest=$D$UNIT ;; esac
        if [[ -n "${REC[${name}_sha]:-}" ]] &&
            { [[ ! -f "$dest" ]] || [[ "$(sha "$dest")" != "${REC[${name}_sha]}" ]]; }; then
            changed+=("$dest")
        fi
    done
    if ((${#changed[@]})) && ((!FORCE)); then
        die "changed since our install: ${changed[*]}; nothing was touched. --force puts the previous files back anyway"
    fi
    local sysd=0
    if ((REAL)) && command -v systemctl >/dev/null; then
        case "$(systemctl is-system-running 2>/dev/null || true)" in running|degraded) sysd=1 ;; esac
    fi
    if ((sysd)); then
        step "stopping the ollama service"
        systemctl stop ollama || true
        [[ "${REC[had_unit]:-0}" == 1 ]] || systemctl disable ollama || true
    fi
    for name in ollama unit; do
        case $name in ollama) dest=$D$BINDIR/ollama ;; unit) dest=$D$UNIT ;; esac
        if [[ "${REC[had_$name]:-0}" == 1 ]]; then
            step "restoring ${dest#"$D"}"
            restore "$D$STATE/backup/$name" "$dest"
        elif [[ -n "${REC[had_$name]:-}" ]]; then
            step "removing ${dest#"$D"}"
            rm -f "$dest"
        fi
    done
    if [[ "${REC[added_lib]:-0}" == 1 ]]; then
        step "removing $LIBDIR (ours)"
        rm -rf "$D$LIBDIR"
    fi
    step "removing $UDEV_RULE"
    rm -f "$D$UDEV_RULE" "$D$SIM_LIB"
    if ((REAL)); then
        if [[ "${REC[created_group]:-0}" == 1 ]] && getent group "$CARD_GROUP" >/dev/null; then
            step "removing group $CARD_GROUP"
            groupdel "$CARD_GROUP" || warn "could not remove group $CARD_GROUP"
        fi
        if command -v udevadm >/dev/null; then
            udevadm control --reload-rules || true
            udevadm trigger --action=change "${CARD_NODES[@]/#/--sysname-match=}" || true
        fi
        if ((sysd)); then
            systemctl daemon-reload
            if [[ "${REC[had_unit]:-0}" == 1 ]]; then
                case "${REC[prev_enabled]:-}" in
                    enabled) systemctl enable ollama ;;
                    disabled) systemctl disable ollama || true ;;
                esac
                if [[ "${REC[prev_active]:-}" == active ]]; then
                    step "starting the previous ollama service"
                    systemctl start ollama
                fi
            fi
        fi
        if [[ "${REC[created_user]:-0}" == 1 ]]; then
            say "   kept user $SVC_USER and $SVC_HOME (your models are there); remove them with:"
            say "   sudo userdel $SVC_USER && sudo rm -r $SVC_HOME"
        fi
    fi
    [[ "$STATE" == /*/lib/axllm/install ]] || die "unexpected state directory '$STATE'"
    rm -rf -- "$D$STATE"
    local i
    for ((i = ${#CREATED_DIRS[@]} - 1; i >= 0; i--)); do
        rmdir "$D${CREATED_DIRS[i]}" 2>/dev/null || true
    done
    say "Uninstalled: the previous files are back."
}

# --- main -----------------------------------------------------------------------

[[ "$(uname -s)" == Linux ]] || die "Linux only"
PREFIX_ARG=""
[[ "$PREFIX_FROM" == --prefix ]] && PREFIX_ARG=" --prefix $PREFIX"

case "$ACTION" in
    check)
        report
        if ((BLOCKERS)); then
            say "Not ready: $BLOCKERS missing item(s) above block the install."
            exit 1
        fi
        say "Ready to install."
        ;;
    install)
        if ((ELEVATED)); then
            # The report and the build ran before sudo; only what the install reads.
            check_service >/dev/null
        else
            report
            if ((BLOCKERS)); then die "$BLOCKERS missing item(s) above block the install; nothing was changed"; fi
            build
            NEED_BUILD=0
        fi
        if ((REAL)) && [[ $(id -u) -ne 0 ]]; then
            command -v sudo >/dev/null || die "installing into / needs root: run the rest as root: $0 ${ARGS[*]}"
            step "the install itself needs root: sudo"
            exec sudo -- env AXLLM_AXCL_DIR="$AXCL_DIR" "$BASH" "$HERE/install.sh" "${ARGS[@]}" --from "$FROM" --elevated
        fi
        do_install
        summary
        ;;
    uninstall)
        if ((REAL)) && [[ $(id -u) -ne 0 ]]; then
            command -v sudo >/dev/null || die "uninstalling from / needs root"
            exec sudo -- env AXLLM_AXCL_DIR="$AXCL_DIR" "$BASH" "$HERE/install.sh" "${ARGS[@]}"
        fi
        do_uninstall
        ;;
esac
