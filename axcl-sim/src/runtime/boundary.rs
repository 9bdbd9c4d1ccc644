//! The C boundary every export goes through: panics are caught (they never
//! unwind into C) and every failure leaves a message for `axclSimLastErrorMessage`.

use super::errors::{ErrorKind, SimError, SimResult, Sub};
use axcl_sys::rt::{AXCL_SUCC, axclError};
use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    /// Message of the calling thread's most recent failed call (empty: none yet).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn record(call: &str, message: &str) {
    // Interior NULs would truncate the C string; show them instead.
    let text = CString::new(format!("{call}: {message}").replace('\0', "\\0")).unwrap_or_default();
    // During thread teardown the slot may be gone; the message is then dropped.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// The calling thread's last error message; valid until its next failing call.
pub(super) fn last_error() -> *const c_char {
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

/// Runs an export's body; on failure records `call: message` and returns the code.
fn run<T>(call: &str, sub: Sub, body: impl FnOnce() -> SimResult<T>) -> Result<T, axclError> {
    let error = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(error)) => error,
        Err(payload) => SimError::new(
            ErrorKind::Internal(sub),
            format!("internal error in the simulator (a bug; please report it): {}", panic_text(payload.as_ref())),
        ),
    };
    record(call, &error.message);
    Err(error.code)
}

/// An export that returns a status code.
pub(super) fn status(call: &str, sub: Sub, body: impl FnOnce() -> SimResult<()>) -> axclError {
    match run(call, sub, body) {
        Ok(()) => AXCL_SUCC as axclError,
        Err(code) => code,
    }
}

/// An export that returns a plain value, `fallback` on failure.
pub(super) fn value<T>(call: &str, sub: Sub, fallback: T, body: impl FnOnce() -> SimResult<T>) -> T {
    run(call, sub, body).unwrap_or(fallback)
}
