//! The call schedule: which runtime calls one step makes.
//!
//! The default is the fastest schedule whose every call pattern has been
//! seen working on a card, by AXERA's runner or by the independent
//! ggml-axcl driver (hardware-facts: F22, F23, F36):
//!
//! * decode writes each layer's new K/V row in place: `K_cache_out` and
//!   `V_cache_out` bound at the row's offset inside the layer's K/V buffer
//!   (ggml-axcl, F23); every other tensor stays bound as at load (bind-once
//!   static IO, ggml-axcl and AXERA's runner);
//! * `indices`, `mask` and the first layer's hidden state live in dedicated
//!   buffers refreshed by one copy each (offset binds of `mask`/`indices`
//!   misbehaved on V3.6.5, F23: `packed-inputs` stays opt-in);
//! * the executes of a step are chained on one stream with one
//!   synchronisation per step (ggml-axcl, F22);
//! * prefill binds as AXERA's runner does: one IO per shape group, each
//!   tensor in its own buffer at the group's sizes, no offset binds, K/V rows
//!   through staging buffers and a device-to-device scatter (ggml-axcl found
//!   chunk groups correct only this way, F23).
//!
//! Calls per decode token, `L` layers (each line: H2D + executes + D2D + D2H):
//!
//! | schedule | calls | H2D | executes | D2D | D2H |
//! |---|---|---|---|---|---|
//! | vendor runner (for comparison) | `6L + 3` | `2L + 1` | `L + 1` | `3L` | 1 |
//! | default (`decode-kv-bind,async`) | `L + 6` | 3 | `L + 1` | 0 | 1 |
//! | `safe` | `3L + 5` | 3 | `L + 1` | `2L` | 1 |
//! | `packed-inputs` | `3L + 3` | 1 | `L + 1` | `2L` | 1 |
//! | `kv-bind`, `decode-kv-bind` | `L + 5` | 3 | `L + 1` | 0 | 1 |
//! | `fewest-calls` (both) | `L + 3` | 1 | `L + 1` | 0 | 1 |
//!
//! `async` (combinable with any of them, e.g. `fewest-calls,async`) queues the
//! executions and D2D copies on a stream and adds one synchronisation per step:
//! one more call, but the caller no longer waits for each round trip. The
//! default also queues prefill's D2D scatter copies (`axclrtMemcpyAsync` on
//! the same stream, ordered after the execute that wrote the rows); the
//! observed chain (F22) is of executes.
//!
//! A linear-attention layer of a hybrid model (Qwen3.5) makes the same number
//! of calls as a full layer under `Copy` (its two state outputs are copied
//! back whole where a full layer copies its new K/V rows) and under
//! `BindOutputAtRow` (its state ping-pongs between two buffer pairs:
//! rebinding only, no copy). Under `BindDecodeRow` it copies its state as
//! under `Copy`: two D2D copies per linear layer and step beyond the table.
//!
//! Bindings (`axclrtEngineSet*BufferByIndex`) are host-local: they change the
//! (address, size) pair the next execute hands the card and send no message.

use crate::error::{Error, Result};
use std::str::FromStr;

/// How each layer's new K/V rows reach its cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KvWrite {
    /// `K_cache_out`/`V_cache_out` land in scratch buffers and two D2D copies per
    /// layer move the valid rows into the cache (as the vendor runners do).
    #[default]
    Copy,
    /// `K_cache_out`/`V_cache_out` are bound at the row's offset inside the layer's
    /// own K/V buffer, rebound every step, so the NPU writes the cache directly.
    /// Open on hardware: offset bindings (undocumented) and an output aliasing the
    /// K/V input of the same execution (the written rows are masked in it).
    /// Prefill chunks with padding rows, or whose `T` rows would run past the
    /// buffer, fall back to copies for that chunk. Linear-attention layers
    /// ping-pong their state instead (open on hardware: hardware-facts: F31).
    BindOutputAtRow,
    /// Decode binds its row outputs in place as `BindOutputAtRow` does (seen
    /// working on a card for m = 1, hardware-facts: F23); prefill copies
    /// through the scratch outputs as `Copy` does (the only binding under
    /// which chunk groups were seen correct, F23). Linear layers copy.
    BindDecodeRow,
}

/// How a step's inputs (first layer's hidden rows, indices, mask) reach the card.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InputUpload {
    /// One dedicated allocation per tensor, one H2D copy each.
    #[default]
    Separate,
    /// One allocation holding all three at 128-byte-aligned offsets, bound at
    /// those offsets: one H2D copy per step. Open on hardware: offset bindings
    /// of `mask`/`indices` (undocumented).
    Packed,
}

/// Whether a step waits for each execution and copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Execution {
    /// Every call returns when the card is done (the vendor runners).
    #[default]
    Sync,
    /// Executions and D2D copies are queued on one stream
    /// (`axclrtEngineExecuteAsync`, `axclrtMemcpyAsync`), which is synchronised
    /// once per step before the logits are read or new inputs are written; the
    /// host-to-device and device-to-host copies stay synchronous, so no host
    /// buffer is used after its call returns. Open on hardware: how much of a
    /// round trip the runtime saves by queuing (the simulator assumes the caller
    /// waits only for the request to reach the card).
    Async,
}

/// The call schedule of a loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How each layer's new K/V rows reach its cache.
    pub kv_write: KvWrite,
    /// How a step's inputs reach the card.
    pub inputs: InputUpload,
    /// Whether a step waits for each execution and copy.
    pub execution: Execution,
}

impl Default for Schedule {
    /// [`Schedule::OBSERVED`].
    fn default() -> Self {
        Schedule::OBSERVED
    }
}

impl Schedule {
    /// The default: every call pattern seen working on a card (module docs).
    pub const OBSERVED: Schedule =
        Schedule { kv_write: KvWrite::BindDecodeRow, inputs: InputUpload::Separate, execution: Execution::Async };
    /// The vendor runners' documented path: dedicated buffers, D2D row
    /// copies, every call waited for (the default before the card measurements).
    pub const SAFE: Schedule = Schedule { kv_write: KvWrite::Copy, inputs: InputUpload::Separate, execution: Execution::Sync };
    /// Both buffer opt-ins: the fewest round trips per token.
    pub const FEWEST_CALLS: Schedule =
        Schedule { kv_write: KvWrite::BindOutputAtRow, inputs: InputUpload::Packed, execution: Execution::Sync };

    /// Runtime calls per decode token for `layers` decoder layers (see the module table).
    pub fn calls_per_token(&self, layers: usize) -> usize {
        let h2d = if self.inputs == InputUpload::Packed { 1 } else { 3 };
        let d2d = if self.kv_write == KvWrite::Copy { 2 * layers } else { 0 };
        let sync = usize::from(self.execution == Execution::Async);
        h2d + (layers + 1) + d2d + sync + 1
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// `default`, `safe`, `fewest-calls`, or a comma-separated list of those
    /// and `kv-bind`, `decode-kv-bind`, `packed-inputs`, `async` (each added to `safe`).
    fn from_str(s: &str) -> Result<Schedule> {
        if s.trim() == "default" {
            return Ok(Schedule::default());
        }
        let mut out = Schedule::SAFE;
        for part in s.split(',').map(str::trim) {
            match part {
                "safe" => {}
                "decode-kv-bind" => out.kv_write = KvWrite::BindDecodeRow,
                "fewest-calls" => {
                    out.kv_write = KvWrite::BindOutputAtRow;
                    out.inputs = InputUpload::Packed;
                }
                "kv-bind" => out.kv_write = KvWrite::BindOutputAtRow,
                "packed-inputs" => out.inputs = InputUpload::Packed,
                "async" => out.execution = Execution::Async,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown schedule {other:?} (expected default, safe, fewest-calls, kv-bind, decode-kv-bind, packed-inputs, async)"
                    )));
                }
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match (self.kv_write, self.inputs) {
            (KvWrite::Copy, InputUpload::Separate) => "safe",
            (KvWrite::Copy, InputUpload::Packed) => "packed-inputs",
            (KvWrite::BindOutputAtRow, InputUpload::Separate) => "kv-bind",
            (KvWrite::BindOutputAtRow, InputUpload::Packed) => "fewest-calls",
            (KvWrite::BindDecodeRow, InputUpload::Separate) => "decode-kv-bind",
            (KvWrite::BindDecodeRow, InputUpload::Packed) => "decode-kv-bind,packed-inputs",
        })?;
        if self.execution == Execution::Async {
            f.write_str(",async")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_count_calls() {
        for s in ["safe", "packed-inputs", "kv-bind", "fewest-calls", "safe,async", "fewest-calls,async", "decode-kv-bind,async"] {
            assert_eq!(s.parse::<Schedule>().unwrap().to_string(), s);
        }
        assert_eq!("kv-bind, packed-inputs".parse::<Schedule>().unwrap(), Schedule::FEWEST_CALLS);
        assert!("fast".parse::<Schedule>().is_err());
        assert_eq!(Schedule::default(), Schedule::OBSERVED);
        assert_eq!(Schedule::default().to_string(), "decode-kv-bind,async");
        assert_eq!("default".parse::<Schedule>().unwrap(), Schedule::OBSERVED);
        assert_eq!(Schedule::OBSERVED.calls_per_token(28), 34);
        assert_eq!(Schedule::SAFE.calls_per_token(28), 89);
        assert_eq!(Schedule::FEWEST_CALLS.calls_per_token(28), 31);
        assert_eq!("kv-bind".parse::<Schedule>().unwrap().calls_per_token(36), 41);
        assert_eq!("async,fewest-calls".parse::<Schedule>().unwrap().calls_per_token(28), 32);
    }
}
