//! Tiny simulated model files (axcl-sim's format) with random weights, for
//! the runtime's conformance tests, and the bf16 conversions they use.

use axcl_sim::format::{
    Arch, DType, Geometry, GroupIo, ModelKind, SimModelHeader, SimModelWriter, TensorDesc, layer_groups, post_groups,
};
use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Little-endian bf16 bytes of `values`.
pub fn bf16_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect()
}

/// `values` of little-endian bf16 bytes, as f32.
pub fn from_bf16_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
}

/// Little-endian bytes of `values`.
pub fn u32_bytes(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Deterministic values in `[-scale, scale)`.
pub fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// A tiny Qwen3-style layer: hidden 8, 2 query heads over 1 KV head of 4
/// (D = 4), MLP 12, prefill chunks of T = 4, decode capacity C = 8.
#[derive(Debug, Clone)]
pub struct TinyLayer {
    /// History capacities of the prefill groups after the first.
    pub history: Vec<usize>,
    /// A timing-only model (no weights, no math).
    pub timing_only: bool,
}

/// Hidden size of the tiny models.
pub const H: usize = 8;
/// Elements of one K (or V) row.
pub const D: usize = 4;
/// Prefill chunk length.
pub const T: usize = 4;
/// Decode capacity.
pub const C: usize = 8;
const HEADS: usize = 2;
const HD: usize = 4;
const INTER: usize = 12;

impl TinyLayer {
    /// Its shape groups.
    pub fn groups(&self) -> Vec<GroupIo> {
        layer_groups(H, D, T, C, &self.history)
    }

    /// Writes the model file (random bf16 weights from `seed`).
    pub fn write(&self, path: &Path, seed: u64) {
        let header = SimModelHeader {
            kind: ModelKind::Layer,
            arch: Arch::Qwen3,
            timing_only: self.timing_only,
            layer_index: Some(0),
            geometry: geometry(0),
            rope_inv_freq: vec![1.0, 0.01],
            groups: self.groups(),
            tensors: vec![],
        };
        let mut w = SimModelWriter::new(header);
        if !self.timing_only {
            let mut add = |name: &str, shape: &[usize], offset: f32| {
                let n = shape.iter().product();
                let name_seed = name.bytes().fold(seed, |h, b| h.wrapping_mul(31) ^ u64::from(b));
                let values: Vec<f32> = random(name_seed, n, 0.5).iter().map(|v| v + offset).collect();
                w.add_tensor(name, DType::Bf16, shape, &bf16_bytes(&values));
            };
            add("input_layernorm.weight", &[H], 1.0);
            add("post_attention_layernorm.weight", &[H], 1.0);
            add("self_attn.q_norm.weight", &[HD], 1.0);
            add("self_attn.k_norm.weight", &[HD], 1.0);
            add("self_attn.q_proj.weight", &[HEADS * HD, H], 0.0);
            add("self_attn.k_proj.weight", &[D, H], 0.0);
            add("self_attn.v_proj.weight", &[D, H], 0.0);
            add("self_attn.o_proj.weight", &[H, HEADS * HD], 0.0);
            add("mlp.gate_proj.weight", &[INTER, H], 0.0);
            add("mlp.up_proj.weight", &[INTER, H], 0.0);
            add("mlp.down_proj.weight", &[H, INTER], 0.0);
        }
        w.write(path).expect("write layer model");
    }
}

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

/// The standard tiny layer (groups: decode, first prefill, prefill with 4 history rows).
pub fn tiny_layer(path: &Path) {
    TinyLayer { history: vec![4], timing_only: false }.write(path, 1);
}

/// A post model with hidden 8 and a vocabulary of `vocab`.
pub fn tiny_post(path: &Path, vocab: usize) {
    let header = SimModelHeader {
        kind: ModelKind::Post,
        arch: Arch::Qwen3,
        timing_only: false,
        layer_index: None,
        geometry: geometry(vocab),
        rope_inv_freq: vec![],
        groups: post_groups(H, vocab),
        tensors: vec![],
    };
    let mut w = SimModelWriter::new(header);
    w.add_tensor("norm.weight", DType::Bf16, &[H], &bf16_bytes(&random(11, H, 1.0)));
    w.add_tensor("lm_head.weight", DType::Bf16, &[vocab, H], &bf16_bytes(&random(12, vocab * H, 1.0)));
    w.write(path).expect("write post model");
}

/// The expected IO of a tensor, for comparing with the info getters.
pub fn expected(groups: &[GroupIo], group: usize, input: bool) -> &[TensorDesc] {
    if input { &groups[group].inputs } else { &groups[group].outputs }
}
