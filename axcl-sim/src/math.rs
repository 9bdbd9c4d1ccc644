//! The transformer math a simulated model executes.
//!
//! A layer model is one Qwen3 / Qwen2 / Llama decoder layer and a post model is
//! the final RMSNorm plus the lm_head (contract §2.9, §3.1). Which variant a file
//! is follows from the weights it carries: q/k/v/o biases (Qwen2), per-head
//! `q_norm`/`k_norm` (Qwen3), or neither (Llama).
//!
//! Everything is computed in f32; tensors cross the IO boundary as bf16, and the
//! K/V rows a layer produces are rounded to bf16 *before* its own attention uses
//! them, exactly as they will look when a runner feeds them back from its cache.
//! Attention evaluates every column, masked or not, so NaN garbage in a cache row
//! the runner forgot to zero poisons the result the way it does on the NPU.

use crate::format::{DType, ModelKind, SimModelFile};
use crate::runtime::gemm::{MatMut, MatRef, matmul};
use half::bf16;
use std::collections::HashSet;

/// Why a model file cannot be turned into math, or an execution does not fit it.
#[derive(Debug, thiserror::Error)]
pub enum MathError {
    #[error("expected a {expected:?} model, the file holds a {found:?} model")]
    WrongKind { expected: ModelKind, found: ModelKind },
    #[error("bad geometry: {0}")]
    Geometry(String),
    #[error("weight {0} is missing")]
    MissingWeight(String),
    #[error("weight {name} has shape {got:?}, the geometry needs {want:?}")]
    WeightShape { name: String, got: Vec<usize>, want: Vec<usize> },
    #[error("weight {name} is stored as {dtype:?}; weights must be bf16 or f32")]
    WeightDType { name: String, dtype: DType },
    #[error("weight {0} is not used by the math of this model kind (misspelt or foreign weight?)")]
    UnknownWeight(String),
    #[error("tensor sizes do not fit the model: {0}")]
    Shape(String),
}

/// Root-mean-square normalisation of `x` scaled by `weight` into `out` (all the same length).
///
/// # Panics
/// When the three slices differ in length.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    assert!(x.len() == weight.len() && x.len() == out.len(), "rms_norm: length mismatch");
    let inv = rms_scale(x, eps);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * inv * w;
    }
}

/// [`rms_norm`] in place.
///
/// # Panics
/// When `x` and `weight` differ in length.
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    assert_eq!(x.len(), weight.len(), "rms_norm_in_place: length mismatch");
    let inv = rms_scale(x, eps);
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = *v * inv * w;
    }
}

fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let mean_square = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    1.0 / (mean_square + eps).sqrt()
}

/// Rotary position embedding of one head in Hugging Face's "rotate_half" layout:
/// element `i` pairs with `i + head_dim/2`. Angles are computed in f64.
///
/// # Panics
/// When `inv_freq` does not have `x.len() / 2` entries.
pub fn apply_rope(x: &mut [f32], position: u32, inv_freq: &[f64]) {
    let half = x.len() / 2;
    assert_eq!(inv_freq.len(), half, "apply_rope: inv_freq must have head_dim/2 entries");
    let (lo, hi) = x.split_at_mut(half);
    for ((a, b), &f) in lo.iter_mut().zip(hi).zip(inv_freq) {
        let (sin, cos) = (f64::from(position) * f).sin_cos();
        let (sin, cos) = (sin as f32, cos as f32);
        let (x0, x1) = (*a, *b);
        *a = x0 * cos - x1 * sin;
        *b = x1 * cos + x0 * sin;
    }
}

/// SiLU activation `z / (1 + e^-z)`.
pub fn silu(z: f32) -> f32 {
    z / (1.0 + (-z).exp())
}

/// Numerically stable softmax of one row, in place. A NaN anywhere in the row
/// turns the whole row into NaN (the maximum ignores it, the exponentials do not).
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Dot product with eight independent accumulators (so it vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Head counts of grouped-query attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// Grouped-query attention of `n` query rows over `cols` key/value rows.
///
/// * `q`: `[n, heads·head_dim]`; `keys`, `values`: `[cols, kv_heads·head_dim]`,
///   each row head-major; `mask`: `[n, cols]`, added to the scaled scores.
/// * `out`: `[n, heads·head_dim]`, the softmax-weighted values per query head.
///
/// Query head `h` reads key/value head `h / (heads / kv_heads)`. Every column is
/// evaluated, including masked ones.
///
/// # Panics
/// When the slice lengths do not fit the shape, or `heads` is not a multiple of `kv_heads`.
pub fn attention(shape: AttentionShape, q: &[f32], keys: &[f32], values: &[f32], mask: &[f32], out: &mut [f32]) {
    let AttentionShape { heads, kv_heads, head_dim: hd } = shape;
    assert!(kv_heads > 0 && hd > 0 && heads.is_multiple_of(kv_heads), "attention: bad shape {shape:?}");
    let (qd, kvd) = (heads * hd, kv_heads * hd);
    assert!(q.len().is_multiple_of(qd) && keys.len().is_multiple_of(kvd), "attention: q/keys do not fit the shape");
    let (n, cols) = (q.len() / qd, keys.len() / kvd);
    assert!(values.len() == keys.len() && mask.len() == n * cols && out.len() == q.len(), "attention: length mismatch");
    if n == 0 || cols == 0 {
        out.fill(0.0);
        return;
    }
    let group = heads / kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores = vec![0.0f32; n * cols];
    if n == 1 {
        // One query row (decode): direct dot products beat packing K and V per head.
        for (h, (q_h, out_h)) in q.chunks_exact(hd).zip(out.chunks_exact_mut(hd)).enumerate() {
            let offset = (h / group) * hd;
            for ((s, &m), k) in scores.iter_mut().zip(mask).zip(keys.chunks_exact(kvd)) {
                *s = dot(q_h, &k[offset..offset + hd]) * scale + m;
            }
            softmax_in_place(&mut scores);
            out_h.fill(0.0);
            for (&p, v) in scores.iter().zip(values.chunks_exact(kvd)) {
                out_h.iter_mut().zip(&v[offset..offset + hd]).for_each(|(o, v)| *o += p * v);
            }
        }
        return;
    }
    for h in 0..heads {
        let kvh = h / group;
        let q_h = MatRef { data: &q[h * hd..], rows: n, cols: hd, row_stride: qd, col_stride: 1 };
        let k_t = MatRef { data: &keys[kvh * hd..], rows: hd, cols, row_stride: 1, col_stride: kvd };
        matmul(scale, q_h, k_t, MatMut { data: &mut scores, rows: n, cols, row_stride: cols });
        for (s, &m) in scores.iter_mut().zip(mask) {
            *s += m;
        }
        scores.chunks_exact_mut(cols).for_each(softmax_in_place);
        let p = MatRef { data: &scores, rows: n, cols, row_stride: cols, col_stride: 1 };
        let v = MatRef { data: &values[kvh * hd..], rows: cols, cols: hd, row_stride: kvd, col_stride: 1 };
        matmul(1.0, p, v, MatMut { data: &mut out[h * hd..], rows: n, cols: hd, row_stride: qd });
    }
}

/// A linear projection `y = x·Wᵀ + b` with `W` stored `[out, in]` (Hugging Face layout).
pub(crate) struct Linear {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    pub(crate) out_features: usize,
    in_features: usize,
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linear")
            .field("out_features", &self.out_features)
            .field("in_features", &self.in_features)
            .field("bias", &self.bias.is_some())
            .finish()
    }
}

impl Linear {
    /// Loads `<prefix>.weight` `[out, in]` and the optional `<prefix>.bias` `[out]`.
    pub(crate) fn load(
        weights: &mut WeightReader<'_>,
        prefix: &str,
        out_features: usize,
        in_features: usize,
    ) -> Result<Self, MathError> {
        let weight = weights.required(&format!("{prefix}.weight"), &[out_features, in_features])?;
        let bias = weights.optional(&format!("{prefix}.bias"), &[out_features])?;
        Ok(Self { weight, bias, out_features, in_features })
    }

    /// `x`: `[rows, in]` → `y`: `[rows, out]`.
    pub(crate) fn forward(&self, x: &[f32], y: &mut [f32]) {
        let rows = x.len() / self.in_features;
        if rows == 1 {
            // A matrix-vector product (decode): packing W for sgemm would cost more than the product.
            for (yo, w) in y.iter_mut().zip(self.weight.chunks_exact(self.in_features)) {
                *yo = dot(w, x);
            }
        } else {
            self.matmul(x, rows, y);
        }
        if let Some(bias) = &self.bias {
            for row in y.chunks_exact_mut(self.out_features) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
    }

    fn matmul(&self, x: &[f32], rows: usize, y: &mut [f32]) {
        let x = MatRef { data: x, rows, cols: self.in_features, row_stride: self.in_features, col_stride: 1 };
        // Wᵀ is W read with swapped strides.
        let w_t = MatRef {
            data: &self.weight,
            rows: self.in_features,
            cols: self.out_features,
            row_stride: 1,
            col_stride: self.in_features,
        };
        matmul(1.0, x, w_t, MatMut { data: y, rows, cols: self.out_features, row_stride: self.out_features });
    }
}

/// Reads weights by name, converting them to f32, and remembers which names the
/// math asked for so that leftover (unknown) weights can be reported.
pub(crate) struct WeightReader<'a> {
    file: &'a SimModelFile,
    asked: HashSet<String>,
}

impl<'a> WeightReader<'a> {
    pub(crate) fn new(file: &'a SimModelFile) -> Self {
        Self { file, asked: HashSet::new() }
    }

    pub(crate) fn required(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, MathError> {
        self.optional(name, shape)?.ok_or_else(|| MathError::MissingWeight(name.to_owned()))
    }

    pub(crate) fn optional(&mut self, name: &str, shape: &[usize]) -> Result<Option<Vec<f32>>, MathError> {
        self.asked.insert(name.to_owned());
        let Some((entry, bytes)) = self.file.tensor_bytes(name) else { return Ok(None) };
        if entry.shape != shape {
            return Err(MathError::WeightShape {
                name: name.to_owned(),
                got: entry.shape.clone(),
                want: shape.to_vec(),
            });
        }
        let values = match entry.dtype {
            DType::Bf16 => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            DType::U32 => return Err(MathError::WeightDType { name: name.to_owned(), dtype: entry.dtype }),
        };
        Ok(Some(values))
    }

    /// Fails on a stored weight the math never asked for.
    pub(crate) fn finish(self) -> Result<(), MathError> {
        match self.file.header.tensors.iter().find(|t| !self.asked.contains(&t.name)) {
            Some(t) => Err(MathError::UnknownWeight(t.name.clone())),
            None => Ok(()),
        }
    }
}

pub(crate) fn expect_kind(file: &SimModelFile, expected: ModelKind) -> Result<(), MathError> {
    match file.header.kind {
        found if found == expected => Ok(()),
        found => Err(MathError::WrongKind { expected, found }),
    }
}

pub(crate) fn eps_of(file: &SimModelFile) -> Result<f32, MathError> {
    let eps = file.header.geometry.rms_norm_eps;
    if eps.is_finite() && eps >= 0.0 { Ok(eps as f32) } else { Err(MathError::Geometry(format!("rms_norm_eps {eps}"))) }
}

pub(crate) fn to_f32(values: &[bf16]) -> Vec<f32> {
    values.iter().map(|v| v.to_f32()).collect()
}

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
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl DecoderLayer {
    /// Builds the layer from a parsed layer model file (weights converted to f32).
    pub fn from_file(file: &SimModelFile) -> Result<Self, MathError> {
        expect_kind(file, ModelKind::Layer)?;
        let g = &file.header.geometry;
        let (h, hd, inter) = (g.hidden_size, g.head_dim, g.intermediate_size);
        let shape = AttentionShape { heads: g.num_attention_heads, kv_heads: g.num_key_value_heads, head_dim: hd };
        if h == 0
            || inter == 0
            || shape.heads == 0
            || shape.kv_heads == 0
            || !shape.heads.is_multiple_of(shape.kv_heads)
        {
            return Err(MathError::Geometry(format!(
                "hidden {h}, intermediate {inter}, {} heads over {} kv heads",
                shape.heads, shape.kv_heads
            )));
        }
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
            gate_proj: Linear::load(&mut w, "mlp.gate_proj", inter, h)?,
            up_proj: Linear::load(&mut w, "mlp.up_proj", inter, h)?,
            down_proj: Linear::load(&mut w, "mlp.down_proj", h, inter)?,
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
        let inter = self.gate_proj.out_features;
        let mut gate = vec![0.0f32; n * inter];
        let mut up = vec![0.0f32; n * inter];
        self.gate_proj.forward(&normed, &mut gate);
        self.up_proj.forward(&normed, &mut up);
        gate.iter_mut().zip(&up).for_each(|(g, u)| *g = silu(*g) * u);
        let mut mlp = vec![0.0f32; n * h];
        self.down_proj.forward(&gate, &mut mlp);

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

/// The post model: final RMSNorm and the lm_head, hidden rows to bf16 logits.
#[derive(Debug)]
pub struct PostHead {
    hidden: usize,
    vocab: usize,
    eps: f32,
    norm: Vec<f32>,
    lm_head: Linear,
}

impl PostHead {
    /// Builds the head from a parsed post model file (weights converted to f32).
    pub fn from_file(file: &SimModelFile) -> Result<Self, MathError> {
        expect_kind(file, ModelKind::Post)?;
        let g = &file.header.geometry;
        let (hidden, vocab) = (g.hidden_size, g.vocab_size);
        if hidden == 0 || vocab == 0 {
            return Err(MathError::Geometry(format!("hidden {hidden}, vocab {vocab}")));
        }
        let mut w = WeightReader::new(file);
        let head = Self {
            hidden,
            vocab,
            eps: eps_of(file)?,
            norm: w.required("norm.weight", &[hidden])?,
            lm_head: Linear::load(&mut w, "lm_head", vocab, hidden)?,
        };
        w.finish()?;
        Ok(head)
    }

    /// Checks the element counts of an input `[rows, H]` and output `[rows, V]`; returns `rows`.
    pub fn rows(&self, input: usize, output: usize) -> Result<usize, MathError> {
        let (h, v) = (self.hidden, self.vocab);
        let rows = input / h;
        if rows == 0 || !input.is_multiple_of(h) || output != rows * v {
            return Err(MathError::Shape(format!(
                "post input has {input} elements and output {output}, expected rows of {h} and {v}"
            )));
        }
        Ok(rows)
    }

    /// `input` `[rows, H]` → `output` `[rows, V]` logits.
    pub fn forward(&self, input: &[bf16], output: &mut [bf16]) -> Result<(), MathError> {
        let (h, v) = (self.hidden, self.vocab);
        let rows = self.rows(input.len(), output.len())?;
        let x = to_f32(input);
        let mut normed = vec![0.0f32; x.len()];
        for (xr, nr) in x.chunks_exact(h).zip(normed.chunks_exact_mut(h)) {
            rms_norm(xr, &self.norm, self.eps, nr);
        }
        let mut logits = vec![0.0f32; rows * v];
        self.lm_head.forward(&normed, &mut logits);
        for (o, l) in output.iter_mut().zip(logits) {
            *o = bf16::from_f32(l);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Arch, Geometry, SimModelHeader, SimModelWriter, layer_groups, post_groups};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const MASKED: f32 = -65536.0;

    fn bf(values: &[f32]) -> Vec<bf16> {
        values.iter().map(|&v| bf16::from_f32(v)).collect()
    }

    fn close(got: &[bf16], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let g = g.to_f32();
            assert!((g - w).abs() <= 0.02 * w.abs() + 2e-3, "element {i}: got {g}, want {w}");
        }
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_rotates_half_pairs() {
        let x = [0.5f32, -1.0, 2.0, 3.0];
        let mut y = x;
        apply_rope(&mut y, 0, &[1.0, 0.5]);
        assert_eq!(y, x);
        apply_rope(&mut y, 2, &[1.0, 0.5]);
        let (c0, s0, c1, s1) = (2f32.cos(), 2f32.sin(), 1f32.cos(), 1f32.sin());
        let want = [0.5 * c0 - 2.0 * s0, -c1 - 3.0 * s1, 2.0 * c0 + 0.5 * s0, 3.0 * c1 - s1];
        y.iter().zip(want).for_each(|(a, b)| assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}"));
    }

    #[test]
    fn rms_norm_scales_by_the_root_mean_square() {
        let mut out = [0.0; 2];
        rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0, &mut out);
        let inv = 1.0 / 12.5f32.sqrt();
        assert_eq!(out, [3.0 * inv, 8.0 * inv]);
        assert!((silu(1.0) - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-7);
    }

    #[test]
    fn single_visible_column_returns_its_value_per_gqa_head() {
        // 4 query heads over 2 kv heads, head_dim 2: heads 0,1 read kv head 0; heads 2,3 kv head 1.
        let shape = AttentionShape { heads: 4, kv_heads: 2, head_dim: 2 };
        let q = [0.3, -0.2, 1.0, 0.5, -0.7, 0.1, 0.2, 0.9];
        let values = [1.0, 2.0, 10.0, 20.0];
        let mut out = [0.0; 8];
        attention(shape, &q, &[0.5, 0.5, -1.0, 2.0], &values, &[0.0], &mut out);
        assert_eq!(out, [1.0, 2.0, 1.0, 2.0, 10.0, 20.0, 10.0, 20.0]);
    }

    #[test]
    fn mask_selects_columns_and_masked_nan_poisons() {
        // Each case runs with one query row (the decode path) and two equal rows (the sgemm path).
        let shape = AttentionShape { heads: 1, kv_heads: 1, head_dim: 2 };
        let run = |keys: &[f32], values: &[f32], mask: &[f32], rows: usize| {
            let q: Vec<f32> = [1.0, 0.0].repeat(rows);
            let mut out = vec![0.0; 2 * rows];
            attention(shape, &q, keys, values, &mask.repeat(rows), &mut out);
            out
        };
        let (keys, values, nan) = ([0.0; 4], [4.0, 8.0, 2.0, 6.0], f32::NAN);
        for rows in [1, 2] {
            assert_eq!(run(&keys, &values, &[0.0, 0.0], rows), [3.0, 7.0].repeat(rows), "equal scores average");
            assert_eq!(run(&keys, &values, &[MASKED, 0.0], rows), [2.0, 6.0].repeat(rows), "masked weight is 0");
            let out = run(&[nan, nan, 0.0, 0.0], &values, &[MASKED, 0.0], rows);
            assert!(out.iter().all(|v| v.is_nan()), "NaN keys poison even when masked: {out:?}");
            let out = run(&keys, &[nan, nan, 2.0, 6.0], &[MASKED, 0.0], rows);
            assert!(out.iter().all(|v| v.is_nan()), "0 · NaN values poison: {out:?}");
        }
    }

    /// Knobs of a tiny test layer: H 8, 2 heads over 1 kv head of 4, MLP 12.
    #[derive(Clone, Copy)]
    struct Variant {
        biases: bool,
        qk_norm: bool,
    }

    const H: usize = 8;
    const HEADS: usize = 2;
    const HD: usize = 4;
    const D: usize = HD;
    const INTER: usize = 12;

    fn geometry(vocab: usize) -> Geometry {
        Geometry {
            hidden_size: H,
            num_attention_heads: HEADS,
            num_key_value_heads: 1,
            head_dim: HD,
            intermediate_size: INTER,
            rms_norm_eps: 1e-6,
            vocab_size: vocab,
        }
    }

    fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    }

    /// Adds a weight, bf16 except the ones named in `f32_names` (both dtypes must load).
    fn add(w: &mut SimModelWriter, name: &str, shape: &[usize], values: &[f32]) {
        if name.ends_with("q_proj.weight") {
            w.add_tensor(name, DType::F32, shape, bytemuck::cast_slice(values));
        } else {
            w.add_tensor(name, DType::Bf16, shape, bytemuck::cast_slice(&bf(values)));
        }
    }

    fn layer_file(variant: Variant, seed: u64) -> SimModelFile {
        let header = SimModelHeader {
            kind: ModelKind::Layer,
            arch: Arch::Qwen3,
            timing_only: false,
            layer_index: Some(0),
            geometry: geometry(0),
            rope_inv_freq: vec![1.0, 0.01],
            groups: layer_groups(H, D, 4, 8, &[4]),
            tensors: vec![],
            hybrid: None,
            cost: None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut w = SimModelWriter::new(header);
        let norm = |rng: &mut ChaCha8Rng, n| random(rng, n, 0.3).iter().map(|v| 1.0 + v).collect::<Vec<f32>>();
        add(&mut w, "input_layernorm.weight", &[H], &norm(&mut rng, H));
        add(&mut w, "post_attention_layernorm.weight", &[H], &norm(&mut rng, H));
        for (name, out, inp) in [
            ("self_attn.q_proj", HEADS * HD, H),
            ("self_attn.k_proj", D, H),
            ("self_attn.v_proj", D, H),
            ("self_attn.o_proj", H, HEADS * HD),
            ("mlp.gate_proj", INTER, H),
            ("mlp.up_proj", INTER, H),
            ("mlp.down_proj", H, INTER),
        ] {
            add(&mut w, &format!("{name}.weight"), &[out, inp], &random(&mut rng, out * inp, 0.5));
            if variant.biases && name.starts_with("self_attn") {
                add(&mut w, &format!("{name}.bias"), &[out], &random(&mut rng, out, 0.2));
            }
        }
        if variant.qk_norm {
            add(&mut w, "self_attn.q_norm.weight", &[HD], &norm(&mut rng, HD));
            add(&mut w, "self_attn.k_norm.weight", &[HD], &norm(&mut rng, HD));
        }
        SimModelFile::parse(&w.to_bytes()).unwrap()
    }

    /// A scalar, loop-by-loop rendition of the layer for comparison.
    struct Reference<'a>(&'a SimModelFile);

    impl Reference<'_> {
        fn weight(&self, name: &str) -> Option<Vec<f32>> {
            let (e, bytes) = self.0.tensor_bytes(name)?;
            Some(match e.dtype {
                DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
                _ => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes(b.try_into().unwrap()).to_f32()).collect(),
            })
        }

        fn linear(&self, name: &str, x: &[f32]) -> Vec<f32> {
            let w = self.weight(&format!("{name}.weight")).unwrap();
            let bias = self.weight(&format!("{name}.bias"));
            let out = w.len() / x.len();
            (0..out)
                .map(|o| {
                    let dot: f32 = (0..x.len()).map(|i| w[o * x.len() + i] * x[i]).sum();
                    dot + bias.as_ref().map_or(0.0, |b| b[o])
                })
                .collect()
        }

        fn norm(&self, name: &str, x: &[f32]) -> Vec<f32> {
            let w = self.weight(name).unwrap();
            let ms: f32 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
            x.iter().zip(&w).map(|(v, w)| v / (ms + 1e-6).sqrt() * w).collect()
        }

        fn head(&self, x: &mut [f32], norm: &str, pos: u32) {
            for h in x.chunks_exact_mut(HD) {
                if self.weight(norm).is_some() {
                    h.copy_from_slice(&self.norm(norm, h));
                }
                let (a, b) = h.split_at_mut(HD / 2);
                for i in 0..HD / 2 {
                    let angle = pos as f64 * [1.0, 0.01][i];
                    let (s, c) = (angle.sin() as f32, angle.cos() as f32);
                    (a[i], b[i]) = (a[i] * c - b[i] * s, b[i] * c + a[i] * s);
                }
            }
        }

        /// Rows `x` at `pos` over bf16 history `kc`/`vc`; returns (k rows, v rows, outputs).
        fn run(
            &self,
            x: &[Vec<f32>],
            pos: &[u32],
            mask: &[Vec<f32>],
            kc: &[Vec<f32>],
            vc: &[Vec<f32>],
        ) -> [Vec<f32>; 3] {
            let round = |v: Vec<f32>| v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect::<Vec<f32>>();
            let (mut keys, mut values, mut queries) = (kc.to_vec(), vc.to_vec(), vec![]);
            for (r, xr) in x.iter().enumerate() {
                let a = self.norm("input_layernorm.weight", xr);
                let (mut q, mut k) = (self.linear("self_attn.q_proj", &a), self.linear("self_attn.k_proj", &a));
                self.head(&mut q, "self_attn.q_norm.weight", pos[r]);
                self.head(&mut k, "self_attn.k_norm.weight", pos[r]);
                keys.push(round(k));
                values.push(round(self.linear("self_attn.v_proj", &a)));
                queries.push(q);
            }
            let mut outs = vec![];
            for (r, q) in queries.iter().enumerate() {
                let mut attn = vec![];
                for h in 0..HEADS {
                    let qh = &q[h * HD..(h + 1) * HD];
                    let mut p: Vec<f32> = (0..keys.len())
                        .map(|c| {
                            qh.iter().zip(&keys[c]).map(|(a, b)| a * b).sum::<f32>() / (HD as f32).sqrt() + mask[r][c]
                        })
                        .collect();
                    let max = p.iter().copied().fold(f32::MIN, f32::max);
                    p.iter_mut().for_each(|v| *v = (*v - max).exp());
                    let sum: f32 = p.iter().sum();
                    attn.extend((0..HD).map(|i| (0..keys.len()).map(|c| p[c] / sum * values[c][i]).sum::<f32>()));
                }
                let hidden: Vec<f32> =
                    self.linear("self_attn.o_proj", &attn).iter().zip(&x[r]).map(|(o, x)| o + x).collect();
                let m = self.norm("post_attention_layernorm.weight", &hidden);
                let (g, u) = (self.linear("mlp.gate_proj", &m), self.linear("mlp.up_proj", &m));
                let act: Vec<f32> = g.iter().zip(&u).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
                outs.extend(self.linear("mlp.down_proj", &act).iter().zip(&hidden).map(|(d, h)| d + h));
            }
            let n = x.len();
            [keys[keys.len() - n..].concat(), values[values.len() - n..].concat(), outs]
        }
    }

    fn run_layer(layer: &DecoderLayer, x: &[f32], pos: &[u32], mask: &[f32], kc: &[f32], vc: &[f32]) -> [Vec<bf16>; 3] {
        let n = pos.len();
        let (mut k, mut v, mut o) = (vec![bf16::ZERO; n * D], vec![bf16::ZERO; n * D], vec![bf16::ZERO; n * H]);
        let (x, mask, kc, vc) = (bf(x), bf(mask), bf(kc), bf(vc));
        let inputs = LayerInputs { input: &x, indices: pos, mask: &mask, k_cache: &kc, v_cache: &vc };
        layer.forward(&inputs, &mut LayerOutputs { k_out: &mut k, v_out: &mut v, output: &mut o }).unwrap();
        [k, v, o]
    }

    fn rows(flat: &[f32], width: usize) -> Vec<Vec<f32>> {
        flat.chunks(width).map(<[f32]>::to_vec).collect()
    }

    #[test]
    fn layer_matches_a_scalar_reference_for_every_variant() {
        for (seed, variant) in [
            (1, Variant { biases: true, qk_norm: false }),
            (2, Variant { biases: false, qk_norm: true }),
            (3, Variant { biases: false, qk_norm: false }),
        ] {
            let file = layer_file(variant, seed);
            let layer = DecoderLayer::from_file(&file).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
            // Two query rows at positions 5 and 6 over 3 history rows, history row 1 masked.
            let bfr = |v: Vec<f32>| v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect::<Vec<f32>>();
            let (x, kc, vc) = (
                bfr(random(&mut rng, 2 * H, 1.0)),
                bfr(random(&mut rng, 3 * D, 1.0)),
                bfr(random(&mut rng, 3 * D, 1.0)),
            );
            let mask = [0.0, MASKED, 0.0, 0.0, MASKED, 0.0, MASKED, 0.0, 0.0, 0.0];
            let [k, v, o] = run_layer(&layer, &x, &[5, 6], &mask, &kc, &vc);
            let [rk, rv, ro] =
                Reference(&file).run(&rows(&x, H), &[5, 6], &rows(&mask, 5), &rows(&kc, D), &rows(&vc, D));
            close(&k, &rk);
            close(&v, &rv);
            close(&o, &ro);
        }
    }

    #[test]
    fn decode_over_prefilled_rows_matches_the_prefill() {
        let layer = DecoderLayer::from_file(&layer_file(Variant { biases: true, qk_norm: true }, 7)).unwrap();
        let x: Vec<f32> = random(&mut ChaCha8Rng::seed_from_u64(8), 3 * H, 1.0);
        let causal = [0.0, MASKED, MASKED, 0.0, 0.0, MASKED, 0.0, 0.0, 0.0];
        let [k, v, full] = run_layer(&layer, &x, &[0, 1, 2], &causal, &[], &[]);
        // Decode the third token with the first two K/V rows as history (capacity 4: one empty slot).
        let to_f32 = |v: &[bf16]| v.iter().map(|v| v.to_f32()).collect::<Vec<f32>>();
        let mut kc = to_f32(&k[..2 * D]);
        let mut vc = to_f32(&v[..2 * D]);
        kc.extend([0.0; D]);
        vc.extend([0.0; D]);
        let [k2, _, step] = run_layer(&layer, &x[2 * H..], &[2], &[0.0, 0.0, MASKED, 0.0], &kc, &vc);
        assert_eq!(k2, k[2 * D..], "K of the same token at the same position is identical");
        close(&step, &to_f32(&full[2 * H..]));
    }

    #[test]
    fn post_head_is_lm_head_of_the_normed_input() {
        let (v, mut rng) = (5, ChaCha8Rng::seed_from_u64(9));
        let header = SimModelHeader {
            kind: ModelKind::Post,
            arch: Arch::Llama,
            timing_only: false,
            layer_index: None,
            geometry: geometry(v),
            rope_inv_freq: vec![],
            groups: post_groups(H, v),
            tensors: vec![],
            hybrid: None,
            cost: None,
        };
        let mut w = SimModelWriter::new(header);
        add(&mut w, "norm.weight", &[H], &random(&mut rng, H, 1.0));
        add(&mut w, "lm_head.weight", &[v, H], &random(&mut rng, v * H, 1.0));
        let file = SimModelFile::parse(&w.to_bytes()).unwrap();
        let head = PostHead::from_file(&file).unwrap();
        let x = bf(&random(&mut rng, H, 2.0));
        let mut logits = vec![bf16::ZERO; v];
        head.forward(&x, &mut logits).unwrap();
        let r = Reference(&file);
        let xf: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
        close(&logits, &r.linear("lm_head", &r.norm("norm.weight", &xf)));
        assert!(matches!(head.forward(&x, &mut logits[..4]), Err(MathError::Shape(_))));
    }

    #[test]
    fn refuses_files_whose_weights_do_not_fit() {
        let file = layer_file(Variant { biases: false, qk_norm: false }, 4);
        let rebuilt = |edit: &dyn Fn(&mut SimModelWriter, &SimModelFile)| {
            let mut header = file.header.clone();
            header.tensors.clear();
            let mut w = SimModelWriter::new(header);
            edit(&mut w, &file);
            SimModelFile::parse(&w.to_bytes()).unwrap()
        };
        let copy_all_but = |skip: &'static str| {
            move |w: &mut SimModelWriter, f: &SimModelFile| {
                for t in f.header.tensors.iter().filter(|t| t.name != skip) {
                    w.add_tensor(&t.name, t.dtype, &t.shape, f.tensor_bytes(&t.name).unwrap().1);
                }
            }
        };
        let missing = rebuilt(&copy_all_but("mlp.up_proj.weight"));
        assert!(
            matches!(DecoderLayer::from_file(&missing), Err(MathError::MissingWeight(n)) if n == "mlp.up_proj.weight")
        );
        let extra = rebuilt(&|w, f| {
            copy_all_but("")(w, f);
            w.add_tensor("mlp.gate_proj.weights", DType::Bf16, &[1], &[0, 0]);
        });
        assert!(matches!(DecoderLayer::from_file(&extra), Err(MathError::UnknownWeight(_))));
        let misshapen = rebuilt(&|w, f| {
            copy_all_but("input_layernorm.weight")(w, f);
            w.add_tensor("input_layernorm.weight", DType::Bf16, &[H - 1], &[0; 2 * (H - 1)]);
        });
        assert!(matches!(DecoderLayer::from_file(&misshapen), Err(MathError::WeightShape { .. })));
        assert!(matches!(PostHead::from_file(&file), Err(MathError::WrongKind { .. })));
        let layer = DecoderLayer::from_file(&file).unwrap();
        let sizes =
            LayerSizes { input: H, indices: 1, mask: 4, k_cache: 2 * D, v_cache: 3 * D, k_out: D, v_out: D, output: H };
        assert!(matches!(layer.history_rows(&sizes), Err(MathError::Shape(_))), "history of 3 rows needs 3·D of K");
        assert_eq!(layer.history_rows(&LayerSizes { k_cache: 3 * D, ..sizes }).unwrap(), 3);
    }
}
