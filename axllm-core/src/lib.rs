//! axllm-core: run AXERA AX650 NPU LLM packages.
//!
//! Load a vendor model package onto the card through the AXCL runtime (loaded
//! at run time), then generate text from it:
//!
//! ```no_run
//! use axllm_core::{GenerateOptions, LoadOptions, Model, Step};
//! # fn main() -> axllm_core::Result<()> {
//! let model = Model::load("/models/Qwen3-0.6B".as_ref(), &LoadOptions::default())?;
//! let mut g = model.begin("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", &GenerateOptions::default())?;
//! while let Step::Text(piece) = g.next()? {
//!     print!("{piece}");
//! }
//! # Ok(()) }
//! ```
//!
//! # The public API
//!
//! Everything a user of the crate needs is re-exported here; the modules
//! behind it (the package on disk, the NPU bindings, the layer loop, the
//! sampler) are private.
//!
//! * Loading: [`Model::load`] / [`Model::load_with_progress`] with
//!   [`LoadOptions`] (device, runtime library, [`LoadMethod`], [`Schedule`]
//!   with its parts [`KvWrite`], [`InputUpload`], [`Execution`], link roots),
//!   reporting [`LoadProgress`]; [`ModelInfo`] says what was loaded. For
//!   hybrid models (Qwen3.5), [`Inferred`] holds what the card is assumed to
//!   do where it is not known, and [`LoadOptions::snapshot_slots`] (default
//!   [`DEFAULT_SNAPSHOT_SLOTS`]) bounds the recurrent-state snapshots.
//! * Generating: [`Model::begin`] / [`Model::begin_tokens`] with
//!   [`GenerateOptions`] and [`SamplingOptions`] start a [`Generation`]; its
//!   [`Generation::next`] returns [`Step`]s until the [`StopReason`];
//!   [`CancelHandle`] cancels from another thread; [`Stats`] counts;
//!   [`Model::generate`] runs one to its [`Completion`].
//! * Structured outputs and logprobs: [`GenerateOptions::format`] takes a
//!   [`Format`] (JSON or a JSON schema) enforced token by token;
//!   [`GenerateOptions::logprobs`] makes [`Generation::take_logprobs`] return
//!   [`TokenLogprob`]s ([`TopLogprob`] alternatives, at most [`MAX_TOP_LOGPROBS`]).
//! * Embeddings: [`Model::embed`] with [`EmbedOptions`] gives an [`Embedding`].
//! * Tokens: [`Model::tokenizer`] gives the [`Tokenizer`]; [`StreamDecoder`]
//!   turns a token stream into whole UTF-8 pieces.
//! * Chats: [`Model::render_chat`] renders a conversation with the package's
//!   own chat template, as Hugging Face transformers does.
//! * The layer loop directly: [`Model::session`] gives a [`Session`] that feeds
//!   tokens and returns logits, reporting a [`PromptFeed`].
//! * Checking a package without the card (what `ollama create` runs before it
//!   stores one): [`check_package`] gives a [`PackageReport`].
//! * Errors: [`Error`], whose [`ErrorKind`] says what the caller can do;
//!   [`Result`]; [`Cause`] for the sources it keeps.
//! * Diagnostics of the test bed: [`Model::simulator`] gives a [`Simulator`]
//!   with [`SimulatorCounters`] when the runtime is axcl-sim.
//!
//! The library reads no environment variable: every setting is a parameter.
//!
//! The `internals` feature (off by default, not a stable API) makes the
//! internal modules public for the workspace's benchmark, fuzz targets and
//! inspection example.
#![deny(unsafe_code)]
#![deny(missing_docs)]

/// Declares an internal module: private, or public (undocumented, unstable)
/// with the `internals` feature.
macro_rules! internal {
    ($(#[$attr:meta])* mod $name:ident;) => {
        #[cfg(feature = "internals")]
        #[allow(missing_docs)]
        #[doc(hidden)]
        $(#[$attr])*
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        $(#[$attr])*
        mod $name;
    };
}

internal! { mod engine; }
internal! { mod npu; }
internal! { mod package; }
internal! { mod sampling; }
internal! { mod stop; }

mod chat;
mod check;
mod diagnostics;
mod embedding;
mod error;
mod generation;
mod grammar;
mod guide;
mod info;
mod model;
mod options;
mod session;
mod shared;
mod stats;

pub use check::{PackageReport, check_package};
pub use diagnostics::{Simulator, SimulatorCounters};
pub use engine::{ChunkRun, Execution, Inferred, InputUpload, KvWrite, LoadMethod, LoadProgress, LogitsRead, PromptFeed, Schedule};
pub use embedding::{EmbedOptions, Embedding};
pub use error::{Cause, Error, ErrorKind, Result};
pub use generation::{CancelHandle, Completion, Generation, Step};
#[doc(hidden)]
pub use grammar::{QWEN_BPE_TOKENS, QWEN3_IM_END, QWEN3_VOCAB, mask_cost, qwen3_tokenizer_json};
pub use grammar::Format;
pub use guide::{MAX_TOP_LOGPROBS, TokenLogprob, TopLogprob};
pub use info::ModelInfo;
pub use model::Model;
pub use options::{AUTO_KV_SLOTS_MAX, DEFAULT_INPUT_TABLE_BUDGET, DEFAULT_SNAPSHOT_SLOTS, GenerateOptions, KvSlots, LoadOptions, MAX_KV_SLOTS};
pub use package::{StreamDecoder, Tokenizer};
pub use sampling::SamplingOptions;
pub use session::Session;
pub use stats::{Stats, StopReason};
