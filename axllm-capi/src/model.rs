//! `axllm_model`: loading a package onto the NPU, what it is, tokens, its
//! sampling defaults, its cache.

use crate::axllm_status;
use crate::boundary::{CError, CResult, c_str, ffi, ffi_void, out, write_text};
use crate::handles::Registry;
use crate::params::{self, SizedStruct, axllm_generate_params, axllm_load_params};
use crate::stats::{axllm_stats, c_stats};
use axllm_core::{LoadProgress, Model, Stats};
use parking_lot::Mutex;
use std::ffi::c_char;
use std::mem::{offset_of, size_of};

/// A loaded model (opaque).
#[derive(Debug)]
pub struct axllm_model {
    _private: [u8; 0],
}

/// What a loaded model is. Filled by `axllm_model_get_info()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct axllm_model_info {
    /// `sizeof(axllm_model_info)` as the caller was compiled; set by `axllm_model_get_info()`.
    pub struct_size: usize,
    /// Positions a conversation may occupy (prompt plus generated tokens).
    pub context_length: u32,
    /// The longest prompt prefilled in chunks; longer prompts up to
    /// `context_length` are accepted but fed token by token.
    pub max_prefill: u32,
    /// Vocabulary size.
    pub vocab_size: u32,
    /// Decoder layers.
    pub layers: u32,
    /// Hidden size.
    pub hidden_size: u32,
    /// Prefill chunk length of the compiled model.
    pub chunk: u32,
    /// Device memory the model uses (buffers, snapshot slots, model files).
    pub device_memory_bytes: u64,
    /// The device id the runtime reports for the card in use.
    pub device_id: i32,
    /// Hybrid models (Qwen3.5): decoder layers with linear attention; 0 otherwise.
    pub linear_layers: u32,
    /// Hybrid models: device slots for snapshots of the linear layers' state
    /// (part of `device_memory_bytes`); 0 otherwise.
    pub snapshot_slots: u32,
    /// Hybrid models: the bytes of one snapshot slot.
    pub snapshot_bytes: u64,
    /// KV slots allocated: generations that run at once (version 2).
    pub kv_slots: u32,
    /// Device bytes of one KV slot, part of `device_memory_bytes` once per
    /// slot (version 2).
    pub kv_slot_bytes: u64,
}

// SAFETY: repr(C), `struct_size` first; version 1 (up to `snapshot_bytes`,
// a u64, so no tail padding) is a prefix.
unsafe impl SizedStruct for axllm_model_info {
    const NAME: &'static str = "axllm_model_info";
    const VERSIONS: &'static [(usize, usize)] = &[
        (offset_of!(axllm_model_info, kv_slots), offset_of!(axllm_model_info, kv_slots)),
        (size_of::<axllm_model_info>(), offset_of!(axllm_model_info, kv_slot_bytes) + size_of::<u64>()),
    ];
    fn defaults() -> Self {
        axllm_model_info { struct_size: size_of::<Self>(), ..Default::default() }
    }
}

pub(crate) struct ModelHandle {
    pub(crate) model: Model,
    pub(crate) last_stats: Mutex<Stats>,
}

pub(crate) static MODELS: Registry<ModelHandle> = Registry::new("model");

pub(crate) fn key<T>(p: *const T) -> usize {
    p as usize
}

/// Loads the model package at `model_dir` onto the NPU.
///
/// `params` may be NULL (defaults); otherwise it is read by its
/// `struct_size`. On success `*out_model` receives a handle the caller owns:
/// free it with `axllm_model_free`. On failure `*out_model` is set to NULL
/// and nothing stays allocated on the card.
///
/// # Safety
/// `model_dir` is a NUL-terminated string; `params` is NULL or a valid struct
/// (with its strings); `out_model` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_model_load(
    model_dir: *const c_char,
    params: *const axllm_load_params,
    out_model: *mut *mut axllm_model,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let out_model = unsafe { out(out_model, "out_model") }?;
        *out_model = std::ptr::null_mut();
        // SAFETY: caller's contract.
        let dir = unsafe { c_str(model_dir, "model_dir") }?;
        // SAFETY: caller's contract.
        let p = unsafe { params::read(params) }?;
        // SAFETY: caller's contract on the struct's strings.
        let opts = unsafe { params::load_options(&p) }?;
        let mut progress = |lp: LoadProgress| {
            if let Some(cb) = p.progress {
                cb(p.progress_user_data, lp.loaded as u32, lp.total as u32);
            }
        };
        let model = Model::load_with_progress(dir.as_ref(), &opts, &mut progress)?;
        let k = MODELS.insert(ModelHandle { model, last_stats: Mutex::new(Stats::default()) });
        *out_model = k as *mut axllm_model;
        Ok(())
    })
}

/// Frees a model and everything it holds on the card. NULL and already freed
/// handles are ignored. Waits for a generation of this model to end first, so
/// end or cancel generations before freeing.
#[unsafe(no_mangle)]
pub extern "C" fn axllm_model_free(model: *mut axllm_model) {
    ffi_void(|| drop(MODELS.remove(key(model))));
}

/// Fills `*info` with the model's geometry and memory use. Pass
/// `sizeof(axllm_model_info)` as `struct_size`.
///
/// # Safety
/// `info` is valid for writes of `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_model_get_info(
    model: *const axllm_model,
    info: *mut axllm_model_info,
    struct_size: usize,
) -> axllm_status {
    ffi(|| {
        let h = MODELS.get(key(model))?;
        let i = h.model.info();
        let value = axllm_model_info {
            struct_size: size_of::<axllm_model_info>(),
            context_length: i.context_length as u32,
            max_prefill: i.max_prefill as u32,
            vocab_size: i.vocab as u32,
            layers: i.layers as u32,
            hidden_size: i.hidden_size as u32,
            chunk: i.chunk as u32,
            device_memory_bytes: i.device_bytes,
            device_id: i.device_id,
            linear_layers: i.linear_layers as u32,
            snapshot_slots: i.snapshot_slots as u32,
            snapshot_bytes: i.snapshot_bytes,
            kv_slots: i.kv_slots as u32,
            kv_slot_bytes: i.kv_slot_bytes,
        };
        // SAFETY: caller's contract.
        unsafe { params::write(info, struct_size, value) }
    })
}

/// Encodes `text` into `tokens` (capacity `capacity`). `*n_tokens` receives the
/// number of tokens; when it exceeds `capacity` the call returns
/// `AXLLM_ERR_BUFFER_TOO_SMALL` and writes nothing. Special tokens written in
/// the text (`<|im_start|>`) map to their ids.
///
/// # Safety
/// `text` is a NUL-terminated string; `tokens` is NULL or valid for `capacity`
/// writes; `n_tokens` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_tokenize(
    model: *const axllm_model,
    text: *const c_char,
    add_special_tokens: bool,
    tokens: *mut i32,
    capacity: usize,
    n_tokens: *mut usize,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let n = unsafe { out(n_tokens, "n_tokens") }?;
        let h = MODELS.get(key(model))?;
        // SAFETY: caller's contract.
        let ids = h.model.tokenizer().encode(unsafe { c_str(text, "text") }?, add_special_tokens)?;
        *n = ids.len();
        if tokens.is_null() || capacity < ids.len() {
            return Err(CError::new(
                axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL,
                format!("{} tokens do not fit in a buffer of {capacity}", ids.len()),
            ));
        }
        // SAFETY: `tokens` holds at least ids.len() entries (checked).
        let dst = unsafe { std::slice::from_raw_parts_mut(tokens, ids.len()) };
        dst.iter_mut().zip(&ids).for_each(|(d, &s)| *d = s as i32);
        Ok(())
    })
}

/// Decodes `n_tokens` ids into `buf` as NUL-terminated UTF-8 (special tokens
/// kept). `*len` receives the text length without the NUL; when `capacity` is
/// less than `*len + 1` the call returns `AXLLM_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `tokens` is valid for `n_tokens` reads; `buf` is NULL or valid for
/// `capacity` writes; `len` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_detokenize(
    model: *const axllm_model,
    tokens: *const i32,
    n_tokens: usize,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let len = unsafe { out(len, "len") }?;
        let h = MODELS.get(key(model))?;
        if tokens.is_null() && n_tokens > 0 {
            return Err(CError::invalid("tokens is NULL"));
        }
        let ids: Vec<u32> = if n_tokens == 0 {
            Vec::new()
        } else {
            // SAFETY: `tokens` is valid for n_tokens reads (caller's contract).
            unsafe { std::slice::from_raw_parts(tokens, n_tokens) }
                .iter()
                .map(|&t| u32::try_from(t).map_err(|_| CError::invalid(format!("negative token id {t}"))))
                .collect::<CResult<_>>()?
        };
        let vocab = h.model.info().vocab;
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(CError::invalid(format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let text = h.model.tokenizer().decode(&ids)?;
        // SAFETY: caller's contract on buf/capacity.
        unsafe { write_text(text.as_bytes(), buf, capacity, len) }
    })
}

/// Fills `*params` with the package's own sampling defaults (its
/// post_config.json; Ollama's where it has none). Pass
/// `sizeof(axllm_generate_params)` as `struct_size`.
///
/// # Safety
/// `params` is valid for writes of `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_model_generate_params(
    model: *const axllm_model,
    params: *mut axllm_generate_params,
    struct_size: usize,
) -> axllm_status {
    ffi(|| {
        let h = MODELS.get(key(model))?;
        // SAFETY: caller's contract.
        unsafe { params::write(params, struct_size, params::from_sampling(h.model.default_sampling())) }
    })
}

/// Cancels every running generation of `model` (thread-safe); to cancel one,
/// use `axllm_generation_cancel`.
#[unsafe(no_mangle)]
pub extern "C" fn axllm_model_cancel(model: *mut axllm_model) {
    ffi_void(|| {
        if let Ok(h) = MODELS.get(key(model)) {
            h.model.cancel();
        }
    });
}

/// Counts and durations of the model's last ended generation.
///
/// # Safety
/// `out_stats` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_model_last_stats(
    model: *const axllm_model,
    out_stats: *mut axllm_stats,
) -> axllm_status {
    ffi(|| {
        let h = MODELS.get(key(model))?;
        // SAFETY: caller's contract.
        *unsafe { out(out_stats, "out_stats") }? = c_stats(*h.last_stats.lock());
        Ok(())
    })
}

/// Zeroes the model's device KV cache (the next prompt is prefilled in full).
#[unsafe(no_mangle)]
pub extern "C" fn axllm_model_reset_cache(model: *mut axllm_model) -> axllm_status {
    ffi(|| Ok(MODELS.get(key(model))?.model.reset_cache()?))
}
