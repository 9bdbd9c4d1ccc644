//! Statuses and the last error message. Every Rust [`axllm_core::ErrorKind`]
//! has exactly one status; the numbers are stable and spaced by group.

use axllm_core::ErrorKind;

/// Result of every axllm function. Numbers are stable; groups are spaced by
/// 100. Each says what the caller can do and the state the call leaves.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum axllm_status {
    /// Success.
    AXLLM_OK = 0,
    /// A NULL pointer, a string that is not UTF-8, an unknown or freed handle,
    /// a params struct of an unknown size, or a value out of range. Fix the
    /// argument. Nothing was changed.
    AXLLM_ERR_INVALID_ARGUMENT = 100,
    /// The caller's buffer is too small; the size needed was stored and the
    /// data is kept for the next call. Nothing was lost.
    AXLLM_ERR_BUFFER_TOO_SMALL = 101,
    /// The AXCL runtime library cannot be loaded, lacks symbols or does not
    /// initialise. Install it or pass its path. Nothing was loaded.
    AXLLM_ERR_RUNTIME_UNAVAILABLE = 200,
    /// The model package is unusable: a file is missing, unreadable,
    /// malformed, inconsistent, or named outside the package (the message
    /// names the file). Fix the package. Nothing stays loaded.
    /// (201, a missing package before, is reported with this status.)
    AXLLM_ERR_BAD_PACKAGE = 202,
    /// The prompt does not fit in the model's context. Shorten it. The model
    /// is unchanged.
    AXLLM_ERR_PROMPT_TOO_LONG = 300,
    /// The NPU has no memory for the model or a buffer. Free another model
    /// and retry. Nothing stays allocated.
    AXLLM_ERR_OUT_OF_MEMORY = 400,
    /// A runtime call failed. The generation is over; the next one starts
    /// from a clean cache. If failures persist, free the model and load it again.
    AXLLM_ERR_RUNTIME_FAILURE = 401,
    /// The card stopped answering. The model is unusable: free it, reset the
    /// card if needed, and load it again.
    AXLLM_ERR_DEVICE_LOST = 402,
    /// A bug inside axllm was caught at the boundary. Free the handle involved.
    AXLLM_ERR_PANIC = 900,
}

/// The status of each error kind (1:1).
pub(crate) fn status_of(kind: ErrorKind) -> axllm_status {
    use axllm_status::*;
    match kind {
        ErrorKind::InvalidArgument => AXLLM_ERR_INVALID_ARGUMENT,
        ErrorKind::RuntimeUnavailable => AXLLM_ERR_RUNTIME_UNAVAILABLE,
        ErrorKind::BadPackage => AXLLM_ERR_BAD_PACKAGE,
        ErrorKind::PromptTooLong => AXLLM_ERR_PROMPT_TOO_LONG,
        ErrorKind::OutOfMemory => AXLLM_ERR_OUT_OF_MEMORY,
        ErrorKind::DeviceLost => AXLLM_ERR_DEVICE_LOST,
        ErrorKind::RuntimeFailure => AXLLM_ERR_RUNTIME_FAILURE,
        // ErrorKind is non-exhaustive: a kind added later is a runtime failure
        // until it gets its own status.
        _ => AXLLM_ERR_RUNTIME_FAILURE,
    }
}
