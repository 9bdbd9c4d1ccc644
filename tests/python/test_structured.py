"""Structured outputs, logprobs and embeddings through `ollama serve` with
the official clients (`ollama`, `openai`), on a random-weight model packed for
the simulator: whatever the model prefers, the grammar decides what may come
next, so a finished answer must parse and validate. Embeddings equal the
independent reference's (mlx-lm) last hidden state, L2-normalised."""

import json
import math

import numpy as np
import ollama
import openai
import pytest

from conftest import CHUNK, Server, pack
from reference import Reference, bf16

SCHEMA = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["cat", "dog", "bird"]},
        "age": {"type": "integer", "minimum": 0, "maximum": 9},
        "ok": {"type": "boolean"},
        "quote": {"const": "a \"b\"\n"},
    },
    "required": ["kind", "age", "ok", "quote"],
    "additionalProperties": False,
}
GREEDY = {"temperature": 0, "num_predict": 90}


def valid(v):
    assert set(v) == {"kind", "age", "ok", "quote"}, v
    assert v["kind"] in ("cat", "dog", "bird") and v["age"] in range(10) and isinstance(v["ok"], bool), v
    assert v["quote"] == "a \"b\"\n"


@pytest.fixture(scope="module")
def packed(tools, tmp_path_factory):
    return pack(tools, tmp_path_factory.mktemp("structured"), "qwen3", seed=21)


@pytest.fixture(scope="module")
def server(ollama_bin, tools, packed, tmp_path_factory):
    s = Server(ollama_bin, tools, tmp_path_factory.mktemp("srv"))
    modelfile = packed[1].parent / "Modelfile"
    modelfile.write_text(f"FROM {packed[1]}\n")
    s.cli("create", "tiny", "-f", str(modelfile))
    yield s
    s.stop()


def test_generate_and_chat_follow_a_schema(server):
    client = ollama.Client(host=server.url)
    r = client.generate(model="tiny", prompt="Describe a pet.", format=SCHEMA, options=GREEDY)
    assert r.done_reason == "stop", r.response
    valid(json.loads(r.response))
    for seed in (1, 2):
        r = client.chat(model="tiny", messages=[{"role": "user", "content": "A pet, as JSON."}], format=SCHEMA, think=False,
                        options={"seed": seed, "temperature": 1.0, "num_predict": 90})
        assert r.done_reason == "stop", r.message.content
        valid(json.loads(r.message.content))
    # "json" gives an object (or is cut off by num_predict, reporting "length").
    r = client.generate(model="tiny", prompt="Anything.", format="json", options={"temperature": 0, "num_predict": 60})
    assert r.response.lstrip().startswith("{")
    if r.done_reason == "stop":
        assert isinstance(json.loads(r.response), dict)
    else:
        assert r.done_reason == "length"
    r = client.generate(model="tiny", prompt="Describe a pet.", format=SCHEMA, options={"temperature": 0, "num_predict": 3})
    # Cut off: a prefix of the JSON (whitespace may come first).
    assert r.done_reason == "length" and r.eval_count == 3
    assert r.response.strip() == "" or r.response.strip().startswith("{"), r.response
    # The CLI's --format json.
    # (The model thinks first: the answer after the thinking block is the JSON.)
    out = server.cli("run", "tiny", "--format", "json", "Anything.", timeout=300).stdout
    answer = out.split("...done thinking.")[-1]
    assert answer.lstrip().startswith("{"), out


def test_a_schema_that_cannot_compile_is_a_400_and_the_server_stays_up(server):
    bad = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}, "required": ["a"]}
    r = server.post("/api/generate", {"model": "tiny", "prompt": "x", "format": bad, "stream": False})
    assert r.status_code == 400 and "schema" in r.json()["error"], r.text
    r = server.post("/api/generate", {"model": "tiny", "prompt": "x", "format": "yaml", "stream": False})
    assert r.status_code == 400, r.text
    r = server.post("/api/generate", {"model": "tiny", "prompt": "x", "stream": False, "options": {"num_predict": 2}})
    assert r.status_code == 200


def test_openai_response_format(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    r = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "A pet."}], temperature=0, max_tokens=90, reasoning_effort="none",
        response_format={"type": "json_schema", "json_schema": {"name": "pet", "schema": SCHEMA}})
    assert r.choices[0].finish_reason == "stop"
    valid(json.loads(r.choices[0].message.content))
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "JSON please."}], temperature=0,
                                       max_tokens=60, reasoning_effort="none", response_format={"type": "json_object"})
    assert r.choices[0].message.content.lstrip().startswith("{")
    r = client.responses.create(model="tiny", input="A pet.", temperature=0, max_output_tokens=90, reasoning={"effort": "none"},
                                text={"format": {"type": "json_schema", "name": "pet", "schema": SCHEMA}})
    valid(json.loads(r.output_text))


def test_logprobs(server):
    client = ollama.Client(host=server.url)
    r = client.generate(model="tiny", prompt="Hello", logprobs=True, top_logprobs=3, options={"temperature": 0, "num_predict": 8})
    assert len(r.logprobs) == r.eval_count
    for lp in r.logprobs:
        assert lp.logprob <= 0 and len(lp.top_logprobs) == 3
        assert lp.top_logprobs[0].token == lp.token and math.isclose(lp.top_logprobs[0].logprob, lp.logprob)
        assert lp.top_logprobs[0].logprob >= lp.top_logprobs[1].logprob >= lp.top_logprobs[2].logprob
    # The same through chat, streamed, and OpenAI's chat completions.
    chunks = list(client.chat(model="tiny", messages=[{"role": "user", "content": "Hi"}], think=False, logprobs=True,
                              options={"temperature": 0, "num_predict": 6}, stream=True))
    lps = [lp for c in chunks for lp in (c.logprobs or [])]
    assert len(lps) == chunks[-1].eval_count
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    r = oa.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], temperature=0, max_tokens=5,
                                   logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens and all(len(c.top_logprobs) == 2 for c in content)


def reference_embedding(ckpt, tokens):
    """mlx-lm's hidden state after the last decoder layer (bf16 at each
    layer's output, as on the card), last token, L2-normalised."""
    ref = Reference(ckpt)
    cache = ref.new_cache()
    import mlx.core as mx
    from mlx_lm.models.base import create_attention_mask
    h = None
    for start in range(0, len(tokens), CHUNK):
        chunk = tokens[start:start + CHUNK]
        x = ref.inner.embed_tokens(mx.array([chunk]))
        mask = create_attention_mask(x, cache[0])
        for layer, c in zip(ref.inner.layers, cache):
            x = bf16(layer(x, mask, c))
        h = x
    v = np.array(h[0, -1].astype(mx.float32))
    return v / np.linalg.norm(v)


def test_embeddings_equal_the_reference_hidden_state(server, packed):
    ckpt, _ = packed
    client = ollama.Client(host=server.url)
    texts = ["the quick brown fox", "hello world, hello"]
    r = client.embed(model="tiny", input=texts)
    assert len(r.embeddings) == 2 and r.prompt_eval_count > 0
    for text, got in zip(texts, r.embeddings):
        got = np.array(got)
        assert math.isclose(np.linalg.norm(got), 1.0, rel_tol=1e-4)
        ids = server_tokens(server, text)
        want = reference_embedding(ckpt, ids)
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) < 2e-2 and float(got @ want) > 0.999, (np.max(np.abs(got - want)), float(got @ want))
    # The legacy route and OpenAI's give the same vector; dimensions cut and renormalise.
    legacy = client.embeddings(model="tiny", prompt=texts[0]).embedding
    assert np.allclose(legacy, r.embeddings[0], atol=1e-6)
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    e = oa.embeddings.create(model="tiny", input=texts[0], dimensions=16).data[0].embedding
    head = np.array(r.embeddings[0][:16])
    assert np.allclose(e, head / np.linalg.norm(head), atol=1e-5)
    # truncate=false refuses a text longer than the context; the default cuts it.
    long = "fox " * 400
    resp = server.post("/api/embed", {"model": "tiny", "input": long, "truncate": False})
    assert resp.status_code == 400, resp.text
    resp = server.post("/api/embed", {"model": "tiny", "input": long})
    assert resp.status_code == 200 and len(resp.json()["embeddings"][0]) == len(r.embeddings[0])


def server_tokens(server, text):
    """The ids the model's tokenizer gives `text` (axllm's, through the replay tool's tokenizer)."""
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(server_tokens.tokenizer)).encode(text, add_special_tokens=True).ids


@pytest.fixture(autouse=True)
def _tokenizer(packed):
    server_tokens.tokenizer = packed[0] / "tokenizer.json"
