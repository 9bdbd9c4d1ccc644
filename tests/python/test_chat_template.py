"""axllm-core's chat template renderer (`Model::render_chat`) against
transformers' `apply_chat_template` on the same package: a Qwen3-style
template with tools (`tojson`, keys in the request's order), tool calls and
results, reasoning and `enable_thinking`."""

import json

import pytest

from conftest import pack, replay, run, sim_env

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city, in °C",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}}}}}]

REQUESTS = [
    {"messages": [{"role": "user", "content": "Hi"}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "enable_thinking": False},
    {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": TOOLS},
    {"messages": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "reasoning_content": "Call the tool.",
         "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"days": 2, "city": "Paris"}}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "{\"temp\": 23}"},
    ], "tools": TOOLS, "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "add_generation_prompt": False},
]


@pytest.fixture(scope="module")
def package(tools, tmp_path_factory):
    return pack(tools, tmp_path_factory.mktemp("chat"), "qwen3", seed=5)


def test_render_equals_transformers(package, tools):
    from transformers import AutoTokenizer
    ckpt, model_dir = package
    tok = AutoTokenizer.from_pretrained(ckpt)
    results = replay(tools, model_dir, [{"kind": "render", "chat": json.dumps(r)} for r in REQUESTS])["results"]
    for req, res in zip(REQUESTS, results):
        extra = {k: v for k, v in req.items() if k not in ("messages", "tools", "add_generation_prompt")}
        want = tok.apply_chat_template(req["messages"], tools=req.get("tools"), tokenize=False,
                                       add_generation_prompt=req.get("add_generation_prompt", True), **extra)
        assert res["text"] == want, json.dumps(req)
    assert '{"type": "function", "function": {"name": "get_weather"' in results[2]["text"]


def test_bad_requests_are_refused_with_a_reason(package, tools):
    _, model_dir = package
    script = model_dir.parent / "bad-render.json"
    script.write_text(json.dumps({"requests": [{"kind": "render", "chat": "{\"messages\": 3}"},
                                               {"kind": "render", "chat": "not json"}]}))
    res = run([tools["replay"], model_dir, script], env=sim_env(tools))
    errors = [r["error"] for r in json.loads(res.stdout)["results"]]
    assert "messages" in errors[0] and "not valid JSON" in errors[1], errors
