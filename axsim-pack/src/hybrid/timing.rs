//! Timing-only Qwen3.5 models: the published geometries with full-size IO and
//! no weights, each layer file carrying what one execute costs on the card
//! (`SimModelHeader::cost`, used by the simulator under `costs=header`).
//!
//! The costs follow the timing model of [`crate::calibration`], fitted to
//! independent Pi 5 + LLM-8850 measurements of Qwen3-0.6B (all INFERRED for Qwen3.5):
//!
//! * decode execute: `418 µs + weight bytes / 26.4 GB/s + state bytes / 18.6 GB/s`,
//!   where a full layer reads its K/V cache over the whole capacity
//!   (`C · 2 · D · 2` bytes) and a linear layer reads and writes its state;
//! * prefill execute (`T` = 128 rows): the 0.6B chunk cost (`2808 µs` at no
//!   history) scaled by the layer's parameters, plus
//!   `2.36 µs` per history row for `D` = 1024, scaled by `D`;
//! * post model: `418 µs + V · H bytes / 20.7 GB/s` (an 8-bit head in every
//!   published package).
//!
//! With these, the 0.8B Int4 decode comes to ≈ 29 tok/s engine-only, against
//! the 27.0 tok/s an independent driver measured.

use super::config::{LayerKind, LinearDims, Qwen35Config};
use super::{HybridModel, HybridOptions};
use crate::calibration::{self, LayerLoad, WeightBytes};
use crate::hf::HfFile;
use crate::layout::{EMBED_FILE, Layout};
use crate::tokenizer::{DEFAULT_VOCAB_TARGET, train_tokenizer};
use crate::{IoOptions, PackReport};
use axcl_sim::format::{ExecCost, Geometry, ModelKind, SimModelHeader, SimModelWriter, post_groups};
use anyhow::{Context, Result, ensure};
use serde_json::Value;
use std::path::Path;

/// The published Qwen3.5 AX650 packages.
///
/// Derives `clap::ValueEnum` so the CLI can take it directly (`qwen3.5-0.8b`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HybridPreset {
    #[value(name = "qwen3.5-0.8b")]
    Qwen35_0_8B,
    #[value(name = "qwen3.5-2b")]
    Qwen35_2B,
    #[value(name = "qwen3.5-4b")]
    Qwen35_4B,
}

/// Weight quantisation of the layers (the post model is 8-bit in every package).
///
/// Derives `clap::ValueEnum` so the CLI can take it directly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Quant {
    #[default]
    W8a16,
    /// 4-bit weights (GPTQ Int4, group 128; AXERA's w4a16 builds).
    #[value(name = "int4", alias = "w4a16")]
    Int4,
}

impl Quant {
    /// The bytes per weight the device streams.
    pub fn weights(self) -> WeightBytes {
        match self {
            Quant::W8a16 => WeightBytes::W8,
            Quant::Int4 => WeightBytes::W4,
        }
    }

    /// The name AXERA's package names use: `w8a16` or `w4a16`.
    pub fn label(self) -> &'static str {
        match self {
            Quant::W8a16 => "w8a16",
            Quant::Int4 => "w4a16",
        }
    }
}

/// What to write for a timing-only Qwen3.5 model.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridTimingOptions {
    pub preset: HybridPreset,
    pub quant: Quant,
    pub io: IoOptions,
    pub layout: Layout,
    pub hybrid: HybridOptions,
    /// Model name (display name and base of the hf-package names).
    pub name: String,
}

impl HybridPreset {
    /// The vendor build: `C128-P1152-CTX2047`: chunk 128,
    /// decode capacity 2047, history capacities 128 … 1152.
    pub fn options(self) -> HybridTimingOptions {
        let name = match self {
            HybridPreset::Qwen35_0_8B => "Qwen3.5-0.8B",
            HybridPreset::Qwen35_2B => "Qwen3.5-2B",
            HybridPreset::Qwen35_4B => "Qwen3.5-4B",
        };
        HybridTimingOptions {
            preset: self,
            quant: if self == HybridPreset::Qwen35_4B { Quant::Int4 } else { Quant::W8a16 },
            io: IoOptions { chunk: 128, context: 2047, prefill_history: vec![128, 256, 384, 512, 768, 1024, 1152] },
            layout: Layout::Axllm,
            hybrid: HybridOptions::default(),
            name: name.to_owned(),
        }
    }

    /// The architecture numbers. `L`, `H`, `V`, the full-attention `D` and the
    /// 0.8B/4B linear head counts are those of the published packages; the rest (heads,
    /// intermediate sizes, the 2B linear heads) follow the public Hugging Face
    /// configs of these models and are not confirmed by a vendor package.
    pub(crate) fn config(self) -> Qwen35Config {
        let (layers, hidden, heads, kv_heads, inter, value_heads) = match self {
            HybridPreset::Qwen35_0_8B => (24, 1024, 8, 2, 3584, 16),
            HybridPreset::Qwen35_2B => (24, 2048, 8, 2, 6144, 16),
            HybridPreset::Qwen35_4B => (32, 2560, 16, 4, 9216, 32),
        };
        Qwen35Config {
            hidden_size: hidden,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim: 256,
            vocab_size: 248_320,
            max_position_embeddings: super::MAX_POSITIONS,
            rms_norm_eps: 1e-6,
            rope_theta: 1e7,
            partial_rotary_factor: 0.25,
            linear: LinearDims { key_heads: 16, value_heads, key_head_dim: 128, value_head_dim: 128, conv_kernel: 4 },
            layer_types: LayerKind::pattern(layers, 4),
            tie_word_embeddings: true,
            attention_bias: false,
            prefix: "model.language_model.",
        }
    }
}

/// Parameters of a layer of `kind` (projections and MLP; norms ignored).
fn layer_params(c: &Qwen35Config, kind: LayerKind) -> f64 {
    let (h, i) = (c.hidden_size as f64, c.intermediate_size as f64);
    let mlp = 3.0 * h * i;
    mlp + match kind {
        LayerKind::Full => {
            let (q, kv) = ((c.num_attention_heads * c.head_dim) as f64, c.kv_size() as f64);
            // q_proj yields query and gate: twice the query width.
            h * (2.0 * q) + h * q + 2.0 * h * kv
        }
        LayerKind::Linear => {
            let l = &c.linear;
            let (cd, vd, hv) = (l.conv_dim() as f64, l.value_dim() as f64, l.value_heads as f64);
            h * cd + h * vd + 2.0 * h * hv + vd * h
        }
    }
}

/// The cost of one execute of a layer of `kind` (see the module docs).
pub(crate) fn layer_cost(model: &HybridModel, kind: LayerKind, quant: Quant) -> ExecCost {
    let c = &model.cfg;
    let (state_bytes, history_row_us) = match kind {
        LayerKind::Full => ((model.io.context * 2 * c.kv_size() * 2) as f64, calibration::history_row_us(c.kv_size())),
        LayerKind::Linear => {
            let spec = model.linear_spec();
            let bytes = (spec.conv_state_len() + spec.recurrent_state_len()) * spec.state_dtype.size();
            (2.0 * bytes as f64, 0.0)
        }
    };
    calibration::layer_cost(LayerLoad {
        params: layer_params(c, kind),
        weights: quant.weights(),
        state_bytes,
        history_row_us,
        prefill_reads_state: kind == LayerKind::Linear,
    })
}

/// The post model's cost.
pub(crate) fn post_cost(c: &Qwen35Config) -> ExecCost {
    calibration::post_cost(c.vocab_size, c.hidden_size)
}

/// Writes a timing-only Qwen3.5 model into `out` in the chosen layout: sparse
/// embedding file of the full size, weightless layer and post files with
/// their costs, the test tokenizer with the Qwen3.5 template.
pub fn write_hybrid_timing_model(out: &Path, opts: &HybridTimingOptions) -> Result<PackReport> {
    let model = HybridModel::new(opts.preset.config(), &opts.io, &opts.hybrid)?;
    let c = &model.cfg;
    let tok = train_tokenizer(DEFAULT_VOCAB_TARGET)?;
    ensure!(tok.len <= c.vocab_size, "the test tokenizer has more ids than the vocabulary");
    let pkg = model.package(&opts.name, opts.layout)?;
    let model_dir = pkg.model_dir(out);
    std::fs::create_dir_all(&model_dir).with_context(|| format!("creating {}", model_dir.display()))?;

    let mut files = Vec::new();
    let embed_path = model_dir.join(EMBED_FILE);
    std::fs::File::create(&embed_path)
        .and_then(|f| f.set_len((c.vocab_size * c.hidden_size * 2) as u64))
        .with_context(|| format!("creating {}", embed_path.display()))?;
    files.push(embed_path);
    for i in 0..c.num_hidden_layers {
        let path = model_dir.join(pkg.layer_file(i));
        let header = model.layer_header(i, true, Some(layer_cost(&model, c.layer_types[i], opts.quant)))?;
        SimModelWriter::new(header).write(&path).with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
    }
    let post = SimModelHeader {
        kind: ModelKind::Post,
        arch: axcl_sim::format::Arch::Qwen35,
        timing_only: true,
        layer_index: None,
        geometry: Geometry { vocab_size: c.vocab_size, ..model.model_spec().geometry },
        rope_inv_freq: Vec::new(),
        groups: post_groups(c.hidden_size, c.vocab_size),
        tensors: Vec::new(),
        hybrid: None,
        cost: Some(post_cost(c)),
    };
    let post_path = model_dir.join(pkg.post_file());
    SimModelWriter::new(post).write(&post_path).with_context(|| format!("writing {}", post_path.display()))?;
    files.push(post_path);

    let mut tok_config: Value = serde_json::from_str(&tok.tokenizer_config_json)?;
    tok_config["chat_template"] = Value::String(super::random::chat_template().to_owned());
    let mut hf_files =
        vec![HfFile { name: "config.json", bytes: serde_json::to_vec_pretty(&c.to_json(tok.im_end_id, 0.02))? }];
    for mut f in tok.files() {
        if f.name == "tokenizer_config.json" {
            f.bytes = serde_json::to_vec_pretty(&tok_config)?;
        }
        hf_files.push(f);
    }
    files.extend(pkg.write_support_files(out, &hf_files)?);
    Ok(model.report(model_dir, files))
}
