//! The one error type of the library. Each variant names what the caller can
//! do about it ([`ErrorKind`]); causes are kept as sources, not flattened into
//! the message.

use std::path::{Path, PathBuf};

/// A boxed lower-level cause (an I/O, JSON, tokenizer or loader error).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong, from a missing runtime library to a full context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value the caller passed is out of range or malformed (a token id, a
    /// parameter, a device index). Nothing was changed.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong with it.
        message: String,
    },
    /// The AXCL runtime library cannot be loaded, lacks a symbol the project
    /// needs, or fails to initialise: install the runtime or pass its path.
    #[error("the AXCL runtime library is unavailable ({library}): {reason}")]
    RuntimeUnavailable {
        /// The library (or the candidates) tried.
        library: String,
        /// What went wrong.
        reason: String,
        /// The loader's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The model package is unusable: a file is missing, unreadable, malformed,
    /// inconsistent with the others, or named outside the package. `file` is
    /// relative to `package` when it lies inside it (empty: the package itself).
    #[error("bad model package {}{}: {reason}", .package.display(), file_suffix(.file))]
    BadPackage {
        /// The package directory as the caller named it.
        package: PathBuf,
        /// The file at fault.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The I/O, JSON or tokenizer error behind it, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The prompt does not fit in the model's context. The model is unchanged.
    #[error("prompt of {tokens} tokens does not fit the context of {max} positions")]
    PromptTooLong {
        /// Tokens asked for.
        tokens: usize,
        /// Positions the context has.
        max: usize,
    },
    /// The card has no room for what was asked (a model or a buffer): free
    /// another model and retry. Nothing stays allocated.
    #[error("out of NPU memory: {call}{} failed with status {status:#010x}{}", bytes_suffix(*.bytes), detail_suffix(.detail))]
    OutOfMemory {
        /// The runtime call.
        call: &'static str,
        /// Its status.
        status: i32,
        /// Bytes asked for, when known.
        bytes: Option<u64>,
        /// The runtime's explanation or the file involved.
        detail: String,
    },
    /// The card stopped answering (it dropped off the bus or needs a reset):
    /// free the model, reset the card if needed, and load again.
    #[error("the NPU device was lost: {call} failed with status {status:#010x}{}", detail_suffix(.detail))]
    DeviceLost {
        /// The runtime call.
        call: &'static str,
        /// Its status.
        status: i32,
        /// The runtime's explanation.
        detail: String,
    },
    /// A runtime call failed. The request is lost; the next one starts from a
    /// clean cache, or reports [`Error::Poisoned`] if the model cannot recover.
    #[error("{call} failed with status {status:#010x}{}", detail_suffix(.detail))]
    Runtime {
        /// The runtime call.
        call: &'static str,
        /// Its status.
        status: i32,
        /// The runtime's explanation or the file involved.
        detail: String,
    },
    /// An earlier device failure left the model unusable: load it again.
    #[error("the model is unusable after an earlier NPU failure; load it again")]
    Poisoned {
        /// The failure that could not be recovered from.
        #[source]
        source: Box<Error>,
    },
}

/// What the caller can do about an [`Error`]; maps 1:1 onto the C ABI's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Fix the argument.
    InvalidArgument,
    /// Install the runtime or pass its path.
    RuntimeUnavailable,
    /// Fix or replace the model package.
    BadPackage,
    /// Shorten the prompt.
    PromptTooLong,
    /// Free device memory (another model) and retry.
    OutOfMemory,
    /// Reset the card and load the model again.
    DeviceLost,
    /// Retry; load the model again if it keeps failing.
    RuntimeFailure,
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() { String::new() } else { format!(": {detail}") }
}

fn bytes_suffix(bytes: Option<u64>) -> String {
    bytes.map_or_else(String::new, |b| format!(" of {b} bytes"))
}

fn file_suffix(file: &Path) -> String {
    if file.as_os_str().is_empty() { String::new() } else { format!(": {}", file.display()) }
}

impl Error {
    /// What the caller can do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::RuntimeUnavailable { .. } => ErrorKind::RuntimeUnavailable,
            Error::BadPackage { .. } => ErrorKind::BadPackage,
            Error::PromptTooLong { .. } => ErrorKind::PromptTooLong,
            Error::OutOfMemory { .. } => ErrorKind::OutOfMemory,
            Error::DeviceLost { .. } => ErrorKind::DeviceLost,
            Error::Runtime { .. } => ErrorKind::RuntimeFailure,
            Error::Poisoned { source } => match source.kind() {
                ErrorKind::DeviceLost => ErrorKind::DeviceLost,
                _ => ErrorKind::RuntimeFailure,
            },
        }
    }

    /// True when the failure means "does not fit on the card": a caller may free
    /// another model and retry.
    pub fn is_out_of_memory(&self) -> bool {
        self.kind() == ErrorKind::OutOfMemory
    }

    /// True for failures of the NPU or its runtime (as opposed to bad input).
    pub fn is_device_failure(&self) -> bool {
        matches!(self.kind(), ErrorKind::OutOfMemory | ErrorKind::DeviceLost | ErrorKind::RuntimeFailure)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidArgument { message: message.into() }
    }

    /// A bad file whose package is not known here; [`Error::in_package`] fills it in.
    pub(crate) fn bad_file(file: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::BadPackage { package: PathBuf::new(), file: file.into(), reason: reason.into(), source: None }
    }

    /// Like [`Error::bad_file`], keeping the cause.
    pub(crate) fn bad_file_from(
        file: impl Into<PathBuf>,
        reason: impl Into<String>,
        source: impl Into<Cause>,
    ) -> Error {
        Error::BadPackage {
            package: PathBuf::new(),
            file: file.into(),
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    /// Names the package of a [`Error::BadPackage`] that has none yet, and makes
    /// its file relative to the package when it lies inside.
    pub(crate) fn in_package(self, root: &Path) -> Error {
        match self {
            Error::BadPackage { package, file, reason, source } if package.as_os_str().is_empty() => {
                let file = file.strip_prefix(root).map(Path::to_path_buf).unwrap_or(file);
                Error::BadPackage { package: root.to_path_buf(), file, reason, source }
            }
            other => other,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn bad_package_names_the_file_relative_to_the_package_and_keeps_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::bad_file_from("/pkg/sub/config.json", "cannot read", io).in_package(Path::new("/pkg"));
        assert_eq!(e.to_string(), "bad model package /pkg: sub/config.json: cannot read");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("denied"));
        assert_eq!(e.kind(), ErrorKind::BadPackage);
        let outside = Error::bad_file("/etc/passwd", "outside").in_package(Path::new("/pkg"));
        assert!(outside.to_string().contains(": /etc/passwd: outside"), "{outside}");
    }

    #[test]
    fn kinds_say_what_to_do() {
        let lost =
            Error::DeviceLost { call: "axclrtEngineExecute", status: 0x8030_0105u32 as i32, detail: String::new() };
        assert!(lost.is_device_failure() && !lost.is_out_of_memory());
        let poisoned = Error::Poisoned { source: Box::new(lost) };
        assert_eq!(poisoned.kind(), ErrorKind::DeviceLost);
        assert!(poisoned.source().is_some_and(|s| s.to_string().contains("device was lost")));
        let oom = Error::OutOfMemory { call: "axclrtMalloc", status: 7, bytes: Some(64), detail: String::new() };
        assert!(oom.is_out_of_memory() && oom.is_device_failure());
        assert_eq!(oom.to_string(), "out of NPU memory: axclrtMalloc of 64 bytes failed with status 0x00000007");
        assert!(!Error::invalid("x").is_device_failure());
    }
}
