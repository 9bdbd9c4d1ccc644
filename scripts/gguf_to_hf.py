#!/usr/bin/env python3
"""Converts a llama.cpp GGUF model into a Hugging Face checkpoint that
`axsim-pack hf` packs for the simulator.

    python scripts/gguf_to_hf.py MODEL.gguf OUT_DIR

Needs only the `gguf` package from PyPI (llama.cpp's own reader and
dequantiser, with numpy). It writes into OUT_DIR (created if needed):

* model.safetensors: every tensor dequantised (any type the `gguf` package
  reads: F32, F16, BF16, Q4_0, Q4_1, Q8_0, the K-quants, ...) and rounded to
  bfloat16 (round to nearest even), under the Hugging Face names. llama.cpp's
  converter permutes the rows of the Llama q and k projections so that its
  interleaved RoPE applies; that permutation is undone here, so the weights
  are those of the original checkpoint for the half-split RoPE of
  transformers (and of the simulator).
* config.json (LlamaForCausalLM) from the GGUF metadata; the embedding is
  tied when the file has no `output.weight`.
* tokenizer.json: the byte-level BPE of the metadata (vocabulary, merges,
  control and user-defined tokens as added tokens) with the pre-tokenizer
  that `tokenizer.ggml.pre` names, as the model's Hugging Face tokenizer has it.
* tokenizer_config.json (with the chat template of the metadata, default
  system prompt included) and generation_config.json.

Only what can be converted faithfully is: the Llama architecture, GPT-2 style
byte-level BPE tokenizers with a known pre-tokenizer. Anything else is refused
with a message that says what.
"""

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

# llama.cpp token types (gguf.TokenType): 1 normal, 3 control, 4 user-defined.
CONTROL, USER_DEFINED = 3, 4


def byte_level(add_prefix_space, trim_offsets):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": trim_offsets,
            "use_regex": True}


# `tokenizer.ggml.pre` -> the Hugging Face pre-tokenizer with the same split.
# llama.cpp's "smollm" and "starcoder" splits are each digit alone, then the
# GPT-2 pattern: Hugging Face's Digits(individual) followed by ByteLevel.
PRE_TOKENIZERS = {
    "gpt-2": byte_level(False, True),
    "smollm": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, byte_level(False, True)]},
    "starcoder": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, byte_level(False, True)]},
}


class ConvertError(Exception):
    pass


class Gguf:
    """The metadata and tensors of one GGUF file."""

    def __init__(self, path: Path):
        try:
            self.reader = GGUFReader(path)
        except Exception as e:  # the reader raises ValueError, struct.error, OSError...
            raise ConvertError(f"{path} is not a readable GGUF file: {e}") from e
        self.path = path
        self.tensors = {t.name: t for t in self.reader.tensors}

    def get(self, key, default=None):
        field = self.reader.fields.get(key)
        return default if field is None else field.contents()

    def need(self, key):
        value = self.get(key)
        if value is None:
            raise ConvertError(f"{self.path}: metadata key {key} is missing")
        return value

    def dequantized(self, name) -> np.ndarray:
        """A tensor as float32 in numpy (row-major, Hugging Face) shape."""
        t = self.tensors[name]
        try:
            qtype = GGMLQuantizationType(t.tensor_type)
            data = np.asarray(t.data)
            if qtype == GGMLQuantizationType.F32:
                out = data.astype(np.float32)
            elif qtype == GGMLQuantizationType.F16:
                out = data.view(np.float16).astype(np.float32)
            else:
                out = dequantize(data, qtype)
        except (NotImplementedError, ValueError) as e:
            raise ConvertError(f"tensor {name}: cannot dequantise type {t.tensor_type}: {e}") from e
        shape = tuple(int(d) for d in reversed(t.shape))
        out = np.asarray(out, dtype=np.float32).reshape(shape)
        if not np.isfinite(out).all():
            raise ConvertError(f"tensor {name} has non-finite values")
        return out


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undoes llama.cpp's q/k row permutation. Its converter writes each
    head's rows as (pairs of the two halves interleaved): rows
    [h, half, 2] become [h, 2, half] again here."""
    rows = w.shape[0]
    if rows % (2 * heads):
        raise ConvertError(f"cannot unpermute {rows} rows over {heads} heads")
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, round to nearest even (finite input)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def f32(x) -> float:
    """A float32 metadata value as the shortest decimal that reads back to it (1e-05, not 9.99e-06)."""
    return float(str(np.float32(x)))


def llama_config(g: Gguf):
    arch = g.need("general.architecture")
    if arch != "llama":
        raise ConvertError(f"architecture {arch!r} is not supported (only llama)")
    p = "llama."
    hidden = int(g.need(p + "embedding_length"))
    heads = int(g.need(p + "attention.head_count"))
    kv_heads = int(g.get(p + "attention.head_count_kv", heads))
    head_dim = int(g.get(p + "attention.key_length", hidden // heads))
    rope_dims = int(g.get(p + "rope.dimension_count", head_dim))
    if rope_dims != head_dim:
        raise ConvertError(f"partial RoPE ({rope_dims} of {head_dim} dims) is not supported")
    if "rope_freqs.weight" in g.tensors or g.get(p + "rope.scaling.type") not in (None, "none"):
        raise ConvertError("RoPE scaling (rope_freqs / rope.scaling.*) is not supported")
    if "token_embd.weight" not in g.tensors:
        raise ConvertError("the file has no token_embd.weight")
    vocab = int(g.tensors["token_embd.weight"].shape[1])  # GGUF shapes are [hidden, vocab]
    if len(g.need("tokenizer.ggml.tokens")) > vocab:
        raise ConvertError(f"{len(g.need('tokenizer.ggml.tokens'))} tokens but the embedding has {vocab} rows")
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": "blk.0.attn_q.bias" in g.tensors,
        "attention_dropout": 0.0,
        "bos_token_id": g.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": g.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": g.get("tokenizer.ggml.padding_token_id"),
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": int(g.need(p + "feed_forward_length")),
        "max_position_embeddings": int(g.get(p + "context_length", 2048)),
        "mlp_bias": False,
        "num_attention_heads": heads,
        "num_hidden_layers": int(g.need(p + "block_count")),
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": f32(g.get(p + "attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_scaling": None,
        "rope_theta": f32(g.get(p + "rope.freq_base", 10000.0)),
        "tie_word_embeddings": "output.weight" not in g.tensors,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": vocab,
    }


# GGUF llama tensor name (per layer, after "blk.N.") -> Hugging Face name.
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def hf_name(name: str, layers: int) -> str:
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and int(parts[1]) < layers:
        rest = LAYER_NAMES.get(parts[2])
        if rest is not None:
            return f"model.layers.{int(parts[1])}.{rest}"
    raise ConvertError(f"tensor {name} has no place in a llama model with {layers} layers")


def write_weights(g: Gguf, cfg, out: Path):
    """Streams every tensor, dequantised and rounded to bf16, into model.safetensors."""
    layers = cfg["num_hidden_layers"]
    plan = []  # (gguf name, hf name, shape)
    for t in g.reader.tensors:
        shape = [int(d) for d in reversed(t.shape)]
        plan.append((t.name, hf_name(t.name, layers), shape))
    plan.sort(key=lambda p: p[1])
    header, offset = {}, 0
    for _, name, shape in plan:
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt", "source": g.path.name}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    path = out / "model.safetensors"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for src, name, _ in plan:
            w = g.dequantized(src)
            if src.endswith(("attn_q.weight", "attn_q.bias")):
                w = unpermute(w, cfg["num_attention_heads"])
            elif src.endswith(("attn_k.weight", "attn_k.bias")):
                w = unpermute(w, cfg["num_key_value_heads"])
            f.write(bf16_bits(w).tobytes())
    tmp.replace(path)
    return [name for _, name, _ in plan]


def tokenizer_files(g: Gguf, cfg):
    model = g.need("tokenizer.ggml.model")
    if model != "gpt2":
        raise ConvertError(f"tokenizer model {model!r} is not supported (only gpt2 byte-level BPE)")
    pre_name = g.get("tokenizer.ggml.pre", "gpt-2")
    if pre_name not in PRE_TOKENIZERS:
        raise ConvertError(f"pre-tokenizer {pre_name!r} is not supported (known: {', '.join(sorted(PRE_TOKENIZERS))})")
    tokens = list(g.need("tokenizer.ggml.tokens"))
    types = list(g.get("tokenizer.ggml.token_type", [1] * len(tokens)))
    merges = [m.split(" ", 1) for m in g.need("tokenizer.ggml.merges")]
    if any(len(m) != 2 for m in merges):
        raise ConvertError("a merge in tokenizer.ggml.merges is not two tokens separated by a space")

    def token(key):
        i = g.get(key)
        return tokens[i] if i is not None and 0 <= i < len(tokens) else None

    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": ty == CONTROL}
             for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (CONTROL, USER_DEFINED)]
    bos, eos = token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")
    add_bos, add_eos = bool(g.get("tokenizer.ggml.add_bos_token", False)), bool(g.get("tokenizer.ggml.add_eos_token", False))
    if add_bos or add_eos:
        single = ([{"SpecialToken": {"id": bos, "type_id": 0}}] if add_bos else []) + \
            [{"Sequence": {"id": "A", "type_id": 0}}] + ([{"SpecialToken": {"id": eos, "type_id": 0}}] if add_eos else [])
        specials = {t: {"id": t, "ids": [tokens.index(t)], "tokens": [t]}
                    for t, on in ((bos, add_bos), (eos, add_eos)) if on}
        post = {"type": "TemplateProcessing", "single": single, "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": specials}
    else:
        post = byte_level(True, False)
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre_name],
        "post_processor": post,
        "decoder": byte_level(True, True),
        "model": {
            "type": "BPE", "dropout": None, "unk_token": token("tokenizer.ggml.unknown_token_id"),
            "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": False,
            "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }
    if len(tokenizer["model"]["vocab"]) != len(tokens):
        raise ConvertError("tokenizer.ggml.tokens holds the same token twice")
    tokenizer_config = {
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
        "bos_token": bos,
        "clean_up_tokenization_spaces": False,
        "eos_token": eos,
        "model_max_length": cfg["max_position_embeddings"],
        "pad_token": token("tokenizer.ggml.padding_token_id"),
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": token("tokenizer.ggml.unknown_token_id"),
    }
    template = g.get("tokenizer.chat_template")
    if template:
        tokenizer_config["chat_template"] = template
    eos_ids = [i for i in (g.get("tokenizer.ggml.eos_token_id"), g.get("tokenizer.ggml.eot_token_id")) if i is not None]
    generation_config = {
        "bos_token_id": g.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": sorted(set(eos_ids)) if len(set(eos_ids)) > 1 else (eos_ids[0] if eos_ids else None),
        "pad_token_id": g.get("tokenizer.ggml.padding_token_id"),
    }
    return tokenizer, tokenizer_config, generation_config


def convert(src: Path, out: Path):
    g = Gguf(src)
    cfg = llama_config(g)
    tokenizer, tokenizer_config, generation_config = tokenizer_files(g, cfg)
    out.mkdir(parents=True, exist_ok=True)
    names = write_weights(g, cfg, out)
    for name, obj in [("config.json", cfg), ("tokenizer.json", tokenizer),
                      ("tokenizer_config.json", tokenizer_config), ("generation_config.json", generation_config)]:
        (out / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    return cfg, names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", type=Path, help="the .gguf file")
    ap.add_argument("out_dir", type=Path, help="where to write the Hugging Face checkpoint")
    args = ap.parse_args(argv)
    try:
        cfg, names = convert(args.gguf, args.out_dir)
    except (ConvertError, OSError) as e:
        print(f"gguf_to_hf: {e}", file=sys.stderr)
        return 1
    print(f"converted {args.gguf.name}: llama, {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
          f"vocab {cfg['vocab_size']}, {len(names)} tensors -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
