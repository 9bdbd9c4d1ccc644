//! `axllm_package_check`: a package's static checks, without the NPU runtime
//! (what `ollama create` runs before it stores a model).

use crate::boundary::{CError, c_str, ffi, out, write_text};
use crate::types::{axllm_generate_params, axllm_status};
use axllm_core::SamplingOptions;
use axllm_core::check::check_package;
use std::ffi::c_char;
use std::path::Path;

/// What a package's files say about the model (see `axllm_package_check`).
/// Sizes the files do not state are 0: for real `.axmodel` files only the
/// runtime reports the shape groups, so the context length is known once
/// the model is loaded (`axllm_model_info`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct axllm_package_info {
    /// Decoder layers.
    pub layers: u32,
    /// Positions a conversation may occupy; 0 when not known without the card.
    pub context_length: u32,
    /// The longest prompt prefilled in chunks; 0 when not known without the card.
    pub max_prefill: u32,
    /// 0 when not known without the card.
    pub hidden_size: u32,
    /// 0 when not known without the card.
    pub vocab_size: u32,
    /// True when the package has its own sampling defaults (`post_config.json`).
    pub has_sampling_defaults: bool,
    /// The sampling defaults a loaded model uses (`axllm_model_generate_params`):
    /// the package's when `has_sampling_defaults`, else Ollama's. `stop` is NULL.
    pub sampling_defaults: axllm_generate_params,
}

fn count(n: Option<usize>) -> u32 {
    n.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// Checks the model package at `dir` as the loader does, as far as the files
/// go without the NPU (the runtime library is not loaded): the layout and
/// layer count, the tokenizer, `post_config.json`, the embedding table, and
/// every model file read to its end. On success fills `*out_info` and writes
/// the tokenizer's chat template ("" when it has none) to `chat_template` as
/// NUL-terminated UTF-8, storing its length without the NUL in
/// `*chat_template_len`. When `capacity` is less than that length + 1 the
/// call returns `AXLLM_ERR_BUFFER_TOO_SMALL` (with `*out_info` filled);
/// `chat_template` may be NULL with `capacity` 0 to ask for the length. On
/// a failed check: `AXLLM_ERR_MODEL_NOT_FOUND` or `AXLLM_ERR_BAD_MODEL`, and
/// `axllm_last_error()` names the file at fault.
///
/// # Safety
/// `dir` is a NUL-terminated string; `out_info` and `chat_template_len` are
/// valid pointers; `chat_template` is NULL or valid for `capacity` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_package_check(
    dir: *const c_char,
    out_info: *mut axllm_package_info,
    chat_template: *mut c_char,
    capacity: usize,
    chat_template_len: *mut usize,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let dir = unsafe { c_str(dir, "dir") }?;
        // SAFETY: caller's contract.
        let info = unsafe { out(out_info, "out_info") }?;
        // SAFETY: caller's contract.
        let len = unsafe { out(chat_template_len, "chat_template_len") }?;
        let report = check_package(Path::new(dir)).map_err(CError::from)?;
        let defaults = report.sampling_defaults;
        *info = axllm_package_info {
            layers: count(Some(report.files.layers.len())),
            context_length: count(report.context_length()),
            max_prefill: count(report.max_prefill()),
            hidden_size: count(report.hidden()),
            vocab_size: count(report.vocab),
            has_sampling_defaults: defaults.is_some(),
            sampling_defaults: crate::params_from_sampling(defaults.unwrap_or_else(SamplingOptions::default)),
        };
        // SAFETY: caller's contract.
        unsafe { write_text(report.chat_template.as_deref().unwrap_or("").as_bytes(), chat_template, capacity, len) }
    })
}
