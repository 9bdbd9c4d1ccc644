//! Linear projections.

use super::error::MathError;
use super::gemm::{MatMut, MatRef, dot, matmul};
use super::weights::WeightReader;

/// A linear projection `y = x·Wᵀ + b` with `W` stored `[out, in]` (Hugging Face layout).
pub(super) struct Linear {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    out_features: usize,
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
    pub(super) fn load(
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
    pub(super) fn forward(&self, x: &[f32], y: &mut [f32]) {
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

    /// Output features (rows of `W`).
    pub(super) fn out_features(&self) -> usize {
        self.out_features
    }

    /// Input features (columns of `W`).
    pub(super) fn in_features(&self) -> usize {
        self.in_features
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
