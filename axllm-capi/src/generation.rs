//! `axllm_generation`: a running generation, pulled piece by piece.

use crate::axllm_status;
use crate::boundary::{CResult, c_str, ffi, ffi_void, out, token_ids, write_text};
use crate::handles::Registry;
use crate::model::{MODELS, ModelHandle, axllm_model, key};
use crate::params::{self, axllm_generate_params};
use crate::stats::{axllm_stats, c_stats};
use axllm_core::{CancelHandle, GenerateOptions, Generation, Model, Step, StopReason};
use parking_lot::Mutex;
use std::ffi::c_char;
use std::sync::Arc;

/// A running generation (opaque).
#[derive(Debug)]
pub struct axllm_generation {
    _private: [u8; 0],
}

/// Why a generation ended (or `AXLLM_DONE_NONE` while it runs).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum axllm_done_reason {
    /// Not done: a piece of text was returned.
    AXLLM_DONE_NONE = 0,
    /// An end-of-generation token ("stop").
    AXLLM_DONE_EOS = 1,
    /// A stop string, which is not part of the text ("stop").
    AXLLM_DONE_STOP_STRING = 2,
    /// `num_predict` tokens were generated ("length").
    AXLLM_DONE_MAX_TOKENS = 3,
    /// The context is full ("length").
    AXLLM_DONE_CONTEXT_FULL = 4,
    /// Cancelled.
    AXLLM_DONE_CANCELLED = 5,
}

pub(crate) struct GenerationHandle {
    model: Arc<ModelHandle>,
    cancel: CancelHandle,
    pub(crate) state: Mutex<GenState>,
}

pub(crate) struct GenState {
    pub(crate) generation: Generation,
    /// Logprobs taken from the generation that did not fit the caller's buffer yet.
    pub(crate) logprobs: Vec<axllm_core::TokenLogprob>,
    /// A piece that did not fit the caller's buffer, delivered next time.
    pending: Option<String>,
    finished: Option<StopReason>,
}

pub(crate) static GENERATIONS: Registry<GenerationHandle> = Registry::new("generation");

fn start(
    model: *mut axllm_model,
    params: *const axllm_generate_params,
    out_gen: *mut *mut axllm_generation,
    begin: impl FnOnce(&Model, &GenerateOptions) -> axllm_core::Result<Generation>,
) -> CResult {
    // SAFETY: caller's contract.
    let out_gen = unsafe { out(out_gen, "out_generation") }?;
    *out_gen = std::ptr::null_mut();
    let h = MODELS.get(key(model))?;
    // SAFETY: caller's contract.
    let p = unsafe { params::read(params) }?;
    // SAFETY: caller's contract on the stop strings.
    let opts = unsafe { params::generate_options(&p) }?;
    let generation = begin(&h.model, &opts)?;
    let cancel = generation.cancel_handle();
    let k = GENERATIONS.insert(GenerationHandle {
        model: h,
        cancel,
        state: Mutex::new(GenState { generation, logprobs: Vec::new(), pending: None, finished: None }),
    });
    *out_gen = k as *mut axllm_generation;
    Ok(())
}

/// Starts a generation from a text prompt: takes the free KV slot whose cache
/// shares the longest prefix with the prompt (else the least recently used
/// one), prefills what that cache lacks and samples the first token. While
/// every slot (`axllm_load_params.kv_slots`) is held by a generation it
/// waits for one to end. Generations on different slots may be pulled from
/// one thread or several; their steps take turns on the NPU and each one's
/// output is what it would be alone. `params` may be NULL (Ollama's
/// defaults); otherwise it is read by its `struct_size`. On success the
/// caller owns `*out_generation`: pull text with `axllm_generation_next` and
/// release it (and its slot) with `axllm_generation_end`. A thread that
/// holds as many generations of this model as it has slots must end one
/// before beginning another: the call would wait for itself.
///
/// # Safety
/// `prompt` is a NUL-terminated string; `params` is NULL or valid (with its
/// stop strings); `out_generation` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_generation_begin(
    model: *mut axllm_model,
    prompt: *const c_char,
    params: *const axllm_generate_params,
    out_generation: *mut *mut axllm_generation,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let prompt = unsafe { c_str(prompt, "prompt") }?;
        start(model, params, out_generation, |m, o| m.begin(prompt, o))
    })
}

/// Like `axllm_generation_begin`, from `n_tokens` token ids.
///
/// # Safety
/// `tokens` is valid for `n_tokens` reads; otherwise as `axllm_generation_begin`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_generation_begin_tokens(
    model: *mut axllm_model,
    tokens: *const i32,
    n_tokens: usize,
    params: *const axllm_generate_params,
    out_generation: *mut *mut axllm_generation,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let ids = unsafe { token_ids(tokens, n_tokens) }?;
        start(model, params, out_generation, |m, o| m.begin_tokens(&ids, o))
    })
}

/// Like `axllm_generation_begin_tokens` but feeds nothing yet: takes the KV
/// slot (waiting for one as begin does) and checks the prompt. The prompt is
/// then fed one chunk per `axllm_generation_prefill_step`, or whatever is
/// left at the first `axllm_generation_next`. A caller serving several
/// requests alternates their prefill chunks and tokens, so a short request
/// is not kept waiting by a long prompt's whole prefill.
///
/// # Safety
/// As `axllm_generation_begin_tokens`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_generation_start_tokens(
    model: *mut axllm_model,
    tokens: *const i32,
    n_tokens: usize,
    params: *const axllm_generate_params,
    out_generation: *mut *mut axllm_generation,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let ids = unsafe { token_ids(tokens, n_tokens) }?;
        start(model, params, out_generation, |m, o| m.start_tokens(&ids, o))
    })
}

/// Feeds the next chunk of a started generation's prompt (one pass through
/// the layers) and sets `*left` to the prompt tokens still to feed: 0 once
/// the prompt is in the KV slot and the first token is sampled (later calls
/// do nothing and set 0). A cancelled generation feeds nothing more: `*left`
/// is 0, its KV slot holds exactly the chunks fed so far, and the next
/// `axllm_generation_next` reports `AXLLM_DONE_CANCELLED`. An error ends the
/// generation (`axllm_generation_next` then reports `AXLLM_DONE_CANCELLED`).
///
/// # Safety
/// `left` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_generation_prefill_step(generation: *mut axllm_generation, left: *mut usize) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let left = unsafe { out(left, "left") }?;
        *left = 0;
        let h = GENERATIONS.get(key(generation))?;
        let mut st = h.state.lock();
        if st.finished.is_some() {
            return Ok(());
        }
        *left = st.generation.prefill_step()?;
        Ok(())
    })
}

fn done_reason(r: StopReason) -> axllm_done_reason {
    match r {
        StopReason::EndOfSequence => axllm_done_reason::AXLLM_DONE_EOS,
        StopReason::StopString => axllm_done_reason::AXLLM_DONE_STOP_STRING,
        StopReason::MaxTokens => axllm_done_reason::AXLLM_DONE_MAX_TOKENS,
        StopReason::ContextFull => axllm_done_reason::AXLLM_DONE_CONTEXT_FULL,
        StopReason::Cancelled => axllm_done_reason::AXLLM_DONE_CANCELLED,
    }
}

/// Pulls the next piece of text into `buf` (NUL-terminated, complete UTF-8
/// characters, never empty) with `*done = AXLLM_DONE_NONE`; or, at the end,
/// writes "" and sets `*done` to the reason (every later call repeats it).
/// `*len` receives the piece's length without the NUL. When `capacity` is
/// too small: `AXLLM_ERR_BUFFER_TOO_SMALL`, `*len` = the length needed, and the
/// piece is kept for the next call. A device error ends the generation.
///
/// # Safety
/// `buf` is NULL or valid for `capacity` writes; `len` and `done` are valid pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_generation_next(
    generation: *mut axllm_generation,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
    done: *mut axllm_done_reason,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let (len, done) = unsafe { (out(len, "len")?, out(done, "done")?) };
        *done = axllm_done_reason::AXLLM_DONE_NONE;
        let h = GENERATIONS.get(key(generation))?;
        let mut st = h.state.lock();
        if st.pending.is_none() {
            if let Some(r) = st.finished {
                *done = done_reason(r);
                // SAFETY: caller's contract on buf/capacity.
                return unsafe { write_text(b"", buf, capacity, len) };
            }
            match st.generation.next() {
                Ok(Step::Text(t)) => st.pending = Some(t),
                Ok(Step::Done(r)) => {
                    st.finished = Some(r);
                    *h.model.last_stats.lock() = st.generation.stats();
                    *done = done_reason(r);
                    // SAFETY: as above.
                    return unsafe { write_text(b"", buf, capacity, len) };
                }
                Err(e) => {
                    st.finished = Some(StopReason::Cancelled);
                    return Err(e.into());
                }
            }
        }
        let piece = st.pending.as_deref().unwrap_or_default();
        // SAFETY: caller's contract on buf/capacity.
        unsafe { write_text(piece.as_bytes(), buf, capacity, len) }?;
        st.pending = None;
        Ok(())
    })
}

/// Asks a generation to stop; thread-safe, returns at once. The generation's
/// next `axllm_generation_next` (at the latest after the token in progress)
/// reports `AXLLM_DONE_CANCELLED`. NULL and freed handles are ignored.
#[unsafe(no_mangle)]
pub extern "C" fn axllm_generation_cancel(generation: *mut axllm_generation) {
    ffi_void(|| {
        if let Ok(h) = GENERATIONS.get(key(generation)) {
            h.cancel.cancel();
        }
    });
}

/// Counts and durations of a generation so far.
///
/// # Safety
/// `out_stats` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_generation_stats(
    generation: *const axllm_generation,
    out_stats: *mut axllm_stats,
) -> axllm_status {
    ffi(|| {
        let h = GENERATIONS.get(key(generation))?;
        // SAFETY: caller's contract.
        *unsafe { out(out_stats, "out_stats") }? = c_stats(h.state.lock().generation.stats());
        Ok(())
    })
}

/// Ends a generation and releases its KV slot for the next one. NULL and already
/// ended handles are ignored.
#[unsafe(no_mangle)]
pub extern "C" fn axllm_generation_end(generation: *mut axllm_generation) {
    ffi_void(|| {
        if let Some(h) = GENERATIONS.remove(key(generation)) {
            h.cancel.cancel();
            let st = h.state.lock();
            *h.model.last_stats.lock() = st.generation.stats();
        }
    });
}
