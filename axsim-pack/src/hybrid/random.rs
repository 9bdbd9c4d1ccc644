//! Tiny random-weight Qwen3.5 checkpoints for tests, saved like a
//! `Qwen3_5ForConditionalGeneration` text checkpoint (`model.language_model.*`),
//! with the trained test tokenizer and a chat template in Qwen3.5's turn format.

use super::config::{Init, LayerKind, LinearDims, Qwen35Config};
use crate::RandomOptions;
use crate::tokenizer::train_tokenizer;
use anyhow::{Context, Result, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Real checkpoints pad the vocabulary to a multiple of this.
const VOCAB_PAD: usize = 64;
/// Standard deviation of the convolution taps (few taps: larger than a matrix's).
const CONV_STD: f64 = 0.3;
/// Standard deviation of the noise of norms and scales.
const NOISE_STD: f64 = 0.05;
/// Decay rates `A = exp(A_log)` are drawn from this range: slow enough that a
/// token still shapes the state many tokens later, so a state that is not
/// carried changes the output.
const DECAY_RANGE: (f64, f64) = (0.02, 0.6);

const CHAT_TEMPLATE: &str = include_str!("chat_template.jinja");

/// The Qwen3.5 template of the test tokenizer (Jinja; the same in minijinja and Python jinja2).
pub fn chat_template() -> &'static str {
    CHAT_TEMPLATE.trim_end()
}

/// The Qwen3.5-specific shape of a random checkpoint ([`RandomOptions::hybrid`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HybridRandomOptions {
    pub linear_key_heads: usize,
    pub linear_value_heads: usize,
    pub linear_key_head_dim: usize,
    pub linear_value_head_dim: usize,
    pub conv_kernel: usize,
    /// Every this-many-th layer (1-based) is full attention.
    pub full_attention_interval: usize,
    /// Share of each full-attention head that RoPE rotates.
    pub partial_rotary_factor: f64,
}

impl Default for HybridRandomOptions {
    fn default() -> Self {
        Self {
            linear_key_heads: 2,
            linear_value_heads: 4,
            linear_key_head_dim: 16,
            linear_value_head_dim: 16,
            conv_kernel: 4,
            full_attention_interval: 4,
            partial_rotary_factor: 0.25,
        }
    }
}

fn config(opts: &RandomOptions, vocab_size: usize) -> Qwen35Config {
    let h = &opts.hybrid;
    Qwen35Config {
        hidden_size: opts.hidden,
        intermediate_size: opts.intermediate,
        num_hidden_layers: opts.layers,
        num_attention_heads: opts.heads,
        num_key_value_heads: opts.kv_heads,
        head_dim: opts.head_dim,
        vocab_size,
        max_position_embeddings: super::MAX_POSITIONS,
        rms_norm_eps: 1e-6,
        rope_theta: 1e7,
        partial_rotary_factor: h.partial_rotary_factor,
        linear: LinearDims {
            key_heads: h.linear_key_heads,
            value_heads: h.linear_value_heads,
            key_head_dim: h.linear_key_head_dim,
            value_head_dim: h.linear_value_head_dim,
            conv_kernel: h.conv_kernel,
        },
        layer_types: LayerKind::pattern(opts.layers, h.full_attention_interval.max(1)),
        tie_word_embeddings: opts.tie_embeddings,
        attention_bias: false,
        prefix: "model.language_model.",
    }
}

/// `n` little-endian bf16 values drawn for `init`.
fn random_bf16(rng: &mut ChaCha20Rng, n: usize, init: Init, std: f64) -> Result<Vec<u8>> {
    let values: Vec<f64> = match init {
        Init::ALog => (0..n).map(|_| rng.random_range(DECAY_RANGE.0..DECAY_RANGE.1).ln()).collect(),
        _ => {
            let (mean, std) = match init {
                Init::Matrix => (0.0, std),
                Init::Conv => (0.0, CONV_STD),
                Init::NormPlusOne => (0.0, NOISE_STD),
                Init::Scale => (1.0, NOISE_STD),
                Init::DtBias => (1.0, 2.0 * NOISE_STD),
                Init::Bias | Init::ALog => (0.0, NOISE_STD / 2.0),
            };
            let dist = Normal::new(mean, std).context("invalid normal distribution")?;
            (0..n).map(|_| dist.sample(rng)).collect()
        }
    };
    Ok(values.into_iter().flat_map(|v| half::bf16::from_f64(v).to_bits().to_le_bytes()).collect())
}

/// Writes a random Qwen3.5 checkpoint into `out` (see [`crate::write_random_checkpoint`]).
pub(crate) fn write_random_qwen35(out: &Path, opts: &RandomOptions) -> Result<()> {
    ensure!(opts.hybrid.full_attention_interval >= 1, "full_attention_interval must be at least 1");
    let tok = train_tokenizer(opts.vocab_target)?;
    let cfg = config(opts, tok.len.div_ceil(VOCAB_PAD) * VOCAB_PAD);
    cfg.validate().context(
        "the random Qwen3.5 checkpoint needs at least one full-attention layer (layers >= full_attention_interval)",
    )?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;

    let mut rng = ChaCha20Rng::seed_from_u64(opts.seed);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let (v, h) = (cfg.vocab_size, cfg.hidden_size);
    let mut add = |rng: &mut ChaCha20Rng, name: String, shape: Vec<usize>, init: Init| -> Result<()> {
        tensors.push((name, shape.clone(), random_bf16(rng, shape.iter().product(), init, opts.init_std)?));
        Ok(())
    };
    add(&mut rng, cfg.embed_name(), vec![v, h], Init::Matrix)?;
    for i in 0..cfg.num_hidden_layers {
        for w in cfg.layer_weights(cfg.layer_types[i]) {
            add(&mut rng, cfg.layer_name(i, &w.name), w.shape, w.init)?;
        }
    }
    add(&mut rng, cfg.norm_name(), vec![h], Init::NormPlusOne)?;
    if !cfg.tie_word_embeddings {
        add(&mut rng, "lm_head.weight".into(), vec![v, h], Init::Matrix)?;
    }
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| Ok((name.as_str(), TensorView::new(Dtype::BF16, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>>>()?;
    let path = out.join("model.safetensors");
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize_to_file(views, Some(metadata), &path)
        .with_context(|| format!("writing {}", path.display()))?;

    let config = serde_json::to_string_pretty(&cfg.to_json(tok.im_end_id, opts.init_std))?;
    std::fs::write(out.join("config.json"), config)
        .with_context(|| format!("writing {}/config.json", out.display()))?;
    // The trained tokenizer with the Qwen3.5 chat template.
    let mut tok_config: Value = serde_json::from_str(&tok.tokenizer_config_json)?;
    tok_config["chat_template"] = Value::String(chat_template().to_owned());
    let mut files = tok.files();
    for f in &mut files {
        if f.name == "tokenizer_config.json" {
            f.bytes = serde_json::to_vec_pretty(&tok_config)?;
        }
    }
    for f in files {
        let path = out.join(f.name);
        std::fs::write(&path, &f.bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
