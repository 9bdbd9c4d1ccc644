//! Normalisation and rotary position embeddings.

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
