//! The simulator's latency model, calibrated from published numbers (AXERA's
//! model cards and independent Pi 5 measurements; the equations are in BENCHMARKS.md):
//!
//! * NPU: an ideal runner (no host-device cost) runs `L` layer executes and one
//!   post execute per token, so `exec_us = (1e6 / native_tok_s − post_us) / L`.
//!   `post_us` is the measured 7.9 ms of Qwen3-0.6B, scaled by `H·V` (the
//!   lm_head is a memory-bound `H×V` matrix-vector product). A prefill execute
//!   (`prefill_us`) is affine in the layer's weight count, through the two
//!   published native one-chunk TTFTs (0.6B, 4B).
//! * Link: PCIe Gen2 ×1 at an assumed 400 MB/s each way, on-card DMA at an
//!   assumed 4 GB/s; `call_us` (the round trip every call pays) is the relative
//!   least-squares fit that makes the vendor runner's call pattern reproduce the
//!   Pi 5 decode speeds of all three models.

use axsim_pack::{TimingGeometry, TimingPreset};

/// A published model and the decode speeds published for it (AXERA's model cards).
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub preset: TimingPreset,
    pub name: &'static str,
    /// Native AX650N board, tok/s.
    pub native_tok_s: f64,
    /// Vendor runner on a Raspberry Pi 5 + LLM8850 card, tok/s.
    pub pi5_tok_s: f64,
    /// Native TTFT of a prompt of one chunk, ms, where published.
    pub native_chunk_ttft_ms: Option<f64>,
}

pub const MODELS: [Published; 3] = [
    Published {
        preset: TimingPreset::Qwen3_0_6B,
        name: "Qwen3-0.6B",
        native_tok_s: 16.9,
        pi5_tok_s: 12.9,
        native_chunk_ttft_ms: Some(173.71),
    },
    Published { preset: TimingPreset::Qwen3_1_7B, name: "Qwen3-1.7B", native_tok_s: 8.6, pi5_tok_s: 7.4, native_chunk_ttft_ms: None },
    Published {
        preset: TimingPreset::Qwen3_4B,
        name: "Qwen3-4B",
        native_tok_s: 4.5,
        pi5_tok_s: 3.65,
        native_chunk_ttft_ms: Some(1169.0),
    },
];

/// Post model of Qwen3-0.6B on the card, µs (published by AXERA).
const POST_0_6B_US: f64 = 7900.0;
/// Host-device bandwidth each way, MB/s: PCIe Gen2 ×1 is 500 MB/s after 8b/10b
/// coding; 80 % of it is left after packet overhead (assumption).
pub const LINK_MBPS: f64 = 400.0;
/// On-card DMA bandwidth, MB/s (assumption; rows of a few KB make it immaterial).
pub const D2D_MBPS: f64 = 4000.0;

/// The sizes of a model that the latency model needs.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub layers: usize,
    pub hidden: usize,
    pub vocab: usize,
    /// `D`: K (or V) row length.
    pub kv_dim: usize,
    /// `C`: decode KV capacity.
    pub context: usize,
    /// `T`: prefill chunk.
    pub chunk: usize,
    /// Weights of one decoder layer (attention and MLP projections).
    pub layer_weights: f64,
}

impl Shape {
    pub fn of(preset: TimingPreset) -> Shape {
        let g: TimingGeometry = preset.geometry();
        let io = preset.options().io;
        let (h, q, kv) = (g.hidden_size, g.num_attention_heads * g.head_dim, g.num_key_value_heads * g.head_dim);
        Shape {
            layers: g.layers,
            hidden: h,
            vocab: g.vocab_size,
            kv_dim: kv,
            context: io.context,
            chunk: io.chunk,
            layer_weights: (2 * h * q + 2 * h * kv + 3 * h * g.intermediate_size) as f64,
        }
    }

    /// Runtime calls per decode token of the vendor runner: one H2D of the
    /// embedding row; per layer H2D indices, H2D mask, execute, D2D K row, D2D
    /// V row, D2D hidden to the next layer (or the post model); post; D2H logits.
    pub fn vendor_calls(&self) -> usize {
        6 * self.layers + 3
    }

    /// Bytes per decode token of the vendor runner: (H2D, D2D, D2H).
    pub fn vendor_bytes(&self) -> (usize, usize, usize) {
        let l = self.layers;
        (2 * self.hidden + l * (4 + 2 * (self.context + 1)), l * (4 * self.kv_dim + 2 * self.hidden), 2 * self.vocab)
    }
}

/// NPU latencies of one model, µs.
#[derive(Debug, Clone, Copy)]
pub struct Npu {
    pub exec_us: f64,
    pub prefill_us: f64,
    pub post_us: f64,
}

/// The calibrated latency model of all three models.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub shapes: Vec<Shape>,
    pub npu: Vec<Npu>,
    pub call_us: f64,
    /// Prefill execute = `prefill_fixed_us + prefill_us_per_weight · layer_weights`.
    pub prefill_fixed_us: f64,
    pub prefill_us_per_weight: f64,
}

impl Calibration {
    /// Fits the model to the published numbers.
    pub fn fit() -> Calibration {
        let shapes: Vec<Shape> = MODELS.iter().map(|m| Shape::of(m.preset)).collect();
        let post = |s: &Shape| POST_0_6B_US * (s.hidden * s.vocab) as f64 / (1024.0 * 151_936.0);
        // Prefill: per-layer time of a one-chunk prompt, affine in the layer's weights.
        let points: Vec<(f64, f64)> = MODELS
            .iter()
            .zip(&shapes)
            .filter_map(|(m, s)| m.native_chunk_ttft_ms.map(|t| (s.layer_weights, (t * 1e3 - post(s)) / s.layers as f64)))
            .collect();
        let ((w0, t0), (w1, t1)) = (points[0], points[1]);
        let per_weight = (t1 - t0) / (w1 - w0);
        let fixed = t0 - per_weight * w0;
        let npu: Vec<Npu> = MODELS
            .iter()
            .zip(&shapes)
            .map(|(m, s)| Npu {
                exec_us: (1e6 / m.native_tok_s - post(s)) / s.layers as f64,
                prefill_us: fixed + per_weight * s.layer_weights,
                post_us: post(s),
            })
            .collect();
        // call_us: minimise Σ ((f_i + n_i·c − o_i) / o_i)², f_i the native time plus transfers.
        let (mut num, mut den) = (0.0, 0.0);
        for (m, s) in MODELS.iter().zip(&shapes) {
            let observed = 1e6 / m.pi5_tok_s;
            let fixed = 1e6 / m.native_tok_s + transfer_us(s.vendor_bytes());
            let n = s.vendor_calls() as f64;
            num += n * (observed - fixed) / (observed * observed);
            den += n * n / (observed * observed);
        }
        Calibration { shapes, npu, call_us: num / den, prefill_fixed_us: fixed, prefill_us_per_weight: per_weight }
    }

    /// The simulator configuration of the Raspberry Pi 5 + card for model `i`.
    pub fn pi5_spec(&self, i: usize) -> String {
        let n = self.npu[i];
        format!(
            "reset;exec_us={:.1};prefill_us={:.1};post_us={:.1};call_us={:.1};h2d_mbps={LINK_MBPS};d2h_mbps={LINK_MBPS};d2d_mbps={D2D_MBPS}",
            n.exec_us, n.prefill_us, n.post_us, self.call_us
        )
    }

    /// Decode time per token of an ideal runner (no host-device cost), s.
    pub fn ideal_decode_s(&self, i: usize) -> f64 {
        (self.shapes[i].layers as f64 * self.npu[i].exec_us + self.npu[i].post_us) / 1e6
    }

    /// TTFT of an ideal runner for a prompt of `tokens` from an empty cache, s.
    pub fn ideal_ttft_s(&self, i: usize, tokens: usize) -> f64 {
        let chunks = tokens.div_ceil(self.shapes[i].chunk) as f64;
        (chunks * self.shapes[i].layers as f64 * self.npu[i].prefill_us + self.npu[i].post_us) / 1e6
    }

    /// The vendor runner's decode speed the model predicts, tok/s.
    pub fn predicted_vendor_tok_s(&self, i: usize) -> f64 {
        let s = &self.shapes[i];
        let calls = s.vendor_calls() as f64 * self.call_us;
        1e6 / (self.ideal_decode_s(i) * 1e6 + calls + transfer_us(s.vendor_bytes()))
    }
}

/// Transfer time of (H2D, D2D, D2H) bytes, µs.
fn transfer_us((h2d, d2d, d2h): (usize, usize, usize)) -> f64 {
    (h2d + d2h) as f64 / LINK_MBPS + d2d as f64 / D2D_MBPS
}
