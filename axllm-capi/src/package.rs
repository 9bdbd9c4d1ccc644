//! `axllm_package_check`: a package's static checks, without the NPU runtime
//! (what `ollama create` runs before it stores a model).

use crate::axllm_status;
use crate::boundary::{CResult, c_str, ffi, out, write_text};
use crate::params::{self, SizedStruct, axllm_generate_params, axllm_load_params};
use axllm_core::SamplingOptions;
use std::ffi::c_char;
use std::mem::{offset_of, size_of};
use std::path::Path;

/// What a package's files say about the model. Filled by
/// `axllm_package_check()`. Sizes the files do not state are 0: for real
/// `.axmodel` files only the runtime reports the shape groups, so the context
/// length is known once the model is loaded (`axllm_model_get_info()`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct axllm_package_info {
    /// `sizeof(axllm_package_info)` as the caller was compiled; set by `axllm_package_check()`.
    pub struct_size: usize,
    /// Decoder layers.
    pub layers: u32,
    /// Positions a conversation may occupy; 0 when not known without the card.
    pub context_length: u32,
    /// The longest prompt prefilled in chunks; 0 when not known without the card.
    pub max_prefill: u32,
    /// Hidden size; 0 when not known without the card.
    pub hidden_size: u32,
    /// Vocabulary size; 0 when not known without the card.
    pub vocab_size: u32,
    /// True when the package has its own sampling defaults (`post_config.json`).
    pub has_sampling_defaults: bool,
}

// SAFETY: repr(C), `struct_size` first; one version so far.
unsafe impl SizedStruct for axllm_package_info {
    const NAME: &'static str = "axllm_package_info";
    const VERSIONS: &'static [(usize, usize)] = &[(
        size_of::<axllm_package_info>(),
        offset_of!(axllm_package_info, has_sampling_defaults) + size_of::<bool>(),
    )];
    fn defaults() -> Self {
        axllm_package_info { struct_size: size_of::<Self>(), ..Default::default() }
    }
}

fn count(n: Option<usize>) -> u32 {
    n.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// Checks the model package at `dir` as the loader does, as far as the files
/// go without the NPU (the runtime library is not loaded): the layout and
/// layer count, the tokenizer, `post_config.json`, the embedding table, and
/// every model file read to its end, each inside the package.
///
/// `params` is NULL or load parameters of which only `link_roots` is used
/// (the directories outside the package its symlinks may point into).
///
/// On success fills `*info` (pass `sizeof(axllm_package_info)` as
/// `info_size`); fills `*defaults`, when it is not NULL, with the sampling
/// defaults a loaded model uses (`axllm_model_generate_params()`: the
/// package's when `info->has_sampling_defaults`, else Ollama's; pass
/// `sizeof(axllm_generate_params)` as `defaults_size`); and writes the
/// tokenizer's chat template ("" when it has none) to `chat_template` as
/// NUL-terminated UTF-8, storing its length without the NUL in
/// `*chat_template_len`. When `capacity` is less than that length + 1 the
/// call returns `AXLLM_ERR_BUFFER_TOO_SMALL` (with `*info` and `*defaults`
/// filled); `chat_template` may be NULL with `capacity` 0 to ask for the
/// length. A package that fails a check gives `AXLLM_ERR_BAD_PACKAGE`, and
/// `axllm_last_error()` names the file at fault.
///
/// # Safety
/// `dir` is a NUL-terminated string; `params` is NULL or a valid struct;
/// `info` is valid for writes of `info_size` bytes; `defaults` is NULL or
/// valid for writes of `defaults_size` bytes; `chat_template_len` is a valid
/// pointer; `chat_template` is NULL or valid for `capacity` writes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn axllm_package_check(
    dir: *const c_char,
    params: *const axllm_load_params,
    info: *mut axllm_package_info,
    info_size: usize,
    defaults: *mut axllm_generate_params,
    defaults_size: usize,
    chat_template: *mut c_char,
    capacity: usize,
    chat_template_len: *mut usize,
) -> axllm_status {
    ffi(|| -> CResult {
        // SAFETY: caller's contract.
        let dir = unsafe { c_str(dir, "dir") }?;
        // SAFETY: caller's contract.
        let len = unsafe { out(chat_template_len, "chat_template_len") }?;
        // SAFETY: caller's contract.
        let p = unsafe { params::read(params) }?;
        // SAFETY: caller's contract on the struct's strings.
        let link_roots = unsafe { params::load_options(&p) }?.link_roots;
        let report = axllm_core::check_package(Path::new(dir), &link_roots)?;
        let value = axllm_package_info {
            struct_size: size_of::<axllm_package_info>(),
            layers: count(Some(report.layers)),
            context_length: count(report.context_length),
            max_prefill: count(report.max_prefill),
            hidden_size: count(report.hidden_size),
            vocab_size: count(report.vocab),
            has_sampling_defaults: report.sampling_defaults.is_some(),
        };
        // SAFETY: caller's contract.
        unsafe { params::write(info, info_size, value) }?;
        if !defaults.is_null() {
            let sampling = report.sampling_defaults.unwrap_or_else(SamplingOptions::default);
            // SAFETY: caller's contract.
            unsafe { params::write(defaults, defaults_size, params::from_sampling(sampling)) }?;
        }
        // SAFETY: caller's contract.
        unsafe { write_text(report.chat_template.as_deref().unwrap_or("").as_bytes(), chat_template, capacity, len) }
    })
}
