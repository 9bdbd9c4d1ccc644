//! Diagnostics of the test bed, apart from the product's structs: the
//! simulator's counters as JSON, and a deliberate panic for tests of the
//! boundary. Nothing here is needed to run a model.

use crate::axllm_status;
use crate::boundary::{CError, ffi, write_text};
use crate::model::{MODELS, axllm_model, key};
use std::ffi::c_char;

/// Writes the runtime's diagnostics as NUL-terminated JSON into `buf`. On the
/// simulator (axcl-sim): `{"simulator":true,"version":...,"counters":{...}}`
/// with its call counters and the device allocations alive in this process
/// (`live_allocations`, `live_bytes`, ...); on a card: `{"simulator":false}`.
/// `*len` receives the length without the NUL; when `capacity` is less than
/// `*len + 1` the call returns `AXLLM_ERR_BUFFER_TOO_SMALL`. Does not wait
/// for a running generation.
///
/// # Safety
/// `buf` is NULL or valid for `capacity` writes; `len` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_model_diagnostics(
    model: *const axllm_model,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> axllm_status {
    ffi(|| {
        // SAFETY: caller's contract.
        let len = unsafe { crate::boundary::out(len, "len") }?;
        let h = MODELS.get(key(model))?;
        let json = match h.model.simulator() {
            Some(sim) => {
                serde_json::json!({"simulator": true, "version": sim.version(), "counters": sim.counters()?})
            }
            None => serde_json::json!({"simulator": false}),
        };
        let text = serde_json::to_string(&json).map_err(|e| CError::invalid(format!("diagnostics: {e}")))?;
        // SAFETY: caller's contract on buf/capacity.
        unsafe { write_text(text.as_bytes(), buf, capacity, len) }
    })
}

/// For tests of the boundary: panics inside the library. Returns
/// `AXLLM_ERR_PANIC` with the panic's message in `axllm_last_error()`.
#[unsafe(no_mangle)]
pub extern "C" fn axllm_debug_panic() -> axllm_status {
    ffi(|| panic!("axllm_debug_panic was called"))
}
