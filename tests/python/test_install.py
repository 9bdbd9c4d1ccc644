"""scripts/install.sh, run into a temporary DESTDIR so that it never touches
this machine: over a planted stock Ollama (binary, lib/ollama, unit, drop-in)
and on an empty system, the installed files and modes, the unit checked with
`systemd-analyze verify`, the report of what is missing, refusals that change
nothing, and an uninstall that puts the planted install back byte for byte.

The binary installed is the built target/ollama (and target/lib/ollama) when
present, else stand-ins: the script copies files, it does not run them."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install.sh"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))

STOCK_UNIT = """[Unit]
Description=Ollama Service
After=network-online.target

[Service]
ExecStart=/usr/local/bin/ollama serve
User=ollama
Group=ollama
Restart=always
RestartSec=3
Environment="PATH=/usr/local/bin:/usr/bin:/bin"

[Install]
WantedBy=default.target
"""


def write(path: Path, data, mode=0o644, mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    path.chmod(mode)
    if mtime is not None:
        os.utime(path, ns=(mtime, mtime))


def snapshot(root: Path):
    """Every entry under root: kind, mode, and bytes and mtime of files or a link's target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes(), st.st_mtime_ns)
    return out


def parse_unit(text):
    """A unit file as {section: [(key, value), ...]} (keys repeat: Environment)."""
    sections, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), [])
        else:
            k, _, v = line.partition("=")
            cur.append((k, v))
    return sections


def values(unit, section, key):
    return [v for k, v in unit[section] if k == key]


@pytest.fixture
def build(tmp_path):
    """A --from directory: ollama, lib/ollama/ and release/libaxcl_sim.so."""
    d = tmp_path / "build"
    # Copies, so that a rebuild meanwhile cannot change what is compared.
    if (TARGET / "ollama").is_file():
        write(d / "ollama", (TARGET / "ollama").read_bytes(), 0o755)
    else:
        write(d / "ollama", '#!/bin/sh\necho "ollama version is 0.34.4-ax650"\n', 0o755)
    if (TARGET / "lib" / "ollama" / "llama-server").is_file():
        shutil.copytree(TARGET / "lib" / "ollama", d / "lib" / "ollama", symlinks=True)
    else:
        write(d / "lib" / "ollama" / "llama-server", "#!/bin/sh\nexit 0\n", 0o755)
        write(d / "lib" / "ollama" / "libggml-cpu.so", b"\x7fELF ours", 0o644)
    sim = TARGET / "release" / "libaxcl_sim.so"
    write(d / "release" / "libaxcl_sim.so", sim.read_bytes() if sim.is_file() else b"\x7fELF sim", 0o644)
    return d


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "dest"
    d.mkdir()
    return d


@pytest.fixture
def probe(tmp_path):
    """What the script looks at for the card and runtime: empty, i.e. no card."""
    d = tmp_path / "probe"
    d.mkdir()
    return d


def install(dest, probe, *args, env=None, rc=0):
    e = dict(os.environ, DESTDIR=str(dest), AXLLM_INSTALL_PROBE_ROOT=str(probe))
    e.pop("AXLLM_AXCL_DIR", None)
    e.update(env or {})
    res = subprocess.run(["bash", str(INSTALL), *map(str, args)], capture_output=True, text=True,
                         env=e, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == rc, f"install.sh {args} exited {res.returncode}, wanted {rc}:\n{out}"
    return out


def plant_stock(dest, version="0.34.4"):
    """A stock Ollama as its installer leaves it, plus a local drop-in."""
    t = 1_600_000_000_123_456_789
    write(dest / "usr/local/bin/ollama", f'#!/bin/sh\necho "ollama version is {version}"\n', 0o755, t)
    write(dest / "usr/local/lib/ollama/llama-server", b"\x7fELF stock llama-server", 0o755, t)
    write(dest / "usr/local/lib/ollama/libggml-base.so", b"\x7fELF stock base", 0o644, t)
    write(dest / "usr/local/lib/ollama/cuda_v12/libggml-cuda.so", b"\x7fELF stock cuda", 0o644, t)
    write(dest / "etc/systemd/system/ollama.service", STOCK_UNIT, 0o644, t)
    write(dest / "etc/systemd/system/ollama.service.d/override.conf",
          '[Service]\nEnvironment="OLLAMA_HOST=0.0.0.0"\n', 0o644, t)


def systemd_verify(tmp_path, dest, binary, unit="ollama.service"):
    """`systemd-analyze verify` of the installed unit, in a root holding the
    DESTDIR's /etc, the installed binary (it checks that ExecStart can run) and
    this machine's system units (sysinit.target and the rest that every unit
    depends on). Returns (exit status, output, root)."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is missing: scripts/setup.sh installs the systemd package")
    root = tmp_path / "verify-root"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(dest / "etc", root / "etc", symlinks=True)
    (root / binary).parent.mkdir(parents=True)
    shutil.copy2(dest / binary, root / binary)
    units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir())
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    res = subprocess.run([exe, "verify", "--man=no", f"--root={root}", unit],
                         capture_output=True, text=True, timeout=60)
    return res.returncode, (res.stdout + res.stderr).strip(), root


def test_install_over_stock_and_uninstall_restores_it(tmp_path, build, dest, probe):
    plant_stock(dest)
    before = snapshot(dest)
    lib_before = snapshot(dest / "usr/local/lib/ollama")

    out = install(dest, probe, "--from", build)
    # What is missing on a machine without a card, before anything changes.
    assert "missing  AXCL runtime" in out
    assert "missing  AX650 card on the PCIe bus" in out and "dtparam=pciex1" in out
    assert "missing  device nodes /dev/axcl_host /dev/ax_mmb_dev /dev/msg_userdev" in out
    assert "simulator only if asked to: --simulator" in out
    assert out.index("missing  AXCL runtime") < out.index("==> installing")
    assert "prefix /usr/local (the existing unit's ExecStart)" in out
    assert "found    /usr/local/bin/ollama (version 0.34.4)" in out
    assert "kept /usr/local/lib/ollama as it is" in out

    binary = dest / "usr/local/bin/ollama"
    assert binary.read_bytes() == (build / "ollama").read_bytes()
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert snapshot(dest / "usr/local/lib/ollama") == lib_before, "the stock lib/ollama must stay as it was"
    drop_in = "etc/systemd/system/ollama.service.d/override.conf"
    assert snapshot(dest)[drop_in] == before[drop_in]
    assert not (dest / "usr/local/lib/axllm/libaxcl_sim.so").exists()

    unit_path = dest / "etc/systemd/system/ollama.service"
    assert stat.S_IMODE(unit_path.stat().st_mode) == 0o644
    unit = parse_unit(unit_path.read_text())
    assert values(unit, "Service", "ExecStart") == ["/usr/local/bin/ollama serve"]
    assert values(unit, "Service", "User") == ["ollama"]
    assert values(unit, "Service", "Group") == ["ollama"]
    assert values(unit, "Service", "SupplementaryGroups") == ["axcl"]
    assert values(unit, "Service", "Restart") == ["always"]
    env = values(unit, "Service", "Environment")
    assert '"OLLAMA_MAX_LOADED_MODELS=1"' in env
    assert '"LD_LIBRARY_PATH=/usr/lib/axcl"' in env
    assert not any("AXLLM_AXCL_LIB" in e for e in env), "the simulator only when asked for"
    assert values(unit, "Install", "WantedBy") == ["default.target"]

    rule = dest / "etc/udev/rules.d/axllm-axcl.rules"
    assert stat.S_IMODE(rule.stat().st_mode) == 0o644
    rules = [l for l in rule.read_text().splitlines() if l and not l.startswith("#")]
    assert rules == ['KERNEL=="axcl_host|ax_mmb_dev|msg_userdev|p2p", GROUP="axcl"']
    # Sorts after AXERA's axcl_host.rules, so that its GROUP is the one that holds.
    assert sorted(["axcl_host.rules", rule.name]) == ["axcl_host.rules", rule.name]

    rc, msg, root = systemd_verify(tmp_path, dest, "usr/local/bin/ollama")
    assert (rc, msg) == (0, ""), msg
    # The check can fail: a unit whose binary cannot run is refused.
    (root / "usr/local/bin/ollama").chmod(0o644)
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", "ollama.service"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "is not executable" in res.stderr, res.stderr

    # Installing again keeps the stock files as the ones to restore.
    out = install(dest, probe, "--from", build)
    assert "found    our install" in out and "installed again over our previous install" in out

    out = install(dest, probe, "--uninstall")
    assert "restoring /usr/local/bin/ollama" in out
    assert "restoring /etc/systemd/system/ollama.service" in out
    assert snapshot(dest) == before


def test_fresh_install_with_simulator_leaves_nothing_behind(tmp_path, build, dest, probe):
    out = install(dest, probe, "--prefix", "/opt/ax", "--simulator", "--from", build)
    assert "no usable card: the service will run AX650 models on the CPU simulator" in out
    assert "none     /opt/ax/lib/ollama: ours goes there" in out

    assert (dest / "opt/ax/bin/ollama").read_bytes() == (build / "ollama").read_bytes()
    ours = snapshot(build / "lib/ollama")
    got = snapshot(dest / "opt/ax/lib/ollama")
    assert {k: v[:3] for k, v in got.items() if v[0] == "file"} == \
        {k: v[:3] for k, v in ours.items() if v[0] == "file"}
    sim = dest / "opt/ax/lib/axllm/libaxcl_sim.so"
    assert sim.read_bytes() == (build / "release/libaxcl_sim.so").read_bytes()
    assert stat.S_IMODE(sim.stat().st_mode) == 0o644

    unit = parse_unit((dest / "etc/systemd/system/ollama.service").read_text())
    assert values(unit, "Service", "ExecStart") == ["/opt/ax/bin/ollama serve"]
    env = values(unit, "Service", "Environment")
    assert '"AXLLM_AXCL_LIB=/opt/ax/lib/axllm/libaxcl_sim.so"' in env
    assert any(e.startswith('"PATH=/opt/ax/bin:') for e in env), env
    rc, msg, _ = systemd_verify(tmp_path, dest, "opt/ax/bin/ollama")
    assert (rc, msg) == (0, ""), msg

    # No --prefix: it is read back from the installed unit.
    out = install(dest, probe, "--uninstall")
    assert "removing /opt/ax/lib/ollama (ours)" in out
    assert snapshot(dest) == {}, "everything the install added is gone"


def test_card_present_and_check_changes_nothing(tmp_path, build, dest, probe):
    write(probe / "usr/lib/axcl/libaxcl_rt.so", b"\x7fELF", 0o644)
    write(probe / "sys/bus/pci/devices/0000:01:00.0/vendor", "0x1f4b\n")
    write(probe / "sys/bus/pci/devices/0000:01:00.0/device", "0x0650\n")
    write(probe / "sys/bus/pci/devices/0000:00:00.0/vendor", "0x14e4\n")
    write(probe / "sys/bus/pci/devices/0000:00:00.0/device", "0x2712\n")
    for node in ("axcl_host", "ax_mmb_dev", "p2p"):
        write(probe / "dev" / node, b"", 0o666)
    write(probe / "dev/msg_userdev", b"", 0o600)

    out = install(dest, probe, "--check", "--from", build)
    assert "ok       AXCL runtime: /usr/lib/axcl/libaxcl_rt.so" in out
    assert "ok       AX650 card on the PCIe bus: 0000:01:00.0" in out
    assert "0000:00:00.0" not in out
    assert "ok       /dev/axcl_host (mode 666" in out
    assert "note     /dev/msg_userdev (mode 600" in out
    assert "the service will run AX650 models on the card" in out
    assert "Ready to install." in out
    assert snapshot(dest) == {}

    out = install(dest, probe, "--check", "--simulator", "--from", build)
    assert "the card is ready, but --simulator" in out


def test_missing_toolchains_block_the_install_before_any_change(tmp_path, dest, probe):
    plant_stock(dest)
    before = snapshot(dest)
    env = {"CARGO_TARGET_DIR": str(tmp_path / "no-build"), "GO": "/nonexistent/go",
           "CARGO": "/nonexistent/cargo"}
    out = install(dest, probe, "--check", env=env, rc=1)
    assert "missing  Go >= 1.26" in out and "missing  Rust" in out
    assert "Not ready: 2 missing item(s)" in out
    out = install(dest, probe, env=env, rc=1)
    assert "block the install; nothing was changed" in out
    assert snapshot(dest) == before


def test_refusals_change_nothing(tmp_path, build, dest, probe):
    plant_stock(dest, version="0.30.0")
    before = snapshot(dest)
    out = install(dest, probe, "--uninstall", rc=1)
    assert "nothing to uninstall" in out
    out = install(dest, probe, "--frobnicate", rc=2)
    assert "unknown argument '--frobnicate'" in out
    out = install(dest, probe, "--prefix", "relative/dir", rc=1)
    assert "--prefix must be an absolute path" in out
    assert snapshot(dest) == before

    out = install(dest, probe, "--from", build)
    assert "the existing Ollama is 0.30.0" in out
    # Someone reinstalls a binary over ours: uninstall refuses to put the old one over it.
    write(dest / "usr/local/bin/ollama", '#!/bin/sh\necho "ollama version is 0.35.0"\n', 0o755)
    during = snapshot(dest)
    out = install(dest, probe, "--uninstall", rc=1)
    assert "changed since our install: " in out and "usr/local/bin/ollama" in out
    assert snapshot(dest) == during
    install(dest, probe, "--uninstall", "--force")
    assert snapshot(dest) == before
