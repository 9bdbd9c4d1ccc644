//! `AXCL_SIM_TRACE_FILE`: when it names a file, each call that releases the
//! card (`axclrtResetDevice`, `axclFinalize`) appends one line to it,
//! `<pid> <call> <status>`, so that a test can prove a process released the
//! device before it exited. Processes may share the file.

use axcl_sys::rt::axclError;
use std::fmt::Arguments;
use std::io::Write;

const TRACE_ENV: &str = "AXCL_SIM_TRACE_FILE";

/// Appends `<pid> <call> <status>` to the trace file, if one is set, and
/// returns `status`. Tracing never changes a call's outcome, so a file that
/// cannot be written is ignored.
pub(super) fn record(call: Arguments<'_>, status: axclError) -> axclError {
    if let Some(path) = std::env::var_os(TRACE_ENV) {
        let line = format!("{} {call} {status:#x}\n", std::process::id());
        // One write of an O_APPEND file: lines of concurrent processes do not interleave.
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = file.write_all(line.as_bytes());
        }
    }
    status
}
