//! THE calibration of the simulated Raspberry Pi 5 + LLM-8850 (AX650 card on
//! PCIe Gen2 ×1): every constant of the timing model, with its source. The
//! packer writes the device costs into timing-only models (`costs=header`);
//! the benchmark configures the simulator's host-side costs with
//! [`pi5_spec`]. Nothing else holds a timing constant.
//!
//! The model, per runtime call (hardware-facts: F15, F21, F22, F35):
//!
//! * every call that reaches the card costs the caller [`CALL_US`] (the
//!   request); a synchronous call then waits for the card's work and
//!   [`SYNC_US`] more (the completion round trip); an asynchronous call
//!   (`*Async`) returns after the request and its work joins one device
//!   timeline, drained by `axclrtSynchronizeStream` (itself a synchronous call);
//! * an execute's device time is a fixed cost plus the bytes it streams
//!   ([`layer_cost`], [`post_cost`]);
//! * a copy moves its bytes over the link ([`LINK_MBPS`]) or on the card
//!   ([`D2D_MBPS`]); a host side outside `axclrtMallocHost` memory adds
//!   [`PAGEABLE_US`].
//!
//! Sources: §12 of the AX650 contract notes, i.e. woolcoxm's published
//! Pi 5 + LLM-8850 measurements ([WOOL-README], [WOOL-PERF], [WOOL-NOTES]),
//! as collected in docs/hardware-facts.md (F15, F21, F22, F35, F36).

use axcl_sim::format::ExecCost;

// ---- Device (the NPU's time per execute; hardware-facts: F21, F35) ----

/// Fixed device cost of one execute, µs. F35: four-point fit of the decode
/// layer times (w8a16 @2048, s8 @255, s4 @255, s4 @2047), all within ±2.3 %.
pub const EXEC_FIXED_US: f64 = 418.0;
/// Weight streaming of a decode execute, bytes per µs (= MB/s). F35 (26.4 GB/s).
pub const WEIGHT_BYTES_PER_US: f64 = 26_400.0;
/// K/V (and linear-attention state) streaming, bytes per µs. F35 (18.6 GB/s);
/// the engines read the K/V cache over its whole compiled capacity (F36).
pub const KV_BYTES_PER_US: f64 = 18_600.0;
/// The post model's 8-bit lm_head streaming, bytes per µs. F35 (20.7 GB/s;
/// 7917 µs measured for Qwen3-0.6B).
pub const POST_BYTES_PER_US: f64 = 20_700.0;
/// One 128-row prefill chunk of Qwen3-0.6B w8a16 with no history, µs. F36
/// (the vendor ladder 2808 → 5220 µs for history 0 → 1024).
pub const CHUNK_0_6B_US: f64 = 2808.0;
/// Parameters of one Qwen3-0.6B layer (the chunk above); a chunk's compute
/// scales with the layer's parameters and not with its quantisation
/// (s4 and s8 chunk groups of m = 64 took 2148 and 2169 µs: F36).
pub const PARAMS_0_6B: f64 = 15.73e6;
/// Cost of a prefill chunk per history row it attends over, µs, at a K/V row
/// of `D` = 1024 (the ladder's slope, (5220 − 2808) / 1024 ≈ 2.36: F36);
/// scaled by `D`.
pub const HISTORY_ROW_US_PER_1024: f64 = 2.36;

// ---- Host and link (hardware-facts: F15, F22, F36) ----

/// What every call that reaches the card costs the caller (the request), µs.
/// INFERRED (F36): the fixed cost of a synchronous execute measured with its
/// round trip (457 µs, two-point fit) less the device's fixed cost of the
/// four-point fit (418 µs).
pub const CALL_US: f64 = 39.0;
/// What a synchronous call waits beyond its work (the completion round trip):
/// what an asynchronous chain saves per call, µs. F22: the async chain took
/// Qwen3-0.6B from 18.9 to 19.5–19.6 tok/s with 29 fewer waits per token:
/// (1/18.9 − 1/19.55) s / 29 ≈ 61 µs.
pub const SYNC_US: f64 = 61.0;
/// Extra cost of a copy whose host side is pageable (`malloc`, the stack),
/// µs: the runtime pins the pages per transfer (F15). Fitted to the only
/// total measured with unpinned copies: the naive pass's ≈ 35 ms of host
/// time per token with 84 unpinned small copies among 168 calls (F36). The
/// prose figure "≈ 1 ms per unpinned copy" does not fit that total (the
/// benchmark prints both).
pub const PAGEABLE_US: f64 = 177.0;
/// Host ↔ card bandwidth each way, MB/s. ASSUMED: PCIe Gen2 ×1 carries
/// 500 MB/s after 8b/10b coding; 80 % of it after packet overhead.
pub const LINK_MBPS: f64 = 400.0;
/// On-card copy bandwidth, MB/s. ASSUMED: a copy reads and writes LPDDR4x
/// (34.1 GB/s peak, 25 GB/s streamed: F21), so about half the streaming rate;
/// the rows copied are a few KB, so it hardly matters.
pub const D2D_MBPS: f64 = 12_000.0;

/// The simulator's host-side configuration of the Pi 5 + card; the device
/// costs come from the models' headers (`costs=header`).
pub fn pi5_spec() -> String {
    format!(
        "reset;costs=header;call_us={CALL_US};sync_us={SYNC_US};pageable_us={PAGEABLE_US};\
         h2d_mbps={LINK_MBPS};d2h_mbps={LINK_MBPS};d2d_mbps={D2D_MBPS}"
    )
}

/// Bytes per weight of a layer quantisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightBytes {
    /// 8-bit weights, 16-bit activations.
    W8,
    /// 4-bit weights (GPTQ, group 128).
    W4,
}

impl WeightBytes {
    /// Bytes per weight.
    pub fn per_weight(self) -> f64 {
        match self {
            WeightBytes::W8 => 1.0,
            WeightBytes::W4 => 0.5,
        }
    }
}

/// What a layer streams and computes.
#[derive(Debug, Clone, Copy)]
pub struct LayerLoad {
    /// Weights (projections and MLP; norms ignored).
    pub params: f64,
    pub weights: WeightBytes,
    /// Bytes of K/V or state a decode execute reads (the whole compiled capacity).
    pub state_bytes: f64,
    /// History cost per row of a prefill chunk, µs (0 for linear attention).
    pub history_row_us: f64,
    /// Whether a prefill chunk also streams the state (linear attention).
    pub prefill_reads_state: bool,
}

/// The device time of one execute of a layer (F35, F36).
pub fn layer_cost(l: LayerLoad) -> ExecCost {
    let weights_us = l.params * l.weights.per_weight() / WEIGHT_BYTES_PER_US;
    let state_us = l.state_bytes / KV_BYTES_PER_US;
    let compute_us = (CHUNK_0_6B_US - EXEC_FIXED_US) * l.params / PARAMS_0_6B;
    ExecCost {
        decode_us: EXEC_FIXED_US + weights_us + state_us,
        prefill_us: EXEC_FIXED_US + compute_us + if l.prefill_reads_state { state_us } else { 0.0 },
        prefill_us_per_history_row: l.history_row_us,
    }
}

/// History cost per prefill row for a K/V row of `kv_dim` elements.
pub fn history_row_us(kv_dim: usize) -> f64 {
    HISTORY_ROW_US_PER_1024 * kv_dim as f64 / 1024.0
}

/// The device time of one post-model execute: an 8-bit `V × H` head (F35).
pub fn post_cost(vocab: usize, hidden: usize) -> ExecCost {
    let us = EXEC_FIXED_US + (vocab * hidden) as f64 / POST_BYTES_PER_US;
    ExecCost { decode_us: us, prefill_us: us, prefill_us_per_history_row: 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_measured_layer_and_post_times() {
        // Qwen3-0.6B w8a16 at C = 2048: 1465 µs (measured 1500); post 7.93 ms (7.92).
        let l = LayerLoad {
            params: PARAMS_0_6B,
            weights: WeightBytes::W8,
            state_bytes: (2048 * 2 * 1024 * 2) as f64,
            history_row_us: history_row_us(1024),
            prefill_reads_state: false,
        };
        let c = layer_cost(l);
        assert!((c.decode_us - 1465.0).abs() < 2.0, "{c:?}");
        assert!((c.prefill_us - CHUNK_0_6B_US).abs() < 1e-6);
        let w4 = layer_cost(LayerLoad { weights: WeightBytes::W4, ..l });
        assert!((w4.decode_us - 1167.0).abs() < 2.0, "{w4:?}");
        assert!((post_cost(151_936, 1024).decode_us - 7934.0).abs() < 2.0);
        assert!(pi5_spec().contains("costs=header"));
    }
}
