//! The model's own chat template, rendered for callers that have no renderer
//! of their own for the model's family.

use crate::axllm_status;
use crate::boundary::{c_str, ffi, out, write_text};
use crate::model::{MODELS, axllm_model, key};
use std::ffi::c_char;

/// Renders a chat with the model's own chat template (the package's
/// `chat_template`, rendered as Hugging Face transformers does, default system
/// prompt included) into `buf` as NUL-terminated UTF-8: the prompt to pass to
/// `axllm_generation_begin`.
///
/// `request_json` is a JSON object: `messages` (a list of `{"role": ...,
/// "content": ...}`), optionally `tools`, `add_generation_prompt` (default
/// true) and any other variable the template reads (e.g. `enable_thinking`).
/// `*len` receives the text length without the NUL; when `capacity` is less
/// than `*len + 1` the call returns `AXLLM_ERR_BUFFER_TOO_SMALL` and writes
/// nothing. `AXLLM_ERR_CHAT_TEMPLATE`: no template, a malformed request, or
/// the template refused the conversation (`axllm_last_error()` says which).
/// The model is unchanged either way.
///
/// # Safety
/// `request_json` is a NUL-terminated string; `buf` is NULL or valid for
/// `capacity` writes; `len` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_model_render_chat(
    model: *const axllm_model,
    request_json: *const c_char,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let len = unsafe { out(len, "len") }?;
        let h = MODELS.get(key(model))?;
        // SAFETY: caller's contract.
        let request = unsafe { c_str(request_json, "request_json") }?;
        let text = h.model.render_chat(request)?;
        // SAFETY: caller's contract on buf/capacity.
        unsafe { write_text(text.as_bytes(), buf, capacity, len) }
    })
}
