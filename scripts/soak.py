#!/usr/bin/env python3
"""Churn soak of the patched `ollama serve` on the simulator (issue #19).

Everything runs on 127.0.0.1 and stops after --seconds. Several small random
models, one loaded at a time (OLLAMA_MAX_LOADED_MODELS=1); --clients threads
send generate and chat requests (streamed or not) to random models while a
chaos thread, every --chaos-every seconds, stops a model (keep_alive 0),
removes a model and creates it again, or kills a runner with SIGKILL.

It reports the requests, the failures by kind, the runner stops (durations,
kills by serve), the runners and whether the simulator's trace shows each
clean exit reset the device and finalised the runtime, serve's memory and a
runner's device allocations before and after. Exit status 1 when serve
killed a runner, a clean exit did not release the device, a failure of an
unexpected kind happened, or something leaked.

    scripts/soak.py --ollama target/ollama --seconds 600 --clients 16 --models 3

Needs httpx, the simulator and the packer: cargo build --release -p axcl-sim
-p axsim-pack; ollama-patch/build.sh ollama.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
GEOMETRY = ["--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "16",
            "--intermediate", "128", "--vocab-target", "512"]
PACKING = ["--chunk", "16", "--context", "127", "--prefill-history", "16,32,64"]
# Failures the churn causes on purpose: a request on a runner the soak killed,
# a model it removed, a request cancelled by the soak's own deadline.
EXPECTED = ("exited unexpectedly", "not found", "was removed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pid):
    m = re.search(r"^VmRSS:\s+(\d+) kB$", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) * 1024


def kind(status, message):
    """A failure's kind: its status and message with numbers and names blurred."""
    msg = re.sub(r"\d+", "N", message or "")
    msg = re.sub(r"model [\"']?[\w:.-]+[\"']?", "model M", msg)
    return f"{status}: {msg[:110]}"


class Soak:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.models = [f"m{i}" for i in range(args.models)]
        self.lock = threading.Lock()
        self.outcomes = Counter()
        self.failures = Counter()
        self.chaos = Counter()
        self.killed_by_soak = set()
        self.removed = set()  # models being removed and created again
        self.deadline = 0.0

    def pack(self):
        pack = self.args.pack
        self.dirs = {}
        for i, name in enumerate(self.models):
            ckpt, out = self.work / f"{name}-ckpt", self.work / f"{name}-ax650"
            subprocess.run([pack, "random", ckpt, "--arch", "qwen3", "--seed", str(100 + i), *GEOMETRY],
                           check=True, capture_output=True)
            subprocess.run([pack, "hf", ckpt, out, *PACKING], check=True, capture_output=True)
            self.dirs[name] = out

    def start(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = self.work / "tmp"
        self.tmp.mkdir()
        self.trace = self.work / "sim-trace"
        self.env = dict(os.environ, OLLAMA_HOST=f"127.0.0.1:{self.port}", OLLAMA_MODELS=str(self.work / "models"),
                        HOME=str(self.work), OLLAMA_NO_CLOUD="1", OLLAMA_MAX_LOADED_MODELS="1", TMPDIR=str(self.tmp),
                        AXLLM_AXCL_LIB=str(self.args.sim), AXCL_SIM_CONFIG=self.args.sim_config,
                        AXCL_SIM_TRACE_FILE=str(self.trace))
        self.log_path = self.work / "serve.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([self.args.ollama, "serve"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(150):
            try:
                httpx.get(self.url + "/api/version", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    sys.exit("ollama serve exited:\n" + self.log_path.read_text()[-2000:])
                time.sleep(0.2)
        sys.exit("ollama serve did not start")

    def create(self, name):
        mf = self.work / f"Modelfile-{name}"
        mf.write_text(f"FROM {self.dirs[name]}\n")
        r = subprocess.run([self.args.ollama, "create", name, "-f", mf], env=self.env, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"create {name}: {r.stderr[-500:]}")

    def runners(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "ax650-engine"], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def runner_get(self, pid, path):
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        port = int(args[args.index(b"--port") + 1])
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).json()

    def figures(self):
        """serve's memory and a freshly loaded m0 runner's device allocations, idle."""
        r = httpx.post(self.url + "/api/generate", json={"model": self.models[0], "prompt": "warm up", "stream": False,
                                                         "options": {"num_predict": 4}}, timeout=120)
        r.raise_for_status()
        [pid] = self.runners()
        d = self.runner_get(pid, "/v1/debug/diagnostics")["counters"]
        st = self.runner_get(pid, "/v1/status")
        return {"rss_serve": rss(self.proc.pid), "rss_runner": rss(pid), "device_memory": st["memory"],
                "sim_live_allocations": d["live_allocations"], "sim_live_bytes": d["live_bytes"]}

    def request(self, rng):
        name = rng.choice(self.models)
        opts = {"num_predict": rng.randint(2, 24), "temperature": rng.choice([0, 0.8]), "seed": rng.randint(0, 2**63 - 1)}
        if rng.random() < 0.5:
            path, body = "/api/chat", {"model": name, "messages": [{"role": "user", "content": "hello"}], "think": False}
        else:
            path, body = "/api/generate", {"model": name, "prompt": "tell me something"}
        streamed = rng.random() < 0.6
        body.update(stream=streamed, options=opts)
        try:
            with httpx.Client(timeout=120) as c:
                if not streamed:
                    r = c.post(self.url + path, json=body)
                    if r.status_code == 200 and r.json().get("done"):
                        return "ok", None
                    return "failed", kind(r.status_code, r.json().get("error", r.text))
                with c.stream("POST", self.url + path, json=body) as r:
                    if r.status_code != 200:
                        return "failed", kind(r.status_code, json.loads(r.read()).get("error"))
                    last = None
                    for line in r.iter_lines():
                        if line:
                            last = json.loads(line)
                            if "error" in last:
                                return "failed", kind("stream", last["error"])
                    return ("ok", None) if last and last.get("done") else ("failed", "stream ended early")
        except httpx.HTTPError as e:
            return "failed", kind("transport", type(e).__name__)

    def client(self, seed):
        rng = random.Random(seed)
        while time.monotonic() < self.deadline and self.proc.poll() is None:
            outcome, why = self.request(rng)
            with self.lock:
                self.outcomes[outcome] += 1
                if why:
                    self.failures[why] += 1

    def chaos_loop(self, seed):
        rng = random.Random(seed)
        actions = ["stop", "kill", "rm+create", "stop"]  # in turn: a short run has each
        i = 0
        while time.monotonic() + self.args.chaos_every < self.deadline and self.proc.poll() is None:
            time.sleep(self.args.chaos_every)
            action = actions[i % len(actions)]
            i += 1
            if action == "stop":
                name = rng.choice(self.models)
                try:
                    httpx.post(self.url + "/api/generate", json={"model": name, "keep_alive": 0}, timeout=120)
                except httpx.HTTPError as e:
                    print(f"soak: stopping {name}: {e}", file=sys.stderr)
            elif action == "rm+create":
                name = rng.choice(self.models[1:] or self.models)
                subprocess.run([self.args.ollama, "rm", name], env=self.env, capture_output=True)
                time.sleep(0.3)
                self.create(name)
            else:
                pids = self.runners()
                if not pids:
                    continue
                pid = rng.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue  # it stopped meanwhile
                with self.lock:
                    self.killed_by_soak.add(pid)
            self.chaos[action] += 1

    def run(self):
        self.pack()
        self.start()
        try:
            for name in self.models:
                self.create(name)
            before = self.figures()
            self.deadline = time.monotonic() + self.args.seconds
            start = time.monotonic()
            threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.args.clients)]
            threads.append(threading.Thread(target=self.chaos_loop, args=(self.args.seed,), daemon=True))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - start
            # The same models again after the churn (rm+create may have left one missing mid-way).
            for name in self.models:
                self.create(name)
            httpx.post(self.url + "/api/generate", json={"model": self.models[0], "keep_alive": 0}, timeout=120)
            time.sleep(0.5)
            after = self.figures()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.log.close()
        return self.report(before, after, elapsed)

    def report(self, before, after, elapsed):
        log = self.log_path.read_text()
        trace = self.trace.read_text().splitlines() if self.trace.exists() else []
        exits = re.findall(r'msg="AX650 runner exited" model=\S+ pid=(\d+) (status=0|error="[^"]*")', log)
        clean = [int(p) for p, st in exits if st == "status=0"]
        finalized = {int(l.split()[0]) for l in trace if l.endswith(" axclFinalize 0x0")}
        reset = {int(l.split()[0]) for l in trace if re.search(r" axclrtResetDevice\(\d+\) 0x0$", l)}
        # A runner with no line in the trace never reached the runtime (its
        # model was removed before it loaded): nothing to release.
        traced = {int(l.split()[0]) for l in trace if l.split()[0].isdigit()}
        untouched = [p for p in clean if p not in traced]
        not_released = [p for p in clean if p in traced and (p not in finalized or p not in reset)]
        took = [go_seconds(t) for t in re.findall(r'msg="AX650 runner stopped" .* took=(\S+)', log)]
        kills = log.count("did not stop in time")
        unexpected = {k: n for k, n in self.failures.items() if not any(e in k for e in EXPECTED)}
        leftovers = list(self.tmp.iterdir())
        total = sum(self.outcomes.values())

        print(f"soak: {total} requests from {self.args.clients} clients to {len(self.models)} models in {elapsed:.1f}s: "
              f"{self.outcomes['ok']} served, {self.outcomes['failed']} failed")
        print(f"soak: chaos: {dict(self.chaos)}")
        for k, n in self.failures.most_common():
            print(f"soak: failure x{n}: {k}{'' if k not in unexpected else '   <-- unexpected'}")
        took.sort()
        if took:
            print(f"soak: {len(took)} runner stops: median {took[len(took) // 2] * 1000:.0f} ms, "
                  f"max {took[-1] * 1000:.0f} ms, {sum(t >= 1 for t in took)} took 1 s or more")
        print(f"soak: runners: {len(exits)} exited, {len(clean)} cleanly, {len(self.killed_by_soak)} killed by the soak, "
              f"{kills} killed by serve after a stop timed out")
        used = len(clean) - len(untouched)
        print(f"soak: clean exits of runners that used the device whose trace shows reset + finalize: "
              f"{used - len(not_released)}/{used} ({len(untouched)} never reached the runtime)")
        for key in before:
            print(f"soak: {key}: {before[key]} -> {after[key]} ({after[key] - before[key]:+d})")
        print(f"soak: runner directories left: {len(leftovers)}")

        problems = []
        if kills:
            problems.append(f"serve killed {kills} runners")
        if not_released:
            problems.append(f"runners {not_released} exited without reset + finalize")
        if unexpected:
            problems.append(f"unexpected failures {unexpected}")
        if leftovers:
            problems.append(f"runner directories left: {leftovers}")
        for key in ("device_memory", "sim_live_allocations", "sim_live_bytes"):
            if after[key] != before[key]:
                problems.append(f"{key} {before[key]} -> {after[key]}")
        if after["rss_serve"] - before["rss_serve"] > 128 << 20:
            problems.append("serve's memory grew by more than 128 MiB")
        if not self.outcomes["ok"]:
            problems.append("nothing was served")
        for p in problems:
            print(f"soak: PROBLEM: {p}")
        return 1 if problems else 0


def go_seconds(d):
    for unit, scale in (("ms", 1e-3), ("µs", 1e-6), ("us", 1e-6), ("ns", 1e-9), ("s", 1)):
        if d.endswith(unit):
            return float(d[:-len(unit)]) * scale
    raise ValueError(d)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ollama", default=str(ROOT / "target/ollama"))
    p.add_argument("--sim", default=str(ROOT / "target/release/libaxcl_sim.so"))
    p.add_argument("--pack", default=str(ROOT / "target/release/axsim-pack"))
    p.add_argument("--seconds", type=float, default=60, help="how long the traffic runs (default 60)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--chaos-every", type=float, default=1.0, help="seconds between chaos actions (default 1)")
    p.add_argument("--sim-config", default="exec_us=300;post_us=300", help="AXCL_SIM_CONFIG (latency)")
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--keep", action="store_true", help="keep the work directory (serve.log, the trace)")
    args = p.parse_args()
    if args.seconds > 3600:
        sys.exit("--seconds is capped at 3600")
    work = Path(tempfile.mkdtemp(prefix="axllm-soak-"))
    try:
        rc = Soak(args, work).run()
    finally:
        if args.keep:
            print(f"soak: work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
