//! Hugging Face checkpoint packer: turns a checkpoint into a model directory
//! laid out exactly like AXERA's packages, whose layer and post
//! files are simulated axmodels (see [`axcl_sim::format`]).
//!
//! * [`pack_checkpoint`]: a real (small or large) HF checkpoint to a model directory.
//! * [`write_random_checkpoint`]: a tiny random-weight HF checkpoint with a real
//!   trained byte-level BPE tokenizer, for tests.
//! * [`write_timing_model`]: weightless, full-size-IO models for benchmarks.
//!
//! The module is split by concern: `hf` describes checkpoints (config,
//! weight names, tokenizer files), `checkpoint` reads their safetensors,
//! `rope` computes RoPE frequencies, `axmodel` writes the simulated model files,
//! `layout` the three directory layouts, `tokenizer` trains the test tokenizer,
//! [`hybrid`] does all of it for Qwen3.5.

mod axmodel;
pub mod calibration;
mod checkpoint;
mod hf;
pub mod hybrid;
mod layout;
mod random;
mod rope;
mod timing;
mod tokenizer;

pub use hf::Family;
pub use hybrid::{Quant, HybridOptions, HybridPreset, HybridRandomOptions, HybridTimingOptions, LayerKeys, StateDtype};
pub use layout::Layout;
pub use random::{RandomOptions, write_random_checkpoint};
pub use rope::{RopeScaling, rope_inv_freq};
pub use timing::{TimingGeometry, TimingOptions, TimingPreset, write_timing_model};
pub use tokenizer::{
    ADDED_TOKENS, DEFAULT_VOCAB_TARGET, ENDOFTEXT, IM_END, IM_START, TrainedTokenizer, chat_template, train_tokenizer,
};

use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};

/// The IO sizes every layer is built for (the vendor's per-layer IO contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoOptions {
    /// Prefill chunk length `T` (the `p128` in file names).
    pub chunk: usize,
    /// Decode KV capacity `C` (the decode mask has `C + 1` columns).
    pub context: usize,
    /// History capacities of prefill groups 2.., strictly ascending, each ≤ `C`.
    pub prefill_history: Vec<usize>,
}

impl Default for IoOptions {
    /// The shipped Qwen3-4B build: `T` 128, `C` 2559, history 256..2048.
    fn default() -> Self {
        Self { chunk: 128, context: 2559, prefill_history: vec![256, 512, 1024, 1536, 2048] }
    }
}

impl IoOptions {
    /// Rejects sizes no vendor build could have.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.chunk >= 1, "chunk (prefill length T) must be at least 1");
        ensure!(self.context >= 1, "context (decode KV capacity C) must be at least 1");
        ensure!(
            self.prefill_history.iter().all(|&p| p >= 1),
            "prefill history capacities must be at least 1, got {:?}",
            self.prefill_history
        );
        ensure!(
            self.prefill_history.windows(2).all(|w| w[0] < w[1]),
            "prefill history capacities must be strictly ascending, got {:?}",
            self.prefill_history
        );
        if let Some(&last) = self.prefill_history.last() {
            ensure!(
                last <= self.context,
                "prefill history capacity {last} exceeds the context (decode KV capacity) {}",
                self.context
            );
        }
        // The header stores dims as i32.
        let widest = self.context.max(self.chunk + self.prefill_history.last().copied().unwrap_or(0)) + 1;
        ensure!(i32::try_from(widest).is_ok(), "chunk/context/history sizes are too large");
        Ok(())
    }
}

/// How to pack a Hugging Face checkpoint.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub io: IoOptions,
    pub layout: Layout,
    /// Model name (display name, and the base of the `hf-package` directory and
    /// script names); default: the checkpoint directory's name.
    pub name: Option<String>,
    /// Overrides the family read from config.json.
    pub family: Option<Family>,
    /// Qwen3.5 only: how the linear layers are compiled.
    pub hybrid: HybridOptions,
}

/// What a pack wrote.
#[derive(Debug, Clone)]
pub struct PackReport {
    pub family: Family,
    /// Directory holding the layer, post and embedding files.
    pub model_dir: PathBuf,
    pub layers: usize,
    pub hidden_size: usize,
    pub vocab_size: usize,
    /// `D` = num_key_value_heads × head_dim.
    pub kv_size: usize,
    /// Every file written, in writing order.
    pub files: Vec<PathBuf>,
}

/// Packs the Hugging Face checkpoint in `src` into `out` (created if needed).
pub fn pack_checkpoint(src: &Path, out: &Path, opts: &PackOptions) -> Result<PackReport> {
    opts.io.validate()?;
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => default_name(src)?,
    };
    let qwen35 = match opts.family {
        Some(f) => f == Family::Qwen35,
        None => hybrid::is_qwen35(src),
    };
    if qwen35 {
        return hybrid::pack_qwen35(src, out, opts, &name);
    }
    let cfg = hf::HfConfig::read(src, opts.family)?;
    let ckpt = checkpoint::Checkpoint::open(src)?;
    ckpt.validate(&cfg)?;
    let tokenizer_files = hf::read_tokenizer_files(src, cfg.vocab_size)?;
    let spec = axmodel::ModelSpec::from_hf(&cfg, &opts.io);
    let pkg = layout::Package::new(&spec, &name, opts.layout)?;
    let model_dir = prepare_out(src, out, &pkg)?;

    let mut files = Vec::new();
    // Read the embedding once: it feeds the embedding file and, when tied, the lm_head.
    let embed = ckpt.read_bf16(hf::EMBED, &[cfg.vocab_size, cfg.hidden_size])?;
    let embed_path = model_dir.join(layout::EMBED_FILE);
    std::fs::write(&embed_path, &embed).with_context(|| format!("writing {}", embed_path.display()))?;
    files.push(embed_path);

    for i in 0..cfg.num_hidden_layers {
        let weights = cfg
            .layer_weights()
            .into_iter()
            .map(|w| {
                let bytes = ckpt.read_bf16(&format!("model.layers.{i}.{}", w.name), &w.shape)?;
                Ok(axmodel::Weight { name: w.name, shape: w.shape, bf16: bytes })
            })
            .collect::<Result<Vec<_>>>()?;
        let path = model_dir.join(pkg.layer_file(i));
        axmodel::write_layer(&path, &spec, i, Some(&weights))?;
        files.push(path);
    }

    let norm = ckpt.read_bf16(hf::FINAL_NORM, &[cfg.hidden_size])?;
    let lm_head =
        if cfg.tie_word_embeddings { embed } else { ckpt.read_bf16(hf::LM_HEAD, &[cfg.vocab_size, cfg.hidden_size])? };
    let post = [
        axmodel::Weight { name: "norm.weight".into(), shape: vec![cfg.hidden_size], bf16: norm },
        axmodel::Weight { name: "lm_head.weight".into(), shape: vec![cfg.vocab_size, cfg.hidden_size], bf16: lm_head },
    ];
    let post_path = model_dir.join(pkg.post_file());
    axmodel::write_post(&post_path, &spec, Some(&post))?;
    files.push(post_path);

    files.extend(pkg.write_support_files(out, &tokenizer_files)?);
    Ok(PackReport::new(&cfg, model_dir, files))
}

impl PackReport {
    fn new(cfg: &hf::HfConfig, model_dir: PathBuf, files: Vec<PathBuf>) -> Self {
        Self {
            family: cfg.family,
            model_dir,
            layers: cfg.num_hidden_layers,
            hidden_size: cfg.hidden_size,
            vocab_size: cfg.vocab_size,
            kv_size: cfg.kv_size(),
            files,
        }
    }
}

/// Creates `out` and the package's model directory in it (never the checkpoint directory).
fn prepare_out(src: &Path, out: &Path, pkg: &layout::Package) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    ensure!(
        !same_dir(src, out)?,
        "the output directory {} is the checkpoint directory; pack into a different directory",
        out.display()
    );
    let model_dir = pkg.model_dir(out);
    std::fs::create_dir_all(&model_dir).with_context(|| format!("creating {}", model_dir.display()))?;
    Ok(model_dir)
}

/// The checkpoint directory's own name, e.g. `Qwen3-0.6B`.
fn default_name(src: &Path) -> Result<String> {
    let abs = std::path::absolute(src).with_context(|| format!("resolving {}", src.display()))?;
    let Some(name) = abs.file_name().and_then(|n| n.to_str()) else {
        bail!("cannot derive a model name from {}; pass --name", src.display());
    };
    Ok(name.to_owned())
}

/// Whether two existing directories are the same one.
fn same_dir(a: &Path, b: &Path) -> Result<bool> {
    let canon = |p: &Path| p.canonicalize().with_context(|| format!("resolving {}", p.display()));
    Ok(canon(a)? == canon(b)?)
}
