//! The NPU through the AXCL runtime, loaded at run time. This is the only
//! module of the crate allowed `unsafe`: raw bindings come from `axcl-sys`
//! (generated from our one header), `check` turns statuses into errors, and
//! RAII wrappers ([`Device`], [`DeviceBuffer`], [`EngineModel`], [`EngineIo`], [`Stream`])
//! give the rest of the crate a safe interface. [`SimHooks`] reaches the
//! simulator's extra symbols when the runtime is axcl-sim (diagnostics only).
#![allow(unsafe_code)]

mod engine;
mod memory;
mod runtime;
mod stream;

pub use engine::{EngineIo, EngineModel, GroupInfo, TensorInfo};
pub use memory::DeviceBuffer;
#[cfg_attr(not(feature = "internals"), allow(unused_imports))]
pub use memory::HostBuffer;
pub use runtime::{Device, Entered, Runtime};
pub use stream::Stream;

use crate::error::{Error, Result};
use axcl_sys::rt;
use axcl_sys::sim::{AxclSim, axclSimCounters};
use std::ffi::CStr;

/// `axclrtEngineDataType` values this crate understands (checked, never transmuted).
pub mod dtype {
    /// bfloat16.
    pub const BF16: i32 = axcl_sys::rt::AXCL_DATA_TYPE_BF16 as i32;
    /// 32-bit unsigned integers (the `indices` input).
    pub const UINT32: i32 = axcl_sys::rt::AXCL_DATA_TYPE_UINT32 as i32;
    /// Older runtimes report bf16 tensors as UINT16 (seen in the vendor's own
    /// runners, which treat the two alike).
    pub const UINT16: i32 = axcl_sys::rt::AXCL_DATA_TYPE_UINT16 as i32;
    /// The state of Qwen3.5 linear layers in some packages (hardware-facts: F29).
    pub const FP32: i32 = axcl_sys::rt::AXCL_DATA_TYPE_FP32 as i32;
    /// What older AXCL builds report for the state of Qwen3.5 linear layers (hardware-facts: F29).
    pub const NONE: i32 = axcl_sys::rt::AXCL_DATA_TYPE_NONE as i32;

    /// A readable name for error messages.
    pub fn name(code: i32) -> String {
        match code {
            BF16 => "bf16".into(),
            UINT32 => "uint32".into(),
            UINT16 => "uint16".into(),
            FP32 => "fp32".into(),
            NONE => "none".into(),
            other => format!("dtype#{other}"),
        }
    }
}

/// A failed status as an [`Error`] of the kind the caller can act on.
///
/// The vendor documents how codes are composed (module, sub-module, id) but not
/// which code each situation produces. Two mappings here are INFERRED and kept
/// in this one place so that a run on a card can settle them (hardware-facts: F13):
/// * any sub-module's `NO_MEMORY` id means the card is out of memory;
/// * the device sub-module's `TIMEOUT` means the card was lost (a card that
///   drops off the bus makes the runtime's messages time out; axcl-sim reports
///   a lost device this way).
fn status_error(sim: Option<&SimHooks>, call: &'static str, status: rt::axclError, bytes: Option<u64>) -> Error {
    let detail = sim.map(SimHooks::last_error).unwrap_or_default();
    match axcl_sys::axcl_err_parts(status) {
        Some((_, _, id)) if id == rt::AXCL_ERR_NO_MEMORY => Error::OutOfMemory { call, status, bytes, detail },
        Some((_, sub, id)) if sub == rt::AXCL_SUBMOD_DEVICE && id == rt::AXCL_ERR_TIMEOUT => {
            Error::DeviceLost { call, status, detail }
        }
        _ => Error::Runtime { call, status, detail },
    }
}

/// A failed model load as an [`Error`]: out of memory and a lost device as
/// [`status_error`] says; otherwise, when the engine sub-module calls the file
/// unusable (`ILLEGAL_PARAM`, `UNSUPPORT`, `OPEN`), the package is at fault
/// (INFERRED: the vendor does not document which codes a corrupt or foreign
/// model file produces; these are the ones that say "bad argument"); any
/// other status is a runtime failure.
fn load_error(
    sim: Option<&SimHooks>,
    call: &'static str,
    status: rt::axclError,
    path: &std::path::Path,
    bytes: Option<u64>,
) -> Error {
    let e = status_error(sim, call, status, bytes);
    let file_at_fault = matches!(
        axcl_sys::axcl_err_parts(status),
        Some((_, sub, id)) if sub == rt::AXCL_SUBMOD_ENGINE
            && (id == rt::AXCL_ERR_ILLEGAL_PARAM || id == rt::AXCL_ERR_UNSUPPORT || id == rt::AXCL_ERR_OPEN)
    );
    if file_at_fault { Error::bad_file_from(path, "the runtime cannot load this model file", e) } else { e }
}

/// The one place a vendor status becomes a `Result`.
fn check(sim: Option<&SimHooks>, call: &'static str, status: rt::axclError) -> Result<()> {
    if status == rt::AXCL_SUCC as rt::axclError {
        return Ok(());
    }
    Err(status_error(sim, call, status, None))
}

/// The simulator's extra symbols (`axcl_sim.h`), present only in axcl-sim.
pub struct SimHooks {
    api: AxclSim,
}

impl std::fmt::Debug for SimHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimHooks")
    }
}

/// Counters of runtime calls and bytes moved (see `axcl_sim.h`).
pub type SimCounters = axclSimCounters;

impl SimHooks {
    /// Resolves the simulator's symbols from a second handle to the runtime
    /// library (the loader reference-counts it: same object, same state).
    fn probe(lib: libloading::Library) -> Option<SimHooks> {
        // SAFETY: only looks a symbol up; nothing is called.
        unsafe { lib.get::<unsafe extern "C" fn()>(b"axclSimVersion\0") }.ok()?;
        // SAFETY: `AxclSim` resolves the symbols of axcl_sim.h with their declared types.
        unsafe { AxclSim::from_library(lib) }.ok().map(|api| SimHooks { api })
    }

    /// The simulator's message for the calling thread's last failed call.
    pub fn last_error(&self) -> String {
        // SAFETY: documented never NULL; valid until the thread's next runtime call.
        let p = unsafe { (self.api.axclSimLastErrorMessage)() };
        if p.is_null() {
            return String::new();
        }
        // SAFETY: NUL-terminated string owned by the simulator, copied at once.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// The simulator's version string.
    pub fn version(&self) -> String {
        // SAFETY: returns a static NUL-terminated string.
        let p = unsafe { (self.api.axclSimVersion)() };
        // SAFETY: as above.
        if p.is_null() { String::new() } else { unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned() }
    }

    /// Applies a configuration (latencies, faults; syntax in `axcl_sim.h`).
    pub fn configure(&self, spec: &str) -> Result<()> {
        let c = std::ffi::CString::new(spec).map_err(|_| Error::invalid("NUL in simulator config"))?;
        // SAFETY: valid NUL-terminated string for the duration of the call.
        let status = unsafe { (self.api.axclSimConfigure)(c.as_ptr()) };
        check(Some(self), "axclSimConfigure", status)
    }

    /// The call counters and the live device allocations.
    pub fn counters(&self) -> Result<SimCounters> {
        let mut c = SimCounters::default();
        // SAFETY: valid out-parameter.
        let status = unsafe { (self.api.axclSimGetCounters)(&mut c) };
        check(Some(self), "axclSimGetCounters", status)?;
        Ok(c)
    }

    /// Zeroes the call counters (the live figures stay).
    pub fn reset_counters(&self) -> Result<()> {
        // SAFETY: no arguments.
        let status = unsafe { (self.api.axclSimResetCounters)() };
        check(Some(self), "axclSimResetCounters", status)
    }
}

/// Memory-maps a model file read-only.
pub fn map_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: a read-only private mapping of a regular file. Mapping is `unsafe`
    // because another process could truncate the file underneath us; model files
    // are not modified while a model is loaded.
    unsafe { memmap2::Mmap::map(file) }
}
