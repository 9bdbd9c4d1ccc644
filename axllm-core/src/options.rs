//! The parameters of a load and of a generation. Every setting of the library
//! is here: nothing is read from the environment (only the outermost layer,
//! an example's flags or Ollama's runner, does that and passes the values in).

use crate::engine::{Inferred, LoadMethod, Schedule};
use crate::grammar::Format;
use crate::sampling::SamplingOptions;
use std::path::PathBuf;

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Index into the runtime's device list (not the device id).
    pub device_index: usize,
    /// The AXCL runtime library. `None`: `libaxcl_rt.so` through the dynamic
    /// loader, then `/usr/lib/axcl/libaxcl_rt.so`. One runtime per process: a
    /// second model must name the same library (or none).
    pub runtime_library: Option<PathBuf>,
    /// How model files reach the card.
    pub load_method: LoadMethod,
    /// Which runtime calls each step makes ([`Schedule::OBSERVED`] by default).
    pub schedule: Schedule,
    /// Directories outside the package that its symlinks may point into, for
    /// a package made of links into a content store (Ollama's runner passes
    /// its blob store). Names in the package's configuration must stay inside
    /// the package whatever this holds. Normally empty.
    pub link_roots: Vec<PathBuf>,
    /// Hybrid models (Qwen3.5): device slots for snapshots of the linear
    /// layers' state (each [`crate::ModelInfo::snapshot_bytes`]); `None`:
    /// [`DEFAULT_SNAPSHOT_SLOTS`]. 0 keeps none: a prompt then reuses the
    /// cache only when it extends it.
    pub snapshot_slots: Option<usize>,
    /// Hybrid models: what the card is assumed to do where that is not known
    /// (the default: what the vendor runner assumes).
    pub inferred: Inferred,
    /// CMM (MiB) the memory guard keeps free for the runtime when it checks,
    /// before loading, that the model fits; `None`: 128 MiB, the vendor
    /// runner's `mem_guard_floor_mb` default.
    pub mem_guard_floor_mb: Option<u64>,
    /// KV slots: sequences whose K/V caches the card holds at once (each
    /// [`crate::ModelInfo::kv_slot_bytes`]); as many generations run at once,
    /// taking turns token by token, and a conversation's next turn reuses its
    /// slot's cache even after other prompts ran. The default is one slot;
    /// [`KvSlots::Auto`] lets the card's free memory decide. A hybrid model
    /// (Qwen3.5) keeps 1 whatever this says.
    pub kv_slots: KvSlots,
    /// Device bytes the decode input tables may take
    /// ([`crate::InputUpload::Tables`]: each position's `indices` and `mask`
    /// in its own buffer, written at load); positions past the budget upload
    /// their inputs per token. `None`: [`DEFAULT_INPUT_TABLE_BUDGET`].
    pub input_table_budget: Option<u64>,
}

/// How many KV slots a load allocates ([`LoadOptions::kv_slots`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvSlots {
    /// Exactly this many, 1 to [`MAX_KV_SLOTS`] (0 or more than that is
    /// refused with [`crate::ErrorKind::InvalidArgument`]).
    Count(usize),
    /// Chosen at load from the card's free CMM and the model's own sizes:
    /// up to [`AUTO_KV_SLOTS_MAX`] in all, the slots beyond the first only
    /// while together they take at most a quarter of the CMM left free once
    /// the model's files are on the card and its buffers with one slot and
    /// the guard's floor ([`LoadOptions::mem_guard_floor_mb`]) are set
    /// aside; at least 1. A runtime that does not report its free CMM gets 1.
    /// [`crate::ModelInfo::kv_slots`] reports the count, and the memory guard
    /// counts it as it counts an explicit one.
    Auto,
}

impl Default for KvSlots {
    /// One slot (what a load got before slots were a parameter).
    fn default() -> Self {
        KvSlots::Count(1)
    }
}

/// Device bytes the decode input tables take at most by default: every
/// position of a 4k context (8 KiB masks), the first ~4k positions of longer ones.
pub const DEFAULT_INPUT_TABLE_BUDGET: u64 = 64 << 20;

/// The most KV slots a load may ask for.
pub const MAX_KV_SLOTS: usize = 64;

/// The most KV slots [`KvSlots::Auto`] chooses: a chat plus the background
/// requests a front-end sends beside it (a title, tags, a search query).
pub const AUTO_KV_SLOTS_MAX: usize = 4;

/// Snapshot slots of a hybrid model when [`LoadOptions::snapshot_slots`] is
/// unset: the ends of a few turns and chunks (about 10 MiB each for
/// Qwen3.5-0.8B with bf16 state).
pub const DEFAULT_SNAPSHOT_SLOTS: usize = 8;

/// Options of one generation.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// How tokens are chosen.
    pub sampling: SamplingOptions,
    /// Most tokens to generate; `None` means until an end token or the context limit.
    pub num_predict: Option<usize>,
    /// Strings that end the generation (they are not part of the text).
    pub stop: Vec<String>,
    /// Apply the tokenizer's post-processor (BOS for Llama) to a text prompt.
    pub add_special_tokens: bool,
    /// What the output must be (JSON, or JSON valid for a schema), enforced
    /// token by token; `None`: free text.
    pub format: Option<Format>,
    /// With a format: strings any of which closes a thinking block that the
    /// output begins with (`"</think>"`); the format applies only after it.
    /// Empty: the format applies from the first token.
    pub thinking_close: Vec<String>,
    /// Record the log probability of each generated token
    /// ([`crate::Generation::take_logprobs`]).
    pub logprobs: bool,
    /// With `logprobs`: how many of the most likely tokens to record at each
    /// position (at most [`crate::MAX_TOP_LOGPROBS`]).
    pub top_logprobs: usize,
}
