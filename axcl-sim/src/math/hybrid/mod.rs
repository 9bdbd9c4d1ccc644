//! Qwen3.5 hybrid layers: the simulator's answers to what is not known about
//! the card, and the two layer kinds' math (what a layer file
//! declares is [`HybridSpec`], in `crate::format::hybrid`).
//!
//! * [`delta`]: the Gated DeltaNet linear-attention layer;
//! * [`attention`]: the gated full-attention layer with partial rotary;
//! * here: the state layout, the
//!   behaviours a test can switch ([`Behaviour`]) and [`HybridLayer`], which
//!   a loaded model executes.
//!
//! # Open facts, decided here
//!
//! Nothing below is known about the card; each choice is made once, here, and
//! where a runner could come to depend on it the simulator can behave both ways:
//!
//! * **State layout** (open question 1). `K_cache` of a linear layer is the
//!   convolution history: `[1, K−1, conv_dim]`, row 0 the oldest of the last
//!   `K−1` projected `qkv` rows (zeros at the start). `V_cache` is the
//!   recurrent state `[1, Hv, Dk, Dv]`, `S[h][i][j]` (Hugging Face's layout):
//!   `S ← α·S + k·δᵀ`, `o = Sᵀq`. Both in [`LinearSpec::state_dtype`](crate::format::LinearSpec::state_dtype) (bf16 or
//!   f32, a packing option), the same dims in every shape group, and
//!   `K_cache_out`/`V_cache_out` are the whole new state, same dims and dtype.
//!   [`LinearSpec::report_state_dtype_none`](crate::format::LinearSpec::report_state_dtype_none) makes the runtime report the state
//!   tensors' dtype as `AXCL_DATA_TYPE_NONE`, as older AXCL builds do: a runner
//!   must size the state by the bytes reported, not by a dtype.
//! * **Masks of linear layers** (question 3). `mask` is a gate, not an additive
//!   mask: element `r` (for `r` below the group's rows) is 1.0 for a real token
//!   and 0 for padding; the decode group's single element is 1.0. A linear
//!   layer's mask is `[1, 1, rows]`. Any other value fails the execution: the
//!   card's behaviour on it is undefined, and a runner that sends an additive
//!   mask to a linear layer has a bug.
//! * **Padded rows** (question 3): [`Padding`], `linear_padding=` in the
//!   simulator configuration.
//! * **`indices` in linear layers** (question 4): [`Indices`], `linear_indices=`.
//! * **`output` of chunks with few valid rows** (question 6, also for Qwen3
//!   layers): [`Behaviour::min_output_rows`], `min_output_rows=`.

pub mod attention;
pub mod delta;
#[cfg(test)]
mod tests;

use super::error::MathError;
use crate::format::{DType, HybridSpec, SimModelFile};
use attention::GatedAttentionLayer;
use delta::GatedDeltaLayer;
use half::bf16;

/// What a gate-0 (padding) row does to a linear layer's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Padding {
    /// The state and the convolution history are left as they were (what the
    /// vendor runner relies on; MLX's masked step).
    #[default]
    Freeze,
    /// The row's hidden state is zeroed and the row runs like a token
    /// (Hugging Face's `apply_mask_to_padding_states`): the history shifts in
    /// zeros and the state decays.
    Decay,
}

/// Whether a linear layer reads `indices`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Indices {
    /// Ignored (what the vendor runner's use suggests, INFERRED).
    #[default]
    Ignore,
    /// Read: an execution fails unless the rows carry what the vendor runner
    /// writes (consecutive positions for real rows, 0 for padding rows).
    Check,
}

/// Simulator behaviours for what the card may do either way (set by the
/// simulator configuration, see `axcl_sim.h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behaviour {
    pub padding: Padding,
    pub indices: Indices,
    /// A prefill execute with fewer valid rows than this leaves `output`
    /// unwritten (an independent report: "groups with m < 64 do not write output").
    /// 0: always written.
    pub min_output_rows: usize,
}

/// The inputs of one execution of a Qwen3.5 layer, as the card holds them.
#[derive(Debug, Clone, Copy)]
pub struct HybridInputs<'a> {
    /// Hidden states `[n, H]`.
    pub input: &'a [bf16],
    /// Positions `[n]`; `n` is the number of rows.
    pub indices: &'a [u32],
    /// Full layers: the additive mask `[n, P + n]`; linear layers: the gate.
    pub mask: &'a [bf16],
    /// Full layers: history K rows (bf16); linear layers: the convolution history.
    pub k_cache: &'a [u8],
    /// Full layers: history V rows (bf16); linear layers: the recurrent state.
    pub v_cache: &'a [u8],
}

/// Where one execution writes; `output` is `None` when it is not written.
#[derive(Debug)]
pub struct HybridOutputs {
    pub k_out: Vec<u8>,
    pub v_out: Vec<u8>,
    pub output: Option<Vec<bf16>>,
}

/// Byte sizes of one shape group's tensors, to check a group before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HybridSizes {
    /// Elements.
    pub input: usize,
    pub indices: usize,
    pub mask: usize,
    /// Bytes.
    pub k_cache: usize,
    pub v_cache: usize,
    pub k_out: usize,
    pub v_out: usize,
    /// Elements.
    pub output: usize,
}

/// A loaded Qwen3.5 layer of either kind.
#[derive(Debug)]
pub enum HybridLayer {
    Linear(GatedDeltaLayer),
    Full(GatedAttentionLayer),
}

impl HybridLayer {
    /// Builds the layer a file declares (its header's `hybrid` entry).
    pub fn from_file(file: &SimModelFile) -> Result<Self, MathError> {
        match &file.header.hybrid {
            Some(HybridSpec::Linear(spec)) => Ok(Self::Linear(GatedDeltaLayer::from_file(file, spec)?)),
            Some(HybridSpec::Full(spec)) => Ok(Self::Full(GatedAttentionLayer::from_file(file, spec)?)),
            None => Err(MathError::Geometry("not a Qwen3.5 layer (no hybrid entry in the header)".into())),
        }
    }

    /// Checks a shape group's sizes; returns its history width (0 for linear layers).
    pub fn check(&self, s: &HybridSizes) -> Result<usize, MathError> {
        match self {
            Self::Linear(l) => l.check(s).map(|()| 0),
            Self::Full(l) => l.check(s),
        }
    }

    /// Runs one execution.
    pub fn forward(&self, inputs: &HybridInputs<'_>, behaviour: &Behaviour) -> Result<HybridOutputs, MathError> {
        match self {
            Self::Linear(l) => l.forward(inputs, behaviour),
            Self::Full(l) => l.forward(inputs, behaviour),
        }
    }
}

/// Decodes state bytes of `dtype` into f32.
pub(crate) fn state_to_f32(bytes: &[u8], dtype: DType) -> Vec<f32> {
    match dtype {
        DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        _ => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
    }
}

/// Encodes f32 values as state bytes of `dtype` (bf16: round to nearest even).
pub(crate) fn state_from_f32(values: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
    }
}

/// Rows whose additive-mask row has a visible (0) entry: the valid rows of a
/// full-attention chunk (a padding row is fully masked).
pub fn valid_rows_additive(mask: &[bf16], rows: usize) -> usize {
    if rows == 0 {
        return 0;
    }
    let cols = mask.len() / rows;
    mask.chunks_exact(cols.max(1)).take(rows).filter(|r| r.iter().any(|v| v.to_f32() == 0.0)).count()
}
