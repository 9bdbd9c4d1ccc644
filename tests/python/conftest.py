"""Shared fixtures: build the Rust tools once, pack small random checkpoints,
run scripts through the `replay` example on the simulator, build the patched
`ollama` and run `ollama serve` on the simulator (`Server`)."""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "target" / "release"

# Small enough to be quick, big enough for every shape group to matter:
# chunk 16, decode capacity 127, prefill history caps 16/32/64 (largest
# prefill 80 positions, so longer prompts end with decode-fed tokens).
GEOMETRY = ["--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
            "--head-dim", "16", "--intermediate", "128", "--vocab-target", "512"]
PACKING = ["--chunk", "16", "--context", "127", "--prefill-history", "16,32,64"]
CHUNK, CONTEXT, HISTORY = 16, 127, [16, 32, 64]
# Qwen3.5: the same full-attention geometry, linear layers of 2 key and 4
# value heads of 16, a larger init so the state's effect is far above noise.
QWEN35_GEOMETRY = ["--hidden", "64", "--layers", "6", "--heads", "4", "--kv-heads", "2",
                   "--head-dim", "16", "--intermediate", "128", "--vocab-target", "512", "--init-std", "0.05"]


def run(cmd, **kw):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise AssertionError(f"{cmd} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="session")
def tools():
    run(["cargo", "build", "--release", "-p", "axcl-sim", "-p", "axsim-pack"], cwd=ROOT)
    run(["cargo", "build", "--release", "--example", "replay", "--example", "conform"], cwd=ROOT)
    t = {
        "pack": TARGET / "axsim-pack",
        "replay": TARGET / "examples" / "replay",
        "conform": TARGET / "examples" / "conform",
        "sim": TARGET / "libaxcl_sim.so",
    }
    for p in t.values():
        assert p.exists(), p
    return t


def sim_env(tools, extra=None):
    env = dict(os.environ, AXLLM_AXCL_LIB=str(tools["sim"]))
    env.pop("AXCL_SIM_CONFIG", None)
    env.update(extra or {})
    return {k: v for k, v in env.items() if v is not None}  # None: unset


def pack(tools, workdir: Path, arch: str, seed: int = 1, extra=()):
    ckpt, model = workdir / f"{arch}-ckpt", workdir / f"{arch}-ax650"
    run([tools["pack"], "random", ckpt, "--arch", arch, "--seed", str(seed), *GEOMETRY, *extra])
    run([tools["pack"], "hf", ckpt, model, *PACKING])
    return ckpt, model


def pack_qwen35(tools, workdir: Path, name="ax650", seed: int = 1, extra=(), packing=PACKING):
    """A random Qwen3.5 checkpoint (6 layers: l3 full, the rest linear) packed
    with `packing` (default: the geometry above) into `workdir/qwen3_5-<name>`;
    `extra` adds packing options (state dtype, ...)."""
    ckpt, model = workdir / "qwen3_5-ckpt", workdir / f"qwen3_5-{name}"
    if not ckpt.exists():
        run([tools["pack"], "random", ckpt, "--arch", "qwen3_5", "--seed", str(seed), *QWEN35_GEOMETRY])
    run([tools["pack"], "hf", ckpt, model, *packing, *extra])
    return ckpt, model


def replay(tools, model_dir: Path, requests, env=None, load=None):
    script = model_dir.parent / f"script-{os.getpid()}.json"
    script.write_text(json.dumps({"requests": requests, "load": load or {}}))
    res = run([tools["replay"], model_dir, script], env=env or sim_env(tools))
    out = json.loads(res.stdout)
    for r in out["results"]:
        assert "error" not in r, r
    return out


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: a bounded load test (minutes); runs by default, deselect with -m 'not soak'")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ollama_bin():
    run(["bash", ROOT / "ollama-patch/build.sh"], cwd=ROOT)
    exe = ROOT / "target/ollama"
    assert exe.exists()
    return exe


_SERVERS = []


@pytest.fixture(scope="session", autouse=True)
def _no_server_outlives_the_session():
    """Stops every server a fixture left running (one whose setup failed
    after starting it never reaches its own `stop`)."""
    yield
    for s in _SERVERS:
        if s.proc.poll() is None:
            s.stop()


class Server:
    """`ollama serve` on the simulator, on a free loopback port, with its own
    model store under `workdir` and its log in `workdir/serve.log`. `wrapper`
    is a command that `ollama` (server and CLI) runs under (an emulator).
    `extra_env` values of None unset a variable. OLLAMA_NUM_PARALLEL is 1
    unless `extra_env` says otherwise: most tests count on one request at a
    time (queues, kills, memory); test_parallel.py runs the default (unset,
    the runner's automatic KV slot count) and explicit counts."""

    def __init__(self, exe, tools, workdir: Path, extra_env=None, wrapper=(), start_timeout=30):
        self.exe, self.port = exe, free_port()
        self.wrapper = [str(w) for w in wrapper]
        self.host = f"127.0.0.1:{self.port}"
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = sim_env(tools, {
            "OLLAMA_HOST": self.host,
            "OLLAMA_MODELS": str(workdir / "models"),
            "HOME": str(home),
            "OLLAMA_NO_CLOUD": "1",
            "OLLAMA_NUM_PARALLEL": "1",
            **(extra_env or {}),
        })
        self.log_path = workdir / "serve.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([*self.wrapper, str(exe), "serve"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        _SERVERS.append(self)
        self.url = f"http://{self.host}"
        deadline = time.time() + start_timeout
        while time.time() < deadline:
            try:
                httpx.get(self.url + "/api/version", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                assert self.proc.poll() is None, self.log_path.read_text()
                time.sleep(0.2)
        raise AssertionError("ollama serve did not start")

    def cli(self, *args, check=True, timeout=120):
        res = subprocess.run([*self.wrapper, str(self.exe), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert res.returncode == 0, f"ollama {args}: {res.stdout}\n{res.stderr}"
        return res

    def create(self, name, model_dir: Path):
        modelfile = model_dir.parent / f"Modelfile-{name}"
        modelfile.write_text(f"FROM {model_dir}\n")
        self.cli("create", name, "-f", str(modelfile))

    def post(self, path, body, timeout=120):
        return httpx.post(self.url + path, json=body, timeout=timeout)

    def runner_pids(self):
        """The AX650 runner subprocesses alive now."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "ax650-engine"], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
