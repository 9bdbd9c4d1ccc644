"""The conformance kit on the simulator: `scripts/conformance.sh` on a small
Qwen3 package and on a small Qwen3.5 package writes one markdown report in
which every check passes and every section is present."""

import os
import re
import subprocess

from conftest import ROOT, pack, pack_qwen35, sim_env

SECTIONS = ["## Environment", "## Checks", "## Timing", "## Decode per schedule", "## Package (inspect)", "## System"]


def conformance(tools, package, report):
    res = subprocess.run(["bash", ROOT / "scripts/conformance.sh", package, report], env=sim_env(tools),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n{report.read_text() if report.exists() else ''}"
    assert f"conformance report: {report}" in res.stdout, res.stdout
    return report.read_text()


def checks(text):
    """The rows of the checks table: (name, tag, facts, result, detail)."""
    table = text.split("## Checks", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")]
    assert rows[0][:4] == ["check", "tag", "facts", "result"], rows[0]
    return rows[1:]


def test_every_check_passes_on_the_simulator_and_the_report_is_whole(tools, tmp_path):
    _, model = pack(tools, tmp_path, "qwen3", seed=9)
    text = conformance(tools, model, tmp_path / "report.md")
    for s in SECTIONS:
        assert s in text, s
    rows = checks(text)
    assert len(rows) >= 18, rows
    for name, tag, facts, result, detail in rows:
        assert result == "PASS", (name, result, detail)
        assert tag in ("DOCUMENTED", "INFERRED"), (name, tag)
        assert re.fullmatch(r"F\d+a?(, F\d+a?)*", facts), (name, facts)
    assert "Checks: %d PASS, 0 FAIL, 0 SKIP" % len(rows) in text
    names = " ".join(r[0] for r in rows)
    for needle in ["axclrtEngineGetUsage", "pinned host memory", "device ids", "BF16", "every call schedule"]:
        assert needle in names, needle
    # The timing probe measured each quantity, and every schedule decoded.
    for probe in ["a call's fixed cost", "execute, layer 0", "4 MiB host-to-device, pinned", "4 MiB host-to-device, ordinary memory"]:
        assert re.search(re.escape(probe) + r"[^|]*\| [0-9.]+ µs", text), probe
    for schedule in ["safe", "fewest-calls", "fewest-calls,async"]:
        assert re.search(rf"\| {re.escape(schedule)} \| \d+ tokens at [0-9.]+ tok/s", text), schedule
    # inspect's output is in the report: the runtime's view of the package.
    assert "geometry: hidden 64" in text and "context 127 positions" in text
    assert "runtime kind | simulator" in text


def test_a_hybrid_package_adds_conform_and_a_missing_runtime_fails_cleanly(tools, tmp_path):
    _, model = pack_qwen35(tools, tmp_path)
    text = conformance(tools, model, tmp_path / "hybrid.md")
    assert "## Hybrid layers (conform)" in text
    assert all(r[3] == "PASS" for r in checks(text)), checks(text)

    # A library that is not there: a report with the failure, exit status 1.
    report = tmp_path / "missing.md"
    env = dict(sim_env(tools), AXLLM_AXCL_LIB="/nonexistent/libaxcl_rt.so")
    res = subprocess.run(["bash", ROOT / "scripts/conformance.sh", model, report], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stdout + res.stderr
    rows = checks(report.read_text())
    assert rows[0][3] == "FAIL" and "/nonexistent/libaxcl_rt.so" in rows[0][4], rows
