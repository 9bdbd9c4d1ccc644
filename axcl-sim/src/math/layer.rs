//! One decoder layer assembled from the parts: attention with RoPE and
//! grouped-query heads, then the MLP, each behind an RMSNorm and a residual.

use super::attention::{AttentionShape, attention};
use super::error::MathError;
use super::linear::Linear;
use super::mlp::Mlp;
use super::norm::{apply_rope, rms_norm, rms_norm_in_place};
use super::weights::{WeightReader, eps_of, expect_kind, to_f32};
use crate::format::{ModelKind, SimModelFile};
use half::bf16;

/// The inputs of one layer execution, already typed (bf16 words, u32 positions).
#[derive(Debug, Clone, Copy)]
pub struct LayerInputs<'a> {
    /// Hidden states `[n, H]`.
    pub input: &'a [bf16],
    /// Absolute RoPE positions `[n]`; `n` is the number of query rows.
    pub indices: &'a [u32],
    /// Additive mask `[n, P + n]`: `P` history columns, then the chunk's own rows.
    pub mask: &'a [bf16],
    /// History K rows `[≥P, D]`; only the first `P` rows are read (none when `P = 0`).
    pub k_cache: &'a [bf16],
    /// History V rows, like `k_cache`.
    pub v_cache: &'a [bf16],
}

/// Where a layer execution writes its results.
#[derive(Debug)]
pub struct LayerOutputs<'a> {
    /// The chunk's own K rows after RoPE, `[n, D]`.
    pub k_out: &'a mut [bf16],
    /// The chunk's own V rows, `[n, D]`.
    pub v_out: &'a mut [bf16],
    /// Hidden states after the layer, `[n, H]`.
    pub output: &'a mut [bf16],
}

/// One decoder layer: attention with RoPE and grouped-query heads, then a SwiGLU MLP,
/// each behind an RMSNorm and a residual connection.
#[derive(Debug)]
pub struct DecoderLayer {
    hidden: usize,
    shape: AttentionShape,
    eps: f32,
    inv_freq: Vec<f64>,
    input_norm: Vec<f32>,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_norm: Vec<f32>,
    mlp: Mlp,
}

impl DecoderLayer {
    /// Builds the layer from a parsed layer model file (weights converted to f32).
    pub fn from_file(file: &SimModelFile) -> Result<Self, MathError> {
        expect_kind(file, ModelKind::Layer)?;
        let g = &file.header.geometry;
        let (h, hd, inter) = (g.hidden_size, g.head_dim, g.intermediate_size);
        let shape = AttentionShape::of_layer(g)?;
        if hd == 0 || !hd.is_multiple_of(2) || file.header.rope_inv_freq.len() != hd / 2 {
            return Err(MathError::Geometry(format!(
                "head_dim {hd} needs an even size and head_dim/2 rope_inv_freq entries (got {})",
                file.header.rope_inv_freq.len()
            )));
        }
        let (qd, kvd) = (shape.heads * hd, shape.kv_heads * hd);
        let mut w = WeightReader::new(file);
        let layer = Self {
            hidden: h,
            shape,
            eps: eps_of(file)?,
            inv_freq: file.header.rope_inv_freq.clone(),
            input_norm: w.required("input_layernorm.weight", &[h])?,
            q_proj: Linear::load(&mut w, "self_attn.q_proj", qd, h)?,
            k_proj: Linear::load(&mut w, "self_attn.k_proj", kvd, h)?,
            v_proj: Linear::load(&mut w, "self_attn.v_proj", kvd, h)?,
            o_proj: Linear::load(&mut w, "self_attn.o_proj", h, qd)?,
            q_norm: w.optional("self_attn.q_norm.weight", &[hd])?,
            k_norm: w.optional("self_attn.k_norm.weight", &[hd])?,
            post_norm: w.required("post_attention_layernorm.weight", &[h])?,
            mlp: Mlp::load(&mut w, h, inter)?,
        };
        w.finish()?;
        Ok(layer)
    }

    /// Elements of one K (or V) cache row, `D = kv_heads · head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.shape.kv_heads * self.shape.head_dim
    }

    /// Runs the layer for `n = inputs.indices.len()` query rows (see the module docs).
    pub fn forward(&self, inputs: &LayerInputs<'_>, outputs: &mut LayerOutputs<'_>) -> Result<(), MathError> {
        let (h, d, n) = (self.hidden, self.kv_dim(), inputs.indices.len());
        let history = self.history_rows(&LayerSizes::of(inputs, outputs))?;
        let qd = self.shape.heads * self.shape.head_dim;
        let x = to_f32(inputs.input);

        let mut normed = vec![0.0f32; n * h];
        for (xr, nr) in x.chunks_exact(h).zip(normed.chunks_exact_mut(h)) {
            rms_norm(xr, &self.input_norm, self.eps, nr);
        }
        let mut q = vec![0.0f32; n * qd];
        let mut k = vec![0.0f32; n * d];
        let mut v = vec![0.0f32; n * d];
        self.q_proj.forward(&normed, &mut q);
        self.k_proj.forward(&normed, &mut k);
        self.v_proj.forward(&normed, &mut v);
        for (r, &pos) in inputs.indices.iter().enumerate() {
            self.position_heads(&mut q[r * qd..(r + 1) * qd], self.q_norm.as_deref(), pos);
            self.position_heads(&mut k[r * d..(r + 1) * d], self.k_norm.as_deref(), pos);
        }
        // K and V live in bf16 caches on the card: round before attention uses them.
        for (o, &val) in outputs.k_out.iter_mut().zip(&k) {
            *o = bf16::from_f32(val);
        }
        for (o, &val) in outputs.v_out.iter_mut().zip(&v) {
            *o = bf16::from_f32(val);
        }
        let keys: Vec<f32> =
            inputs.k_cache[..history * d].iter().chain(outputs.k_out.iter()).map(|v| v.to_f32()).collect();
        let values: Vec<f32> =
            inputs.v_cache[..history * d].iter().chain(outputs.v_out.iter()).map(|v| v.to_f32()).collect();
        let mut attn = vec![0.0f32; n * qd];
        attention(self.shape, &q, &keys, &values, &to_f32(inputs.mask), &mut attn);

        let mut hidden = vec![0.0f32; n * h];
        self.o_proj.forward(&attn, &mut hidden);
        hidden.iter_mut().zip(&x).for_each(|(hv, xv)| *hv += xv);

        for (hr, nr) in hidden.chunks_exact(h).zip(normed.chunks_exact_mut(h)) {
            rms_norm(hr, &self.post_norm, self.eps, nr);
        }
        let mut mlp = vec![0.0f32; n * h];
        self.mlp.forward(&normed, &mut mlp);

        for ((o, hv), mv) in outputs.output.iter_mut().zip(&hidden).zip(&mlp) {
            *o = bf16::from_f32(hv + mv);
        }
        Ok(())
    }

    /// Per-head RMSNorm (Qwen3) and RoPE of one row of q or k.
    fn position_heads(&self, row: &mut [f32], norm: Option<&[f32]>, position: u32) {
        for head in row.chunks_exact_mut(self.shape.head_dim) {
            if let Some(w) = norm {
                rms_norm_in_place(head, w, self.eps);
            }
            apply_rope(head, position, &self.inv_freq);
        }
    }

    /// Checks a shape group's element counts against the geometry; returns the
    /// history width `P` (mask columns minus query rows).
    pub fn history_rows(&self, s: &LayerSizes) -> Result<usize, MathError> {
        let (h, d, n) = (self.hidden, self.kv_dim(), s.indices);
        let bad = |m: String| Err(MathError::Shape(m));
        if n == 0 {
            return bad("indices is empty".into());
        }
        if s.input != n * h {
            return bad(format!("input has {} elements, {n} rows of {h} need {}", s.input, n * h));
        }
        if !s.mask.is_multiple_of(n) || s.mask / n < n {
            return bad(format!("mask has {} elements, not {n} rows of at least {n} columns", s.mask));
        }
        let history = s.mask / n - n;
        if history > 0 && (s.k_cache < history * d || s.v_cache < history * d) {
            return bad(format!(
                "K/V cache have {}/{} elements, {history} history rows of {d} need {}",
                s.k_cache,
                s.v_cache,
                history * d
            ));
        }
        if s.k_out != n * d || s.v_out != n * d || s.output != n * h {
            return bad(format!(
                "outputs have {}/{}/{} elements, {n} rows need {}/{}/{}",
                s.k_out,
                s.v_out,
                s.output,
                n * d,
                n * d,
                n * h
            ));
        }
        Ok(history)
    }
}

/// Element counts of one layer execution's tensors (see [`LayerInputs`] and
/// [`LayerOutputs`]), so a shape group can be checked before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSizes {
    pub input: usize,
    pub indices: usize,
    pub mask: usize,
    pub k_cache: usize,
    pub v_cache: usize,
    pub k_out: usize,
    pub v_out: usize,
    pub output: usize,
}

impl LayerSizes {
    fn of(i: &LayerInputs<'_>, o: &LayerOutputs<'_>) -> Self {
        Self {
            input: i.input.len(),
            indices: i.indices.len(),
            mask: i.mask.len(),
            k_cache: i.k_cache.len(),
            v_cache: i.v_cache.len(),
            k_out: o.k_out.len(),
            v_out: o.v_out.len(),
            output: o.output.len(),
        }
    }
}
