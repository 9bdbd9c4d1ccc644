"""scripts/gguf_to_hf.py on GGUF files written here: a random Llama
checkpoint permuted and quantised the way llama.cpp's converter does (Q4_0,
Q4_1, Q8_0, F16, F32), converted back. The result equals MLX's own
dequantisation of the file, comes back to the original layout (the q/k
permutation undone) within quantisation error, packs, and runs. Files the
converter cannot convert faithfully are refused with a message."""

import json
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter
from gguf.quants import quantize

from conftest import GEOMETRY, ROOT, replay, run
from test_smollm2 import llama_cpp_permute, mlx_dequantized_bf16

CONVERTER = ROOT / "scripts" / "gguf_to_hf.py"

# GGUF name -> (Hugging Face name, type), per layer and for the whole model.
LAYER = {
    "attn_norm.weight": ("input_layernorm.weight", Q.F32),
    "attn_q.weight": ("self_attn.q_proj.weight", Q.Q4_0),
    "attn_k.weight": ("self_attn.k_proj.weight", Q.Q4_1),
    "attn_v.weight": ("self_attn.v_proj.weight", Q.Q8_0),
    "attn_output.weight": ("self_attn.o_proj.weight", Q.F16),
    "ffn_norm.weight": ("post_attention_layernorm.weight", Q.F32),
    "ffn_gate.weight": ("mlp.gate_proj.weight", Q.Q4_0),
    "ffn_up.weight": ("mlp.up_proj.weight", Q.Q8_0),
    "ffn_down.weight": ("mlp.down_proj.weight", Q.F16),
}
TOP = {"token_embd.weight": ("model.embed_tokens.weight", Q.Q8_0), "output_norm.weight": ("model.norm.weight", Q.F32)}


def write_gguf(ckpt, path, arch="llama"):
    """Writes the random checkpoint `ckpt` as llama.cpp would: q/k rows
    permuted for its interleaved RoPE, matrices quantised, the byte-level
    BPE as token/merge lists."""
    cfg = json.loads((ckpt / "config.json").read_text())
    tok = json.loads((ckpt / "tokenizer.json").read_text())
    weights = {k: np.array(v.astype(mx.float32)) for k, v in mx.load(str(ckpt / "model.safetensors")).items()}
    w = GGUFWriter(str(path), arch)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    added = {a["id"]: a for a in tok["added_tokens"]}
    tokens = [t for t, _ in vocab] + [added[i]["content"] for i in sorted(added) if i >= len(vocab)]
    types = [3 if i in added and added[i]["special"] else 4 if i in added else 1 for i in range(len(tokens))]
    # Padded to the embedding's rows with unused tokens, as llama.cpp's converter does.
    pad = cfg["vocab_size"] - len(tokens)
    tokens += [f"[PAD{i}]" for i in range(pad)]
    types += [5] * pad
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_chat_template(json.loads((ckpt / "tokenizer_config.json").read_text())["chat_template"])
    names = dict(TOP)
    for i in range(cfg["num_hidden_layers"]):
        names.update({f"blk.{i}.{k}": (f"model.layers.{i}.{v}", t) for k, (v, t) in LAYER.items()})
    for name, (hf, qtype) in names.items():
        x = weights[hf]
        if name.endswith("attn_q.weight"):
            x = llama_cpp_permute(x, cfg["num_attention_heads"])
        elif name.endswith("attn_k.weight"):
            x = llama_cpp_permute(x, cfg["num_key_value_heads"])
        data = x.astype(np.float32) if qtype == Q.F32 else quantize(x.astype(np.float32), qtype)
        w.add_tensor(name, data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return names, cfg


@pytest.fixture(scope="module")
def converted(tools, tmp_path_factory):
    work = tmp_path_factory.mktemp("gguf")
    ckpt = work / "ckpt"
    run([tools["pack"], "random", ckpt, "--arch", "llama", "--tie-embeddings", "--seed", "3", *GEOMETRY])
    names, cfg = write_gguf(ckpt, work / "model.gguf")
    run([sys.executable, CONVERTER, work / "model.gguf", work / "hf"])
    return work, ckpt, names, cfg


def test_every_type_dequantises_as_mlx_does_and_returns_to_the_original(converted):
    work, ckpt, names, cfg = converted
    gguf = mx.load(str(work / "model.gguf"))
    ours = mx.load(str(work / "hf" / "model.safetensors"))
    original = mx.load(str(ckpt / "model.safetensors"))
    assert sorted(ours) == sorted(hf for hf, _ in names.values())
    for name, (hf, qtype) in names.items():
        got = np.array(ours[hf].astype(mx.float32))
        permuted = got
        if name.endswith("attn_q.weight"):
            permuted = llama_cpp_permute(got, cfg["num_attention_heads"])
        elif name.endswith("attn_k.weight"):
            permuted = llama_cpp_permute(got, cfg["num_key_value_heads"])
        assert np.array_equal(permuted, mlx_dequantized_bf16(gguf, name)), f"{name} ({qtype.name})"
        # Back in the original row order, within the quantisation error.
        a = np.array(ours[hf].astype(mx.float32))
        b = np.array(original[hf].astype(mx.float32))
        step = {Q.F32: 0.0, Q.F16: 1e-3, Q.Q8_0: 0.01, Q.Q4_1: 0.15, Q.Q4_0: 0.15}[qtype]
        assert np.abs(a - b).max() <= step * np.abs(b).max() + 1e-6, f"{name} ({qtype.name})"


def test_config_and_tokenizer_come_from_the_metadata(converted):
    work, ckpt, _, cfg = converted
    got = json.loads((work / "hf" / "config.json").read_text())
    for key in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "vocab_size", "rope_theta", "rms_norm_eps", "tie_word_embeddings"]:
        assert got[key] == cfg[key], key
    from tokenizers import Tokenizer
    ours, theirs = (Tokenizer.from_file(str(d / "tokenizer.json")) for d in (work / "hf", ckpt))
    for text in ["Hello world 2024!", "<|im_start|>user\nnaïve 🙂<|im_end|>\n", "  x\n\n\ty  "]:
        assert ours.encode(text).ids == theirs.encode(text).ids, text
    tc = json.loads((work / "hf" / "tokenizer_config.json").read_text())
    assert tc["chat_template"] == json.loads((ckpt / "tokenizer_config.json").read_text())["chat_template"]
    assert tc["eos_token"] == "<|im_end|>"


def test_the_converted_checkpoint_packs_and_runs(converted, tools):
    work, _, _, _ = converted
    run([tools["pack"], "hf", work / "hf", work / "packed", "--chunk", "16", "--context", "127",
         "--prefill-history", "16,32,64"])
    out = replay(tools, work / "packed", [{"kind": "generate", "text": "Hello", "num_predict": 8}])
    assert len(out["results"][0]["tokens"]) == 8


@pytest.mark.parametrize("case", ["not a gguf", "qwen2 architecture"])
def test_what_cannot_be_converted_is_refused(case, converted, tmp_path):
    _, ckpt, _, _ = converted
    src = tmp_path / "in.gguf"
    if case == "not a gguf":
        src.write_bytes(b"GGUF but not really")
        want = "is not a readable GGUF file"
    else:
        write_gguf(ckpt, src, arch="qwen2")
        want = "architecture 'qwen2' is not supported"
    res = subprocess.run([sys.executable, CONVERTER, src, tmp_path / "out"], capture_output=True, text=True)
    assert res.returncode == 1 and want in res.stderr, res.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()
