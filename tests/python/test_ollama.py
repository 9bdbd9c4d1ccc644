"""The patched `ollama` end to end on the simulator: the real CLI, raw HTTP,
and the official Python clients (`ollama`, `openai`). Greedy text equals
what axllm-core produces directly for the same prompt; a fault inside the
NPU runtime (an abort) fails one request and the server answers the next."""

import json
import os
import signal
import subprocess
import time

import httpx
import ollama
import openai
import pytest

from conftest import Server, pack, replay

GREEDY = {"temperature": 0, "num_predict": 24}


@pytest.fixture(scope="module")
def model_dir(tools, tmp_path_factory):
    _, m = pack(tools, tmp_path_factory.mktemp("olm"), "qwen3", seed=33)
    return m


@pytest.fixture(scope="module")
def server(ollama_bin, tools, model_dir, tmp_path_factory):
    s = Server(ollama_bin, tools, tmp_path_factory.mktemp("srv"))
    modelfile = model_dir.parent / "Modelfile"
    modelfile.write_text(f"FROM {model_dir}\n")
    s.cli("create", "tiny", "-f", str(modelfile))
    yield s
    s.stop()


def core_text(tools, model_dir, prompt, n=GREEDY["num_predict"]):
    return replay(tools, model_dir, [{"kind": "generate", "text": prompt, "num_predict": n}])["results"][0]["text"]


def rendered(server, messages, think=False):
    r = server.post("/api/chat", {"model": "tiny", "messages": messages, "think": think, "_debug_render_only": True})
    r.raise_for_status()
    return r.json()["_debug_info"]["rendered_template"]


def test_raw_generate_equals_axllm_core(server, tools, model_dir):
    prompt = "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n"
    body = {"model": "tiny", "prompt": prompt, "raw": True, "stream": False, "options": GREEDY}
    first = server.post("/api/generate", body).json()
    assert first["response"] == core_text(tools, model_dir, prompt)
    assert first["done_reason"] in ("length", "stop")
    assert first["eval_count"] >= 1 and first["prompt_eval_count"] >= 1
    assert first["eval_duration"] > 0 and first["prompt_eval_duration"] > 0
    # Again on the same loaded model (the device cache now holds this prompt):
    # the same text.
    again = server.post("/api/generate", body).json()
    assert again["response"] == first["response"]


def test_chat_with_official_client_streams_what_axllm_core_says(server, tools, model_dir):
    messages = [{"role": "user", "content": "Hello! How are you?"}]
    prompt = rendered(server, messages, think=False)
    assert prompt.startswith("<|im_start|>user\nHello! How are you?<|im_end|>\n<|im_start|>assistant\n")
    want = core_text(tools, model_dir, prompt)
    client = ollama.Client(host=server.url)
    whole = client.chat(model="tiny", messages=messages, think=False, options=GREEDY)
    streamed = "".join(c.message.content or "" for c in client.chat(model="tiny", messages=messages, think=False, options=GREEDY, stream=True))
    assert whole.message.content == want == streamed
    assert not whole.message.thinking
    assert whole.done_reason in ("length", "stop")


def test_thinking_goes_to_the_thinking_field(server):
    client = ollama.Client(host=server.url)
    r = client.chat(model="tiny", messages=[{"role": "user", "content": "think about it"}], think=True, options=GREEDY)
    # The renderer opened <think> for the model; without a </think> from our
    # random model, everything it says is reasoning.
    assert r.message.thinking and not r.message.content
    prompt = rendered(server, [{"role": "user", "content": "x"}], think=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")


def test_tools_are_rendered_into_the_prompt(server):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    r = server.post("/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "weather in Oslo?"}],
                                  "tools": tools, "think": False, "_debug_render_only": True})
    prompt = r.json()["_debug_info"]["rendered_template"]
    assert "<tools>" in prompt and "get_weather" in prompt and "<tool_call>" in prompt
    ok = server.post("/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "weather in Oslo?"}],
                                   "tools": tools, "think": False, "stream": False, "options": GREEDY})
    assert ok.status_code == 200, ok.text


def test_openai_compatible_endpoints(server, tools, model_dir):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    assert "tiny:latest" in [m.id for m in client.models.list().data]
    messages = [{"role": "user", "content": "Tell me a fact."}]
    want = core_text(tools, model_dir, rendered(server, messages, think=False), n=16)
    extra = {"reasoning_effort": "none"}
    whole = client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=16, extra_body=extra)
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=16, stream=True, extra_body=extra)
        if c.choices
    )
    assert whole.choices[0].message.content == want == streamed
    assert whole.choices[0].finish_reason in ("length", "stop")
    comp = client.completions.create(model="tiny", prompt="Once upon a time", temperature=0, max_tokens=8)
    assert comp.choices[0].finish_reason in ("length", "stop")


def test_options_stop_and_num_predict(server):
    base = {"model": "tiny", "prompt": "one two three four", "raw": True, "stream": False}
    full = server.post("/api/generate", {**base, "options": {"temperature": 0, "num_predict": 40}}).json()["response"]
    five = server.post("/api/generate", {**base, "options": {"temperature": 0, "num_predict": 5}}).json()
    assert five["eval_count"] == 5 and five["done_reason"] == "length"
    assert full.startswith(five["response"])
    stop = full[10:13]
    cut = server.post("/api/generate", {**base, "options": {"temperature": 0, "num_predict": 40, "stop": [stop]}}).json()
    assert cut["response"] == full[: full.index(stop)] and cut["done_reason"] == "stop"
    s1 = server.post("/api/generate", {**base, "options": {"temperature": 1.0, "seed": 5, "num_predict": 20}}).json()
    s2 = server.post("/api/generate", {**base, "options": {"temperature": 1.0, "seed": 5, "num_predict": 20}}).json()
    assert s1["response"] == s2["response"]


def test_refusals_are_clear(server):
    img = server.post("/api/generate", {"model": "tiny", "prompt": "what is this?", "images": ["aGVsbG8="], "stream": False})
    assert img.status_code == 400 and "image" in img.json()["error"]
    # format is enforced (tests/python/test_structured.py); one the grammar engine cannot compile is refused.
    bad = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}, "required": ["a"]}
    fmt = server.post("/api/generate", {"model": "tiny", "prompt": "json please", "format": bad, "stream": False})
    assert fmt.status_code == 400 and "schema" in fmt.json()["error"]
    long = " ".join(["word"] * 3000)
    r = server.post("/api/generate", {"model": "tiny", "prompt": long, "raw": True, "stream": False, "truncate": False,
                                      "options": {"num_predict": 2}})
    assert r.status_code == 400 and "context" in r.json()["error"].lower()


def test_cli(server):
    out = server.cli("run", "tiny", "Say hi", "--verbose")
    assert out.stdout.strip() or out.stderr.strip()
    assert "eval rate" in out.stderr
    assert "tiny:latest" in server.cli("list").stdout
    assert "tiny:latest" in server.cli("ps").stdout
    show = server.cli("show", "--modelfile", "tiny").stdout
    assert "FROM tiny" in show and "RENDERER qwen3" in show and "PARSER qwen3-thinking" in show
    server.cli("cp", "tiny", "tiny-copy")
    assert "tiny-copy:latest" in server.cli("list").stdout
    server.cli("rm", "tiny-copy")
    assert "tiny-copy" not in server.cli("list").stdout
    server.cli("stop", "tiny")
    deadline = time.time() + 10
    while "tiny" in server.cli("ps").stdout and time.time() < deadline:
        time.sleep(0.2)
    assert "tiny" not in server.cli("ps").stdout
    # keep_alive 0 unloads after the request.
    server.post("/api/generate", {"model": "tiny", "prompt": "hi", "stream": False, "keep_alive": 0, "options": {"num_predict": 2}})
    deadline = time.time() + 10
    while "tiny" in server.cli("ps").stdout and time.time() < deadline:
        time.sleep(0.2)
    assert "tiny" not in server.cli("ps").stdout


def test_abort_inside_the_runtime_fails_one_request_and_the_server_stays_up(ollama_bin, tools, model_dir, tmp_path):
    # Every runner process aborts at its 40th engine execute: a long request
    # dies with the runner, a short one after it (fresh runner) succeeds.
    s = Server(ollama_bin, tools, tmp_path, {"AXCL_SIM_CONFIG": "abort=execute:40"})
    try:
        mf = tmp_path / "Modelfile"
        mf.write_text(f"FROM {model_dir}\n")
        s.cli("create", "tiny", "-f", str(mf))
        body = {"model": "tiny", "prompt": "a long answer please", "raw": True, "stream": False}
        bad = s.post("/api/generate", {**body, "options": {"temperature": 0, "num_predict": 200}})
        assert bad.status_code >= 500 and "exited unexpectedly" in bad.json()["error"], bad.text
        assert s.proc.poll() is None, "ollama serve must survive the runner's abort"
        good = s.post("/api/generate", {**body, "options": {"temperature": 0, "num_predict": 3}})
        assert good.status_code == 200, good.text
        assert good.json()["eval_count"] == 3
    finally:
        s.stop()


def test_killed_runner_mid_stream_then_next_request_succeeds(ollama_bin, tools, model_dir, tmp_path):
    # NPU latency slows the stream down so the kill lands in the middle of it.
    s = Server(ollama_bin, tools, tmp_path, {"AXCL_SIM_CONFIG": "exec_us=3000;post_us=3000"})
    try:
        mf = tmp_path / "Modelfile"
        mf.write_text(f"FROM {model_dir}\n")
        s.cli("create", "tiny", "-f", str(mf))
        body = {"model": "tiny", "prompt": "stream a lot", "raw": True, "options": {"temperature": 0, "num_predict": 120}}
        killed, got_error, chunks = [], False, 0
        with httpx.stream("POST", s.url + "/api/generate", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                msg = json.loads(line)
                chunks += 1
                if chunks == 3:
                    out = subprocess.run(["pgrep", "-P", str(s.proc.pid), "-f", "ax650-engine"], capture_output=True, text=True)
                    killed = out.stdout.split()
                    for pid in killed:
                        os.kill(int(pid), signal.SIGKILL)
                if "error" in msg:
                    got_error = True
                    assert "exited unexpectedly" in msg["error"], msg
        assert killed, "the runner subprocess was found"
        assert got_error, f"the stream reported the crash ({chunks} chunks)"
        assert s.proc.poll() is None, "ollama serve survives"
        ok = s.post("/api/generate", {**body, "stream": False, "options": {"temperature": 0, "num_predict": 4}})
        assert ok.status_code == 200 and ok.json()["eval_count"] == 4
    finally:
        s.stop()
