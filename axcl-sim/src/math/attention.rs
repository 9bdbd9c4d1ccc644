//! Softmax and grouped-query attention.

use super::error::MathError;
use super::gemm::{MatMut, MatRef, dot, matmul};
use crate::format::Geometry;

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

/// Head counts of grouped-query attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    /// The attention shape of a layer file's geometry, refusing sizes no
    /// decoder layer can have (no heads, no hidden or intermediate size, query
    /// heads not a multiple of the key/value heads).
    pub fn of_layer(g: &Geometry) -> Result<Self, MathError> {
        let shape = AttentionShape { heads: g.num_attention_heads, kv_heads: g.num_key_value_heads, head_dim: g.head_dim };
        if g.hidden_size == 0
            || g.intermediate_size == 0
            || shape.heads == 0
            || shape.kv_heads == 0
            || !shape.heads.is_multiple_of(shape.kv_heads)
        {
            return Err(MathError::Geometry(format!(
                "hidden {}, intermediate {}, {} heads over {} kv heads",
                g.hidden_size, g.intermediate_size, shape.heads, shape.kv_heads
            )));
        }
        Ok(shape)
    }
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
