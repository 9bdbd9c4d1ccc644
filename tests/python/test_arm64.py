"""The arm64 `ollama` (cross-built by scripts/arm64.sh, linking the arm64
libaxllm.a) end to end under qemu-aarch64, on the arm64 simulator: its CLI
creates a model from a package, its server (and the runner it starts, under
the emulator too) answers a greedy chat, and the answer is the x86_64 build's
for the same package and request. Run by scripts/arm64.sh, which names the
arm64 build in AXLLM_ARM64_TARGET, its simulator library in AXLLM_ARM64_SIM
and the command that runs an aarch64 program under qemu
(scripts/qemu-aarch64-run) in AXLLM_ARM64_RUN; skipped otherwise."""

import os
from pathlib import Path

import pytest

from conftest import ROOT, TARGET, Server, pack

ARM64_TARGET = os.environ.get("AXLLM_ARM64_TARGET")
pytestmark = pytest.mark.skipif(not ARM64_TARGET, reason="scripts/arm64.sh runs it with the arm64 build (AXLLM_ARM64_TARGET)")

GREEDY = {"temperature": 0, "num_predict": 16}
MESSAGES = [{"role": "user", "content": "Hello! How are you?"}]


@pytest.fixture(scope="module")
def host_tools():
    tools = {"pack": TARGET / "axsim-pack", "sim": TARGET / "libaxcl_sim.so"}
    for p in tools.values():
        assert p.exists(), f"{p} is missing (scripts/arm64.sh builds the host's release tools first)"
    return tools


@pytest.fixture(scope="module")
def model_dir(host_tools, tmp_path_factory):
    # Packed on x86_64: a package is the same on every architecture.
    _, m = pack(host_tools, tmp_path_factory.mktemp("arm64"), "qwen3", seed=33)
    return m


def greedy_chat(server, model_dir):
    server.create("tiny", model_dir)
    r = server.post("/api/chat", {"model": "tiny", "messages": MESSAGES, "think": False, "stream": False,
                                  "options": GREEDY}, timeout=600)
    assert r.status_code == 200, r.text
    return r.json()


def machine(pid):
    """The program a process runs: under qemu-user, the emulator."""
    return Path(os.readlink(f"/proc/{pid}/exe")).name


def test_arm64_serve_answers_as_x86_64(host_tools, model_dir, tmp_path):
    target = Path(ARM64_TARGET)
    run = os.environ.get("AXLLM_ARM64_RUN", str(ROOT / "scripts" / "qemu-aarch64-run"))
    arm = Server(target / "ollama", host_tools, tmp_path / "arm64", wrapper=[run], start_timeout=120, extra_env={
        "AXLLM_AXCL_LIB": os.environ.get("AXLLM_ARM64_SIM",
                                         str(target / "aarch64-unknown-linux-gnu" / "debug" / "deps" / "libaxcl_sim.so")),
        # qemu-user's execve runs the runner natively: name the emulator's
        # command, and the executable, which serve cannot see (started
        # through the dynamic loader, its own is the loader).
        "AXLLM_RUNNER_WRAPPER": run,
        "AXLLM_RUNNER_EXE": str(target / "ollama"),
    })
    try:
        got = greedy_chat(arm, model_dir)
        runners = arm.runner_pids()
        assert runners, "the AX650 runner is not running after the chat"
        assert {machine(arm.proc.pid), *(machine(p) for p in runners)} == {"qemu-aarch64"}
    finally:
        arm.stop()

    host = Server(ROOT / "target" / "ollama", host_tools, tmp_path / "x86_64")
    try:
        want = greedy_chat(host, model_dir)
    finally:
        host.stop()

    print(f"arm64 (qemu-aarch64) answer, {got['eval_count']} tokens: {got['message']['content']!r}")
    assert got["message"]["content"], got
    assert got["message"]["content"] == want["message"]["content"]
    assert (got["eval_count"], got["prompt_eval_count"], got["done_reason"]) == \
        (want["eval_count"], want["prompt_eval_count"], want["done_reason"])
