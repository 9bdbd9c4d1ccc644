"""Reliability and security of the patched `ollama` on the simulator, all over
127.0.0.1: faults of the NPU runtime seen through Ollama's HTTP API, hostile
manifests and requests, a bounded soak, and clean shutdown on SIGTERM (the
runner frees the model, which resets the device and finalises the runtime).

Every server runs with its own TMPDIR, where runners make their model
directories; each test checks that no runner and no directory is left."""

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import Server, free_port, pack, sim_env

PROMPT = {"model": "tiny", "prompt": "a long answer please", "raw": True}
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def model_dir(tools, tmp_path_factory):
    _, m = pack(tools, tmp_path_factory.mktemp("rel"), "qwen3", seed=33)
    return m


def alive(pid):
    """Whether the process exists and is not a zombie."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def exited(pid, timeout):
    """Waits up to timeout seconds for the process to end; whether it did."""
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def rss(pid):
    """Resident memory of a process in bytes (VmRSS)."""
    m = re.search(r"^VmRSS:\s+(\d+) kB$", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) * 1024


def runner_get(pid, path):
    """GET path of a runner, found by the --port of its command line."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    port = int(args[args.index(b"--port") + 1])
    r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    assert r.status_code == 200, (path, r.text)
    return r.json()


def runner_status(pid):
    """The runner's status (the product's wire format)."""
    return runner_get(pid, "/v1/status")


def runner_diagnostics(pid):
    """The runner's debug endpoint: the simulator's counters, apart from the status."""
    return runner_get(pid, "/v1/debug/diagnostics")


@contextlib.contextmanager
def serving(ollama_bin, tools, model_dir, workdir: Path, sim_config=None, extra_env=None):
    """`ollama serve` with the model `tiny`. On exit it stops the server and
    checks that every runner exited with it and removed its directory."""
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True)
    env = {"TMPDIR": str(tmp), **(extra_env or {})}
    if sim_config:
        env["AXCL_SIM_CONFIG"] = sim_config
    s = Server(ollama_bin, tools, workdir, env)
    try:
        s.create("tiny", model_dir)
        yield s
    finally:
        runners = s.runner_pids() if s.proc.poll() is None else []
        s.stop()
        stray = [pid for pid in runners if not exited(pid, 10)]
        for pid in stray:
            os.kill(pid, signal.SIGKILL)
    assert not stray, f"runners {stray} outlived ollama serve"
    assert not list(tmp.iterdir()), f"runner directories left behind: {list(tmp.iterdir())}"


def stream(s, path, body, timeout=60, on_chunk=None):
    """Streams a request; returns the HTTP status, the messages and the first
    error (of the status or of a line). on_chunk(n) runs after the nth line."""
    msgs = []
    with httpx.stream("POST", s.url + path, json=body, timeout=timeout) as r:
        if r.status_code != 200:
            return r.status_code, msgs, json.loads(r.read())["error"]
        for line in r.iter_lines():
            if line:
                msgs.append(json.loads(line))
                if on_chunk:
                    on_chunk(len(msgs))
    errors = [m["error"] for m in msgs if "error" in m]
    return r.status_code, msgs, errors[0] if errors else None


def generate_ok(s, n=3):
    r = s.post("/api/generate", {**PROMPT, "stream": False, "options": {"temperature": 0, "num_predict": n}})
    assert r.status_code == 200, r.text
    assert r.json()["eval_count"] == n
    return r.json()


# ---- 1. faults of the NPU runtime through Ollama's HTTP API ---------------------------


def test_card_out_of_memory_at_load_is_an_out_of_memory_error(ollama_bin, tools, model_dir, tmp_path):
    # Every runner's third device allocation fails with AXCL's "no memory" code.
    with serving(ollama_bin, tools, model_dir, tmp_path, "fail=malloc:3:0x80300507") as s:
        for path, body in [("/api/generate", {**PROMPT, "stream": False}),
                           ("/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": False})]:
            r = s.post(path, {**body, "options": {"num_predict": 2}})
            assert r.status_code == 500 and "out of memory" in r.json()["error"], r.text
        assert s.proc.poll() is None, "ollama serve survives"
        assert not s.runner_pids(), "the failed runners have exited"


def test_lost_device_mid_stream_fails_that_request_and_a_fresh_runner_serves_the_next(ollama_bin, tools, model_dir, tmp_path):
    # Each runner loses the device at its 40th execute: about a dozen tokens in.
    with serving(ollama_bin, tools, model_dir, tmp_path, "lose_device=execute:40") as s:
        status, msgs, error = stream(s, "/api/generate", {**PROMPT, "options": {"temperature": 0, "num_predict": 200}})
        assert status == 200 and error, msgs
        assert "lost" in error and "loaded again" in error, error
        assert any(m.get("response") for m in msgs), "tokens were streamed before the device was lost"
        [broken] = s.runner_pids()
        assert s.proc.poll() is None, "ollama serve survives"
        generate_ok(s)
        [fresh] = s.runner_pids()
        assert fresh != broken and not alive(broken), "the broken runner was replaced"


def test_failed_execute_fails_that_request_and_the_next_succeeds(ollama_bin, tools, model_dir, tmp_path):
    with serving(ollama_bin, tools, model_dir, tmp_path, "fail=execute:40") as s:
        r = s.post("/api/generate", {**PROMPT, "stream": False, "options": {"temperature": 0, "num_predict": 200}})
        assert r.status_code == 500, r.text
        error = r.json()["error"]
        assert "AX650 runtime error" in error and "axclrtEngineExecute" in error, error
        assert s.proc.poll() is None, "ollama serve survives"
        generate_ok(s)


# ---- 2. hostile manifests and requests ----------------------------------------------


def test_create_refuses_file_names_outside_the_package(ollama_bin, tools, model_dir, tmp_path):
    with serving(ollama_bin, tools, model_dir, tmp_path) as s:
        data = b"not really a model"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert httpx.post(f"{s.url}/api/blobs/{digest}", content=data).status_code == 201
        for name in ["../x.axmodel", "/etc/passwd", "a/../../b.bin"]:
            r = s.post("/api/create", {"model": "evil", "files": {name: digest, "config.json": digest}, "stream": False})
            assert r.status_code == 400 and "relative" in r.json()["error"], (name, r.text)
        assert "evil" not in str(httpx.get(s.url + "/api/tags").json())
        assert not list((tmp_path / "models").rglob("*evil*")), "no manifest was written"
        assert not [p for n in ("x.axmodel", "b.bin", "passwd") for p in tmp_path.parent.rglob(n)], "no file was written"


def snapshot(root: Path):
    """Every path under root with its kind and content (a symlink's target, a file's digest)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p)] = ("link", os.readlink(p))
        elif p.is_file():
            out[str(p)] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[str(p)] = ("dir", None)
    return out


def test_hostile_manifests_fail_to_load_and_touch_nothing_outside(ollama_bin, tools, model_dir, tmp_path):
    canary = tmp_path / "canary"  # next to the model store
    canary.mkdir()
    (canary / "keep.txt").write_text("canary")
    with serving(ollama_bin, tools, model_dir, tmp_path) as s:
        store = tmp_path / "models"
        library = store / "manifests/registry.ollama.ai/library"
        good = json.loads((library / "tiny/latest").read_text())
        post = next(l for l in good["layers"] if l.get("name") == "qwen3_post.axmodel")
        # A valid blob name whose file is a symlink to a working copy of the
        # post model outside the store: loading it would succeed if followed.
        outside = canary / "outside.axmodel"
        shutil.copy(store / "blobs" / post["digest"].replace(":", "-"), outside)
        linked = hashlib.sha256(b"a symlinked blob").hexdigest()
        os.symlink(outside, store / "blobs" / f"sha256-{linked}")
        before = snapshot(canary)
        around = sorted(p.name for p in tmp_path.iterdir())

        hostile = {
            "escape": ({"name": "../../../escape.axmodel"}, "invalid name"),
            "escape-canary": ({"name": "../../../canary/escape.axmodel"}, "invalid name"),
            "absolute": ({"name": str(canary / "absolute.axmodel")}, "invalid name"),
            "symlinked-blob": ({"digest": f"sha256:{linked}"}, "not a regular file"),
            "not-sha256": ({"digest": "sha256:../../../canary/outside"}, "invalid digest"),
            "other-algorithm": ({"digest": "md5:0123456789abcdef"}, "invalid digest"),
        }
        for tag, (change, want) in hostile.items():
            m = json.loads(json.dumps(good))
            next(l for l in m["layers"] if l.get("name") == "qwen3_post.axmodel").update(change)
            (library / tag).mkdir()
            (library / tag / "latest").write_text(json.dumps(m))
            r = s.post("/api/generate", {"model": tag, "prompt": "hi", "stream": False, "options": {"num_predict": 2}})
            assert r.status_code >= 400 and want in r.json()["error"], (tag, r.text)
            assert s.proc.poll() is None, f"ollama serve survives {tag}"
            assert not s.runner_pids(), f"no runner stays for {tag}"
            assert not list((tmp_path / "tmp").iterdir()), f"the runner of {tag} removed its directory"
        for tag in hostile:
            httpx.request("DELETE", s.url + "/api/delete", json={"model": tag}, timeout=30)
        generate_ok(s)

        assert snapshot(canary) == before, "the canary directory is unchanged"
        assert sorted(p.name for p in tmp_path.iterdir()) == around, "nothing new next to the store"
        assert not list(tmp_path.rglob("*escape*")) and not list(tmp_path.rglob("absolute.axmodel"))


def test_a_hostile_package_cannot_reach_outside_its_files(ollama_bin, tools, model_dir, tmp_path):
    """A package whose config.json names files outside it (the reported attack:
    /etc/passwd as the embedding table; a file of exactly the expected size; a
    `..` path) is refused by `ollama create` with axllm's clear error, on the
    client (the CLI checks before uploading) and on the server (an API client's
    upload, checked as the runner would load it), opening nothing outside and
    storing nothing; the server stays up and serves the next request."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.bin"  # exactly the size the loader expects of the embedding table
    shutil.copy(next(model_dir.rglob("model.embed_tokens.weight.bfloat16.bin")), secret)
    old = time.time() - 3 * 86400
    os.utime(secret, (old, old))
    # Whether reading a file updates its access time on this file system
    # (relatime does for times older than a day): a control file says.
    control = outside / "control.bin"
    control.write_bytes(b"x")
    os.utime(control, (old, old))
    control.read_bytes()
    atime_tracked = control.stat().st_atime > old + 3600
    cases = {
        "passwd": ("filename_tokens_embed", "/etc/passwd", "is an absolute path"),
        "sized": ("filename_tokens_embed", str(secret), "is an absolute path"),
        "dotdot": ("filename_post_axmodel", "../../outside/secret.bin", "goes up with .."),
    }
    with serving(ollama_bin, tools, model_dir, tmp_path) as s:
        for tag, (field, value, why) in cases.items():
            pkg = tmp_path / f"pkg-{tag}"
            shutil.copytree(model_dir, pkg)
            cfg = json.loads((pkg / "config.json").read_text())
            cfg[field] = value
            (pkg / "config.json").write_text(json.dumps(cfg))
            mf = tmp_path / f"Modelfile-{tag}"
            mf.write_text(f"FROM {pkg}\n")
            out = s.cli("create", tag, "-f", str(mf), check=False)
            files = {}
            for f in sorted(p for p in pkg.rglob("*") if p.is_file()):
                data = f.read_bytes()
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                assert httpx.post(f"{s.url}/api/blobs/{digest}", content=data, timeout=120).status_code in (200, 201)
                files[str(f.relative_to(pkg))] = digest
            r = s.post("/api/create", {"model": tag, "files": files, "stream": False})
            for where, failed, error in [("cli", out.returncode != 0, out.stderr),
                                         ("api", r.status_code == 400, r.json().get("error", ""))]:
                assert failed, (tag, where, error)
                assert f"config.json: {field}" in error and why in error and "inside its own directory" in error, (tag, where, error)
                assert "bytes" not in error and "root:" not in error, f"nothing of the outside file leaks: {error}"
            assert tag not in {m["name"].split(":")[0] for m in httpx.get(s.url + "/api/tags").json()["models"]}
            assert s.proc.poll() is None, f"ollama serve survives {tag}"
            assert not s.runner_pids(), f"no runner stays for {tag}"
        generate_ok(s)
    if atime_tracked:
        assert secret.stat().st_atime < old + 3600, "the file outside the package was never read"


def test_blob_uploads_are_verified(ollama_bin, tools, model_dir, tmp_path):
    with serving(ollama_bin, tools, model_dir, tmp_path) as s:
        digest = "sha256:" + hashlib.sha256(b"the content named").hexdigest()
        r = httpx.post(f"{s.url}/api/blobs/{digest}", content=b"other content")
        assert r.status_code == 400 and "digest mismatch" in r.json()["error"], r.text
        assert httpx.head(f"{s.url}/api/blobs/{digest}").status_code == 404, "nothing was stored"
        assert not (tmp_path / "models/blobs" / digest.replace(":", "-")).exists()
        r = httpx.post(f"{s.url}/api/blobs/sha256:not-hex", content=b"x")
        assert r.status_code == 400 and "invalid digest" in r.json()["error"], r.text


def test_malformed_and_absurd_requests_are_refused_or_handled(ollama_bin, tools, model_dir, tmp_path):
    with serving(ollama_bin, tools, model_dir, tmp_path) as s:
        for path in ["/api/generate", "/api/chat", "/api/create", "/v1/chat/completions"]:
            for body in [b'{"model": "tiny", "prompt": ', b"\xff\xfe not json", b'{"model": "tiny", "options": {"temperature": NaN}}']:
                r = httpx.post(s.url + path, content=body, timeout=30)
                assert r.status_code == 400, (path, body, r.text)

        def gen(options, **extra):
            return s.post("/api/generate", {**PROMPT, "stream": False, "options": options, **extra})

        # Wrong option types: Ollama's own option parsing refuses them (with a
        # 500, as for any model) and names the option.
        for options, name in [({"temperature": "NaN"}, "temperature"), ({"num_predict": "lots"}, "num_predict"),
                              ({"stop": "abc"}, "stop")]:
            r = gen(options)
            assert 400 <= r.status_code < 600 and name in r.json()["error"], (options, r.text)
        # Options Ollama refuses for every model since 0.34.1: the same 400 here.
        r = gen({"typical_p": 0.5, "num_predict": 4})
        assert r.status_code == 400 and "typical_p" in r.json()["error"], r.text
        # Values axllm cannot sample with: 400.
        for options in [{"temperature": -1}, {"repeat_penalty": -2}, {"temperature": 1e39}]:
            r = gen({**options, "num_predict": 4})
            assert r.status_code == 400 and "invalid request" in r.json()["error"], (options, r.text)
        # Values that disable a sampler or are out of range but harmless: served.
        for options in [{"top_k": -5}, {"top_p": 1e30}, {"top_p": -3}, {"min_p": -3},
                        {"repeat_last_n": 1 << 40}, {"num_keep": -5},
                        {"num_keep": 10**9}, {"presence_penalty": 1e38, "frequency_penalty": -1e38},
                        {"stop": ["x" * 100_000] * 10}, {"stop": [""]}]:
            r = gen({**options, "num_predict": 4})
            assert r.status_code == 200 and r.json()["eval_count"] == 4, (options, r.text)
        # num_predict: negative runs to the context limit, and so does a value
        # beyond int32 (it must not wrap around to a small number).
        limit = gen({"num_predict": -5, "temperature": 0}).json()
        assert limit["done_reason"] == "length" and limit["eval_count"] > 100, limit
        for n in [1 << 32, (1 << 32) + 1, 10**12, (1 << 63) - 1]:
            r = gen({"num_predict": n, "temperature": 0})
            assert r.status_code == 200 and r.json()["eval_count"] == limit["eval_count"], (n, r.text)
        # Seeds are deterministic or refused (issue #19): below -1 (axllm would
        # take it as random) and integers beyond int64 (a float would wrap them).
        for options, msg in [({"seed": -99}, "invalid seed -99"), ({"seed": 1 << 70}, "out of range"),
                             ({"num_predict": 1 << 63}, "out of range")]:
            r = gen({"num_predict": 4, **options})
            assert r.status_code == 400 and msg in r.json()["error"], (options, r.text)
        # A 20 MB prompt is truncated to fit the context.
        r = s.post("/api/generate", {"model": "tiny", "prompt": "word " * (4 * MiB), "stream": False,
                                     "options": {"num_predict": 2}}, timeout=300)
        assert r.status_code == 200, r.text[:500]
        assert 0 < r.json()["prompt_eval_count"] < 127 and r.json()["eval_count"] == 2
        assert s.proc.poll() is None, "ollama serve survives"
        generate_ok(s)


# ---- 3. soak ------------------------------------------------------------------------

SOAK_REQUESTS, SOAK_CLIENTS, CANCEL_EVERY, SOAK_SECONDS = 500, 8, 7, 170
SOAK_LATENCY = "exec_us=500;post_us=500"  # ~1.5 ms a token: cancellations land mid-generation


def soak_request(s, i):
    """Request i of the soak: generate or chat, streamed or not; every
    CANCEL_EVERY-th is streamed and abandoned after its first chunk by closing
    the connection. Returns "ok", "cancelled" or an error description."""
    cancel = i % CANCEL_EVERY == 0
    streamed = cancel or i % 3 != 0
    options = {"num_predict": 100 if cancel else 4 + i % 13, "temperature": 0 if i % 4 == 0 else 0.8, "seed": i}
    if i % 2:
        path, body = "/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": f"request {i}"}], "think": False}
    else:
        path, body = "/api/generate", {"model": "tiny", "prompt": f"request {i}: tell me something"}
    body.update(stream=streamed, options=options)
    with httpx.Client(timeout=30) as client:  # closing it closes the connection
        if not streamed:
            r = client.post(s.url + path, json=body)
            return "ok" if r.status_code == 200 and r.json().get("done") else f"{r.status_code}: {r.text[:200]}"
        with client.stream("POST", s.url + path, json=body) as r:
            if r.status_code != 200:
                return f"{r.status_code}: {r.read()[:200]!r}"
            last = None
            for line in r.iter_lines():
                if not line:
                    continue
                last = json.loads(line)
                if "error" in last:
                    return f"stream error: {last['error']}"
                if cancel and not last.get("done"):
                    return "cancelled"
            return "ok" if last and last.get("done") else f"stream ended early: {last}"


def device_figures(s, runner):
    st, diag = runner_status(runner), runner_diagnostics(runner)
    assert diag["simulator"] and not any(k.startswith("sim") for k in st), (st, diag)
    return {"rss_serve": rss(s.proc.pid), "rss_runner": rss(runner), "device_memory": st["memory"],
            "sim_live_allocations": diag["counters"]["live_allocations"],
            "sim_live_bytes": diag["counters"]["live_bytes"]}


@pytest.mark.soak
def test_soak_mixed_requests_with_cancellations(ollama_bin, tools, model_dir, tmp_path):
    with serving(ollama_bin, tools, model_dir, tmp_path, SOAK_LATENCY) as s:
        for i in range(2 * SOAK_CLIENTS):  # warm up every kind of request and the allocators
            assert soak_request(s, i) in ("ok", "cancelled")
        [runner] = s.runner_pids()
        before = device_figures(s, runner)

        deadline = time.monotonic() + SOAK_SECONDS

        def one(i):
            if time.monotonic() > deadline:
                return "not started: the soak ran out of time"
            return soak_request(s, i)

        start = time.monotonic()
        with ThreadPoolExecutor(SOAK_CLIENTS) as pool:
            outcomes = list(pool.map(one, range(SOAK_REQUESTS)))
        elapsed = time.monotonic() - start
        generate_ok(s)  # the runner serves again after the last cancellation
        after = device_figures(s, runner)

        counts = Counter(outcomes)
        served, cancelled = counts.pop("ok", 0), counts.pop("cancelled", 0)
        print(f"\nsoak: {len(outcomes)} requests from {SOAK_CLIENTS} clients in {elapsed:.1f}s: "
              f"{served} served, {cancelled} cancelled, {counts.total()} failed")
        for key in before:
            print(f"soak: {key}: {before[key]} -> {after[key]} ({after[key] - before[key]:+d})")
        failures = dict(counts)
        assert not failures, failures
        assert cancelled == len(range(0, SOAK_REQUESTS, CANCEL_EVERY))
        assert elapsed < SOAK_SECONDS
        assert s.runner_pids() == [runner], "one runner served the whole soak"
        assert s.proc.poll() is None
        # Nothing leaks on the device: the same allocations when idle.
        for key in ("device_memory", "sim_live_allocations", "sim_live_bytes"):
            assert after[key] == before[key], (key, before[key], after[key])
        for key in ("rss_serve", "rss_runner"):
            assert after[key] - before[key] < 64 * MiB, (key, before[key], after[key])


# ---- 4. SIGTERM ---------------------------------------------------------------------

SLOW = "exec_us=3000;post_us=3000"  # ~10 ms a token: signals land mid-stream


def released(trace: Path, pid):
    """Whether the simulator trace shows process pid reset the device, then finalised."""
    lines = trace.read_text().splitlines() if trace.exists() else []
    reset = [i for i, l in enumerate(lines) if re.fullmatch(rf"{pid} axclrtResetDevice\(\d+\) 0x0", l)]
    final = [i for i, l in enumerate(lines) if l == f"{pid} axclFinalize 0x0"]
    return bool(reset and final and reset[0] < final[-1])


def test_sigterm_to_the_runner_mid_stream_frees_the_device_and_exits_0(ollama_bin, tools, model_dir, tmp_path):
    trace = tmp_path / "sim-trace"
    with serving(ollama_bin, tools, model_dir, tmp_path, SLOW, {"AXCL_SIM_TRACE_FILE": str(trace)}) as s:
        generate_ok(s)
        [runner] = s.runner_pids()
        assert not released(trace, runner)

        def terminate(n):
            if n == 3:
                os.kill(runner, signal.SIGTERM)

        status, msgs, error = stream(s, "/api/generate", {**PROMPT, "options": {"temperature": 0, "num_predict": 120}},
                                     on_chunk=terminate)
        assert status == 200 and error and "AX650 runner" in error, msgs[-3:]
        assert not any(m.get("done") for m in msgs), "the stream was cut short"
        exit_line = f'msg="AX650 runner exited" model=tiny:latest pid={runner} status=0'
        wait_until(lambda: exit_line in s.log_path.read_text(), 10, "serve to log the runner's clean exit")
        assert "AX650 model freed, device released" in s.log_path.read_text()
        assert released(trace, runner), trace.read_text()
        assert s.proc.poll() is None, "ollama serve survives"
        generate_ok(s)
        assert s.runner_pids() != [runner]


def test_sigterm_to_serve_mid_stream_stops_the_runner_which_frees_the_device(ollama_bin, tools, model_dir, tmp_path):
    trace = tmp_path / "sim-trace"
    with serving(ollama_bin, tools, model_dir, tmp_path, SLOW, {"AXCL_SIM_TRACE_FILE": str(trace)}) as s:
        generate_ok(s)
        [runner] = s.runner_pids()

        def terminate(n):
            if n == 3:
                s.proc.send_signal(signal.SIGTERM)

        with contextlib.suppress(httpx.HTTPError):  # the server closes the connection
            stream(s, "/api/generate", {**PROMPT, "options": {"temperature": 0, "num_predict": 120}}, on_chunk=terminate)
        assert s.proc.wait(timeout=30) == 0, "ollama serve exits cleanly"
        assert exited(runner, 10), "the runner exits with serve"
        log = s.log_path.read_text()
        assert "AX650 model freed, device released" in log
        assert f'msg="AX650 runner exited" model=tiny:latest pid={runner} status=0' in log, log[-3000:]
        assert released(trace, runner), trace.read_text()


def test_runner_stopped_the_way_serve_stops_it_frees_the_device_and_exits_0(ollama_bin, tools, model_dir, tmp_path):
    # `ollama serve` stops a runner by closing its stdin, then sending SIGINT.
    # Slow executes keep the runner busy shutting down when the signal comes:
    # it must still be caught, not kill the runner before it frees the model.
    # Run directly, the runner takes the runtime library as a flag (serve
    # would pass it from AXLLM_AXCL_LIB).
    trace, port = tmp_path / "sim-trace", free_port()
    env = sim_env(tools, {"AXCL_SIM_CONFIG": "exec_us=100000", "AXCL_SIM_TRACE_FILE": str(trace)})
    log = tmp_path / "runner.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(ollama_bin), "runner", "--ax650-engine", "--dir", str(model_dir), "--port", str(port),
                                 "--runtime", str(tools["sim"]), "--exit-on-stdin-eof"],
                                env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(url + "/v1/status", timeout=1).json()["state"] == "ready"
            assert proc.poll() is None, log.read_text()
            return False

        wait_until(ready, 30, "the runner to load the model")
        with httpx.stream("POST", url + "/v1/completions", json={"prompt": "hello"}, timeout=30) as r:
            next(line for line in r.iter_lines() if line)  # the generation runs
            proc.stdin.close()
            time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "AX650 model freed, device released" in log.read_text()
    assert released(trace, proc.pid), trace.read_text()
