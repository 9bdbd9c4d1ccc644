//! The Qwen3.5 packer: random `qwen3_5` checkpoints as transformers saves them,
//! packages laid out like AXERA's (hardware-facts: F27) with each layer's kind in
//! its header and config.json, bare `qwen3_5_text` checkpoints, the chat
//! template in Qwen3.5's format, and timing-only models at the published sizes.

use axcl_sim::format::{Arch, DType, FullSpec, HybridSpec, SimModelFile, layer_groups};
use axsim_pack::{
    self as pack, Family, HybridOptions, HybridPreset, HybridRandomOptions, IoOptions, LayerKeys, Layout, PackOptions,
    RandomOptions, StateDtype,
};
use safetensors::{Dtype, SafeTensors};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const H: usize = 64;
const LAYERS: usize = 6;

fn io() -> IoOptions {
    IoOptions { chunk: 16, context: 127, prefill_history: vec![16, 32, 64] }
}

fn random_opts() -> RandomOptions {
    RandomOptions { arch: Family::Qwen35, layers: LAYERS, seed: 3, ..RandomOptions::default() }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn checkpoint(dir: &Path) -> PathBuf {
    let ckpt = dir.join("ckpt");
    pack::write_random_checkpoint(&ckpt, &random_opts()).unwrap();
    ckpt
}

type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn tensors(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec()))).collect()
}

/// The text weights of a Qwen3.5 layer, listed independently of the packer
/// (dims of the default random options: 4 heads of 16 over 2 KV heads,
/// linear 2 key heads and 4 value heads of 16, kernel 4, MLP 128).
fn expected_layer(kind: &str) -> Vec<(&'static str, Vec<usize>)> {
    let mut w = vec![
        ("input_layernorm.weight", vec![H]),
        ("post_attention_layernorm.weight", vec![H]),
        ("mlp.gate_proj.weight", vec![128, H]),
        ("mlp.up_proj.weight", vec![128, H]),
        ("mlp.down_proj.weight", vec![H, 128]),
    ];
    if kind == "linear_attention" {
        w.extend([
            ("linear_attn.in_proj_qkv.weight", vec![2 * 32 + 64, H]),
            ("linear_attn.in_proj_z.weight", vec![64, H]),
            ("linear_attn.in_proj_b.weight", vec![4, H]),
            ("linear_attn.in_proj_a.weight", vec![4, H]),
            ("linear_attn.conv1d.weight", vec![128, 1, 4]),
            ("linear_attn.dt_bias", vec![4]),
            ("linear_attn.A_log", vec![4]),
            ("linear_attn.norm.weight", vec![16]),
            ("linear_attn.out_proj.weight", vec![H, 64]),
        ]);
    } else {
        w.extend([
            ("self_attn.q_proj.weight", vec![2 * 64, H]),
            ("self_attn.k_proj.weight", vec![32, H]),
            ("self_attn.v_proj.weight", vec![32, H]),
            ("self_attn.o_proj.weight", vec![H, 64]),
            ("self_attn.q_norm.weight", vec![16]),
            ("self_attn.k_norm.weight", vec![16]),
        ]);
    }
    w.sort();
    w
}

#[test]
fn random_checkpoints_look_like_transformers_saves_them() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(tmp.path());
    let c = read_json(&ckpt.join("config.json"));
    assert_eq!(c["model_type"], "qwen3_5");
    assert_eq!(c["architectures"], json!(["Qwen3_5ForConditionalGeneration"]));
    let t = &c["text_config"];
    assert_eq!(t["model_type"], "qwen3_5_text");
    let kinds = ["linear_attention", "linear_attention", "linear_attention", "full_attention"];
    let want: Vec<&str> = (0..LAYERS).map(|i| kinds[i % 4]).collect();
    assert_eq!(t["layer_types"], json!(want));
    assert_eq!(t["full_attention_interval"], 4);
    assert_eq!(t["rope_parameters"]["partial_rotary_factor"], 0.25);
    assert_eq!((t["linear_num_key_heads"].as_u64(), t["linear_num_value_heads"].as_u64()), (Some(2), Some(4)));
    let all = tensors(&ckpt.join("model.safetensors"));
    let v = t["vocab_size"].as_u64().unwrap() as usize;
    assert_eq!(all["model.language_model.embed_tokens.weight"].1, vec![v, H]);
    assert_eq!(all["model.language_model.norm.weight"].1, vec![H]);
    assert!(all.contains_key("lm_head.weight"));
    for (i, kind) in want.iter().enumerate() {
        let prefix = format!("model.language_model.layers.{i}.");
        let got: Vec<(&str, Vec<usize>)> = all
            .iter()
            .filter_map(|(n, (_, s, _))| n.strip_prefix(&prefix).map(|rest| (rest, s.clone())))
            .collect();
        let mut got: Vec<(String, Vec<usize>)> = got.into_iter().map(|(n, s)| (n.to_owned(), s)).collect();
        got.sort();
        let want: Vec<(String, Vec<usize>)> = expected_layer(kind).into_iter().map(|(n, s)| (n.to_owned(), s)).collect();
        assert_eq!(got, want, "layer {i} ({kind})");
    }
    assert_eq!(all.len(), 3 + 5 * 14 + 11, "embedding, norm, lm_head and the layers");
    let again = tmp.path().join("again");
    pack::write_random_checkpoint(&again, &random_opts()).unwrap();
    assert_eq!(std::fs::read(ckpt.join("model.safetensors")).unwrap(), std::fs::read(again.join("model.safetensors")).unwrap());
    let template = read_json(&ckpt.join("tokenizer_config.json"))["chat_template"].as_str().unwrap().to_owned();
    assert_eq!(template, pack::hybrid::chat_template());
}

fn bf16_values(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
}

#[test]
fn packages_follow_the_vendor_layout_with_each_layer_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(tmp.path());
    let out = tmp.path().join("pkg");
    let report = pack::pack_checkpoint(&ckpt, &out, &PackOptions { io: io(), ..Default::default() }).unwrap();
    assert_eq!(report.family, Family::Qwen35);
    assert_eq!((report.layers, report.hidden_size, report.kv_size), (LAYERS, H, 32));
    for i in 0..LAYERS {
        assert!(out.join(format!("qwen3_5_text_p16_l{i}_together.axmodel")).is_file());
    }
    assert!(out.join("qwen3_5_text_post.axmodel").is_file());
    let c = read_json(&out.join("config.json"));
    assert_eq!(c["template_filename_axmodel"], "qwen3_5_text_p16_l%d_together.axmodel");
    assert_eq!(c["tokenizer_type"], "Qwen3_5");
    assert_eq!(c["full_attention_interval"], 4);
    assert_eq!(c["layer_types"][3], "full_attention");
    assert_eq!(c["layer_types"].as_array().unwrap().len(), LAYERS);

    let ck = tensors(&ckpt.join("model.safetensors"));
    let lin = SimModelFile::read(&out.join("qwen3_5_text_p16_l0_together.axmodel")).unwrap();
    assert_eq!(lin.header.arch, Arch::Qwen35);
    let Some(HybridSpec::Linear(spec)) = &lin.header.hybrid else { panic!("layer 0 is linear") };
    assert_eq!((spec.key_heads, spec.value_heads, spec.conv_kernel, spec.state_dtype), (2, 4, 4, DType::Bf16));
    assert_eq!(lin.header.groups.len(), 5, "decode and one prefill group per full-layer prefill group");
    // 1 + w folded into the Qwen3.5 norms, rounded to bf16; A_log kept as f32.
    let (e, norm) = lin.tensor_bytes("input_layernorm.weight").unwrap();
    assert_eq!(e.dtype, DType::Bf16);
    let raw = bf16_values(&ck["model.language_model.layers.0.input_layernorm.weight"].2);
    let folded: Vec<f32> = raw.iter().map(|w| half::bf16::from_f32(1.0 + w).to_f32()).collect();
    assert_eq!(bf16_values(norm), folded);
    let (e, _) = lin.tensor_bytes("linear_attn.A_log").unwrap();
    assert_eq!(e.dtype, DType::F32);
    let (_, gated) = lin.tensor_bytes("linear_attn.norm.weight").unwrap();
    assert_eq!(gated, ck["model.language_model.layers.0.linear_attn.norm.weight"].2, "the gated norm is not shifted");

    let full = SimModelFile::read(&out.join("qwen3_5_text_p16_l3_together.axmodel")).unwrap();
    assert_eq!(full.header.hybrid, Some(HybridSpec::Full(FullSpec { rotary_dim: 4, output_gate: true })));
    assert_eq!(full.header.groups, layer_groups(H, 32, 16, 127, &[16, 32, 64]));
    assert_eq!(full.header.rope_inv_freq.len(), 2);
    let post = SimModelFile::read(&out.join("qwen3_5_text_post.axmodel")).unwrap();
    let raw = bf16_values(&ck["model.language_model.norm.weight"].2);
    let folded: Vec<f32> = raw.iter().map(|w| half::bf16::from_f32(1.0 + w).to_f32()).collect();
    assert_eq!(bf16_values(post.tensor_bytes("norm.weight").unwrap().1), folded);
}

#[test]
fn options_change_the_state_dtype_the_groups_and_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(tmp.path());
    let pack_with = |name: &str, hybrid: HybridOptions| {
        let out = tmp.path().join(name);
        pack::pack_checkpoint(&ckpt, &out, &PackOptions { io: io(), hybrid, ..Default::default() }).map(|_| out)
    };
    let out = pack_with(
        "f32",
        HybridOptions {
            state_dtype: StateDtype::F32,
            linear_prefill_groups: Some(1),
            layer_keys: LayerKeys::LayerTypes,
            ..Default::default()
        },
    )
    .unwrap();
    let lin = SimModelFile::read(&out.join("qwen3_5_text_p16_l1_together.axmodel")).unwrap();
    assert_eq!(lin.header.groups.len(), 2, "pruned: decode and one prefill group");
    assert_eq!(lin.header.groups[1].inputs[0].dtype, DType::F32);
    assert_eq!(lin.header.groups[1].outputs[1].nbytes(), 4 * 16 * 16 * 4);
    let c = read_json(&out.join("config.json"));
    assert!(c.get("full_attention_interval").is_none() && c["layer_types"].is_array());
    let c = read_json(&pack_with("none", HybridOptions { layer_keys: LayerKeys::None, ..Default::default() }).unwrap().join("config.json"));
    assert!(c.get("full_attention_interval").is_none() && c.get("layer_types").is_none());
    let err = pack_with("bad", HybridOptions { linear_prefill_groups: Some(5), ..Default::default() }).unwrap_err();
    assert!(format!("{err:#}").contains("1 to 4 prefill groups"), "{err:#}");
}

/// A text-only checkpoint (`qwen3_5_text`, tensors under `model.`) and one
/// with the vision tower and the MTP head, which the packer skips.
#[test]
fn text_checkpoints_pack_and_foreign_tensors_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(tmp.path());
    let mut all = tensors(&ckpt.join("model.safetensors"));
    let text = tmp.path().join("text");
    std::fs::create_dir_all(&text).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(ckpt.join(f), text.join(f)).unwrap();
    }
    let mut cfg = read_json(&ckpt.join("config.json"))["text_config"].clone();
    cfg["tie_word_embeddings"] = json!(false);
    std::fs::write(text.join("config.json"), cfg.to_string()).unwrap();
    let renamed: Tensors = all
        .iter()
        .map(|(n, t)| (n.replace("model.language_model.", "model."), t.clone()))
        .collect();
    write(&text.join("model.safetensors"), &renamed);
    let a = pack::pack_checkpoint(&ckpt, &tmp.path().join("a"), &PackOptions { io: io(), ..Default::default() }).unwrap();
    let b = pack::pack_checkpoint(&text, &tmp.path().join("b"), &PackOptions { io: io(), ..Default::default() }).unwrap();
    for i in 0..LAYERS {
        let name = format!("qwen3_5_text_p16_l{i}_together.axmodel");
        assert_eq!(std::fs::read(a.model_dir.join(&name)).unwrap(), std::fs::read(b.model_dir.join(&name)).unwrap());
    }

    all.insert("model.visual.blocks.0.norm1.weight".into(), (Dtype::BF16, vec![2], vec![0; 4]));
    all.insert("mtp.layers.0.input_layernorm.weight".into(), (Dtype::BF16, vec![2], vec![0; 4]));
    write(&ckpt.join("model.safetensors"), &all);
    pack::pack_checkpoint(&ckpt, &tmp.path().join("c"), &PackOptions { io: io(), ..Default::default() }).unwrap();
    all.insert("model.language_model.layers.0.mlp.experts.0.weight".into(), (Dtype::BF16, vec![2], vec![0; 4]));
    write(&ckpt.join("model.safetensors"), &all);
    let err = pack::pack_checkpoint(&ckpt, &tmp.path().join("d"), &PackOptions { io: io(), ..Default::default() })
        .unwrap_err();
    assert!(format!("{err:#}").contains("unexpected tensor model.language_model.layers.0.mlp.experts.0.weight"), "{err:#}");
    all.remove("model.language_model.layers.0.mlp.experts.0.weight");
    all.remove("model.language_model.layers.1.linear_attn.A_log");
    write(&ckpt.join("model.safetensors"), &all);
    let err = pack::pack_checkpoint(&ckpt, &tmp.path().join("e"), &PackOptions { io: io(), ..Default::default() })
        .unwrap_err();
    assert!(format!("{err:#}").contains("layers.1.linear_attn.A_log is missing"), "{err:#}");
}

fn write(path: &Path, tensors: &Tensors) {
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn a_model_without_a_full_attention_layer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = RandomOptions { layers: 3, ..random_opts() };
    let err = pack::write_random_checkpoint(tmp.path(), &opts).unwrap_err();
    assert!(format!("{err:#}").contains("full_attention"), "{err:#}");
    let opts = RandomOptions { hybrid: HybridRandomOptions { full_attention_interval: 2, ..Default::default() }, ..opts };
    pack::write_random_checkpoint(tmp.path(), &opts).unwrap();
}

#[test]
fn timing_presets_have_the_published_geometry_and_costs() {
    let tmp = tempfile::tempdir().unwrap();
    for (preset, layers, hidden, d, value_heads) in [
        (HybridPreset::Qwen35_0_8B, 24, 1024, 512, 16),
        (HybridPreset::Qwen35_2B, 24, 2048, 512, 16),
        (HybridPreset::Qwen35_4B, 32, 2560, 1024, 32),
    ] {
        let mut opts = preset.options();
        assert_eq!(opts.io, IoOptions { chunk: 128, context: 2047, prefill_history: vec![128, 256, 384, 512, 768, 1024, 1152] });
        opts.layout = Layout::Axllm;
        let out = tmp.path().join(format!("{preset:?}"));
        let r = pack::hybrid::write_hybrid_timing_model(&out, &opts).unwrap();
        assert_eq!((r.layers, r.hidden_size, r.kv_size, r.vocab_size), (layers, hidden, d, 248_320));
        let emb = std::fs::metadata(out.join("model.embed_tokens.weight.bfloat16.bin")).unwrap();
        assert_eq!(emb.len(), (248_320 * hidden * 2) as u64);
        let lin = SimModelFile::read(&out.join("qwen3_5_text_p128_l0_together.axmodel")).unwrap();
        let full = SimModelFile::read(&out.join("qwen3_5_text_p128_l3_together.axmodel")).unwrap();
        assert!(lin.header.timing_only && lin.data.is_empty());
        let Some(HybridSpec::Linear(spec)) = &lin.header.hybrid else { panic!() };
        assert_eq!(spec.value_heads, value_heads);
        let (lc, fc) = (lin.header.cost.unwrap(), full.header.cost.unwrap());
        // hardware-facts: F35: 418 µs fixed; history rows cost only in full layers.
        assert!(lc.decode_us > 418.0 && fc.decode_us > 418.0);
        assert_eq!(lc.prefill_us_per_history_row, 0.0);
        assert!(fc.prefill_us_per_history_row > 0.0);
        let post = SimModelFile::read(&out.join("qwen3_5_text_post.axmodel")).unwrap();
        let want_post = 418.0 + 248_320.0 * hidden as f64 / 20_700.0;
        assert!((post.header.cost.unwrap().decode_us - want_post).abs() < 1e-6);
    }
    // The 0.8B Int4 decode the model predicts is close to the 27.0 tok/s of the independent driver (hardware-facts: F33).
    let mut opts = HybridPreset::Qwen35_0_8B.options();
    opts.quant = pack::hybrid::Quant::Int4;
    let out = tmp.path().join("int4");
    pack::hybrid::write_hybrid_timing_model(&out, &opts).unwrap();
    let per_token_us: f64 = (0..24)
        .map(|i| SimModelFile::read(&out.join(format!("qwen3_5_text_p128_l{i}_together.axmodel"))).unwrap().header.cost.unwrap().decode_us)
        .sum::<f64>()
        + SimModelFile::read(&out.join("qwen3_5_text_post.axmodel")).unwrap().header.cost.unwrap().decode_us
        + 1500.0;
    let tok_s = 1e6 / per_token_us;
    assert!((24.0..32.0).contains(&tok_s), "{tok_s} tok/s");
}

#[test]
fn the_qwen35_template_renders_its_turn_format() {
    let mut env = minijinja::Environment::new();
    env.add_template("chat", pack::hybrid::chat_template()).unwrap();
    let render = |ctx: Value| env.get_template("chat").unwrap().render(minijinja::Value::from_serialize(&ctx)).unwrap();
    let chat = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "A greeting."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "reasoning_content": "Use the tool.",
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
        {"role": "tool", "content": "18C"},
    ]);
    let text = render(json!({"messages": chat, "add_generation_prompt": true}));
    let want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n\
<|im_start|>assistant\n<think>\nUse the tool.\n</think>\n\n<tool_call>\n<function=get_weather>\n\
<parameter=city>\nParis\n</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call><|im_end|>\n\
<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n";
    assert_eq!(text, want);
    let off = render(json!({"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true, "enable_thinking": false}));
    assert_eq!(off, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    let tools = render(json!({"messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function",
        "function": {"name": "f", "parameters": {}}}]}));
    assert!(tools.starts_with("<|im_start|>system\n# Tools\n\n"), "{tools}");
    assert!(tools.contains("<tools>\n{") && tools.contains("}\n</tools>"), "{tools}");
    assert!(tools.contains("<tool_call>\n<function=") && tools.ends_with("<|im_start|>user\nHi<|im_end|>\n"), "{tools}");
}

#[test]
fn the_cli_packs_a_qwen35_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_axsim-pack");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(exe).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ckpt = tmp.path().join("ckpt");
    let pkg = tmp.path().join("pkg");
    run(&["random", ckpt.to_str().unwrap(), "--arch", "qwen3_5", "--layers", "4", "--full-attention-interval", "2"]);
    let out = run(&[
        "hf", ckpt.to_str().unwrap(), pkg.to_str().unwrap(), "--chunk", "16", "--context", "127", "--prefill-history",
        "16,32", "--state-dtype", "f32", "--linear-prefill-groups", "1",
    ]);
    assert!(out.contains("qwen3_5_text model: 4 layers"), "{out}");
    assert_eq!(read_json(&pkg.join("config.json"))["full_attention_interval"], 2);
    let l0 = SimModelFile::read(&pkg.join("qwen3_5_text_p16_l0_together.axmodel")).unwrap();
    assert_eq!((l0.header.groups.len(), l0.header.groups[0].inputs[1].dtype), (2, DType::F32));
    let t = tmp.path().join("t");
    run(&["timing", t.to_str().unwrap(), "--geometry", "qwen3.5-2b", "--quant", "int4", "--context", "511", "--prefill-history", "128,256"]);
    let l3 = SimModelFile::read(&t.join("qwen3_5_text_p128_l3_together.axmodel")).unwrap();
    assert_eq!(l3.header.groups[0].inputs[4].dims, vec![1, 1, 512]);
}

/// Python's jinja2 (as transformers renders templates, with trim_blocks and
/// lstrip_blocks) gives the same text as minijinja.
#[test]
fn the_qwen35_template_renders_the_same_in_python_jinja2() {
    let probe = std::process::Command::new("python3").args(["-c", "import jinja2"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with jinja2 is not available");
        return;
    }
    let cases = json!([
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo", "reasoning_content": "r"},
            {"role": "user", "content": "<tool_response>\nx\n</tool_response>"}], "add_generation_prompt": true},
        {"messages": [{"role": "system", "content": " S "}, {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "A", "tool_calls": [{"function": {"name": "f", "arguments": {"a": "b c", "n": 3}}},
                {"name": "g", "arguments": {}}]},
            {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}], "add_generation_prompt": true, "enable_thinking": false},
    ]);
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
    let input = json!({"template": pack::hybrid::chat_template(), "cases": cases});
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.to_string().as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "jinja2 failed: {}", String::from_utf8_lossy(&out.stderr));
    let rendered: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let mut env = minijinja::Environment::new();
    env.add_template("chat", pack::hybrid::chat_template()).unwrap();
    for (ctx, got) in cases.as_array().unwrap().iter().zip(rendered) {
        let want = env.get_template("chat").unwrap().render(minijinja::Value::from_serialize(ctx)).unwrap();
        assert_eq!(got, want, "context {ctx}");
    }
}
