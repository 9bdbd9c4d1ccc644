//! The call schedule: which runtime calls one step makes.
//!
//! The default is the fastest schedule whose every call pattern has been
//! seen working on a card, by AXERA's runner or by the independent
//! ggml-axcl driver (hardware-facts: F22, F23, F36, F37):
//!
//! * decode writes each layer's new K/V row in place: `K_cache_out` and
//!   `V_cache_out` bound at the row's offset inside the layer's K/V buffer
//!   (ggml-axcl, F23); every other tensor but `indices` and `mask` stays
//!   bound as at load (bind-once static IO, ggml-axcl and AXERA's runner);
//! * the first layer's hidden state lives in a dedicated buffer refreshed by
//!   one copy per step; `indices` and the decode `mask` depend only on the
//!   position, so each position has its own pair of dedicated exact-size
//!   buffers, written once at load, and a decode step rebinds every layer's
//!   `indices`/`mask` inputs to its position's pair (`input-tables`; an input
//!   rebound to another dedicated allocation before each call is what the
//!   independent driver's hidden-state ping-pong does, F37; offset binds of
//!   `mask`/`indices` misbehaved on V3.6.5, F23: `packed-inputs` stays
//!   opt-in). Without the tables (`upload-inputs`, a runtime that refuses
//!   the allocations, or positions past their budget) the two are refreshed
//!   by one copy each, as before;
//! * the executes of a step are chained on one stream with one
//!   synchronisation per step (ggml-axcl, F22);
//! * prefill binds as AXERA's runner does: one IO per shape group, each
//!   tensor in its own buffer at the group's sizes, no offset binds, K/V rows
//!   through staging buffers and a device-to-device scatter (ggml-axcl found
//!   chunk groups correct only this way, F23). Each full layer has its own
//!   pair of staging outputs, so a chunk is staged: its executes are chained
//!   on the stream with one synchronisation (the chain of F22), then the
//!   synchronous scatter copies run, none of them behind a queued execute
//!   (queued copies were not seen on a card: `async-copies` is opt-in).
//!
//! Calls per decode token, `L` layers (each line: H2D + executes + D2D + D2H):
//!
//! | schedule | calls | H2D | executes | D2D | D2H |
//! |---|---|---|---|---|---|
//! | vendor runner (for comparison) | `6L + 3` | `2L + 1` | `L + 1` | `3L` | 1 |
//! | default (`decode-kv-bind,input-tables,async`) | `L + 4` | 1 | `L + 1` | 0 | 1 |
//! | `decode-kv-bind,async` (the default before the tables) | `L + 6` | 3 | `L + 1` | 0 | 1 |
//! | `safe` | `3L + 5` | 3 | `L + 1` | `2L` | 1 |
//! | `packed-inputs` | `3L + 3` | 1 | `L + 1` | `2L` | 1 |
//! | `kv-bind`, `decode-kv-bind` | `L + 5` | 3 | `L + 1` | 0 | 1 |
//! | `fewest-calls` (both) | `L + 3` | 1 | `L + 1` | 0 | 1 |
//!
//! `input-tables` takes two uploads off any schedule's decode step (the
//! counts above without it have 3 H2D; with it 1) and changes nothing in
//! prefill, whose chunks keep their three uploads; a decode position past
//! the tables' budget makes the two uploads again (2 calls more than the
//! table says). `inputs-ahead` (opt-in)
//! keeps the counts of `Separate` inputs; two of the three uploads are
//! queued behind the previous step instead of waited for. `inputs-ahead` and
//! `packed-inputs` replace the tables (the last of the three tokens wins):
//! the tables would make their decode uploads pointless.
//!
//! `async` (combinable with any of them, e.g. `fewest-calls,async`) queues the
//! executions of a step on a stream and adds one synchronisation per step:
//! one more call, but the caller no longer waits for each round trip. The
//! chain that was seen on a card is one of executes (F22), and a synchronous
//! copy must not read an output that a queued execute has not written yet.
//! So under `async` a prefill chunk whose K/V rows are copied is staged
//! ([`Schedule::stages_chunks`]): every full layer writes its own pair of
//! chunk outputs (allocated at load: `2 × T × kv_dim × 2` bytes per layer,
//! 14.7 MB for Qwen3-0.6B), the chunk's executes are queued, one
//! synchronisation waits for them, and the `2L` copies (and a linear layer's
//! state copies) follow synchronously: per chunk `L` round-trip waits fewer
//! than waiting for every execute. A decode step that copies (every step of
//! `safe,async`) runs synchronously as the vendor runner does.
//! `waited-chunks` turns the staging off (every call of a chunk waited for,
//! as before it; what a card that refuses queued chunk groups would need).
//! `async-copies` (opt-in, never seen on a card) queues those copies on the
//! stream too (`axclrtMemcpyAsync`, ordered after the execute that wrote the
//! rows). `queued-logits` (opt-in, never seen on a card) queues a queued
//! decode step's logits copy behind its post model, so the step's one
//! synchronisation also covers the copy: the same calls, one wait fewer.
//!
//! With a queued decode step the library pipelines generation (see
//! [`crate::Generation::next`]): once a token is sampled and continues, its
//! step is uploaded and queued before the host does the rest of the token's
//! work, and the next call synchronises and reads the logits. The calls per
//! token are the same; what changes is that the host work overlaps the card.
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
    /// As [`InputUpload::Separate`], and once a decode step is queued the
    /// `indices` and `mask` of the next position are queued behind it
    /// (`axclrtMemcpyAsync` host-to-device on the step's stream): the next
    /// step uploads only its hidden row before its first execute, unless
    /// another position ran in between. Needs a queued decode step (the
    /// `async` schedules). Open on hardware (queued host-to-device copies
    /// were not seen on a card): opt-in.
    Ahead,
    /// As [`InputUpload::Separate`] for prefill. Decode reads `indices` and
    /// `mask` from per-position tables: one dedicated exact-size allocation
    /// per tensor and decode position, written once at load; each step
    /// rebinds every layer's `indices`/`mask` to its position's pair (host-local,
    /// no message) and uploads only its hidden row. Rebinding an input to
    /// another dedicated allocation before each call was seen working on a
    /// card (the hidden-state ping-pong of the independent driver,
    /// hardware-facts: F37). The default. Positions past the tables' budget,
    /// or all of them when the runtime refuses the allocations, upload as
    /// [`InputUpload::Separate`] does.
    Tables,
}

/// Whether a step waits for each execution and copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Execution {
    /// Every call returns when the card is done (the vendor runners).
    #[default]
    Sync,
    /// The executions of a step that makes no device-to-device copy are
    /// queued on one stream (`axclrtEngineExecuteAsync`), which is
    /// synchronised once per step before the logits are read or new inputs
    /// are written (seen on a card, hardware-facts: F22). A prefill chunk
    /// that copies its K/V rows is staged (its executes queued, one
    /// synchronisation, then the copies: [`Schedule::stages_chunks`]); a
    /// decode step that copies runs as under [`Execution::Sync`]. Host-to-device and device-to-host
    /// copies stay synchronous, so no host buffer is used after its call
    /// returns. Open on hardware: how much of a round trip the runtime saves
    /// by queuing (the simulator assumes the caller waits only for the
    /// request to reach the card).
    Async,
    /// As [`Execution::Async`], and the device-to-device copies are queued on
    /// the same stream too (`axclrtMemcpyAsync`): every step is one chain.
    /// Open on hardware (not seen on a card): opt-in.
    AsyncCopies,
}

impl Execution {
    /// Whether a step that makes device-to-device copies (`copies`) queues its work.
    pub fn queues(self, copies: bool) -> bool {
        match self {
            Execution::Sync => false,
            Execution::Async => !copies,
            Execution::AsyncCopies => true,
        }
    }
}

/// How a queued decode step's logits reach the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogitsRead {
    /// A synchronous device-to-host copy after the step's synchronisation.
    #[default]
    Sync,
    /// Queued behind the post model (`axclrtMemcpyAsync` device-to-host into
    /// a second pinned buffer), so the step's one synchronisation covers it:
    /// AXERA's documented single-stream flow (H2D, execute, D2H, synchronise),
    /// not seen on a card: opt-in (`queued-logits`). Only decode steps that
    /// are queued (the `async` schedules) use it; the call count is the same.
    Queued,
}

/// How a prefill chunk whose K/V rows are copied runs under [`Execution::Async`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChunkRun {
    /// Staged: every full layer writes its own chunk outputs, the chunk's
    /// executes are queued on the stream with one synchronisation, then the
    /// copies run synchronously (hardware-facts: F38, the F22 chain applied
    /// to chunk groups). The default.
    #[default]
    Staged,
    /// Every execute and copy of the chunk waited for, as AXERA's runner and
    /// the independent driver do (`waited-chunks`): what a card that refuses
    /// queued chunk groups would need.
    Waited,
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
    /// How a queued decode step's logits reach the host.
    pub logits: LogitsRead,
    /// How a prefill chunk that copies runs under [`Execution::Async`].
    pub chunks: ChunkRun,
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
        Schedule { kv_write: KvWrite::BindDecodeRow, inputs: InputUpload::Tables, execution: Execution::Async, logits: LogitsRead::Sync, chunks: ChunkRun::Staged };
    /// The vendor runners' documented path: dedicated buffers, D2D row
    /// copies, every call waited for (the default before the card measurements).
    pub const SAFE: Schedule =
        Schedule { kv_write: KvWrite::Copy, inputs: InputUpload::Separate, execution: Execution::Sync, logits: LogitsRead::Sync, chunks: ChunkRun::Staged };
    /// Both buffer opt-ins: the fewest round trips per token.
    pub const FEWEST_CALLS: Schedule =
        Schedule { kv_write: KvWrite::BindOutputAtRow, inputs: InputUpload::Packed, execution: Execution::Sync, logits: LogitsRead::Sync, chunks: ChunkRun::Staged };

    /// Whether a prefill chunk whose K/V rows are copied is staged: under
    /// [`Execution::Async`], every full layer has its own chunk outputs, the
    /// chunk's executes are queued with one synchronisation, and the copies
    /// follow (module docs). Not under `kv-bind`, whose full chunks copy nothing.
    pub fn stages_chunks(&self) -> bool {
        self.execution == Execution::Async && self.kv_write != KvWrite::BindOutputAtRow && self.chunks == ChunkRun::Staged
    }

    /// Runtime calls per decode token for `layers` decoder layers (see the module table).
    pub fn calls_per_token(&self, layers: usize) -> usize {
        let h2d = if matches!(self.inputs, InputUpload::Packed | InputUpload::Tables) { 1 } else { 3 };
        let d2d = if self.kv_write == KvWrite::Copy { 2 * layers } else { 0 };
        let sync = usize::from(self.execution.queues(d2d > 0));
        h2d + (layers + 1) + d2d + sync + 1
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// `default`, `safe`, `fewest-calls`, or a comma-separated list of those
    /// and `kv-bind`, `decode-kv-bind`, `packed-inputs`, `inputs-ahead`,
    /// `input-tables`, `upload-inputs`, `async`, `async-copies`,
    /// `queued-logits`, `waited-chunks` (each added
    /// to `safe`, or to the default when the list starts with `default`,
    /// e.g. `default,upload-inputs`).
    fn from_str(s: &str) -> Result<Schedule> {
        let mut out = Schedule::SAFE;
        for (i, part) in s.split(',').map(str::trim).enumerate() {
            match part {
                "default" if i == 0 => out = Schedule::default(),
                "safe" => {}
                "decode-kv-bind" => out.kv_write = KvWrite::BindDecodeRow,
                "fewest-calls" => {
                    out.kv_write = KvWrite::BindOutputAtRow;
                    out.inputs = InputUpload::Packed;
                }
                "kv-bind" => out.kv_write = KvWrite::BindOutputAtRow,
                "packed-inputs" => out.inputs = InputUpload::Packed,
                "inputs-ahead" => out.inputs = InputUpload::Ahead,
                "input-tables" => out.inputs = InputUpload::Tables,
                "upload-inputs" => out.inputs = InputUpload::Separate,
                "async" => out.execution = Execution::Async,
                "async-copies" => out.execution = Execution::AsyncCopies,
                "queued-logits" => out.logits = LogitsRead::Queued,
                "waited-chunks" => out.chunks = ChunkRun::Waited,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown schedule {other:?} (expected default, safe, fewest-calls, kv-bind, decode-kv-bind, packed-inputs, inputs-ahead, input-tables, upload-inputs, async, async-copies, queued-logits, waited-chunks; `default` only first)"
                    )));
                }
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let separate = matches!(self.inputs, InputUpload::Ahead | InputUpload::Tables);
        f.write_str(match (self.kv_write, if separate { InputUpload::Separate } else { self.inputs }) {
            (KvWrite::Copy, InputUpload::Packed) => "packed-inputs",
            (KvWrite::Copy, _) => "safe",
            (KvWrite::BindOutputAtRow, InputUpload::Packed) => "fewest-calls",
            (KvWrite::BindOutputAtRow, _) => "kv-bind",
            (KvWrite::BindDecodeRow, InputUpload::Packed) => "decode-kv-bind,packed-inputs",
            (KvWrite::BindDecodeRow, _) => "decode-kv-bind",
        })?;
        match self.inputs {
            InputUpload::Ahead => f.write_str(",inputs-ahead")?,
            InputUpload::Tables => f.write_str(",input-tables")?,
            InputUpload::Separate | InputUpload::Packed => {}
        }
        match self.execution {
            Execution::Sync => {}
            Execution::Async => f.write_str(",async")?,
            Execution::AsyncCopies => f.write_str(",async-copies")?,
        }
        if self.logits == LogitsRead::Queued {
            f.write_str(",queued-logits")?;
        }
        if self.chunks == ChunkRun::Waited {
            f.write_str(",waited-chunks")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_count_calls() {
        for s in [
            "safe",
            "packed-inputs",
            "kv-bind",
            "fewest-calls",
            "safe,async",
            "fewest-calls,async",
            "decode-kv-bind,async",
            "safe,async-copies",
            "decode-kv-bind,inputs-ahead,async",
            "decode-kv-bind,input-tables,async",
            "safe,input-tables",
            "decode-kv-bind,input-tables,async,queued-logits",
            "decode-kv-bind,input-tables,async,waited-chunks",
        ] {
            assert_eq!(s.parse::<Schedule>().unwrap().to_string(), s);
        }
        assert_eq!("kv-bind, packed-inputs".parse::<Schedule>().unwrap(), Schedule::FEWEST_CALLS);
        assert!("fast".parse::<Schedule>().is_err());
        assert_eq!(Schedule::default(), Schedule::OBSERVED);
        assert_eq!(Schedule::default().to_string(), "decode-kv-bind,input-tables,async");
        assert_eq!("default".parse::<Schedule>().unwrap(), Schedule::OBSERVED);
        assert_eq!(" default ".parse::<Schedule>().unwrap(), Schedule::OBSERVED);
        // The tables off: the default before them.
        assert_eq!("default,upload-inputs".parse::<Schedule>().unwrap().to_string(), "decode-kv-bind,async");
        assert!("safe,default".parse::<Schedule>().is_err(), "`default` only starts a list");
        // The last input token wins.
        assert_eq!("input-tables,packed-inputs".parse::<Schedule>().unwrap().inputs, InputUpload::Packed);
        assert_eq!(Schedule::OBSERVED.calls_per_token(28), 32);
        assert_eq!("default,upload-inputs".parse::<Schedule>().unwrap().calls_per_token(28), 34);
        assert_eq!(Schedule::SAFE.calls_per_token(28), 89);
        assert_eq!(Schedule::FEWEST_CALLS.calls_per_token(28), 31);
        assert_eq!("kv-bind".parse::<Schedule>().unwrap().calls_per_token(36), 41);
        assert_eq!("async,fewest-calls".parse::<Schedule>().unwrap().calls_per_token(28), 32);
        // `async` runs a step that copies synchronously; `async-copies` queues it.
        assert_eq!("safe,async".parse::<Schedule>().unwrap().calls_per_token(28), 89);
        assert_eq!("safe,async-copies".parse::<Schedule>().unwrap().calls_per_token(28), 90);
        // Chunks are staged under `async` unless told otherwise; decode is not affected.
        assert!(Schedule::OBSERVED.stages_chunks() && "safe,async".parse::<Schedule>().unwrap().stages_chunks());
        let waited: Schedule = "default,waited-chunks".parse().unwrap();
        assert!(!waited.stages_chunks() && waited.calls_per_token(28) == 32);
        assert!(!Schedule::SAFE.stages_chunks() && !"kv-bind,async".parse::<Schedule>().unwrap().stages_chunks());
    }
}
