//! The state a model shares with its generations and sessions.

use crate::engine::Engine;
use crate::info::ModelInfo;
use crate::npu::Runtime;
use crate::package::{Embeddings, Tokenizer};
use crate::sampling::SamplingOptions;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Everything a model shares with its generations and sessions.
pub(crate) struct Inner {
    pub(crate) engine: Arc<Mutex<Engine>>,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) embeddings: Embeddings,
    pub(crate) info: ModelInfo,
    pub(crate) defaults: SamplingOptions,
    /// The cancel flag of the generation that holds the NPU now.
    pub(crate) current_cancel: Mutex<Option<Arc<AtomicBool>>>,
    /// The vocabulary as the grammar engine sees it (built on first use).
    pub(crate) vocabulary: crate::guide::VocabularyCell,
}
