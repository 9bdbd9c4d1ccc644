//! The published Pi 5 + LLM-8850 data points (hardware-facts: F21, F22,
//! F36) and what the timing model (`axsim_pack::calibration`, the one file
//! holding every constant) predicts for each. Runs measured on the simulator
//! are printed beside them by `main.rs`; the call patterns of the other
//! drivers are priced here with the same constants.

use axsim_pack::calibration::{CALL_US, D2D_MBPS, LINK_MBPS, PAGEABLE_US, SYNC_US};
use axsim_pack::{Quant, TimingPreset};

/// A model at one quantisation, with its device costs (µs).
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    pub layers: usize,
    pub hidden: usize,
    pub vocab: usize,
    /// `D`: a K (or V) row.
    pub kv_dim: usize,
    pub chunk: usize,
    /// History capacities of the prefill groups, ascending (0 first).
    pub max_history: usize,
    pub decode_us: f64,
    pub chunk_us: f64,
    pub history_row_us: f64,
    pub post_us: f64,
}

impl Costs {
    pub fn of(preset: TimingPreset, quant: Quant) -> Costs {
        let o = preset.options();
        let g = &o.geometry;
        let (layer, post) = (g.layer_cost(&o.io, quant), g.post_cost());
        Costs {
            layers: g.layers,
            hidden: g.hidden_size,
            vocab: g.vocab_size,
            kv_dim: g.kv_dim(),
            chunk: o.io.chunk,
            max_history: o.io.prefill_history.last().copied().unwrap_or(0),
            decode_us: layer.decode_us,
            chunk_us: layer.prefill_us,
            history_row_us: layer.prefill_us_per_history_row,
            post_us: post.decode_us,
        }
    }

    /// The device time of one decode token: every layer and the post model, s.
    pub fn ideal_decode_s(&self) -> f64 {
        (self.layers as f64 * self.decode_us + self.post_us) / 1e6
    }

    /// The device time of a chunk through the group of history capacity `cap`, one layer, µs.
    pub fn chunk_at(&self, cap: usize) -> f64 {
        self.chunk_us + self.history_row_us * cap as f64
    }

    /// The device time of a `tokens` prompt from an empty cache, s: chunks
    /// through the smallest group that holds their history (as our runner and
    /// the vendor's pick them) while the prefill groups reach, then one decode
    /// execute per layer for each token beyond, then the post model once.
    pub fn ideal_ttft_s(&self, tokens: usize) -> f64 {
        let (t, l) = (self.chunk, self.layers as f64);
        let mut us = self.post_us;
        let mut pos = 0;
        while pos < tokens {
            if pos <= self.max_history {
                us += l * self.chunk_at(pos.div_ceil(t) * t);
                pos += t.min(tokens - pos);
            } else {
                us += l * self.decode_us;
                pos += 1;
            }
        }
        us / 1e6
    }

    /// Prefill rate of the independent driver's pattern for a `tokens`
    /// prompt: every chunk through the largest prefill group (INFERRED from
    /// its 716.5 tok/s: the smallest-group reading predicts ≈ 1090), tok/s.
    pub fn largest_group_prefill_tok_s(&self, tokens: usize) -> f64 {
        let chunks = tokens.div_ceil(self.chunk) as f64;
        let us = chunks * self.layers as f64 * self.chunk_at(self.max_history) + self.post_us;
        tokens as f64 / (us / 1e6)
    }
}

/// A synchronous call moving `bytes` over the link from pinned memory, µs.
fn sync_copy(bytes: f64) -> f64 {
    CALL_US + SYNC_US + bytes / LINK_MBPS
}

/// Host-side time per decode token of the independent driver's three
/// published passes (§12.3), predicted from their call lists, µs:
/// (naive, pinned staging, optimised).
pub fn open_driver_host_us(c: &Costs) -> (f64, f64, f64) {
    let (l, h2, d2) = (c.layers as f64, (c.hidden * 2) as f64, (c.kv_dim * 2) as f64);
    let mask = ((2047 + 1) * 2) as f64;
    let logits = (c.vocab * 2) as f64;
    let round = CALL_US + SYNC_US;
    // Naive: per layer a 4-byte index H2D from the stack (pageable), a mask
    // and two K/V-row D2D copies, two K/V-row D2H copies into pageable
    // memory, a synchronous execute; per token the hidden state in and the
    // logits out (pageable).
    let naive = l * (sync_copy(4.0) + PAGEABLE_US + (round + mask / D2D_MBPS) + 2.0 * (round + d2 / D2D_MBPS) + 2.0 * (sync_copy(d2) + PAGEABLE_US) + round)
        + sync_copy(h2) + PAGEABLE_US + sync_copy(logits) + PAGEABLE_US;
    // Pinned staging: index + mask once per token, the hidden state in, the
    // logits out, synchronous executes, K/V rows written in place, a deferred
    // write-back of 64-row K/V chunks every 32 positions (pinned).
    let writeback = l * 2.0 / 32.0 * sync_copy(64.0 * d2);
    let pinned = sync_copy(4.0) + sync_copy(mask) + sync_copy(h2) + (l + 1.0) * round + sync_copy(logits) + writeback;
    // Optimised: as pinned, with the executes chained (one request each,
    // overlapping the device but the first) and one synchronisation.
    let optimised = sync_copy(4.0) + sync_copy(mask) + sync_copy(h2) + CALL_US + round + sync_copy(logits) + writeback;
    (naive, pinned, optimised)
}

/// One published figure and the model's prediction of it.
pub struct Point {
    pub what: &'static str,
    pub source: &'static str,
    pub measured: f64,
    pub predicted: f64,
    pub unit: &'static str,
    /// How the prediction relates to the data: "predicted", "fitted" (a
    /// constant was derived from this figure), "simulated" (a bench run).
    pub how: &'static str,
}

impl Point {
    pub fn error_pct(&self) -> f64 {
        100.0 * (self.predicted / self.measured - 1.0)
    }
}

/// The data points that need no bench run (the runs add theirs).
pub fn analytic_points() -> Vec<Point> {
    let w8 = Costs::of(TimingPreset::Qwen3_0_6B, Quant::W8a16);
    let w4 = Costs::of(TimingPreset::Qwen3_0_6B, Quant::Int4);
    let (naive, pinned, optimised) = open_driver_host_us(&w8);
    let point = |what, source, measured, predicted, unit, how| Point { what, source, measured, predicted, unit, how };
    vec![
        point("layer execute, 0.6B w8a16 @2048", "F35 (1500 µs)", 1500.0, w8.decode_us, "µs", "fitted"),
        point("layer execute, 0.6B w4a16 @2047", "F35 (1166 µs)", 1166.0, w4.decode_us, "µs", "fitted"),
        point("post model, 0.6B", "F35 (7917 µs)", 7917.0, w8.post_us, "µs", "fitted"),
        point("128-row chunk, history 1024", "F36 (5220 µs)", 5220.0, w8.chunk_at(1024), "µs", "fitted"),
        point("open driver naive: host per token", "F36 (≈ 35 ms)", 35.0, naive / 1e3, "ms", "fitted"),
        point("unpinned small copy (prose)", "F15 (≈ 1 ms)", 1.0, sync_copy(4096.0).max(0.0) / 1e3 + PAGEABLE_US / 1e3, "ms", "predicted"),
        point("open driver pinned staging: host per token", "F36 (10.5 ms)", 10.5, pinned / 1e3, "ms", "predicted"),
        point("open driver optimised: host per token", "F36 (1–2 ms)", 1.5, optimised / 1e3, "ms", "predicted"),
        point(
            "open driver 0.6B w8a16 decode (engine-only + host)",
            "F22 (19.5–19.6 tok/s)",
            19.55,
            1.0 / (w8.ideal_decode_s() + optimised / 1e6),
            "tok/s",
            "predicted",
        ),
        point(
            "open driver 0.6B w4a16 decode",
            "F36 (24.3–24.5 tok/s)",
            24.5,
            1.0 / (w4.ideal_decode_s() + optimised / 1e6),
            "tok/s",
            "predicted",
        ),
        point(
            "open driver chunked prefill, 530 tokens, w8a16",
            "F36 (716.5 tok/s)",
            716.5,
            w8.largest_group_prefill_tok_s(530),
            "tok/s",
            "predicted",
        ),
        point(
            "open driver chunked prefill, 530 tokens, s4",
            "F36 (1276 tok/s)",
            1276.0,
            w4.largest_group_prefill_tok_s(530),
            "tok/s",
            "predicted",
        ),
    ]
}
