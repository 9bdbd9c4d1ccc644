//! Writing the simulated layer and post model files.

use super::IoOptions;
use super::hf::{Family, HfConfig};
use super::rope::rope_inv_freq;
use axcl_sim::format::{DType, ExecCost, Geometry, ModelKind, SimModelHeader, SimModelWriter, layer_groups, post_groups};
use anyhow::{Context, Result};
use std::path::Path;

/// Everything the headers of one model's files share.
#[derive(Debug, Clone)]
pub(crate) struct ModelSpec {
    pub family: Family,
    pub layers: usize,
    pub geometry: Geometry,
    pub vocab_size: usize,
    pub rope_inv_freq: Vec<f64>,
    pub io: IoOptions,
}

/// A weight to store, already converted to little-endian bf16.
#[derive(Debug, Clone)]
pub(crate) struct Weight {
    /// HF name relative to the layer (`self_attn.q_proj.weight`) or, for the
    /// post model, `norm.weight` / `lm_head.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    pub bf16: Vec<u8>,
}

impl ModelSpec {
    pub fn from_hf(cfg: &HfConfig, io: &IoOptions) -> Self {
        Self {
            family: cfg.family,
            layers: cfg.num_hidden_layers,
            geometry: Geometry {
                hidden_size: cfg.hidden_size,
                num_attention_heads: cfg.num_attention_heads,
                num_key_value_heads: cfg.num_key_value_heads,
                head_dim: cfg.head_dim,
                intermediate_size: cfg.intermediate_size,
                rms_norm_eps: cfg.rms_norm_eps,
                vocab_size: 0,
            },
            vocab_size: cfg.vocab_size,
            rope_inv_freq: rope_inv_freq(cfg.head_dim, cfg.rope_theta, &cfg.rope_scaling),
            io: io.clone(),
        }
    }

    fn header(&self, kind: ModelKind, layer_index: Option<u32>, timing_only: bool) -> SimModelHeader {
        let g = &self.geometry;
        let (geometry, rope_inv_freq, groups) = match kind {
            ModelKind::Layer => (
                g.clone(),
                self.rope_inv_freq.clone(),
                layer_groups(
                    g.hidden_size,
                    g.num_key_value_heads * g.head_dim,
                    self.io.chunk,
                    self.io.context,
                    &self.io.prefill_history,
                ),
            ),
            ModelKind::Post => (
                Geometry { vocab_size: self.vocab_size, ..g.clone() },
                Vec::new(),
                post_groups(g.hidden_size, self.vocab_size),
            ),
        };
        SimModelHeader {
            kind,
            arch: self.family.arch(),
            timing_only,
            layer_index,
            geometry,
            rope_inv_freq,
            groups,
            tensors: Vec::new(),
            hybrid: None,
            cost: None,
        }
    }
}

/// Writes layer `index`; `weights: None` makes a timing-only file.
pub(crate) fn write_layer(path: &Path, spec: &ModelSpec, index: usize, weights: Option<&[Weight]>) -> Result<()> {
    let layer = u32::try_from(index).context("layer index does not fit in u32")?;
    write(path, spec.header(ModelKind::Layer, Some(layer), weights.is_none()), weights.unwrap_or_default())
}

/// Writes the post model; `weights: None` makes a timing-only file.
pub(crate) fn write_post(path: &Path, spec: &ModelSpec, weights: Option<&[Weight]>) -> Result<()> {
    write(path, spec.header(ModelKind::Post, None, weights.is_none()), weights.unwrap_or_default())
}

/// Writes a timing-only layer `index` whose executes cost `cost`.
pub(crate) fn write_timing_layer(path: &Path, spec: &ModelSpec, index: usize, cost: ExecCost) -> Result<()> {
    let layer = u32::try_from(index).context("layer index does not fit in u32")?;
    write(path, SimModelHeader { cost: Some(cost), ..spec.header(ModelKind::Layer, Some(layer), true) }, &[])
}

/// Writes a timing-only post model whose executes cost `cost`.
pub(crate) fn write_timing_post(path: &Path, spec: &ModelSpec, cost: ExecCost) -> Result<()> {
    write(path, SimModelHeader { cost: Some(cost), ..spec.header(ModelKind::Post, None, true) }, &[])
}

fn write(path: &Path, header: SimModelHeader, weights: &[Weight]) -> Result<()> {
    let mut w = SimModelWriter::new(header);
    for t in weights {
        w.add_tensor(&t.name, DType::Bf16, &t.shape, &t.bf16);
    }
    w.write(path).with_context(|| format!("writing {}", path.display()))
}
