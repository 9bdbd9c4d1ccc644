//! The Gated DeltaNet linear-attention layer of Qwen3.5,
//! computed token by token in f32 (the reference recurrence; chunked forms are
//! the same up to rounding). The state enters and leaves in its dtype (see the
//! module docs of [`super`]); within one execution it stays f32.

use super::{Behaviour, HybridInputs, HybridOutputs, HybridSizes, Indices, Padding};
use super::{state_from_f32, state_to_f32};
use crate::format::{LinearSpec, ModelKind, SimModelFile};
use crate::math::error::MathError;
use crate::math::linear::Linear;
use crate::math::mlp::silu;
use crate::math::norm::rms_norm;
use crate::math::weights::{WeightReader, eps_of, expect_kind, to_f32};
use half::bf16;

/// bf16 1.0: a real token's gate.
const GATE_ON: f32 = 1.0;

/// One Gated DeltaNet layer: RMSNorm, projections, causal depthwise
/// convolution, the gated delta rule per value head, a gated RMSNorm, the
/// output projection, then the SwiGLU MLP; residual connections around both.
///
/// Norm weights are stored as the model multiplies with them: the packer
/// folds Qwen3.5's `1 + w` into `input_layernorm` and `post_attention_layernorm`
/// (the gated norm uses its weight as is).
#[derive(Debug)]
pub struct GatedDeltaLayer {
    spec: LinearSpec,
    hidden: usize,
    eps: f32,
    input_norm: Vec<f32>,
    in_qkv: Linear,
    in_z: Linear,
    in_b: Linear,
    in_a: Linear,
    /// `[conv_dim, K]`: tap `k` multiplies the `k`-th oldest of the `K` rows.
    conv: Vec<f32>,
    dt_bias: Vec<f32>,
    /// `−exp(A_log)` per value head.
    neg_a: Vec<f32>,
    gated_norm: Vec<f32>,
    out_proj: Linear,
    post_norm: Vec<f32>,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(1 + e^x)`, without overflow for large `x`.
fn softplus(x: f32) -> f32 {
    if x > 20.0 { x } else { x.exp().ln_1p() }
}

/// Scales `x` to unit L2 norm (`x · rsqrt(Σx² + 1e-6)`), then by `scale`.
fn l2_normalize(x: &mut [f32], scale: f32) {
    let inv = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() + 1e-6).sqrt();
    x.iter_mut().for_each(|v| *v *= inv * scale);
}

impl GatedDeltaLayer {
    /// Builds the layer from a layer file whose header declares `spec`.
    pub fn from_file(file: &SimModelFile, spec: &LinearSpec) -> Result<Self, MathError> {
        expect_kind(file, ModelKind::Layer)?;
        spec.validate().map_err(MathError::Geometry)?;
        let g = &file.header.geometry;
        let (h, inter) = (g.hidden_size, g.intermediate_size);
        if h == 0 || inter == 0 {
            return Err(MathError::Geometry(format!("hidden {h}, intermediate {inter}")));
        }
        let (hv, vd, cd, k) = (spec.value_heads, spec.value_dim(), spec.conv_dim(), spec.conv_kernel);
        let mut w = WeightReader::new(file);
        let a_log = w.required("linear_attn.A_log", &[hv])?;
        let layer = Self {
            spec: spec.clone(),
            hidden: h,
            eps: eps_of(file)?,
            input_norm: w.required("input_layernorm.weight", &[h])?,
            in_qkv: Linear::load(&mut w, "linear_attn.in_proj_qkv", cd, h)?,
            in_z: Linear::load(&mut w, "linear_attn.in_proj_z", vd, h)?,
            in_b: Linear::load(&mut w, "linear_attn.in_proj_b", hv, h)?,
            in_a: Linear::load(&mut w, "linear_attn.in_proj_a", hv, h)?,
            conv: w.required("linear_attn.conv1d.weight", &[cd, 1, k])?,
            dt_bias: w.required("linear_attn.dt_bias", &[hv])?,
            neg_a: a_log.iter().map(|v| -v.exp()).collect(),
            gated_norm: w.required("linear_attn.norm.weight", &[spec.value_head_dim])?,
            out_proj: Linear::load(&mut w, "linear_attn.out_proj", h, vd)?,
            post_norm: w.required("post_attention_layernorm.weight", &[h])?,
            gate_proj: Linear::load(&mut w, "mlp.gate_proj", inter, h)?,
            up_proj: Linear::load(&mut w, "mlp.up_proj", inter, h)?,
            down_proj: Linear::load(&mut w, "mlp.down_proj", h, inter)?,
        };
        w.finish()?;
        Ok(layer)
    }

    fn state_bytes(&self) -> (usize, usize) {
        let size = self.spec.state_dtype.size();
        (self.spec.conv_state_len() * size, self.spec.recurrent_state_len() * size)
    }

    /// Checks one shape group: `n` rows of `H`, a gate of at least `n`
    /// elements, state in and out of exactly the state's bytes.
    pub fn check(&self, s: &HybridSizes) -> Result<(), MathError> {
        let (h, n) = (self.hidden, s.indices);
        let (conv, rec) = self.state_bytes();
        let bad = |m: String| Err(MathError::Shape(m));
        if n == 0 {
            return bad("indices is empty".into());
        }
        if s.input != n * h || s.output != n * h {
            return bad(format!("input/output have {}/{} elements, {n} rows of {h} need {}", s.input, s.output, n * h));
        }
        if s.mask < n {
            return bad(format!("the gate mask has {} elements for {n} rows", s.mask));
        }
        if s.k_cache != conv || s.k_out != conv || s.v_cache != rec || s.v_out != rec {
            return bad(format!(
                "state tensors have {}/{} (in) and {}/{} (out) bytes; the convolution history needs {conv} and the \
                 recurrent state {rec}",
                s.k_cache, s.v_cache, s.k_out, s.v_out
            ));
        }
        Ok(())
    }

    /// Per-row gates from the mask: 1.0 (token) or 0 (padding), anything else an error.
    fn gates(&self, mask: &[bf16], n: usize) -> Result<Vec<bool>, MathError> {
        mask[..n]
            .iter()
            .enumerate()
            .map(|(r, v)| match v.to_f32() {
                GATE_ON => Ok(true),
                0.0 => Ok(false),
                other => Err(MathError::Shape(format!(
                    "the mask of a linear-attention layer is a gate of 1.0 (token) or 0 (padding); row {r} holds \
                     {other} (an additive attention mask sent to a linear layer?)"
                ))),
            })
            .collect()
    }

    /// Under [`Indices::Check`]: real rows carry consecutive positions, padding rows 0.
    fn check_indices(indices: &[u32], gates: &[bool]) -> Result<(), MathError> {
        let first = indices.first().copied().unwrap_or(0);
        for (r, (&i, &on)) in indices.iter().zip(gates).enumerate() {
            let want = if on { first.wrapping_add(r as u32) } else { 0 };
            if i != want {
                return Err(MathError::Shape(format!(
                    "this linear-attention layer reads indices: row {r} holds {i}, expected {want}"
                )));
            }
        }
        Ok(())
    }

    /// Runs `n = inputs.indices.len()` rows through the layer.
    pub fn forward(&self, inputs: &HybridInputs<'_>, behaviour: &Behaviour) -> Result<HybridOutputs, MathError> {
        let spec = &self.spec;
        let (h, n) = (self.hidden, inputs.indices.len());
        let (conv_bytes, rec_bytes) = self.state_bytes();
        self.check(&HybridSizes {
            input: inputs.input.len(),
            indices: n,
            mask: inputs.mask.len(),
            k_cache: inputs.k_cache.len(),
            v_cache: inputs.v_cache.len(),
            k_out: conv_bytes,
            v_out: rec_bytes,
            output: inputs.input.len(),
        })?;
        let gates = self.gates(inputs.mask, n)?;
        if behaviour.indices == Indices::Check {
            Self::check_indices(inputs.indices, &gates)?;
        }
        let x = to_f32(inputs.input);
        let mut u = vec![0.0f32; n * h];
        for ((xr, ur), &on) in x.chunks_exact(h).zip(u.chunks_exact_mut(h)).zip(&gates) {
            if on || behaviour.padding == Padding::Freeze {
                rms_norm(xr, &self.input_norm, self.eps, ur);
            }
            // Decay: a padding row's hidden state is zeroed before the projections.
        }
        let (cd, kd, vd, hv) = (spec.conv_dim(), spec.key_dim(), spec.value_dim(), spec.value_heads);
        let mut qkv = vec![0.0f32; n * cd];
        let mut z = vec![0.0f32; n * vd];
        let mut b = vec![0.0f32; n * hv];
        let mut a = vec![0.0f32; n * hv];
        self.in_qkv.forward(&u, &mut qkv);
        self.in_z.forward(&u, &mut z);
        self.in_b.forward(&u, &mut b);
        self.in_a.forward(&u, &mut a);

        let mut history = state_to_f32(inputs.k_cache, spec.state_dtype);
        let mut state = state_to_f32(inputs.v_cache, spec.state_dtype);
        let mut core = vec![0.0f32; n * vd];
        let (kern, dk, dv) = (spec.conv_kernel, spec.key_head_dim, spec.value_head_dim);
        let per_key_head = hv / spec.key_heads;
        let mut mixed = vec![0.0f32; cd];
        for r in 0..n {
            if !gates[r] && behaviour.padding == Padding::Freeze {
                continue; // state and history unchanged, core output 0
            }
            let row = &qkv[r * cd..(r + 1) * cd];
            // Causal depthwise convolution over the K−1 history rows and this row.
            for (c, m) in mixed.iter_mut().enumerate() {
                let taps = &self.conv[c * kern..(c + 1) * kern];
                let past: f32 = (0..kern - 1).map(|t| taps[t] * history[t * cd + c]).sum();
                *m = silu(past + taps[kern - 1] * row[c]);
            }
            history.copy_within(cd.., 0);
            let last = history.len() - cd;
            history[last..].copy_from_slice(row);

            let (q, rest) = mixed.split_at_mut(kd);
            let (k, v) = rest.split_at_mut(kd);
            let q_scale = 1.0 / (dk as f32).sqrt();
            q.chunks_exact_mut(dk).for_each(|head| l2_normalize(head, q_scale));
            k.chunks_exact_mut(dk).for_each(|head| l2_normalize(head, 1.0));
            for head in 0..hv {
                let kh = head / per_key_head;
                let (qh, kh_) = (&q[kh * dk..(kh + 1) * dk], &k[kh * dk..(kh + 1) * dk]);
                let vh = &v[head * dv..(head + 1) * dv];
                let beta = sigmoid(b[r * hv + head]);
                let alpha = (self.neg_a[head] * softplus(a[r * hv + head] + self.dt_bias[head])).exp();
                let s = &mut state[head * dk * dv..(head + 1) * dk * dv];
                s.iter_mut().for_each(|x| *x *= alpha);
                // m = Sᵀk; δ = β(v − m); S += k δᵀ; o = Sᵀq.
                let mut delta = vh.to_vec();
                for (i, &ki) in kh_.iter().enumerate() {
                    for (d, &sij) in delta.iter_mut().zip(&s[i * dv..(i + 1) * dv]) {
                        *d -= sij * ki;
                    }
                }
                delta.iter_mut().for_each(|d| *d *= beta);
                let out = &mut core[r * vd + head * dv..r * vd + (head + 1) * dv];
                for (i, (&ki, &qi)) in kh_.iter().zip(qh).enumerate() {
                    let srow = &mut s[i * dv..(i + 1) * dv];
                    for ((sij, &d), o) in srow.iter_mut().zip(&delta).zip(out.iter_mut()) {
                        *sij += ki * d;
                        *o += *sij * qi;
                    }
                }
            }
        }
        // Gated RMSNorm per value head, then the output projection.
        let mut normed = vec![0.0f32; dv];
        for (o, zr) in core.chunks_exact_mut(dv).zip(z.chunks_exact(dv)) {
            rms_norm(o, &self.gated_norm, self.eps, &mut normed);
            for ((ov, &nv), &zv) in o.iter_mut().zip(&normed).zip(zr) {
                *ov = nv * silu(zv);
            }
        }
        let mut hidden = vec![0.0f32; n * h];
        self.out_proj.forward(&core, &mut hidden);
        hidden.iter_mut().zip(&x).for_each(|(hv, xv)| *hv += xv);
        let output = self.mlp(&hidden);
        Ok(HybridOutputs {
            k_out: state_from_f32(&history, spec.state_dtype),
            v_out: state_from_f32(&state, spec.state_dtype),
            output: Some(output),
        })
    }

    /// `h + MLP(RMSNorm(h))`, rounded to bf16.
    fn mlp(&self, hidden: &[f32]) -> Vec<bf16> {
        let (h, n) = (self.hidden, hidden.len() / self.hidden);
        let mut normed = vec![0.0f32; n * h];
        for (hr, nr) in hidden.chunks_exact(h).zip(normed.chunks_exact_mut(h)) {
            rms_norm(hr, &self.post_norm, self.eps, nr);
        }
        swiglu_mlp(&self.gate_proj, &self.up_proj, &self.down_proj, &normed, hidden)
    }
}

/// `residual + down(SiLU(gate(x)) ⊙ up(x))`, rounded to bf16.
pub(super) fn swiglu_mlp(gate: &Linear, up: &Linear, down: &Linear, x: &[f32], residual: &[f32]) -> Vec<bf16> {
    let n = residual.len() / down.out_features();
    let inter = gate.out_features();
    let mut g = vec![0.0f32; n * inter];
    let mut u = vec![0.0f32; n * inter];
    gate.forward(x, &mut g);
    up.forward(x, &mut u);
    g.iter_mut().zip(&u).for_each(|(g, u)| *g = silu(*g) * u);
    let mut out = vec![0.0f32; residual.len()];
    down.forward(&g, &mut out);
    out.iter().zip(residual).map(|(m, r)| bf16::from_f32(m + r)).collect()
}
