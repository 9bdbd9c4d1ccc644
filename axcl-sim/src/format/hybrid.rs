//! The Qwen3.5 entries of a layer file's header: which layer kind it holds
//! and the numbers its math needs beyond [`super::Geometry`], and what one
//! execute costs under the `costs=header` latency model. The math of both
//! kinds is in `crate::math::hybrid`.

use super::DType;
use serde::{Deserialize, Serialize};

/// Which Qwen3.5 layer a layer file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HybridSpec {
    /// A Gated DeltaNet linear-attention layer.
    Linear(LinearSpec),
    /// A full-attention layer with an output gate and partial rotary embedding.
    Full(FullSpec),
}

/// The numbers of a Gated DeltaNet layer beyond [`crate::format::Geometry`]
/// (whose `hidden_size`, `intermediate_size` and `rms_norm_eps` it also uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearSpec {
    /// `Hk`: key (and query) heads.
    pub key_heads: usize,
    /// `Hv`: value heads, a multiple of `Hk`.
    pub value_heads: usize,
    /// `Dk`.
    pub key_head_dim: usize,
    /// `Dv`.
    pub value_head_dim: usize,
    /// `K`: the causal convolution's kernel width.
    pub conv_kernel: usize,
    /// Element type of both state tensors: bf16 or f32.
    pub state_dtype: DType,
    /// Report the state tensors' dtype as NONE (0), as older AXCL builds do.
    #[serde(default)]
    pub report_state_dtype_none: bool,
}

impl LinearSpec {
    pub fn key_dim(&self) -> usize {
        self.key_heads * self.key_head_dim
    }
    pub fn value_dim(&self) -> usize {
        self.value_heads * self.value_head_dim
    }
    /// Channels of the convolution: query, key and value projections.
    pub fn conv_dim(&self) -> usize {
        2 * self.key_dim() + self.value_dim()
    }
    /// Dims of `K_cache` / `K_cache_out`: the convolution history.
    pub fn conv_state_dims(&self) -> [usize; 3] {
        [1, self.conv_kernel - 1, self.conv_dim()]
    }
    /// Dims of `V_cache` / `V_cache_out`: the recurrent state.
    pub fn recurrent_state_dims(&self) -> [usize; 4] {
        [1, self.value_heads, self.key_head_dim, self.value_head_dim]
    }
    /// Elements of the convolution history.
    pub fn conv_state_len(&self) -> usize {
        (self.conv_kernel - 1) * self.conv_dim()
    }
    /// Elements of the recurrent state.
    pub fn recurrent_state_len(&self) -> usize {
        self.value_heads * self.key_head_dim * self.value_head_dim
    }

    /// Rejects numbers the math cannot run (including sizes that overflow),
    /// saying why.
    pub fn validate(&self) -> Result<(), String> {
        let sizes = || -> Option<usize> {
            let key = self.key_heads.checked_mul(self.key_head_dim)?;
            let value = self.value_heads.checked_mul(self.value_head_dim)?;
            let conv = key.checked_mul(2)?.checked_add(value)?;
            let rec = value.checked_mul(self.key_head_dim)?;
            conv.checked_mul(self.conv_kernel)?.max(rec).checked_mul(4)
        };
        if sizes().is_none_or(|bytes| bytes > i32::MAX as usize) {
            return Err(format!("linear attention {self:?}: sizes too large"));
        }
        let ok = self.key_heads > 0
            && self.key_head_dim > 0
            && self.value_head_dim > 0
            && self.conv_kernel >= 2
            && self.value_heads > 0
            && self.value_heads.is_multiple_of(self.key_heads)
            && matches!(self.state_dtype, DType::Bf16 | DType::F32);
        if ok {
            Ok(())
        } else {
            Err(format!(
                "linear attention {self:?}: needs positive head counts and dims, value heads a multiple of key \
                 heads, a kernel of at least 2 and a bf16 or f32 state"
            ))
        }
    }
}

/// The full-attention layer's differences from a Qwen3 layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullSpec {
    /// Leading dims of each head that RoPE rotates (`head_dim · partial_rotary_factor`).
    pub rotary_dim: usize,
    /// `q_proj` also yields a per-head output gate: `[query | gate]` per head.
    pub output_gate: bool,
}

/// What one execute costs the NPU (µs of device time; the simulator adds the
/// call's own costs): used instead of `exec_us`/`prefill_us`/`post_us` under
/// `costs=header`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExecCost {
    /// A decode group (or the post model's only group).
    pub decode_us: f64,
    /// A prefill group with no history.
    pub prefill_us: f64,
    /// Added per history position a prefill group reads (its mask's history columns).
    #[serde(default)]
    pub prefill_us_per_history_row: f64,
}

