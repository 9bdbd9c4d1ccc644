//! Tiny random-weight Hugging Face checkpoints for tests: config.json,
//! generation_config.json, model.safetensors (bf16) and a trained tokenizer.

use super::hf::{EMBED, FINAL_NORM, Family, HfConfig, LM_HEAD, WeightKind};
use super::rope::RopeScaling;
use super::tokenizer::{DEFAULT_VOCAB_TARGET, train_tokenizer};
use anyhow::{Context, Result, ensure};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::collections::HashMap;
use std::path::Path;

/// Standard deviation of the noise around 1.0 in norm weights.
const NORM_NOISE_STD: f64 = 0.05;
/// Standard deviation of bias values.
const BIAS_STD: f64 = 0.02;
/// Real checkpoints pad the vocabulary to a multiple of this.
const VOCAB_PAD: usize = 64;

/// The shape of a random checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomOptions {
    pub arch: Family,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    /// Seeds the ChaCha generator: the same options give the same bytes.
    pub seed: u64,
    pub tie_embeddings: bool,
    /// Standard deviation of the matrix weights.
    pub init_std: f64,
    /// BPE vocabulary target of the trained tokenizer.
    pub vocab_target: usize,
}

impl Default for RandomOptions {
    fn default() -> Self {
        Self {
            arch: Family::Qwen3,
            hidden: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            intermediate: 128,
            seed: 1,
            tie_embeddings: false,
            init_std: 0.02,
            vocab_target: DEFAULT_VOCAB_TARGET,
        }
    }
}

impl RandomOptions {
    /// The config this checkpoint gets; `vocab_size` comes from the tokenizer.
    fn config(&self, vocab_size: usize) -> HfConfig {
        let llama = self.arch == Family::Llama;
        HfConfig {
            family: self.arch,
            hidden_size: self.hidden,
            intermediate_size: self.intermediate,
            num_hidden_layers: self.layers,
            num_attention_heads: self.heads,
            num_key_value_heads: self.kv_heads,
            head_dim: self.head_dim,
            vocab_size,
            max_position_embeddings: self.arch.default_max_positions(),
            rms_norm_eps: 1e-6,
            rope_theta: if llama { 5e5 } else { 1e6 },
            // Llama 3.2's scaling, so packing exercises the llama3 RoPE path.
            rope_scaling: if llama {
                RopeScaling::Llama3 {
                    factor: 32.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_max_position_embeddings: 8192.0,
                }
            } else {
                RopeScaling::Default
            },
            tie_word_embeddings: self.tie_embeddings,
            attention_bias: false,
            mlp_bias: false,
        }
    }
}

/// Writes a random checkpoint into `out` (created if needed). The llama arch
/// gets the same Qwen-style tokenizer and ChatML template as the others: the
/// simulator does not care, and one tokenizer keeps the tests simple.
pub fn write_random_checkpoint(out: &Path, opts: &RandomOptions) -> Result<()> {
    ensure!(opts.init_std.is_finite() && opts.init_std > 0.0, "init_std must be positive, got {}", opts.init_std);
    let tok = train_tokenizer(opts.vocab_target)?;
    let cfg = opts.config(tok.len.div_ceil(VOCAB_PAD) * VOCAB_PAD);
    cfg.validate()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;

    let mut rng = ChaCha20Rng::seed_from_u64(opts.seed);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add = |rng: &mut ChaCha20Rng, name: String, shape: Vec<usize>, kind: WeightKind| -> Result<()> {
        let bytes = random_bf16(rng, shape.iter().product(), kind, opts.init_std)?;
        tensors.push((name, shape, bytes));
        Ok(())
    };
    let (v, h) = (cfg.vocab_size, cfg.hidden_size);
    add(&mut rng, EMBED.into(), vec![v, h], WeightKind::Matrix)?;
    for i in 0..cfg.num_hidden_layers {
        for w in cfg.layer_weights() {
            add(&mut rng, format!("model.layers.{i}.{}", w.name), w.shape, w.kind)?;
        }
    }
    add(&mut rng, FINAL_NORM.into(), vec![h], WeightKind::Norm)?;
    if !cfg.tie_word_embeddings {
        add(&mut rng, LM_HEAD.into(), vec![v, h], WeightKind::Matrix)?;
    }

    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| Ok((name.as_str(), TensorView::new(Dtype::BF16, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>>>()?;
    let path = out.join("model.safetensors");
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize_to_file(views, Some(metadata), &path)
        .with_context(|| format!("writing {}", path.display()))?;

    let config = serde_json::to_string_pretty(&cfg.to_json(tok.endoftext_id, tok.im_end_id, opts.init_std))?;
    let path = out.join("config.json");
    std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    for f in tok.files() {
        let path = out.join(f.name);
        std::fs::write(&path, &f.bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `n` little-endian bf16 values: N(0, std) for matrices, 1 + small noise
/// for norms, small values for biases.
fn random_bf16(rng: &mut ChaCha20Rng, n: usize, kind: WeightKind, std: f64) -> Result<Vec<u8>> {
    let (mean, std) = match kind {
        WeightKind::Matrix => (0.0, std),
        WeightKind::Norm => (1.0, NORM_NOISE_STD),
        WeightKind::Bias => (0.0, BIAS_STD),
    };
    let dist = Normal::new(mean, std).context("invalid normal distribution")?;
    Ok((0..n).flat_map(|_| half::bf16::from_f64(dist.sample(rng)).to_bits().to_le_bytes()).collect())
}
