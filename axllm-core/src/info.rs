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
    /// Device memory used by this model (buffers plus model files).
    pub device_bytes: u64,
    /// The id the runtime reports for the card in use.
    pub device_id: i32,
    /// The runtime library loaded.
    pub runtime_path: PathBuf,
    /// Load time.
    pub load_duration: Duration,
}
