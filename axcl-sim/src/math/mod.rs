//! The transformer math a simulated model executes.
//!
//! A layer model is one Qwen3 / Qwen2 / Llama decoder layer and a post model is
//! the final RMSNorm plus the lm_head (what the vendor's compiled models compute, INFERRED from their IO). Which variant a file
//! is follows from the weights it carries: q/k/v/o biases (Qwen2), per-head
//! `q_norm`/`k_norm` (Qwen3), or neither (Llama).
//!
//! Everything is computed in f32; tensors cross the IO boundary as bf16, and the
//! K/V rows a layer produces are rounded to bf16 *before* its own attention uses
//! them, exactly as they will look when a runner feeds them back from its cache.
//! Attention evaluates every column, masked or not, so NaN garbage in a cache row
//! the runner forgot to zero poisons the result the way it does on the NPU.
//!
//! Split by concern; each file uses only the ones listed before it:
//! * `gemm`: the bounds-checked entry to `matrixmultiply` (the math's only
//!   `unsafe`) and the dot-product kernel;
//! * `error`: [`MathError`];
//! * `norm`: RMSNorm and rotary position embeddings;
//! * `attention`: softmax and grouped-query attention;
//! * `weights`: a model file's weights by name, as f32;
//! * `linear`: projections `y = x·Wᵀ + b`;
//! * `mlp`: the SwiGLU feed-forward block;
//! * `layer`: [`DecoderLayer`], assembled from the above;
//! * `post`: [`PostHead`], the final norm and the lm_head.

mod attention;
mod error;
// The one `unsafe` call of the math, behind checks that make it sound.
#[allow(unsafe_code)]
mod gemm;
mod layer;
mod linear;
mod mlp;
mod norm;
mod post;
#[cfg(test)]
mod tests;
mod weights;

pub use attention::{AttentionShape, attention, softmax_in_place};
pub use error::MathError;
pub use layer::{DecoderLayer, LayerInputs, LayerOutputs, LayerSizes};
pub use mlp::silu;
pub use norm::{apply_rope, rms_norm, rms_norm_in_place};
pub use post::PostHead;
