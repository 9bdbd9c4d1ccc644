"""Shared fixtures: build the Rust tools once, pack small random checkpoints,
run scripts through the `replay` example on the simulator."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "target" / "release"

# Small enough to be quick, big enough for every shape group to matter:
# chunk 16, decode capacity 127, prefill history caps 16/32/64 (largest
# prefill 80 positions, so longer prompts end with decode-fed tokens).
GEOMETRY = ["--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
            "--head-dim", "16", "--intermediate", "128", "--vocab-target", "512"]
PACKING = ["--chunk", "16", "--context", "127", "--prefill-history", "16,32,64"]
CHUNK, CONTEXT = 16, 127


def run(cmd, **kw):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise AssertionError(f"{cmd} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="session")
def tools():
    run(["cargo", "build", "--release", "-p", "axcl-sim"], cwd=ROOT)
    run(["cargo", "build", "--release", "--example", "replay"], cwd=ROOT)
    t = {
        "pack": TARGET / "axsim-pack",
        "replay": TARGET / "examples" / "replay",
        "sim": TARGET / "libaxcl_sim.so",
    }
    for p in t.values():
        assert p.exists(), p
    return t


def sim_env(tools, extra=None):
    env = dict(os.environ, AXLLM_AXCL_LIB=str(tools["sim"]))
    env.pop("AXCL_SIM_CONFIG", None)
    env.update(extra or {})
    return env


def pack(tools, workdir: Path, arch: str, seed: int = 1, extra=()):
    ckpt, model = workdir / f"{arch}-ckpt", workdir / f"{arch}-ax650"
    run([tools["pack"], "random", ckpt, "--arch", arch, "--seed", str(seed), *GEOMETRY, *extra])
    run([tools["pack"], "hf", ckpt, model, *PACKING])
    return ckpt, model


def replay(tools, model_dir: Path, requests, env=None):
    script = model_dir.parent / f"script-{os.getpid()}.json"
    script.write_text(json.dumps({"requests": requests}))
    res = run([tools["replay"], model_dir, script], env=env or sim_env(tools))
    out = json.loads(res.stdout)
    for r in out["results"]:
        assert "error" not in r, r
    return out
