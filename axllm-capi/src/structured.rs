//! Logprobs of a generation, and embeddings. (Structured outputs need no
//! function of their own: `axllm_generate_params.format` carries the schema.)

use crate::axllm_status;
use crate::boundary::{CError, c_str, ffi, out, write_text};
use crate::generation::{GENERATIONS, axllm_generation};
use crate::model::{MODELS, axllm_model, key};
use crate::params::{self, SizedStruct};
use axllm_core::{EmbedOptions, TokenLogprob, TopLogprob};
use std::ffi::c_char;
use std::mem::{offset_of, size_of};

fn entry(e: &TopLogprob) -> serde_json::Value {
    serde_json::json!({"token": e.token, "text": e.text, "bytes": e.bytes, "logprob": e.logprob})
}

/// The JSON form of `axllm_generation_logprobs`.
fn logprobs_json(lps: &[TokenLogprob]) -> String {
    let items: Vec<serde_json::Value> = lps
        .iter()
        .map(|lp| {
            let mut v = entry(&lp.token);
            v["top"] = lp.top.iter().map(entry).collect();
            v
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// Writes into `buf` (NUL-terminated) the log probabilities of the tokens the
/// generation emitted since the last call, as a JSON array with one object
/// per token: `{"token": id, "text": "...", "bytes": [..], "logprob": -0.1,
/// "top": [{"token", "text", "bytes", "logprob"}...]}` (`top` most likely
/// first, `top_logprobs` long). `bytes` are what the token adds to the output
/// (a byte-fallback token's single byte; `text` shows a partial character as
/// U+FFFD); the generated tokens' `bytes`, joined, are the output text.
/// `[]` when none (or `logprobs` was not asked for). A token's entry comes no
/// later than the piece holding its text: call it after each
/// `axllm_generation_next`. When `capacity` is too small:
/// `AXLLM_ERR_BUFFER_TOO_SMALL`, `*len` = the length needed (without the
/// NUL), and the entries are kept for the next call.
///
/// # Safety
/// `buf` is NULL or valid for `capacity` writes; `len` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_generation_logprobs(
    generation: *mut axllm_generation,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let len = unsafe { out(len, "len") }?;
        let h = GENERATIONS.get(key(generation))?;
        let mut st = h.state.lock();
        // Entries a too-small buffer left kept, then the newer ones.
        let fresh = st.generation.take_logprobs();
        st.logprobs.extend(fresh);
        let json = logprobs_json(&st.logprobs);
        // SAFETY: caller's contract on buf/capacity.
        let r = unsafe { write_text(json.as_bytes(), buf, capacity, len) };
        if r.is_ok() {
            st.logprobs.clear();
        }
        r
    })
}

/// How to embed a text. Fill it with `axllm_embed_default_params()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct axllm_embed_params {
    /// `sizeof(axllm_embed_params)` as the caller was compiled.
    pub struct_size: usize,
    /// Cut a text longer than the context to its first tokens (default true);
    /// false: such a text fails with `AXLLM_ERR_PROMPT_TOO_LONG`.
    pub truncate: bool,
    /// Keep only the first this many values, renormalised; 0 = all.
    pub dimensions: u32,
    /// Apply the tokenizer's post-processor (BOS) to the text.
    pub add_special_tokens: bool,
}

// SAFETY: repr(C), `struct_size` first; one version so far.
unsafe impl SizedStruct for axllm_embed_params {
    const NAME: &'static str = "axllm_embed_params";
    const VERSIONS: &'static [(usize, usize)] =
        &[(size_of::<axllm_embed_params>(), offset_of!(axllm_embed_params, add_special_tokens) + size_of::<bool>())];
    fn defaults() -> Self {
        axllm_embed_params { struct_size: size_of::<Self>(), truncate: true, dimensions: 0, add_special_tokens: false }
    }
}

/// Fills `*params` with the default embed parameters: truncate, all
/// dimensions, no post-processor. Pass `sizeof(axllm_embed_params)`.
///
/// # Safety
/// `params` is valid for writes of `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_embed_default_params(
    params: *mut axllm_embed_params,
    struct_size: usize,
) -> axllm_status {
    // SAFETY: the caller's contract.
    ffi(|| unsafe { params::write(params, struct_size, axllm_embed_params::defaults()) })
}

/// Embeds `text`: the hidden state of its last token after the last layer,
/// L2-normalised (the pooling Ollama applies to a generative model; the final
/// norm lives in the post model and is not applied). Writes the values to
/// `out` (`capacity` floats; `*n_values` receives the count, and when
/// `capacity` is too small `AXLLM_ERR_BUFFER_TOO_SMALL` with the count
/// needed: the hidden size, or `dimensions`) and the number of tokens fed to
/// `*n_tokens` (may be NULL). Waits while a generation of this model runs;
/// the device cache then holds the text. `params` may be NULL (defaults).
///
/// # Safety
/// `text` is a NUL-terminated string; `params` is NULL or valid; `out` is
/// NULL or valid for `capacity` floats; `n_values` is a valid pointer;
/// `n_tokens` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_model_embed(
    model: *mut axllm_model,
    text: *const c_char,
    params: *const axllm_embed_params,
    out_values: *mut f32,
    capacity: usize,
    n_values: *mut usize,
    n_tokens: *mut usize,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let n_values = unsafe { out(n_values, "n_values") }?;
        // SAFETY: caller's contract.
        let text = unsafe { c_str(text, "text") }?;
        // SAFETY: caller's contract.
        let p = unsafe { params::read(params) }?;
        let h = MODELS.get(key(model))?;
        let hidden = h.model.info().hidden_size;
        let want = if p.dimensions > 0 { (p.dimensions as usize).min(hidden) } else { hidden };
        *n_values = want;
        if out_values.is_null() || capacity < want {
            return Err(CError::new(
                axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL,
                format!("room for {capacity} values, {want} needed"),
            ));
        }
        let opts = EmbedOptions {
            truncate: p.truncate,
            dimensions: (p.dimensions > 0).then_some(p.dimensions as usize),
            add_special_tokens: p.add_special_tokens,
        };
        let e = h.model.embed(text, &opts)?;
        // SAFETY: `out_values` holds `capacity >= want == e.vector.len()` floats.
        unsafe { std::ptr::copy_nonoverlapping(e.vector.as_ptr(), out_values, e.vector.len()) };
        if !n_tokens.is_null() {
            // SAFETY: non-NULL, valid by the caller's contract.
            unsafe { *n_tokens = e.prompt_tokens };
        }
        Ok(())
    })
}

