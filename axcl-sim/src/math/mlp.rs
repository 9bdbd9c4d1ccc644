//! The SwiGLU feed-forward block of a decoder layer.

use super::error::MathError;
use super::linear::Linear;
use super::weights::WeightReader;

/// SiLU activation `z / (1 + e^-z)`.
pub fn silu(z: f32) -> f32 {
    z / (1.0 + (-z).exp())
}

/// `down(silu(gate(x)) · up(x))`, the MLP of Qwen and Llama layers.
#[derive(Debug)]
pub(super) struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    /// Loads `mlp.{gate,up,down}_proj` for hidden size `hidden` and `intermediate` features.
    pub(super) fn load(weights: &mut WeightReader<'_>, hidden: usize, intermediate: usize) -> Result<Self, MathError> {
        Ok(Self {
            gate_proj: Linear::load(weights, "mlp.gate_proj", intermediate, hidden)?,
            up_proj: Linear::load(weights, "mlp.up_proj", intermediate, hidden)?,
            down_proj: Linear::load(weights, "mlp.down_proj", hidden, intermediate)?,
        })
    }

    /// `x`: `[rows, H]` → `y`: `[rows, H]`.
    pub(super) fn forward(&self, x: &[f32], y: &mut [f32]) {
        let rows = x.len() / self.gate_proj.in_features();
        let inter = self.gate_proj.out_features();
        let mut gate = vec![0.0f32; rows * inter];
        let mut up = vec![0.0f32; rows * inter];
        self.gate_proj.forward(x, &mut gate);
        self.up_proj.forward(x, &mut up);
        gate.iter_mut().zip(&up).for_each(|(g, u)| *g = silu(*g) * u);
        self.down_proj.forward(&gate, y);
    }
}
