//! What a loaded model is.

use crate::engine::Schedule;
use std::path::PathBuf;
use std::time::Duration;

/// What a loaded model is.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Display name (the package's `model_name`, else its directory's name).
    pub name: String,
    /// The package directory as it was given to [`crate::Model::load`].
    pub package: PathBuf,
    /// Decoder layers.
    pub layers: usize,
    /// Vocabulary size (logits per token).
    pub vocab: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Prefill chunk length of the compiled model.
    pub chunk: usize,
    /// Positions a conversation may occupy (prompt plus generated tokens).
    pub context_length: usize,
    /// The longest prompt prefilled in chunks from an empty cache; longer
    /// prompts (up to `context_length`) are fed token by token.
    pub max_prefill: usize,
    /// The call schedule in use.
    pub schedule: Schedule,
    /// Device memory used by this model (buffers, snapshot slots, model files).
    pub device_bytes: u64,
    /// Hybrid models (Qwen3.5): decoder layers with linear attention (0 otherwise).
    pub linear_layers: usize,
    /// Hybrid models: device slots for snapshots of the linear layers' state
    /// (0 otherwise).
    pub snapshot_slots: usize,
    /// Hybrid models: the bytes of one snapshot (every linear layer's state).
    pub snapshot_bytes: u64,
    /// KV slots: sequences whose K/V caches the card holds, hence generations
    /// that run at once (1 for a hybrid model whatever the load asked).
    pub kv_slots: usize,
    /// Device bytes of one KV slot (included in `device_bytes` once per slot).
    pub kv_slot_bytes: u64,
    /// Decode positions (from 0) whose `indices` and `mask` live in their own
    /// buffers on the card ([`crate::InputUpload::Tables`]; 0 without the tables).
    pub input_table_positions: usize,
    /// Device bytes of those tables (included in `device_bytes`).
    pub input_table_bytes: u64,
    /// The id the runtime reports for the card in use.
    pub device_id: i32,
    /// The runtime library loaded.
    pub runtime_path: PathBuf,
    /// Load time.
    pub load_duration: Duration,
}
