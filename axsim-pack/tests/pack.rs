//! Tests of the packer: random checkpoints packed in every layout, the
//! trained tokenizer and chat template, RoPE frequencies, bad input and
//! timing-only models. Models are tiny so the whole file runs in seconds.

use axcl_sim::format::{Arch, DType, ModelKind, SimModelFile, layer_groups, post_groups};
use axsim_pack::{
    self as pack, ADDED_TOKENS, Family, IoOptions, Layout, PackOptions, RandomOptions, RopeScaling, TimingGeometry,
    TimingOptions, TimingPreset,
};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const H: usize = 64;
const I: usize = 128;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const LAYERS: usize = 2;

fn small_io() -> IoOptions {
    IoOptions { chunk: 16, context: 127, prefill_history: vec![32, 64] }
}

/// The random checkpoint options used per arch: Qwen3 with a head_dim that
/// is not hidden/heads (as in Qwen3-4B), Qwen2 with tied embeddings.
fn random_opts(arch: Family) -> RandomOptions {
    RandomOptions {
        arch,
        hidden: H,
        layers: LAYERS,
        heads: HEADS,
        kv_heads: KV_HEADS,
        head_dim: if arch == Family::Qwen3 { 32 } else { H / HEADS },
        intermediate: I,
        tie_embeddings: arch == Family::Qwen2,
        seed: 7,
        ..RandomOptions::default()
    }
}

/// Every file below `dir`, as sorted relative paths.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The checkpoint's tensors as (dtype, shape, bytes).
fn checkpoint_tensors(dir: &Path) -> HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec()))).collect()
}

fn write_safetensors(path: &Path, tensors: &BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>) {
    let views: Vec<_> =
        tensors.iter().map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The layer weights each family must have, written out independently of the packer.
fn expected_layer_weights(arch: Family, head_dim: usize) -> Vec<(String, Vec<usize>)> {
    let (q, kv) = (HEADS * head_dim, KV_HEADS * head_dim);
    let mut w: Vec<(&str, Vec<usize>)> = vec![
        ("input_layernorm.weight", vec![H]),
        ("self_attn.q_proj.weight", vec![q, H]),
        ("self_attn.k_proj.weight", vec![kv, H]),
        ("self_attn.v_proj.weight", vec![kv, H]),
        ("self_attn.o_proj.weight", vec![H, q]),
        ("post_attention_layernorm.weight", vec![H]),
        ("mlp.gate_proj.weight", vec![I, H]),
        ("mlp.up_proj.weight", vec![I, H]),
        ("mlp.down_proj.weight", vec![H, I]),
    ];
    match arch {
        Family::Qwen3 => {
            w.push(("self_attn.q_norm.weight", vec![head_dim]));
            w.push(("self_attn.k_norm.weight", vec![head_dim]));
        }
        Family::Qwen2 => {
            w.push(("self_attn.q_proj.bias", vec![q]));
            w.push(("self_attn.k_proj.bias", vec![kv]));
            w.push(("self_attn.v_proj.bias", vec![kv]));
        }
        Family::Llama => {}
        Family::Qwen35 => unreachable!("Qwen3.5 packages are checked in tests/pack_qwen35.rs"),
    }
    let mut w: Vec<_> = w.into_iter().map(|(n, s)| (n.to_owned(), s)).collect();
    w.sort();
    w
}

fn tokenizer_files(prefix: &str) -> Vec<String> {
    ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]
        .iter()
        .map(|f| format!("{prefix}{f}"))
        .collect()
}

fn expected_tree(arch: Family, layout: Layout, name: &str) -> Vec<String> {
    let p = arch.prefix();
    let models: Vec<String> = (0..LAYERS)
        .map(|i| format!("{p}_p16_l{i}_together.axmodel"))
        .chain([format!("{p}_post.axmodel"), "model.embed_tokens.weight.bfloat16.bin".to_owned()])
        .collect();
    let mut files: Vec<String> = match layout {
        Layout::Axllm => {
            let mut f = models;
            f.extend(tokenizer_files(&format!("{p}_tokenizer/")));
            f.extend(["config.json".to_owned(), "post_config.json".to_owned()]);
            f
        }
        Layout::HfPackage => {
            let slug = name.to_lowercase();
            let mut f: Vec<String> = models.iter().map(|m| format!("{slug}-ax650/{m}")).collect();
            f.extend(tokenizer_files(&format!("{p}_tokenizer/")));
            f.extend(["config.json".to_owned(), "post_config.json".to_owned()]);
            let base = slug.replace('-', "_");
            f.extend(["ax650", "axcl_x86", "axcl_aarch64"].map(|s| format!("run_{base}_{s}.sh")));
            f
        }
        Layout::Compiled => {
            let mut f = models;
            f.extend(
                ["generation_config.json", "post_config.json", "tokenizer.json", "tokenizer_config.json"]
                    .map(String::from),
            );
            f
        }
    };
    files.sort();
    files
}

/// Checks one packed directory against the checkpoint it came from.
fn check_package(ckpt: &Path, out: &Path, arch: Family, layout: Layout, name: &str) {
    let cfg = read_json(&ckpt.join("config.json"));
    let v = cfg["vocab_size"].as_u64().unwrap() as usize;
    let head_dim = random_opts(arch).head_dim;
    let tensors = checkpoint_tensors(ckpt);
    let p = arch.prefix();
    let ctx = format!("{arch:?} {layout:?}");
    assert_eq!(tree(out), expected_tree(arch, layout, name), "{ctx}: files");

    let model_dir = match layout {
        Layout::HfPackage => out.join(format!("{}-ax650", name.to_lowercase())),
        _ => out.to_owned(),
    };
    let want_arch = match arch {
        Family::Qwen3 => Arch::Qwen3,
        Family::Qwen2 => Arch::Qwen2,
        Family::Llama => Arch::Llama,
        Family::Qwen35 => Arch::Qwen35,
    };
    for i in 0..LAYERS {
        let f = SimModelFile::read(&model_dir.join(format!("{p}_p16_l{i}_together.axmodel"))).unwrap();
        let h = &f.header;
        assert_eq!(
            (h.kind, h.arch, h.timing_only, h.layer_index),
            (ModelKind::Layer, want_arch, false, Some(i as u32))
        );
        assert_eq!(h.groups, layer_groups(H, KV_HEADS * head_dim, 16, 127, &[32, 64]), "{ctx}: groups");
        let g = &h.geometry;
        assert_eq!(
            (g.hidden_size, g.num_attention_heads, g.num_key_value_heads, g.head_dim, g.intermediate_size),
            (H, HEADS, KV_HEADS, head_dim, I)
        );
        assert_eq!(g.rms_norm_eps, 1e-6);
        assert_eq!(h.rope_inv_freq.len(), head_dim / 2);
        if arch != Family::Llama {
            for (j, &f) in h.rope_inv_freq.iter().enumerate() {
                let want = 1.0 / 1e6f64.powf(2.0 * j as f64 / head_dim as f64);
                assert!((f - want).abs() <= 1e-15 * want, "{ctx}: inv_freq[{j}] {f} vs {want}");
            }
        }
        let mut got: Vec<(String, Vec<usize>)> = h.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
        got.sort();
        assert_eq!(got, expected_layer_weights(arch, head_dim), "{ctx}: layer {i} weights");
        for t in &h.tensors {
            assert_eq!(t.dtype, DType::Bf16);
            let (_, bytes) = f.tensor_bytes(&t.name).unwrap();
            let (dt, _, src) = &tensors[&format!("model.layers.{i}.{}", t.name)];
            assert_eq!(*dt, Dtype::BF16);
            assert_eq!(bytes, &src[..], "{ctx}: layer {i} {} bytes", t.name);
        }
    }

    let post = SimModelFile::read(&model_dir.join(format!("{p}_post.axmodel"))).unwrap();
    assert_eq!((post.header.kind, post.header.timing_only), (ModelKind::Post, false));
    assert_eq!(post.header.groups, post_groups(H, v));
    assert_eq!(post.header.geometry.vocab_size, v);
    assert_eq!(post.tensor_bytes("norm.weight").unwrap().1, &tensors["model.norm.weight"].2[..]);
    let (lm_entry, lm) = post.tensor_bytes("lm_head.weight").unwrap();
    assert_eq!(lm_entry.shape, vec![v, H]);
    let embed = &tensors["model.embed_tokens.weight"].2;
    if arch == Family::Qwen2 {
        assert!(!tensors.contains_key("lm_head.weight"), "tied checkpoints have no lm_head");
        assert_eq!(lm, &embed[..], "{ctx}: tied lm_head equals the embedding");
    } else {
        assert_eq!(lm, &tensors["lm_head.weight"].2[..]);
        assert_ne!(lm, &embed[..]);
    }

    let emb = std::fs::read(model_dir.join("model.embed_tokens.weight.bfloat16.bin")).unwrap();
    assert_eq!(emb.len(), v * H * 2);
    assert_eq!(&emb, embed, "{ctx}: embedding rows");

    let post_cfg = read_json(&out.join("post_config.json"));
    assert_eq!(
        post_cfg,
        json!({
            "enable_temperature": false, "temperature": 0.9,
            "enable_repetition_penalty": false, "repetition_penalty": 1.2, "penalty_window": 20,
            "enable_top_p_sampling": false, "top_p": 0.8,
            "enable_top_k_sampling": true, "top_k": 1,
        })
    );

    match layout {
        Layout::Axllm => {
            let c = read_json(&out.join("config.json"));
            let tokenizer_type = match arch {
                Family::Qwen3 => "Qwen3",
                Family::Qwen2 => "Qwen2_5",
                Family::Llama => "Llama",
                Family::Qwen35 => "Qwen3_5",
            };
            assert_eq!(
                c,
                json!({
                    "model_name": name,
                    "tokenizer_type": tokenizer_type,
                    "url_tokenizer_model": format!("{p}_tokenizer/tokenizer.json"),
                    "template_filename_axmodel": format!("{p}_p16_l%d_together.axmodel"),
                    "axmodel_num": LAYERS,
                    "filename_post_axmodel": format!("{p}_post.axmodel"),
                    "filename_tokens_embed": "model.embed_tokens.weight.bfloat16.bin",
                    "tokens_embed_num": v,
                    "tokens_embed_size": H,
                    "post_config_path": "post_config.json",
                    "devices": [0],
                })
            );
            for key in ["url_tokenizer_model", "filename_post_axmodel", "filename_tokens_embed", "post_config_path"] {
                assert!(out.join(c[key].as_str().unwrap()).is_file(), "{key} points at a file");
            }
        }
        Layout::HfPackage => {
            assert_eq!(std::fs::metadata(out.join("config.json")).unwrap().len(), 0);
            check_run_scripts(out, name, p, v);
        }
        Layout::Compiled => {}
    }
    let tok_dir = if layout == Layout::Compiled { out.to_owned() } else { out.join(format!("{p}_tokenizer")) };
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        assert_eq!(std::fs::read(tok_dir.join(f)).unwrap(), std::fs::read(ckpt.join(f)).unwrap(), "{ctx}: {f} copied");
    }
}

fn check_run_scripts(out: &Path, name: &str, p: &str, v: usize) {
    let slug = name.to_lowercase();
    let dir = format!("{slug}-ax650");
    for (suffix, runner, axcl) in [
        ("ax650", "main_ax650", false),
        ("axcl_x86", "main_axcl_x86", true),
        ("axcl_aarch64", "main_axcl_aarch64", true),
    ] {
        let path = out.join(format!("run_{}_{suffix}.sh", slug.replace('-', "_")));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"));
        let flags: Vec<&str> =
            text.lines().filter(|l| l.starts_with("  --")).map(|l| l.trim().trim_end_matches(" \\")).collect();
        let mut want = vec![
            "--system_prompt \"You are a helpful assistant.\"".to_owned(),
            "--kvcache_path \"./kvcache\"".to_owned(),
            format!("--template_filename_axmodel \"{dir}/{p}_p16_l%d_together.axmodel\""),
            format!("--axmodel_num {LAYERS}"),
            "--url_tokenizer_model \"http://127.0.0.1:12345\"".to_owned(),
            format!("--filename_post_axmodel \"{dir}/{p}_post.axmodel\""),
            format!("--filename_tokens_embed \"{dir}/model.embed_tokens.weight.bfloat16.bin\""),
            format!("--tokens_embed_num {v}"),
            format!("--tokens_embed_size {H}"),
            "--use_mmap_load_embed 1".to_owned(),
            "--live_print 1".to_owned(),
            "--post_config_path post_config.json".to_owned(),
        ];
        if axcl {
            want.push("--devices 0".to_owned());
        }
        assert_eq!(flags, want, "{}", path.display());
        assert!(text.contains(&format!("./{runner} \\\n")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o111, 0o111, "executable");
        }
    }
}

#[test]
fn random_checkpoints_pack_in_every_layout() {
    let tmp = tempfile::tempdir().unwrap();
    for arch in [Family::Qwen3, Family::Qwen2, Family::Llama] {
        let ckpt = tmp.path().join(format!("ckpt-{}", arch.prefix()));
        pack::write_random_checkpoint(&ckpt, &random_opts(arch)).unwrap();
        let cfg = read_json(&ckpt.join("config.json"));
        assert_eq!(cfg["model_type"], arch.prefix());
        assert_eq!(cfg["torch_dtype"], "bfloat16");
        for layout in [Layout::Axllm, Layout::HfPackage, Layout::Compiled] {
            let out = tmp.path().join(format!("out-{}-{layout:?}", arch.prefix()));
            let name = "Tiny-Model.v1";
            let opts = PackOptions { io: small_io(), layout, name: Some(name.into()), ..Default::default() };
            let report = pack::pack_checkpoint(&ckpt, &out, &opts).unwrap();
            assert_eq!(report.family, arch);
            assert_eq!((report.layers, report.hidden_size), (LAYERS, H));
            assert_eq!(report.kv_size, KV_HEADS * random_opts(arch).head_dim);
            let mut written: Vec<String> =
                report.files.iter().map(|f| f.strip_prefix(&out).unwrap().to_string_lossy().into_owned()).collect();
            written.sort();
            assert_eq!(written, tree(&out), "the report lists every file");
            check_package(&ckpt, &out, arch, layout, name);
        }
    }
}

#[test]
fn random_checkpoint_config_matches_hugging_face() {
    let tmp = tempfile::tempdir().unwrap();
    for arch in [Family::Qwen3, Family::Qwen2, Family::Llama] {
        let dir = tmp.path().join(arch.prefix());
        pack::write_random_checkpoint(&dir, &random_opts(arch)).unwrap();
        let c = read_json(&dir.join("config.json"));
        let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        let n = tok.get_vocab_size(true);
        assert_eq!(c["vocab_size"], n.div_ceil(64) * 64, "{arch:?}: vocab padded to 64");
        let arch_name = match arch {
            Family::Qwen3 => "Qwen3ForCausalLM",
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Llama => "LlamaForCausalLM",
            Family::Qwen35 => unreachable!(),
        };
        assert_eq!(c["architectures"], json!([arch_name]));
        for (key, want) in [
            ("hidden_size", json!(H)),
            ("intermediate_size", json!(I)),
            ("num_hidden_layers", json!(LAYERS)),
            ("num_attention_heads", json!(HEADS)),
            ("num_key_value_heads", json!(KV_HEADS)),
            ("rms_norm_eps", json!(1e-6)),
            ("tie_word_embeddings", json!(arch == Family::Qwen2)),
            ("bos_token_id", json!(tok.token_to_id("<|endoftext|>").unwrap())),
            ("eos_token_id", json!(tok.token_to_id("<|im_end|>").unwrap())),
            ("attention_bias", json!(arch == Family::Qwen2)),
        ] {
            assert_eq!(c[key], want, "{arch:?}: {key}");
        }
        let theta = c["rope_theta"].as_f64().unwrap();
        assert_eq!(theta, if arch == Family::Llama { 5e5 } else { 1e6 });
        match arch {
            Family::Qwen3 => assert_eq!(c["head_dim"], 32),
            Family::Qwen2 => assert!(c.get("head_dim").is_none()),
            Family::Llama => {
                assert_eq!(c["head_dim"], 16);
                assert_eq!(c["rope_scaling"]["rope_type"], "llama3");
            }
            Family::Qwen35 => unreachable!(),
        }
        let g = read_json(&dir.join("generation_config.json"));
        let eos: Vec<u32> = serde_json::from_value(g["eos_token_id"].clone()).unwrap();
        assert_eq!(eos, vec![tok.token_to_id("<|im_end|>").unwrap(), tok.token_to_id("<|endoftext|>").unwrap()]);
        // Norms are near 1, matrices near 0: the weights follow the requested init.
        let t = checkpoint_tensors(&dir);
        let mean = |name: &str| {
            let b = &t[name].2;
            let vals: Vec<f32> = b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
            vals.iter().sum::<f32>() / vals.len() as f32
        };
        assert!((mean("model.norm.weight") - 1.0).abs() < 0.05);
        assert!(mean("model.embed_tokens.weight").abs() < 0.01);
    }
}

#[test]
fn random_checkpoints_are_deterministic_per_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |dir: &str, seed| {
        let path = tmp.path().join(dir);
        pack::write_random_checkpoint(&path, &RandomOptions { seed, ..RandomOptions::default() }).unwrap();
        (std::fs::read(path.join("model.safetensors")).unwrap(), std::fs::read(path.join("tokenizer.json")).unwrap())
    };
    let (a, b, c) = (write("a", 3), write("b", 3), write("c", 4));
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    assert_eq!(a.1, c.1, "the tokenizer does not depend on the seed");
}

/// A checkpoint in f32 (and one f16 tensor), split into two shards with an
/// index, packs to the same bf16 bits; ties round to nearest even.
#[test]
fn sharded_f32_and_f16_checkpoints_convert_with_round_to_nearest_even() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("bf16");
    pack::write_random_checkpoint(&src, &random_opts(Family::Qwen3)).unwrap();
    let sharded = tmp.path().join("f32");
    std::fs::create_dir(&sharded).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(src.join(f), sharded.join(f)).unwrap();
    }
    let bf16 = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
    };
    let mut shards = [BTreeMap::new(), BTreeMap::new()];
    let mut weight_map = BTreeMap::new();
    for (i, (name, (_, shape, bytes))) in checkpoint_tensors(&src).into_iter().enumerate() {
        let mut vals = bf16(&bytes);
        let (dtype, data) = if name == "model.norm.weight" {
            (Dtype::F16, vals.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect::<Vec<u8>>())
        } else {
            if name == "model.embed_tokens.weight" {
                // Exactly halfway between two bf16 values: round to the even mantissa.
                vals[0] = 1.0 + 2f32.powi(-8); // -> 1.0 (0x3F80)
                vals[1] = 1.0 + 3.0 * 2f32.powi(-8); // -> 1 + 2^-6 (0x3F82), truncation would give 0x3F81
                vals[2] = -(1.0 + 3.0 * 2f32.powi(-8)); // -> 0xBF82
                vals[3] = 1.0 + 2f32.powi(-8) + 2f32.powi(-20); // above halfway -> 0x3F81
            }
            (Dtype::F32, vals.iter().flat_map(|v| v.to_le_bytes()).collect())
        };
        let shard = format!("model-0000{}-of-00002.safetensors", i % 2 + 1);
        weight_map.insert(name.clone(), shard);
        shards[i % 2].insert(name, (dtype, shape, data));
    }
    for (i, shard) in shards.iter().enumerate() {
        write_safetensors(&sharded.join(format!("model-0000{}-of-00002.safetensors", i + 1)), shard);
    }
    let index = json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(sharded.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let opts = PackOptions { io: small_io(), layout: Layout::Compiled, name: Some("m".into()), ..Default::default() };
    let (a, b) = (tmp.path().join("out-a"), tmp.path().join("out-b"));
    pack::pack_checkpoint(&src, &a, &opts).unwrap();
    pack::pack_checkpoint(&sharded, &b, &opts).unwrap();
    for i in 0..LAYERS {
        let f = format!("qwen3_p16_l{i}_together.axmodel");
        assert_eq!(std::fs::read(a.join(&f)).unwrap(), std::fs::read(b.join(&f)).unwrap(), "{f}");
    }
    assert_eq!(
        std::fs::read(a.join("qwen3_post.axmodel")).unwrap(),
        std::fs::read(b.join("qwen3_post.axmodel")).unwrap()
    );
    let emb_a = std::fs::read(a.join("model.embed_tokens.weight.bfloat16.bin")).unwrap();
    let emb_b = std::fs::read(b.join("model.embed_tokens.weight.bfloat16.bin")).unwrap();
    let words: Vec<u16> = emb_b[..8].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(words, vec![0x3F80, 0x3F82, 0xBF82, 0x3F81]);
    assert_eq!(emb_a[8..], emb_b[8..]);
}

// ---------------------------------------------------------------- tokenizer

fn random_checkpoint(tmp: &Path) -> PathBuf {
    let dir = tmp.join("ckpt");
    pack::write_random_checkpoint(&dir, &RandomOptions::default()).unwrap();
    dir
}

#[test]
fn tokenizer_round_trips_and_keeps_added_tokens_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = random_checkpoint(tmp.path());
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let texts = [
        "Hello, world! The quick brown fox.",
        "  leading spaces, tabs\tand\nnew lines\n\n",
        "café naïve façade Zürich crème brûlée",
        "日本語のテキスト and 中文 mixed with English",
        "emoji 😀🚀🦀 and symbols ∑ ≤ ≥ € ™ ✓",
        "ⱥ rare letters ǅ ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{0301}combining \u{200d} zwj",
        "code: fn main() { println!(\"{}\", 1 + 2); } // done",
    ];
    for text in texts {
        let enc = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), text, "round trip of {text:?}");
    }

    // Added tokens follow the trained vocabulary, in order.
    let trained = tok.get_vocab_size(false);
    for (i, (content, _)) in ADDED_TOKENS.iter().enumerate() {
        assert_eq!(tok.token_to_id(content), Some((trained + i) as u32), "{content}");
    }
    let id = |t: &str| tok.token_to_id(t).unwrap();
    let enc = tok.encode("<|im_start|>user\nHi there<|im_end|>\n<think>\nhmm\n</think>\n\nok", false).unwrap();
    let ids = enc.get_ids();
    assert_eq!(ids[0], id("<|im_start|>"));
    for t in ["<|im_end|>", "<think>", "</think>"] {
        assert_eq!(ids.iter().filter(|&&i| i == id(t)).count(), 1, "{t} is one id");
    }
    assert_eq!(tok.encode("x<tool_call>y", false).unwrap().get_ids().len(), 3);

    // Some multi-byte characters are split across tokens, so a streaming
    // decoder must buffer incomplete UTF-8.
    let mut split = Vec::new();
    for c in "café naïve 日本語 😀 🦀".chars().filter(|c| !c.is_ascii()) {
        let ids = tok.encode(c.to_string(), false).unwrap().get_ids().to_vec();
        if ids.len() > 1 {
            assert!(tok.decode(&ids[..1], false).unwrap().contains('\u{FFFD}'), "{c}: first piece is not whole UTF-8");
            split.push(c);
        }
    }
    assert!(split.contains(&'🦀'), "an unseen emoji is split into bytes; split: {split:?}");
}

#[test]
fn tokenizer_config_is_qwen_style() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = random_checkpoint(tmp.path());
    let c = read_json(&dir.join("tokenizer_config.json"));
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    assert_eq!(c["bos_token"], Value::Null);
    assert_eq!(c["eos_token"], "<|im_end|>");
    assert_eq!(c["pad_token"], "<|endoftext|>");
    for (content, special) in ADDED_TOKENS {
        let entry = &c["added_tokens_decoder"][tok.token_to_id(content).unwrap().to_string()];
        assert_eq!(entry["content"], content);
        assert_eq!(entry["special"], special, "{content}");
    }
    let template = c["chat_template"].as_str().unwrap();
    assert_eq!(template, pack::chat_template());
    assert!(template.contains("<think>"), "Ollama detects thinking support from the literal");
}

#[test]
fn tokenizer_training_is_deterministic() {
    let a = pack::train_tokenizer(400).unwrap();
    let b = pack::train_tokenizer(400).unwrap();
    assert_eq!(a.tokenizer_json, b.tokenizer_json);
    assert_eq!(a.len, 400 + ADDED_TOKENS.len());
    assert!(pack::train_tokenizer(100).is_err(), "below the byte alphabet");
}

fn render(template: &str, ctx: &Value, trim: bool) -> String {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(trim);
    env.set_lstrip_blocks(trim);
    env.add_template("chat", template).unwrap();
    env.get_template("chat").unwrap().render(minijinja::Value::from_serialize(ctx)).unwrap()
}

fn two_turn_chat() -> Value {
    json!([
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "The user greets me."},
        {"role": "user", "content": "How are you?"},
    ])
}

const TWO_TURN: &str = "<|im_start|>system\nYou are a test.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n";

fn weather_tool() -> Value {
    json!({"function": {"description": "Get the weather", "name": "get_weather",
        "parameters": {"properties": {"city": {"type": "string"}}, "type": "object"}}, "type": "function"})
}

/// Each case: context, expected minijinja output.
fn template_cases() -> Vec<(Value, String)> {
    let tool_chat = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "reasoning_content": "\nI need the tool.\n",
         "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "18C"},
        {"role": "tool", "content": "sunny"},
    ]);
    let tools_header = "<|im_start|>system\n# Tools\n\n\
You can call the functions described below to help with the request.\n\n\
Each function signature is given as JSON inside <tools></tools>:\n<tools>\n\
{\"function\":{\"description\":\"Get the weather\",\"name\":\"get_weather\",\
    \"parameters\":{\"properties\":{\"city\":{\"type\":\"string\"}},\"type\":\"object\"}},\
    \"type\":\"function\"}\n\
</tools>\n\nTo call a function, reply with its name and arguments as a JSON object \
inside <tool_call></tool_call> tags:\n\
<tool_call>\n{\"name\": <function-name>, \"arguments\": <arguments-json-object>}\n</tool_call><|im_end|>\n";
    vec![
        (json!({"messages": two_turn_chat(), "add_generation_prompt": true}), TWO_TURN.to_owned()),
        (
            json!({"messages": two_turn_chat(), "add_generation_prompt": true, "enable_thinking": false}),
            format!("{TWO_TURN}<think>\n\n</think>\n\n"),
        ),
        (
            json!({"messages": two_turn_chat(), "add_generation_prompt": true, "enable_thinking": true}),
            TWO_TURN.to_owned(),
        ),
        (
            json!({"messages": two_turn_chat(), "add_generation_prompt": false}),
            TWO_TURN.trim_end_matches("<|im_start|>assistant\n").to_owned(),
        ),
        (
            json!({"messages": tool_chat, "tools": [weather_tool()], "add_generation_prompt": true}),
            format!(
                "{tools_header}<|im_start|>user\nWeather in Paris?<|im_end|>\n\
<|im_start|>assistant\n<think>\nI need the tool.\n</think>\n\n<tool_call>\n\
{{\"name\": \"get_weather\", \"arguments\": {{\"city\":\"Paris\"}}}}\n</tool_call><|im_end|>\n\
<|im_start|>user\n<tool_response>\n18C\n</tool_response>\n<tool_response>\nsunny\n</tool_response><|im_end|>\n\
<|im_start|>assistant\n"
            ),
        ),
        (
            json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"function": {"name": "a", "arguments": "{\"x\": 1}"}}, {"name": "b", "arguments": {}}]}],
                "tools": [weather_tool()]}),
            format!(
                "{}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nChecking.\n\
<tool_call>\n{{\"name\": \"a\", \"arguments\": {{\"x\": 1}}}}\n</tool_call>\n\
<tool_call>\n{{\"name\": \"b\", \"arguments\": {{}}}}\n</tool_call><|im_end|>\n",
                tools_header.replacen("system\n", "system\nBe brief.\n\n", 1)
            ),
        ),
    ]
}

#[test]
fn chat_template_renders_chatml_in_minijinja() {
    let template = pack::chat_template();
    for (ctx, want) in template_cases() {
        assert_eq!(render(template, &ctx, false), want, "context {ctx}");
        assert_eq!(render(template, &ctx, true), want, "trim_blocks/lstrip_blocks must not matter: {ctx}");
    }
}

/// The same template under Python's jinja2 (as transformers renders it, with
/// trim_blocks and lstrip_blocks). jinja2's own `tojson` spaces JSON
/// differently, so the tool cases are compared after removing the tool JSON.
#[test]
fn chat_template_renders_the_same_in_python_jinja2() {
    let probe = std::process::Command::new("python3").args(["-c", "import jinja2"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with jinja2 is not available");
        return;
    }
    let cases: Vec<Value> = template_cases().into_iter().map(|(ctx, _)| ctx).collect();
    let script = r#"
import json, sys, jinja2
data = json.load(sys.stdin)
env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
t = env.from_string(data["template"])
print(json.dumps([t.render(**ctx) for ctx in data["cases"]]))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"template": pack::chat_template(), "cases": cases});
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.to_string().as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "jinja2 failed: {}", String::from_utf8_lossy(&out.stderr));
    let rendered: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    // Drops JSON objects from `{"` to the matching `}` so engine spacing does not matter.
    let strip_json = |s: &str| -> String {
        let mut out = String::new();
        let mut depth = 0;
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if depth == 0 && c == '{' && chars.peek() == Some(&'"') {
                depth = 1;
            } else if depth > 0 {
                depth += (c == '{') as i32 - (c == '}') as i32;
            } else {
                out.push(c);
            }
        }
        out
    };
    for ((ctx, want), got) in template_cases().into_iter().zip(rendered) {
        if ctx.get("tools").is_some() {
            assert_eq!(strip_json(&got), strip_json(&want), "context {ctx}");
        } else {
            assert_eq!(got, want, "context {ctx}");
        }
    }
}

// ---------------------------------------------------------------- rope

#[test]
fn rope_default_frequencies() {
    let f = pack::rope_inv_freq(16, 1e6, &RopeScaling::Default);
    // 1e6^(-2i/16) = 10^(-0.75 i)
    let want = [1.0, 0.177_827_941_003_892_3, 0.031_622_776_601_683_79, 0.005_623_413_251_903_491, 1e-3];
    assert_eq!(f.len(), 8);
    for (i, w) in want.iter().enumerate() {
        assert!((f[i] - w).abs() <= 1e-15 * w, "inv_freq[{i}] = {} vs {w}", f[i]);
    }
    assert!((f[7] - 10f64.powf(-5.25)).abs() < 1e-20);
}

#[test]
fn rope_llama3_scaling() {
    let cfg = json!({"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192, "rope_type": "llama3"});
    let scaling = RopeScaling::from_hf(Some(&cfg)).unwrap();
    let f = pack::rope_inv_freq(128, 5e5, &scaling);
    assert_eq!(f.len(), 64);
    let two_pi = 2.0 * std::f64::consts::PI;
    let mut bands = [0; 3];
    for (i, &got) in f.iter().enumerate() {
        let base = 1.0 / 5e5f64.powf((2 * i) as f64 / 128.0);
        let wavelen = two_pi / base;
        // High frequencies (wavelength under 8192/4) are kept, low ones
        // (over 8192/1) divided by the factor, the band between blended.
        let (want, band) = if wavelen < 2048.0 {
            (base, 0)
        } else if wavelen > 8192.0 {
            (base / 32.0, 2)
        } else {
            let s = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
            ((1.0 - s) * base / 32.0 + s * base, 1)
        };
        bands[band] += 1;
        assert!((got - want).abs() <= 1e-15 * want, "inv_freq[{i}] = {got} vs {want}");
    }
    assert!(bands.iter().all(|&n| n > 0), "all three bands are exercised: {bands:?}");
    assert_eq!(f[0], 1.0);
    assert!((f[63] - 5e5f64.powf(-126.0 / 128.0) / 32.0).abs() < 1e-20);

    // The llama random checkpoint carries this scaling into its layers.
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("llama");
    pack::write_random_checkpoint(&ckpt, &random_opts(Family::Llama)).unwrap();
    let out = tmp.path().join("out");
    pack::pack_checkpoint(&ckpt, &out, &PackOptions { io: small_io(), ..PackOptions::default() }).unwrap();
    let layer = SimModelFile::read(&out.join("llama_p16_l0_together.axmodel")).unwrap();
    let s = RopeScaling::Llama3 {
        factor: 32.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192.0,
    };
    assert_eq!(layer.header.rope_inv_freq, pack::rope_inv_freq(16, 5e5, &s));
    assert_ne!(layer.header.rope_inv_freq, pack::rope_inv_freq(16, 5e5, &RopeScaling::Default));
}

#[test]
fn rope_scaling_types() {
    assert_eq!(RopeScaling::from_hf(None).unwrap(), RopeScaling::Default);
    assert_eq!(RopeScaling::from_hf(Some(&Value::Null)).unwrap(), RopeScaling::Default);
    assert_eq!(RopeScaling::from_hf(Some(&json!({"rope_type": "default"}))).unwrap(), RopeScaling::Default);
    for bad in [json!({"rope_type": "yarn", "factor": 4.0}), json!({"type": "linear", "factor": 2.0})] {
        let err = RopeScaling::from_hf(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("unsupported rope_scaling type"), "{err}");
    }
    assert!(RopeScaling::from_hf(Some(&json!({"rope_type": "llama3", "factor": 8.0}))).is_err());
}

// ---------------------------------------------------------------- bad input

fn err_chain(e: anyhow::Error) -> String {
    format!("{e:#}")
}

#[test]
fn unknown_model_type_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = random_checkpoint(tmp.path());
    let mut c = read_json(&dir.join("config.json"));
    c["model_type"] = json!("mistral");
    c["architectures"] = json!(["MistralForCausalLM"]);
    std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
    let err = err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("out"), &PackOptions::default()).unwrap_err());
    assert!(err.contains("config.json") && err.contains("mistral"), "{err}");

    // Without model_type, architectures decide.
    c.as_object_mut().unwrap().remove("model_type");
    c["architectures"] = json!(["Qwen3ForCausalLM"]);
    std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
    let out = tmp.path().join("out2");
    let opts = PackOptions { io: small_io(), ..PackOptions::default() };
    assert_eq!(pack::pack_checkpoint(&dir, &out, &opts).unwrap().family, Family::Qwen3);
}

#[test]
fn missing_weights_are_reported_with_the_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = random_checkpoint(tmp.path());
    let opts = PackOptions { io: small_io(), ..PackOptions::default() };

    std::fs::rename(dir.join("model.safetensors"), tmp.path().join("moved.safetensors")).unwrap();
    let err = err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("o1"), &opts).unwrap_err());
    assert!(err.contains("no *.safetensors") && err.contains(&dir.display().to_string()), "{err}");

    // An index that names a shard which is not there.
    std::fs::rename(tmp.path().join("moved.safetensors"), dir.join("model-00001-of-00002.safetensors")).unwrap();
    let tensors = checkpoint_tensors_at(&dir.join("model-00001-of-00002.safetensors"));
    let mut map: BTreeMap<String, String> =
        tensors.keys().map(|k| (k.clone(), "model-00001-of-00002.safetensors".to_owned())).collect();
    map.insert("model.norm.weight".into(), "model-00002-of-00002.safetensors".into());
    std::fs::write(dir.join("model.safetensors.index.json"), json!({"weight_map": map}).to_string()).unwrap();
    let err = err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("o2"), &opts).unwrap_err());
    assert!(err.contains("model-00002-of-00002.safetensors") && err.contains("missing"), "{err}");

    // A tensor missing from an otherwise valid checkpoint.
    std::fs::remove_file(dir.join("model.safetensors.index.json")).unwrap();
    let mut tensors: BTreeMap<_, _> = tensors.into_iter().collect();
    tensors.remove("model.layers.1.mlp.up_proj.weight");
    write_safetensors(&dir.join("model-00001-of-00002.safetensors"), &tensors);
    let err = err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("o3"), &opts).unwrap_err());
    assert!(err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("missing"), "{err}");
    assert!(!tmp.path().join("o3").exists(), "a missing last-layer weight is found before writing");
}

fn checkpoint_tensors_at(path: &Path) -> HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec()))).collect()
}

#[test]
fn wrong_tensors_are_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = random_checkpoint(tmp.path());
    let original: BTreeMap<_, _> = checkpoint_tensors(&dir).into_iter().collect();
    let opts = PackOptions { io: small_io(), ..PackOptions::default() };
    let file = dir.join("model.safetensors");

    // Transposed k_proj: same bytes, wrong shape.
    let mut t = original.clone();
    t.get_mut("model.layers.0.self_attn.k_proj.weight").unwrap().1.reverse();
    write_safetensors(&file, &t);
    let err = err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("o1"), &opts).unwrap_err());
    assert!(err.contains("model.layers.0.self_attn.k_proj.weight") && err.contains("model.safetensors"), "{err}");
    assert!(!tmp.path().join("o1").exists(), "the checkpoint is checked before anything is written");
    assert!(err.contains("shape [64, 32], expected [32, 64]"), "{err}");

    // A quantized-looking extra tensor.
    let mut t = original.clone();
    t.insert("model.layers.0.self_attn.q_proj.scales".into(), (Dtype::BF16, vec![2], vec![0; 4]));
    write_safetensors(&file, &t);
    let err = err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("o2"), &opts).unwrap_err());
    assert!(err.contains("unexpected tensor model.layers.0.self_attn.q_proj.scales"), "{err}");

    // An integer dtype.
    let mut t = original.clone();
    t.insert("model.norm.weight".into(), (Dtype::I16, vec![H], vec![0; H * 2]));
    write_safetensors(&file, &t);
    let err = err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("o3"), &opts).unwrap_err());
    assert!(err.contains("model.norm.weight") && err.contains("I16"), "{err}");

    // Vocabulary rows that do not match config.json.
    let mut c = read_json(&dir.join("config.json"));
    write_safetensors(&file, &original);
    c["vocab_size"] = json!(c["vocab_size"].as_u64().unwrap() + 64);
    std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
    let err = err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("o4"), &opts).unwrap_err());
    assert!(err.contains("model.embed_tokens.weight") && err.contains("expected"), "{err}");
}

#[test]
fn bad_options_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = random_checkpoint(tmp.path());
    let io = |chunk, context, prefill_history: Vec<usize>| IoOptions { chunk, context, prefill_history };
    for (bad, what) in [
        (io(0, 127, vec![32]), "chunk"),
        (io(16, 127, vec![64, 32]), "ascending"),
        (io(16, 127, vec![32, 32]), "ascending"),
        (io(16, 127, vec![32, 128]), "exceeds the context"),
    ] {
        let opts = PackOptions { io: bad, ..PackOptions::default() };
        let err = err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("out"), &opts).unwrap_err());
        assert!(err.contains(what), "{err}");
    }
    let opts = PackOptions { io: small_io(), name: Some("bad name; rm -rf".into()), ..PackOptions::default() };
    assert!(err_chain(pack::pack_checkpoint(&dir, &tmp.path().join("out"), &opts).unwrap_err()).contains("model name"));
    let opts = PackOptions { io: small_io(), ..PackOptions::default() };
    let err = err_chain(pack::pack_checkpoint(&dir, &dir, &opts).unwrap_err());
    assert!(err.contains("is the checkpoint directory"), "{err}");
    assert!(dir.join("model.safetensors").is_file());
    let err = pack::write_random_checkpoint(
        &tmp.path().join("r"),
        &RandomOptions { arch: Family::Qwen2, head_dim: 32, ..RandomOptions::default() },
    )
    .unwrap_err();
    assert!(err_chain(err).contains("qwen2 needs head_dim"));
}

// ---------------------------------------------------------------- timing

fn small_timing(layout: Layout) -> TimingOptions {
    TimingOptions {
        geometry: TimingGeometry {
            family: Family::Qwen3,
            layers: 3,
            hidden_size: 96,
            num_attention_heads: 6,
            num_key_value_heads: 2,
            head_dim: 32,
            intermediate_size: 256,
            vocab_size: 1024,
            rope_theta: 1e6,
            tie_word_embeddings: true,
        },
        io: small_io(),
        layout,
        name: "Timing-Small".into(),
        quant: pack::Quant::W8a16,
    }
}

/// The embedding file has its full size but (on file systems with holes) no data blocks.
fn assert_sparse(path: &Path, len: u64) {
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!(meta.len(), len);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 < len.max(4096 * 2), "{} is not sparse: {} blocks", path.display(), meta.blocks());
    }
}

#[test]
fn timing_models_have_full_size_io_and_no_weights() {
    let tmp = tempfile::tempdir().unwrap();
    for layout in [Layout::Axllm, Layout::HfPackage, Layout::Compiled] {
        let out = tmp.path().join(format!("{layout:?}"));
        let opts = small_timing(layout);
        let report = pack::write_timing_model(&out, &opts).unwrap();
        let dir = report.model_dir.clone();
        assert_eq!(dir, if layout == Layout::HfPackage { out.join("timing-small-ax650") } else { out.clone() });
        assert_sparse(&dir.join("model.embed_tokens.weight.bfloat16.bin"), 1024 * 96 * 2);
        for i in 0..3 {
            let f = SimModelFile::read(&dir.join(format!("qwen3_p16_l{i}_together.axmodel"))).unwrap();
            assert!(f.header.timing_only);
            assert!(f.header.tensors.is_empty() && f.data.is_empty());
            assert_eq!(f.header.groups, layer_groups(96, 64, 16, 127, &[32, 64]));
            assert_eq!(f.header.rope_inv_freq.len(), 16);
        }
        let post = SimModelFile::read(&dir.join("qwen3_post.axmodel")).unwrap();
        assert!(post.header.timing_only && post.header.tensors.is_empty());
        assert_eq!(post.header.groups, post_groups(96, 1024));
        let tok_dir = if layout == Layout::Compiled { out.clone() } else { out.join("qwen3_tokenizer") };
        tokenizers::Tokenizer::from_file(tok_dir.join("tokenizer.json")).unwrap();
        assert!(read_json(&tok_dir.join("tokenizer_config.json"))["chat_template"].is_string());
        match layout {
            Layout::Axllm => {
                let c = read_json(&out.join("config.json"));
                assert_eq!((c["tokens_embed_num"].as_u64(), c["tokens_embed_size"].as_u64()), (Some(1024), Some(96)));
                assert_eq!(c["axmodel_num"], 3);
                let hf = read_json(&out.join("qwen3_tokenizer/config.json"));
                assert_eq!((hf["vocab_size"].as_u64(), hf["head_dim"].as_u64()), (Some(1024), Some(32)));
            }
            Layout::HfPackage => check_timing_script(&out.join("run_timing_small_axcl_x86.sh")),
            Layout::Compiled => assert!(!out.join("config.json").exists()),
        }
    }
    let mut too_small = small_timing(Layout::Axllm);
    too_small.geometry.vocab_size = 300;
    let err = err_chain(pack::write_timing_model(&tmp.path().join("x"), &too_small).unwrap_err());
    assert!(err.contains("more than the vocabulary size"), "{err}");
}

fn check_timing_script(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("--template_filename_axmodel \"timing-small-ax650/qwen3_p16_l%d_together.axmodel\""));
    assert!(text.contains("--tokens_embed_num 1024") && text.contains("--devices 0"));
}

#[test]
fn qwen3_0_6b_timing_preset() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TimingPreset::Qwen3_0_6B.options();
    let ladder: Vec<usize> = (1..=8).map(|i| i * 128).collect();
    assert_eq!(opts.io, IoOptions { chunk: 128, context: 2047, prefill_history: ladder.clone() }, "C128-P1152-CTX2047");
    assert_eq!(opts.quant, pack::Quant::W8a16);
    let report = pack::write_timing_model(tmp.path(), &opts).unwrap();
    assert_eq!((report.layers, report.hidden_size, report.vocab_size, report.kv_size), (28, 1024, 151936, 1024));
    assert_sparse(&tmp.path().join("model.embed_tokens.weight.bfloat16.bin"), 151936 * 1024 * 2);
    let layer = SimModelFile::read(&tmp.path().join("qwen3_p128_l27_together.axmodel")).unwrap();
    let h = &layer.header;
    assert!(h.timing_only);
    assert_eq!(h.layer_index, Some(27));
    let g = &h.geometry;
    assert_eq!(
        (g.hidden_size, g.num_attention_heads, g.num_key_value_heads, g.head_dim, g.intermediate_size),
        (1024, 16, 8, 128, 3072)
    );
    assert_eq!(h.groups.len(), 10, "decode + 9 prefill groups, as the vendor's engines");
    assert_eq!(h.groups[0].inputs[0].dims, vec![1, 2047, 1024], "decode K_cache");
    assert_eq!(h.groups[0].inputs[4].dims, vec![1, 1, 2048], "decode mask");
    assert_eq!(h.groups[9].inputs[4].dims, vec![1, 128, 1024 + 128], "largest prefill mask");
    assert_eq!(h.groups, layer_groups(1024, 1024, 128, 2047, &ladder));
    // The costs: F35 for decode (1465 µs at C 2048; measured 1500), F36 for a chunk.
    let cost = h.cost.expect("a timing layer carries its cost");
    assert!((cost.decode_us - 1464.0).abs() < 3.0, "{cost:?}");
    assert!((cost.prefill_us + 1024.0 * cost.prefill_us_per_history_row - 5225.0).abs() < 10.0, "{cost:?}");
    let post = SimModelFile::read(&tmp.path().join("qwen3_post.axmodel")).unwrap();
    assert!((post.header.cost.unwrap().decode_us - 7934.0).abs() < 3.0);
    // w4a16: half the weight bytes, the same IO and chunk cost.
    let w4 = tempfile::tempdir().unwrap();
    pack::write_timing_model(w4.path(), &pack::TimingOptions { quant: pack::Quant::Int4, ..opts.clone() }).unwrap();
    let l4 = SimModelFile::read(&w4.path().join("qwen3_p128_l27_together.axmodel")).unwrap();
    assert_eq!(l4.header.groups, h.groups);
    let c4 = l4.header.cost.unwrap();
    assert!((c4.decode_us - 1166.0).abs() < 3.0, "{c4:?} (measured 1166)");
    assert_eq!(c4.prefill_us, cost.prefill_us);
    let c = read_json(&tmp.path().join("config.json"));
    assert_eq!(c["model_name"], "Qwen3-0.6B");
    assert_eq!(c["template_filename_axmodel"], "qwen3_p128_l%d_together.axmodel");
    assert_eq!((c["axmodel_num"].as_u64(), c["tokens_embed_num"].as_u64()), (Some(28), Some(151936)));
    assert!(!tmp.path().join("qwen3_p128_l28_together.axmodel").exists());
}

// ---------------------------------------------------------------- CLI

#[test]
fn cli_random_then_hf_package() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_axsim-pack");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let ckpt = tmp.path().join("Qwen2-Tiny");
    let out = tmp.path().join("pkg");
    let (c, o) = (ckpt.to_str().unwrap(), out.to_str().unwrap());
    run(&["random", c, "--arch", "qwen2", "--layers", "1", "--tie-embeddings", "--seed", "5"]);
    let msg =
        run(&["hf", c, o, "--layout", "hf-package", "--chunk", "8", "--context", "63", "--prefill-history", "16,32"]);
    assert!(msg.contains("1 layers"), "{msg}");
    // The name defaults to the checkpoint directory's.
    assert!(out.join("run_qwen2_tiny_axcl_aarch64.sh").is_file());
    let layer = SimModelFile::read(&out.join("qwen2-tiny-ax650/qwen2_p8_l0_together.axmodel")).unwrap();
    assert_eq!(layer.header.groups, layer_groups(64, 32, 8, 63, &[16, 32]));

    let bad = std::process::Command::new(bin).args(["hf", c, o, "--prefill-history", "512,256"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ascending"));
}
