//! The one boundary every exported function goes through: panics are caught,
//! NULL pointers and invalid UTF-8 become statuses, and the message of the last
//! error is kept per thread.

use crate::errors::{axllm_status, status_of};
use axllm_core::Error;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// An error on its way to C: a status and a message.
#[derive(Debug)]
pub struct CError {
    /// The status returned.
    pub status: axllm_status,
    /// What `axllm_last_error()` will say.
    pub message: String,
}

impl CError {
    /// An error with `status`.
    pub fn new(status: axllm_status, message: impl Into<String>) -> CError {
        CError { status, message: message.into() }
    }
    /// An `AXLLM_ERR_INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> CError {
        CError::new(axllm_status::AXLLM_ERR_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for CError {
    fn from(e: Error) -> CError {
        // The message carries the causes too: C has no error chain.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        CError::new(status_of(e.kind()), message)
    }
}

/// The result of an exported function's body.
pub type CResult<T = ()> = Result<T, CError>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

/// Pointer to the calling thread's last error message (empty when none).
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

/// The message of the calling thread's last error, or "" after a success.
/// Owned by the library; valid until this thread's next axllm call. Copy it.
#[unsafe(no_mangle)]
pub extern "C" fn axllm_last_error() -> *const c_char {
    last_error_ptr()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs an exported function's body: its result becomes a status, a panic
/// becomes `AXLLM_ERR_PANIC`, and the thread's last error is set or cleared.
pub fn ffi<F: FnOnce() -> CResult>(f: F) -> axllm_status {
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let (status, message) = match outcome {
        Ok(Ok(())) => (axllm_status::AXLLM_OK, String::new()),
        Ok(Err(e)) => (e.status, e.message),
        Err(p) => (axllm_status::AXLLM_ERR_PANIC, format!("internal panic in axllm: {}", panic_message(&*p))),
    };
    set_last_error(&message);
    status
}

/// For functions with no status (free, cancel): swallow a panic, keep its message.
pub fn ffi_void<F: FnOnce()>(f: F) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        set_last_error(&format!("internal panic in axllm: {}", panic_message(&*p)));
    }
}

/// A borrowed C string as UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the call.
pub unsafe fn c_str<'a>(p: *const c_char, what: &str) -> CResult<&'a str> {
    if p.is_null() {
        return Err(CError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|e| CError::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// A mutable out-parameter.
///
/// # Safety
/// `p` is NULL or valid for writes of `T` for the call.
pub unsafe fn out<'a, T>(p: *mut T, what: &str) -> CResult<&'a mut T> {
    // SAFETY: by the caller's contract when non-NULL.
    unsafe { p.as_mut() }.ok_or_else(|| CError::invalid(format!("{what} is NULL")))
}

/// A borrowed input struct.
///
/// # Safety
/// `p` is NULL or valid for reads of `T` for the call.
pub unsafe fn input<'a, T>(p: *const T, what: &str) -> CResult<&'a T> {
    // SAFETY: by the caller's contract when non-NULL.
    unsafe { p.as_ref() }.ok_or_else(|| CError::invalid(format!("{what} is NULL")))
}

/// Token ids from a caller's array: present, non-empty, non-negative.
///
/// # Safety
/// `tokens` is NULL or valid for `n_tokens` reads.
pub unsafe fn token_ids(tokens: *const i32, n_tokens: usize) -> CResult<Vec<u32>> {
    if tokens.is_null() || n_tokens == 0 {
        return Err(CError::invalid("tokens is NULL or empty"));
    }
    // SAFETY: caller's contract.
    unsafe { std::slice::from_raw_parts(tokens, n_tokens) }
        .iter()
        .map(|&t| u32::try_from(t).map_err(|_| CError::invalid(format!("negative token id {t}"))))
        .collect()
}

/// Copies `bytes` plus a NUL into a caller buffer, or reports the size needed.
/// `*len` receives the length without the NUL either way.
///
/// # Safety
/// `buf` is NULL or valid for `cap` bytes of writes.
pub unsafe fn write_text(bytes: &[u8], buf: *mut c_char, cap: usize, len: &mut usize) -> CResult {
    *len = bytes.len();
    if buf.is_null() || cap < bytes.len() + 1 {
        return Err(CError::new(
            axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL,
            format!("buffer of {cap} bytes is too small: {} needed (text plus NUL)", bytes.len() + 1),
        ));
    }
    // SAFETY: `buf` holds at least len + 1 bytes (checked); the regions are distinct.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
        *buf.add(bytes.len()) = 0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_statuses_with_a_message() {
        let s = ffi(|| panic!("boom"));
        assert_eq!(s, axllm_status::AXLLM_ERR_PANIC);
        // SAFETY: pointer to our own thread-local NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(last_error_ptr()) }.to_str().unwrap().to_owned();
        assert!(msg.contains("boom"), "{msg}");
        assert_eq!(ffi(|| Ok(())), axllm_status::AXLLM_OK);
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(last_error_ptr()) }.to_bytes(), b"");
    }

    #[test]
    fn null_and_bad_utf8() {
        // SAFETY: NULL is allowed by the contract of c_str.
        assert!(unsafe { c_str(std::ptr::null(), "prompt") }.is_err());
        let bad = [0xffu8, 0xfe, 0];
        // SAFETY: NUL-terminated buffer.
        let e = unsafe { c_str(bad.as_ptr().cast(), "prompt") }.unwrap_err();
        assert_eq!(e.status, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert!(e.message.contains("UTF-8"));
    }

    #[test]
    fn small_buffers_report_the_size_needed() {
        let mut buf = [0 as c_char; 4];
        let mut len = 0;
        // SAFETY: valid buffer of 4 bytes.
        let e = unsafe { write_text(b"hello", buf.as_mut_ptr(), 4, &mut len) }.unwrap_err();
        assert_eq!((e.status, len), (axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL, 5));
        let mut big = [0 as c_char; 6];
        // SAFETY: valid buffer of 6 bytes.
        unsafe { write_text(b"hello", big.as_mut_ptr(), 6, &mut len) }.unwrap();
        assert_eq!(big[5], 0);
    }
}
