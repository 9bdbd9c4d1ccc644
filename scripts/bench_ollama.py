#!/usr/bin/env python3
"""What the patched `ollama serve` costs on top of the library, in decode tok/s.

Packs a timing-only model at Qwen3 geometry, generates the same number of
tokens with the same options (a) through the library's generation API (the
`bench` example's --library-generate mode) and (b) through `ollama serve` on
127.0.0.1 with HTTP streaming, after `ollama create`, both on the simulator
with the Pi 5 latency model. Prints both rates and their ratio. Not a test.

    .venv/bin/python scripts/bench_ollama.py [--model 0.6b] [--num-predict 128] [--schedule safe]

The rate on both sides is 1 / the median gap between pieces of text (the last
piece, which arrives without a decode step, left out).
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release"
PROMPT = "The quick brown fox jumps over the lazy dog."  # the bench example's ollama_prompt()
OPTIONS = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repeat_last_n": 64, "seed": 7}


def ollama_binary() -> Path:
    for p in (ROOT / "ollama-patch" / "build" / "ollama" / "ollama", ROOT / "target" / "ollama"):
        if p.exists():
            return p
    sys.exit("no patched ollama binary: build it with ollama-patch/build.sh")


def run(cmd, env=None) -> str:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res.stdout


def rate(times) -> float:
    """tok/s from piece arrival times: 1 / the median gap, leaving out the last
    piece (it comes without a decode step); the median keeps the odd
    preemption on a shared machine out of the figure."""
    gaps = sorted(b - a for a, b in zip(times[:-2], times[1:-1]))
    if not gaps:
        sys.exit(f"too few pieces to time: {len(times)}")
    return 1.0 / gaps[len(gaps) // 2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"ollama serve exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    sys.exit(f"ollama serve did not come up in 30 s:\n{log.read_text()}")


def stream(url: str, model: str, num_predict: int):
    """Generates; returns (arrival times of non-empty pieces, final response)."""
    body = {"model": model, "prompt": PROMPT, "raw": True, "stream": True,
            "options": dict(OPTIONS, num_predict=num_predict)}
    req = urllib.request.Request(f"{url}/api/generate", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    start, times, final = time.monotonic(), [], None
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            if not line.strip():
                continue
            msg = json.loads(line)
            if msg.get("error"):
                sys.exit(f"ollama: {msg['error']}")
            if msg.get("response") or msg.get("thinking"):
                times.append(time.monotonic() - start)
            if msg.get("done"):
                final = msg
    return times, final


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="0.6b", choices=["0.6b", "1.7b", "4b"])
    ap.add_argument("--num-predict", type=int, default=128)
    ap.add_argument("--schedule", default="safe", help="AXLLM_SCHEDULE for both sides")
    args = ap.parse_args()

    run(["cargo", "build", "-q", "--release", "-p", "axcl-sim", "-p", "axsim-pack"])
    run(["cargo", "build", "-q", "--release", "--example", "bench"])
    bench, ollama = RELEASE / "examples" / "bench", ollama_binary()
    spec = run([bench, "--pi5-spec", args.model]).strip()
    env = dict(os.environ, AXLLM_AXCL_LIB=str(RELEASE / "libaxcl_sim.so"), AXCL_SIM_CONFIG=spec,
               AXLLM_SCHEDULE=args.schedule)
    with tempfile.TemporaryDirectory(prefix="axllm-bench-ollama-") as tmp:
        tmp = Path(tmp)
        out = run([RELEASE / "axsim-pack", "timing", tmp / "pkg", "--geometry", f"qwen3-{args.model}"])
        model_dir = Path(re.search(r"models in (.+)$", out.strip(), re.M).group(1))

        lib = json.loads(run([bench, "--library-generate", model_dir, "--num-predict", args.num_predict], env))
        lib_rate = rate(lib["times"])

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        senv = dict(env, OLLAMA_HOST=f"127.0.0.1:{port}", OLLAMA_MODELS=str(tmp / "models"), HOME=str(tmp / "home"),
                    OLLAMA_NOPRUNE="1", OLLAMA_NO_CLOUD="1")
        (tmp / "home").mkdir()
        log = tmp / "serve.log"
        with open(log, "w") as logf:
            serve = subprocess.Popen([ollama, "serve"], env=senv, stdout=logf, stderr=subprocess.STDOUT)
        try:
            wait_up(url, serve, log)
            (tmp / "Modelfile").write_text(f"FROM {model_dir}\n")
            run([ollama, "create", "axllm-bench", "-f", tmp / "Modelfile"], senv)
            stream(url, "axllm-bench", 2)  # load the model and warm up
            times, final = stream(url, "axllm-bench", args.num_predict)
        finally:
            serve.terminate()
            serve.wait(timeout=30)
    ollama_rate = rate(times)
    eval_rate = final["eval_count"] / (final["eval_duration"] / 1e9)
    print(f"Qwen3-{args.model.upper()} timing model, Pi 5 latency model, schedule {lib['schedule']}, "
          f"{args.num_predict} tokens, options {OPTIONS}")
    print(f"  library (generation API)     {lib_rate:7.2f} tok/s  ({len(lib['times'])} pieces)")
    print(f"  ollama serve, HTTP streaming {ollama_rate:7.2f} tok/s  ({len(times)} pieces; "
          f"its own eval rate {eval_rate:.2f} tok/s over {final['eval_count']} tokens)")
    print(f"  ratio ollama / library       {ollama_rate / lib_rate:7.3f}  "
          f"(Ollama costs {100 * (1 - ollama_rate / lib_rate):.1f} % of the library's tok/s)")


if __name__ == "__main__":
    main()
