//! The one error type of the library, named for what a caller can act on.

use std::path::PathBuf;

/// Everything that can go wrong, from a missing runtime library to a full context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The AXCL runtime library could not be opened.
    #[error("cannot load the AXCL runtime library ({tried}): {reason}")]
    RuntimeNotFound { tried: String, reason: String },
    /// The library opened but lacks a symbol the project needs.
    #[error("the AXCL runtime library {path} is unusable: {reason}")]
    RuntimeSymbols { path: PathBuf, reason: String },
    /// A vendor call returned a non-zero status.
    #[error("{call} failed with status {status:#010x}{}", detail_suffix(.detail))]
    Vendor { call: &'static str, status: i32, detail: String },
    /// The card has no room for what was asked (a load or an allocation).
    #[error("out of NPU memory: {call} of {bytes} bytes failed with status {status:#010x}{}", detail_suffix(.detail))]
    DeviceOutOfMemory { call: &'static str, status: i32, bytes: u64, detail: String },
    /// The device index is not in the runtime's device list.
    #[error("device index {index} is out of range: the runtime lists {count} device(s)")]
    NoSuchDevice { index: usize, count: usize },
    /// A file of the model directory is missing.
    #[error("missing model file {}: {what}", .path.display())]
    MissingFile { path: PathBuf, what: String },
    /// A file of the model directory is present but wrong.
    #[error("bad model file {}: {reason}", .path.display())]
    BadFile { path: PathBuf, reason: String },
    /// The directory itself does not look like a model package.
    #[error("{} is not an AX650 model directory: {reason}", .path.display())]
    NotAModelDir { path: PathBuf, reason: String },
    /// The tokenizer could not be loaded or could not encode/decode.
    #[error("tokenizer {}: {reason}", .path.display())]
    Tokenizer { path: PathBuf, reason: String },
    /// The prompt does not fit in the model's context.
    #[error("prompt of {tokens} tokens does not fit the context of {max} positions")]
    PromptTooLong { tokens: usize, max: usize },
    /// A caller-supplied value is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A chat could not be rendered: no chat template in the package, a
    /// malformed request, or a template that refuses the conversation.
    #[error("{0}")]
    ChatTemplate(String),
    /// A previous device failure left the model unusable; load it again.
    #[error("the model is unusable after an earlier NPU failure ({0}); load it again")]
    Poisoned(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() { String::new() } else { format!(": {detail}") }
}

impl Error {
    /// True when the failure means "does not fit on the card": a caller may free
    /// another model and retry.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, Error::DeviceOutOfMemory { .. })
    }

    /// True for failures of the NPU or its runtime (as opposed to bad input).
    pub fn is_device_failure(&self) -> bool {
        matches!(self, Error::Vendor { .. } | Error::DeviceOutOfMemory { .. } | Error::Poisoned(_))
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
