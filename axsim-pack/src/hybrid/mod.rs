//! Qwen3.5 packages: Hugging Face `qwen3_5` checkpoints to
//! model directories laid out like AXERA's (`qwen3_5_text_p<T>_l<i>_together.axmodel`,
//! `qwen3_5_text_post.axmodel`, config.json naming the layer kinds), random
//! test checkpoints, and timing-only models at the published geometries.
//!
//! Each layer file declares its kind (`SimModelHeader::hybrid`). Full-attention
//! layers have the Qwen3 shape groups of [`axcl_sim::format::layer_groups`];
//! linear-attention layers have the same decode/prefill group structure with
//! the state tensors of `axcl_sim::math::hybrid` (optionally fewer prefill groups: a
//! pruned build).

mod config;
mod random;
mod timing;

pub use config::LayerKind;
pub(crate) use config::{MAX_POSITIONS, Qwen35Config, is_qwen35};
pub use random::{HybridRandomOptions, chat_template};
pub(crate) use random::write_random_qwen35;
pub use timing::{HybridPreset, HybridTimingOptions, Quant, write_hybrid_timing_model};

use super::axmodel::{ModelSpec, write_post};
use super::checkpoint::Checkpoint;
use super::hf::Family;
use super::layout::{EMBED_FILE, HybridKeys, Package};
use super::rope::{RopeScaling, rope_inv_freq};
use super::{IoOptions, PackOptions, PackReport};
use axcl_sim::format::{
    DType, ExecCost, FullSpec, Geometry, GroupIo, HybridSpec, LinearSpec, ModelKind, SimModelHeader, SimModelWriter,
    TensorDesc, layer_groups,
};
use anyhow::{Context, Result, ensure};
use std::collections::HashSet;
use std::path::Path;

/// Element type of the linear layers' state tensors.
///
/// Derives `clap::ValueEnum` so the CLI can take it directly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StateDtype {
    #[default]
    Bf16,
    F32,
}

impl StateDtype {
    pub fn dtype(self) -> DType {
        match self {
            StateDtype::Bf16 => DType::Bf16,
            StateDtype::F32 => DType::F32,
        }
    }
}

/// Which config.json keys name the layer kinds.
///
/// Derives `clap::ValueEnum` so the CLI can take it directly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LayerKeys {
    /// `full_attention_interval` when the kinds follow one, and `layer_types`.
    #[default]
    Both,
    /// `full_attention_interval` only (the pattern must be regular).
    Interval,
    /// `layer_types` only.
    LayerTypes,
    /// Neither: a runner has to tell the kinds apart by their IO.
    None,
}

/// How a Qwen3.5 package is compiled, beyond [`IoOptions`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HybridOptions {
    pub state_dtype: StateDtype,
    /// The runtime reports the state tensors' dtype as NONE.
    pub report_state_dtype_none: bool,
    /// Prefill groups in linear layers; `None`: as many as the full layers.
    pub linear_prefill_groups: Option<usize>,
    pub layer_keys: LayerKeys,
}

/// The numbers every layer file of a package shares.
#[derive(Debug, Clone)]
pub(crate) struct HybridModel {
    pub cfg: Qwen35Config,
    pub io: IoOptions,
    pub opts: HybridOptions,
}

impl HybridModel {
    pub fn new(cfg: Qwen35Config, io: &IoOptions, opts: &HybridOptions) -> Result<Self> {
        io.validate()?;
        cfg.validate()?;
        if let Some(n) = opts.linear_prefill_groups {
            ensure!(
                (1..=io.prefill_history.len() + 1).contains(&n),
                "linear layers can have 1 to {} prefill groups (as many as the full layers), not {n}",
                io.prefill_history.len() + 1
            );
        }
        if opts.layer_keys == LayerKeys::Interval {
            ensure!(
                cfg.full_attention_interval().is_some(),
                "the layer kinds follow no full_attention_interval; write layer_types"
            );
        }
        Ok(Self { cfg, io: io.clone(), opts: opts.clone() })
    }

    fn geometry(&self, vocab_size: usize) -> Geometry {
        let c = &self.cfg;
        Geometry {
            hidden_size: c.hidden_size,
            num_attention_heads: c.num_attention_heads,
            num_key_value_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            intermediate_size: c.intermediate_size,
            rms_norm_eps: c.rms_norm_eps,
            vocab_size,
        }
    }

    /// The spec the dense helpers (post model, package layout) take.
    pub fn model_spec(&self) -> ModelSpec {
        let c = &self.cfg;
        ModelSpec {
            family: Family::Qwen35,
            layers: c.num_hidden_layers,
            geometry: self.geometry(0),
            vocab_size: c.vocab_size,
            rope_inv_freq: rope_inv_freq(c.rotary_dim(), c.rope_theta, &RopeScaling::Default),
            io: self.io.clone(),
        }
    }

    pub fn linear_spec(&self) -> LinearSpec {
        let l = &self.cfg.linear;
        LinearSpec {
            key_heads: l.key_heads,
            value_heads: l.value_heads,
            key_head_dim: l.key_head_dim,
            value_head_dim: l.value_head_dim,
            conv_kernel: l.conv_kernel,
            state_dtype: self.opts.state_dtype.dtype(),
            report_state_dtype_none: self.opts.report_state_dtype_none,
        }
    }

    /// The shape groups of a linear layer: decode, then its prefill groups,
    /// all with the whole state in and out and a gate mask of one element per row.
    fn linear_groups(&self) -> Vec<GroupIo> {
        let spec = self.linear_spec();
        let (h, t, dt) = (self.cfg.hidden_size as i32, self.io.chunk as i32, spec.state_dtype);
        let dims = |d: &[usize]| d.iter().map(|&x| x as i32).collect::<Vec<_>>();
        let (conv, rec) = (dims(&spec.conv_state_dims()), dims(&spec.recurrent_state_dims()));
        let group = |rows: i32| GroupIo {
            inputs: vec![
                TensorDesc::new("K_cache", dt, &conv),
                TensorDesc::new("V_cache", dt, &rec),
                TensorDesc::new("indices", DType::U32, &[1, rows]),
                TensorDesc::new("input", DType::Bf16, &[1, rows, h]),
                TensorDesc::new("mask", DType::Bf16, &[1, 1, rows]),
            ],
            outputs: vec![
                TensorDesc::new("K_cache_out", dt, &conv),
                TensorDesc::new("V_cache_out", dt, &rec),
                TensorDesc::new("output", DType::Bf16, &[1, rows, h]),
            ],
        };
        let prefill = self.opts.linear_prefill_groups.unwrap_or(self.io.prefill_history.len() + 1);
        std::iter::once(group(1)).chain((0..prefill).map(|_| group(t))).collect()
    }

    /// The header of layer `index`; `cost` for timing-only files.
    pub fn layer_header(&self, index: usize, timing_only: bool, cost: Option<ExecCost>) -> Result<SimModelHeader> {
        let c = &self.cfg;
        let kind = c.layer_types[index];
        let (hybrid, groups, inv_freq) = match kind {
            LayerKind::Linear => (HybridSpec::Linear(self.linear_spec()), self.linear_groups(), Vec::new()),
            LayerKind::Full => (
                HybridSpec::Full(FullSpec { rotary_dim: c.rotary_dim(), output_gate: true }),
                layer_groups(c.hidden_size, c.kv_size(), self.io.chunk, self.io.context, &self.io.prefill_history),
                self.model_spec().rope_inv_freq,
            ),
        };
        Ok(SimModelHeader {
            kind: ModelKind::Layer,
            arch: axcl_sim::format::Arch::Qwen35,
            timing_only,
            layer_index: Some(u32::try_from(index).context("layer index does not fit in u32")?),
            geometry: self.geometry(0),
            rope_inv_freq: inv_freq,
            groups,
            tensors: Vec::new(),
            hybrid: Some(hybrid),
            cost,
        })
    }

    /// The package's names and config.json keys.
    pub fn package(&self, name: &str, layout: super::Layout) -> Result<Package> {
        let c = &self.cfg;
        let interval = c.full_attention_interval();
        let types = Some(c.layer_types.iter().map(|k| k.name()).collect());
        let keys = match self.opts.layer_keys {
            LayerKeys::Both => HybridKeys { full_attention_interval: interval, layer_types: types },
            LayerKeys::Interval => HybridKeys { full_attention_interval: interval, layer_types: None },
            LayerKeys::LayerTypes => HybridKeys { full_attention_interval: None, layer_types: types },
            LayerKeys::None => HybridKeys::default(),
        };
        Ok(Package::new(&self.model_spec(), name, layout)?.with_hybrid_keys(keys))
    }
}

/// A weight converted for a layer file.
struct Stored {
    name: String,
    shape: Vec<usize>,
    dtype: DType,
    bytes: Vec<u8>,
}

/// Reads one layer's weights from the checkpoint in the form the layer file
/// stores them: `1 + w` folded into the Qwen3.5 norms, then bf16; the decay
/// parameters f32; everything else bf16.
fn layer_weights(ckpt: &Checkpoint, cfg: &Qwen35Config, index: usize) -> Result<Vec<Stored>> {
    cfg.layer_weights(cfg.layer_types[index])
        .into_iter()
        .map(|w| {
            let full = cfg.layer_name(index, &w.name);
            let (dtype, bytes) = if w.plus_one {
                let v = ckpt.read_f32(&full, &w.shape)?;
                (DType::Bf16, v.iter().flat_map(|x| half::bf16::from_f32(1.0 + x).to_le_bytes()).collect())
            } else if w.f32 {
                (DType::F32, ckpt.read_f32(&full, &w.shape)?.iter().flat_map(|x| x.to_le_bytes()).collect())
            } else {
                (DType::Bf16, ckpt.read_bf16(&full, &w.shape)?)
            };
            Ok(Stored { name: w.name, shape: w.shape, dtype, bytes })
        })
        .collect()
}

/// Checks every expected tensor of the text model and refuses unknown ones;
/// the vision tower (`model.visual.*`) and the multi-token-prediction head
/// (`mtp.*`) are not part of the text path and are skipped.
fn validate_checkpoint(ckpt: &Checkpoint, cfg: &Qwen35Config) -> Result<()> {
    let (v, h) = (cfg.vocab_size, cfg.hidden_size);
    let mut expected = vec![(cfg.embed_name(), vec![v, h]), (cfg.norm_name(), vec![h])];
    if !cfg.tie_word_embeddings {
        expected.push(("lm_head.weight".to_owned(), vec![v, h]));
    }
    for i in 0..cfg.num_hidden_layers {
        expected
            .extend(cfg.layer_weights(cfg.layer_types[i]).into_iter().map(|w| (cfg.layer_name(i, &w.name), w.shape)));
    }
    for (name, shape) in &expected {
        ckpt.check(name, shape)?;
    }
    let known: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let skipped = |n: &str| n == "lm_head.weight" || n.starts_with("model.visual.") || n.starts_with("mtp.");
    let mut unexpected: Vec<&str> = ckpt.names().filter(|n| !known.contains(n) && !skipped(n)).collect();
    unexpected.sort_unstable();
    if let Some(name) = unexpected.first() {
        anyhow::bail!(
            "unexpected tensor {name} in {} ({} unexpected in all): not part of a Qwen3.5 text model with {} layers \
             as config.json describes it (quantized, MoE, or a different architecture?)",
            ckpt.file_of(name).map_or_else(String::new, |p| p.display().to_string()),
            unexpected.len(),
            cfg.num_hidden_layers
        );
    }
    Ok(())
}

fn write_layer_file(path: &Path, header: SimModelHeader, weights: &[Stored]) -> Result<()> {
    let mut w = SimModelWriter::new(header);
    for t in weights {
        w.add_tensor(&t.name, t.dtype, &t.shape, &t.bytes);
    }
    w.write(path).with_context(|| format!("writing {}", path.display()))
}

/// Packs the Qwen3.5 checkpoint in `src` into `out` (see [`super::pack_checkpoint`]).
pub(crate) fn pack_qwen35(src: &Path, out: &Path, opts: &PackOptions, name: &str) -> Result<PackReport> {
    let cfg = Qwen35Config::read(src)?;
    let model = HybridModel::new(cfg, &opts.io, &opts.hybrid)?;
    let cfg = &model.cfg;
    let ckpt = Checkpoint::open(src)?;
    validate_checkpoint(&ckpt, cfg)?;
    let tokenizer_files = super::hf::read_tokenizer_files(src, cfg.vocab_size)?;
    let pkg = model.package(name, opts.layout)?;
    let model_dir = super::prepare_out(src, out, &pkg)?;

    let mut files = Vec::new();
    let embed = ckpt.read_bf16(&cfg.embed_name(), &[cfg.vocab_size, cfg.hidden_size])?;
    let embed_path = model_dir.join(EMBED_FILE);
    std::fs::write(&embed_path, &embed).with_context(|| format!("writing {}", embed_path.display()))?;
    files.push(embed_path);
    for i in 0..cfg.num_hidden_layers {
        let path = model_dir.join(pkg.layer_file(i));
        write_layer_file(&path, model.layer_header(i, false, None)?, &layer_weights(&ckpt, cfg, i)?)?;
        files.push(path);
    }
    let norm: Vec<u8> = ckpt
        .read_f32(&cfg.norm_name(), &[cfg.hidden_size])?
        .iter()
        .flat_map(|x| half::bf16::from_f32(1.0 + x).to_le_bytes())
        .collect();
    let lm_head = if cfg.tie_word_embeddings {
        embed
    } else {
        ckpt.read_bf16("lm_head.weight", &[cfg.vocab_size, cfg.hidden_size])?
    };
    let post = [
        super::axmodel::Weight { name: "norm.weight".into(), shape: vec![cfg.hidden_size], bf16: norm },
        super::axmodel::Weight {
            name: "lm_head.weight".into(),
            shape: vec![cfg.vocab_size, cfg.hidden_size],
            bf16: lm_head,
        },
    ];
    let post_path = model_dir.join(pkg.post_file());
    write_post(&post_path, &model.model_spec(), Some(&post))?;
    files.push(post_path);
    files.extend(pkg.write_support_files(out, &tokenizer_files)?);
    Ok(model.report(model_dir, files))
}

impl HybridModel {
    pub fn report(&self, model_dir: std::path::PathBuf, files: Vec<std::path::PathBuf>) -> PackReport {
        let c = &self.cfg;
        PackReport {
            family: Family::Qwen35,
            model_dir,
            layers: c.num_hidden_layers,
            hidden_size: c.hidden_size,
            vocab_size: c.vocab_size,
            kv_size: c.kv_size(),
            files,
        }
    }
}
