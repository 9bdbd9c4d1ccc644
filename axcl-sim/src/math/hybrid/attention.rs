//! The full-attention layer of Qwen3.5: a
//! Qwen3 layer whose `q_proj` also yields a per-head output gate, whose RoPE
//! rotates only the leading `rotary_dim` dims of each head, and whose
//! attention output is multiplied by `σ(gate)` before `o_proj`. The K/V cache
//! contract is the Qwen3 one: bf16 rows, K after RoPE, the chunk's
//! own rows rounded before its attention reads them.

use super::delta::swiglu_mlp;
use super::{Behaviour, HybridInputs, HybridOutputs, HybridSizes};
use crate::format::{FullSpec, ModelKind, SimModelFile};
use crate::math::attention::{AttentionShape, attention};
use crate::math::error::MathError;
use crate::math::linear::Linear;
use crate::math::norm::{apply_rope, rms_norm, rms_norm_in_place};
use crate::math::weights::{WeightReader, eps_of, expect_kind, to_f32};
use half::bf16;

/// One gated full-attention layer. As in [`super::delta::GatedDeltaLayer`], the
/// packer folds Qwen3.5's `1 + w` into every norm weight stored here.
#[derive(Debug)]
pub struct GatedAttentionLayer {
    spec: FullSpec,
    hidden: usize,
    shape: AttentionShape,
    eps: f32,
    inv_freq: Vec<f64>,
    input_norm: Vec<f32>,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    post_norm: Vec<f32>,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl GatedAttentionLayer {
    /// Builds the layer from a layer file whose header declares `spec`; the
    /// header's `rope_inv_freq` has `rotary_dim / 2` entries.
    pub fn from_file(file: &SimModelFile, spec: &FullSpec) -> Result<Self, MathError> {
        expect_kind(file, ModelKind::Layer)?;
        let g = &file.header.geometry;
        let (h, hd, inter) = (g.hidden_size, g.head_dim, g.intermediate_size);
        let shape = AttentionShape::of_layer(g)?;
        let rd = spec.rotary_dim;
        if hd == 0 || rd == 0 || rd > hd || !rd.is_multiple_of(2) || file.header.rope_inv_freq.len() != rd / 2 {
            return Err(MathError::Geometry(format!(
                "head_dim {hd}, rotary_dim {rd}: needs an even rotary_dim <= head_dim and rotary_dim/2 \
                 rope_inv_freq entries (got {})",
                file.header.rope_inv_freq.len()
            )));
        }
        let (qd, kvd) = (shape.heads * hd, shape.kv_heads * hd);
        let q_out = if spec.output_gate { 2 * qd } else { qd };
        let mut w = WeightReader::new(file);
        let layer = Self {
            spec: spec.clone(),
            hidden: h,
            shape,
            eps: eps_of(file)?,
            inv_freq: file.header.rope_inv_freq.clone(),
            input_norm: w.required("input_layernorm.weight", &[h])?,
            q_proj: Linear::load(&mut w, "self_attn.q_proj", q_out, h)?,
            k_proj: Linear::load(&mut w, "self_attn.k_proj", kvd, h)?,
            v_proj: Linear::load(&mut w, "self_attn.v_proj", kvd, h)?,
            o_proj: Linear::load(&mut w, "self_attn.o_proj", h, qd)?,
            q_norm: w.required("self_attn.q_norm.weight", &[hd])?,
            k_norm: w.required("self_attn.k_norm.weight", &[hd])?,
            post_norm: w.required("post_attention_layernorm.weight", &[h])?,
            gate_proj: Linear::load(&mut w, "mlp.gate_proj", inter, h)?,
            up_proj: Linear::load(&mut w, "mlp.up_proj", inter, h)?,
            down_proj: Linear::load(&mut w, "mlp.down_proj", h, inter)?,
        };
        w.finish()?;
        Ok(layer)
    }

    fn kv_dim(&self) -> usize {
        self.shape.kv_heads * self.shape.head_dim
    }

    /// Checks one shape group (the Qwen3 layer contract, bf16 K/V); returns the
    /// history width `P` (mask columns minus rows).
    pub fn check(&self, s: &HybridSizes) -> Result<usize, MathError> {
        let (h, d, n) = (self.hidden, self.kv_dim(), s.indices);
        let bad = |m: String| Err(MathError::Shape(m));
        if n == 0 {
            return bad("indices is empty".into());
        }
        if s.input != n * h || s.output != n * h {
            return bad(format!("input/output have {}/{} elements, {n} rows of {h} need {}", s.input, s.output, n * h));
        }
        if !s.mask.is_multiple_of(n) || s.mask / n < n {
            return bad(format!("mask has {} elements, not {n} rows of at least {n} columns", s.mask));
        }
        let history = s.mask / n - n;
        if s.k_cache < history * d * 2 || s.v_cache < history * d * 2 {
            return bad(format!(
                "K/V cache have {}/{} bytes, {history} history rows of {d} bf16 need {}",
                s.k_cache,
                s.v_cache,
                history * d * 2
            ));
        }
        if s.k_out != n * d * 2 || s.v_out != n * d * 2 {
            return bad(format!(
                "K/V outputs have {}/{} bytes, {n} rows of {d} bf16 need {}",
                s.k_out,
                s.v_out,
                n * d * 2
            ));
        }
        Ok(history)
    }

    /// Runs `n = inputs.indices.len()` query rows.
    pub fn forward(&self, inputs: &HybridInputs<'_>, _behaviour: &Behaviour) -> Result<HybridOutputs, MathError> {
        let (h, d, n, hd) = (self.hidden, self.kv_dim(), inputs.indices.len(), self.shape.head_dim);
        let history = self.check(&HybridSizes {
            input: inputs.input.len(),
            indices: n,
            mask: inputs.mask.len(),
            k_cache: inputs.k_cache.len(),
            v_cache: inputs.v_cache.len(),
            k_out: n * d * 2,
            v_out: n * d * 2,
            output: inputs.input.len(),
        })?;
        let qd = self.shape.heads * hd;
        let x = to_f32(inputs.input);
        let mut normed = vec![0.0f32; n * h];
        for (xr, nr) in x.chunks_exact(h).zip(normed.chunks_exact_mut(h)) {
            rms_norm(xr, &self.input_norm, self.eps, nr);
        }
        let q_out = self.q_proj.out_features();
        let mut qg = vec![0.0f32; n * q_out];
        let mut k = vec![0.0f32; n * d];
        let mut v = vec![0.0f32; n * d];
        self.q_proj.forward(&normed, &mut qg);
        self.k_proj.forward(&normed, &mut k);
        self.v_proj.forward(&normed, &mut v);
        // Split [query | gate] per head.
        let mut q = vec![0.0f32; n * qd];
        let mut gate = vec![0.0f32; n * qd];
        let per_head = if self.spec.output_gate { 2 * hd } else { hd };
        for r in 0..n {
            for head in 0..self.shape.heads {
                let src = &qg[r * q_out + head * per_head..r * q_out + (head + 1) * per_head];
                q[r * qd + head * hd..r * qd + (head + 1) * hd].copy_from_slice(&src[..hd]);
                if self.spec.output_gate {
                    gate[r * qd + head * hd..r * qd + (head + 1) * hd].copy_from_slice(&src[hd..]);
                }
            }
        }
        for (r, &pos) in inputs.indices.iter().enumerate() {
            self.position_heads(&mut q[r * qd..(r + 1) * qd], &self.q_norm, pos);
            self.position_heads(&mut k[r * d..(r + 1) * d], &self.k_norm, pos);
        }
        let k_out: Vec<bf16> = k.iter().map(|&v| bf16::from_f32(v)).collect();
        let v_out: Vec<bf16> = v.iter().map(|&v| bf16::from_f32(v)).collect();
        let rows = |bytes: &[u8]| -> Vec<f32> {
            bytes[..history * d * 2].chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
        };
        let mut keys = rows(inputs.k_cache);
        keys.extend(k_out.iter().map(|v| v.to_f32()));
        let mut values = rows(inputs.v_cache);
        values.extend(v_out.iter().map(|v| v.to_f32()));
        let mut attn = vec![0.0f32; n * qd];
        attention(self.shape, &q, &keys, &values, &to_f32(inputs.mask), &mut attn);
        if self.spec.output_gate {
            attn.iter_mut().zip(&gate).for_each(|(a, g)| *a *= sigmoid(*g));
        }
        let mut hidden = vec![0.0f32; n * h];
        self.o_proj.forward(&attn, &mut hidden);
        hidden.iter_mut().zip(&x).for_each(|(hv, xv)| *hv += xv);
        for (hr, nr) in hidden.chunks_exact(h).zip(normed.chunks_exact_mut(h)) {
            rms_norm(hr, &self.post_norm, self.eps, nr);
        }
        let output = swiglu_mlp(&self.gate_proj, &self.up_proj, &self.down_proj, &normed, &hidden);
        Ok(HybridOutputs {
            k_out: bytemuck::cast_slice(&k_out).to_vec(),
            v_out: bytemuck::cast_slice(&v_out).to_vec(),
            output: Some(output),
        })
    }

    /// Per-head RMSNorm, then RoPE on the leading `rotary_dim` dims.
    fn position_heads(&self, row: &mut [f32], norm: &[f32], position: u32) {
        for head in row.chunks_exact_mut(self.shape.head_dim) {
            rms_norm_in_place(head, norm, self.eps);
            apply_rope(&mut head[..self.spec.rotary_dim], position, &self.inv_freq);
        }
    }
}
