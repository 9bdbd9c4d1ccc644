"""Several requests at once through `ollama serve`, with OLLAMA_NUM_PARALLEL=2
(two KV slots on the card) and with it unset (the runner's automatic count:
the most, AXLLM_KV_SLOTS_AUTO_MAX, for this small model on the default 8 GB
simulated card): a short request sent while a long one streams finishes
first, and both outputs (greedy and seeded) equal what each produces alone,
also when one request's prompt takes several prefill chunks (fed a chunk per
turn); cancelling one stream leaves the other's output intact; /api/ps and
`ollama ps` show the slots."""

import json
import threading

import httpx
import pytest

from conftest import Server, pack

# Slow calls so that the long generation is still streaming when the short
# one arrives (its ~100 tokens take seconds); no assertion is on time.
SLOW = {"AXCL_SIM_CONFIG": "exec_us=3000;post_us=3000"}
LONG = "<|im_start|>user\nTell me a very long story about the sea.<|im_end|>\n<|im_start|>assistant\n"
SHORT = "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"


# The automatic count's maximum (include/axllm.h's AXLLM_KV_SLOTS_AUTO_MAX).
AUTO_MAX = 4


# (OLLAMA_NUM_PARALLEL, the slots the model then has); None leaves it unset.
@pytest.fixture(scope="module", params=[("2", 2), (None, AUTO_MAX)], ids=["parallel2", "automatic"])
def server(request, ollama_bin, tools, tmp_path_factory):
    setting, slots = request.param
    _, model = pack(tools, tmp_path_factory.mktemp("par"), "qwen3", seed=41)
    s = Server(ollama_bin, tools, tmp_path_factory.mktemp("parsrv"), {"OLLAMA_NUM_PARALLEL": setting, **SLOW})
    s.slots = slots
    s.create("tiny", model)
    yield s
    s.stop()


def body(prompt, options, stream):
    return {"model": "tiny", "prompt": prompt, "raw": True, "stream": stream, "options": options}


def alone(server, prompt, options):
    r = server.post("/api/generate", body(prompt, options, False))
    r.raise_for_status()
    return r.json()["response"]


def stream_long(server, options, events, out, stop_after=None):
    """Streams the long request, recording ("long-first") at its first piece
    and ("long-done") at its end; with `stop_after`, disconnects after that
    many pieces."""
    pieces = []
    with httpx.stream("POST", server.url + "/api/generate", json=body(LONG, options, True), timeout=120) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            msg = json.loads(line)
            if msg.get("response"):
                pieces.append(msg["response"])
                if len(pieces) == 1:
                    events.append("long-first")
                if stop_after and len(pieces) == stop_after:
                    events.append("long-cancelled")
                    break
            if msg.get("done"):
                events.append("long-done")
    out["long"] = "".join(pieces)


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.9, "seed": 11}], ids=["greedy", "seeded"])
def test_a_short_request_finishes_while_a_long_one_streams_and_both_equal_alone(server, sampling):
    long_opts = {**sampling, "num_predict": 100}
    short_opts = {**sampling, "num_predict": 8}
    want_long, want_short = alone(server, LONG, long_opts), alone(server, SHORT, short_opts)
    assert len(want_long) > len(want_short) > 0

    events, out = [], {}
    t = threading.Thread(target=stream_long, args=(server, long_opts, events, out))
    t.start()
    while "long-first" not in events and t.is_alive():
        threading.Event().wait(0.01)
    short = alone(server, SHORT, short_opts)
    events.append("short-done")
    t.join()
    assert short == want_short
    assert out["long"] == want_long
    assert events.index("short-done") < events.index("long-done"), events


def test_cancelling_one_stream_leaves_the_other_intact(server):
    greedy = {"temperature": 0, "num_predict": 60}
    want_long, want_short = alone(server, LONG, greedy), alone(server, SHORT, greedy)
    events, out = [], {}
    t = threading.Thread(target=stream_long, args=(server, greedy, events, out, 5))
    t.start()
    while "long-first" not in events and t.is_alive():
        threading.Event().wait(0.01)
    short = alone(server, SHORT, greedy)
    t.join()
    assert "long-cancelled" in events
    assert want_long.startswith(out["long"])
    assert short == want_short
    # The server serves both again, unchanged.
    assert alone(server, LONG, greedy) == want_long


def test_the_runner_loads_with_its_slots(server):
    alone(server, SHORT, {"temperature": 0, "num_predict": 2})
    log = server.log_path.read_text()
    assert "AX650 model loaded" in log and f"parallel={server.slots}" in log, log[-3000:]


def test_ps_shows_the_slots(server):
    alone(server, SHORT, {"temperature": 0, "num_predict": 2})
    r = httpx.get(server.url + "/api/ps", timeout=30)
    r.raise_for_status()
    (m,) = r.json()["models"]
    assert m["num_parallel"] == server.slots, m
    ctx = m["context_length"]
    out = server.cli("ps").stdout
    row = next(line for line in out.splitlines() if line.startswith("tiny"))
    assert f"{ctx} ({server.slots} parallel)" in row, out


# A prompt of several prefill chunks (16 tokens each in the test packing):
# fed a chunk per turn between the other request's steps.
LONG_PROMPT = "<|im_start|>user\n" + "Tell me about the sea, the waves and the wind. " * 6 + "<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.9, "seed": 5}], ids=["greedy", "seeded"])
def test_a_long_prompt_and_a_short_request_at_once_each_equal_alone(server, sampling):
    long_opts, short_opts = {**sampling, "num_predict": 12}, {**sampling, "num_predict": 12}
    want_long, want_short = alone(server, LONG_PROMPT, long_opts), alone(server, SHORT, short_opts)
    assert want_long and want_short
    got = {}
    t = threading.Thread(target=lambda: got.update(long=alone(server, LONG_PROMPT, long_opts)))
    t.start()
    got["short"] = alone(server, SHORT, short_opts)
    t.join()
    assert got == {"long": want_long, "short": want_short}
