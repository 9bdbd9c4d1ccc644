//! Timing-only models: real geometry and full-size IO, no weights (the
//! simulator does no math for them), for benchmarking the host side. Each
//! layer and post file carries what one execute costs the card
//! ([`crate::calibration`]; the simulator uses it under `costs=header`),
//! at the weight quantisation chosen (w8a16 or w4a16: the weight bytes per
//! layer differ, the IO contract does not).

use super::hf::{Family, HfConfig, HfFile};
use super::layout::{EMBED_FILE, Layout, Package};
use super::rope::RopeScaling;
use super::tokenizer::{DEFAULT_VOCAB_TARGET, train_tokenizer};
use super::calibration::{self, LayerLoad};
use super::hybrid::Quant;
use super::{IoOptions, PackReport, axmodel};
use anyhow::{Context, Result, ensure};
use axcl_sim::format::ExecCost;
use std::path::Path;

/// The published Qwen3 geometries (their Hugging Face configs).
///
/// Derives `clap::ValueEnum` so the CLI can take it directly (`qwen3-0.6b`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimingPreset {
    #[value(name = "qwen3-0.6b")]
    Qwen3_0_6B,
    #[value(name = "qwen3-1.7b")]
    Qwen3_1_7B,
    #[value(name = "qwen3-4b")]
    Qwen3_4B,
}

/// Architecture numbers of a timing-only model.
#[derive(Debug, Clone, PartialEq)]
pub struct TimingGeometry {
    pub family: Family,
    pub layers: usize,
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub rope_theta: f64,
    pub tie_word_embeddings: bool,
}

/// What to write for a timing-only model.
#[derive(Debug, Clone, PartialEq)]
pub struct TimingOptions {
    pub geometry: TimingGeometry,
    pub io: IoOptions,
    pub layout: Layout,
    /// Model name (display name and base of the hf-package names).
    pub name: String,
    /// Weight quantisation the per-execute costs assume.
    pub quant: Quant,
}

impl TimingPreset {
    pub fn geometry(self) -> TimingGeometry {
        let (layers, hidden_size, num_attention_heads, intermediate_size) = match self {
            TimingPreset::Qwen3_0_6B => (28, 1024, 16, 3072),
            TimingPreset::Qwen3_1_7B => (28, 2048, 16, 6144),
            TimingPreset::Qwen3_4B => (36, 2560, 32, 9728),
        };
        TimingGeometry {
            family: Family::Qwen3,
            layers,
            hidden_size,
            num_attention_heads,
            num_key_value_heads: 8,
            head_dim: 128,
            intermediate_size,
            vocab_size: 151936,
            rope_theta: 1e6,
            tie_word_embeddings: true,
        }
    }

    /// AXERA's current build of this model, `C128-P1152-CTX2047`: `T` 128,
    /// decode capacity 2047, prefill groups with history 0, 128, …, 1024 (the
    /// group ladder of the vendor's Qwen3-0.6B engines, hardware-facts: F36);
    /// w8a16; the hf-package layout's name, axllm layout.
    pub fn options(self) -> TimingOptions {
        let name = match self {
            TimingPreset::Qwen3_0_6B => "Qwen3-0.6B",
            TimingPreset::Qwen3_1_7B => "Qwen3-1.7B",
            TimingPreset::Qwen3_4B => "Qwen3-4B",
        };
        TimingOptions {
            geometry: self.geometry(),
            io: IoOptions { chunk: 128, context: 2047, prefill_history: (1..=8).map(|i| i * 128).collect() },
            layout: Layout::default(),
            name: name.to_owned(),
            quant: Quant::W8a16,
        }
    }
}

impl TimingGeometry {
    /// Weights of one decoder layer: q and o, k and v projections, the SwiGLU MLP.
    pub fn layer_params(&self) -> f64 {
        let (h, q, kv) = (self.hidden_size, self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim);
        (2 * h * q + 2 * h * kv + 3 * h * self.intermediate_size) as f64
    }

    /// `D`: the length of a K (or V) row.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// What one execute of a layer costs the card with `io` and `quant`.
    pub fn layer_cost(&self, io: &IoOptions, quant: Quant) -> ExecCost {
        calibration::layer_cost(LayerLoad {
            params: self.layer_params(),
            weights: quant.weights(),
            state_bytes: (io.context * 2 * self.kv_dim() * 2) as f64,
            history_row_us: calibration::history_row_us(self.kv_dim()),
            prefill_reads_state: false,
        })
    }

    /// What one execute of the post model costs the card.
    pub fn post_cost(&self) -> ExecCost {
        calibration::post_cost(self.vocab_size, self.hidden_size)
    }

    fn config(&self) -> HfConfig {
        HfConfig {
            family: self.family,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads,
            head_dim: self.head_dim,
            vocab_size: self.vocab_size,
            max_position_embeddings: self.family.default_max_positions(),
            rms_norm_eps: 1e-6,
            rope_theta: self.rope_theta,
            rope_scaling: RopeScaling::Default,
            tie_word_embeddings: self.tie_word_embeddings,
            attention_bias: false,
            mlp_bias: false,
        }
    }
}

/// Writes a timing-only model into `out` in the chosen layout. The embedding
/// file gets its full `V·H·2` size as a sparse file; the tokenizer is the
/// trained test tokenizer (fewer ids than `V`, as real Qwen3 has).
pub fn write_timing_model(out: &Path, opts: &TimingOptions) -> Result<PackReport> {
    opts.io.validate()?;
    let cfg = opts.geometry.config();
    cfg.validate()?;
    let tok = train_tokenizer(DEFAULT_VOCAB_TARGET)?;
    ensure!(
        tok.len <= cfg.vocab_size,
        "the test tokenizer has {} ids, more than the vocabulary size {}",
        tok.len,
        cfg.vocab_size
    );
    let spec = axmodel::ModelSpec::from_hf(&cfg, &opts.io);
    let pkg = Package::new(&spec, &opts.name, opts.layout)?;
    let model_dir = pkg.model_dir(out);
    std::fs::create_dir_all(&model_dir).with_context(|| format!("creating {}", model_dir.display()))?;

    let mut files = Vec::new();
    let embed_path = model_dir.join(EMBED_FILE);
    let embed_len = (cfg.vocab_size * cfg.hidden_size * 2) as u64;
    std::fs::File::create(&embed_path)
        .and_then(|f| f.set_len(embed_len))
        .with_context(|| format!("creating {}", embed_path.display()))?;
    files.push(embed_path);
    for i in 0..cfg.num_hidden_layers {
        let path = model_dir.join(pkg.layer_file(i));
        axmodel::write_timing_layer(&path, &spec, i, opts.geometry.layer_cost(&opts.io, opts.quant))?;
        files.push(path);
    }
    let post_path = model_dir.join(pkg.post_file());
    axmodel::write_timing_post(&post_path, &spec, opts.geometry.post_cost())?;
    files.push(post_path);

    let config = serde_json::to_vec_pretty(&cfg.to_json(tok.endoftext_id, tok.im_end_id, 0.02))?;
    let mut hf_files = vec![HfFile { name: "config.json", bytes: config }];
    hf_files.extend(tok.files());
    files.extend(pkg.write_support_files(out, &hf_files)?);
    Ok(PackReport::new(&cfg, model_dir, files))
}
