//! The calls that reach the simulated card, and what the simulator does for each.
//!
//! A call that *crosses PCIe* is counted in `axclSimCounters::calls`, pays the
//! configured `call_us` (plus transfer or execution time), and fails while the
//! device is lost. Fault kinds are the `KIND` of `fail=`, `lose_device=` and
//! `abort=` in the simulator configuration.
//!
//! | call | crosses PCIe | fault kinds | default injected code |
//! |---|---|---|---|
//! | `axclrtSetDevice` | yes | – | – |
//! | `axclrtResetDevice` | yes, and works on a lost device (it is the recovery) | – | – |
//! | `axclrtMalloc` | yes | `malloc`, `any` | MEMORY NO_MEMORY |
//! | `axclrtFree` | yes | `free`, `any` | MEMORY EXECUTE_FAIL |
//! | `axclrtMemset` | yes | `memset`, `any` | MEMORY EXECUTE_FAIL |
//! | `axclrtMemcpy` H2D / D2H / D2D | yes | `memcpy`, `h2d` / `d2h` / `d2d`, `any` | MEMORY EXECUTE_FAIL |
//! | `axclrtEngineInit` / `axclrtEngineFinalize` | yes (INFERRED: the card runs `AX_ENGINE_Init`) | – | – |
//! | `axclrtEngineLoadFromFile` / `LoadFromMem` | yes | `load`, `any` | ENGINE EXECUTE_FAIL |
//! | `axclrtEngineUnload`, `axclrtEngineCreateContext` | yes | – | – |
//! | `axclrtEngineCreateIO` / `DestroyIO` | yes | – | – |
//! | `axclrtEngineSet{Input,Output}BufferByIndex` | no: host-local (INFERRED) | `bind`, `any` | ENGINE EXECUTE_FAIL |
//! | `axclrtEngineExecute` | yes | `execute`, `any` | ENGINE EXECUTE_FAIL |
//! | `axclrtMemcpyAsync`, `axclrtEngineExecuteAsync` | yes, as their synchronous forms, but the caller pays only `call_us`: the transfer or execution goes on the device timeline (see `stream`) | as their synchronous forms | as their synchronous forms |
//! | `axclrtCreateStream` / `DestroyStream` / `SynchronizeStream` | yes | – | – |
//!
//! Every other call is host-local (INFERRED): device queries, context management,
//! `axclrtEngineGetIOInfo` / `DestroyIOInfo` and the IO-info getters, and
//! `HOST_TO_HOST` copies. They pay no latency, are not counted in `calls`, keep
//! working on a lost device and cannot be faulted. Calls that fail return at once
//! without paying latency. Every synchronous call that crosses PCIe first waits
//! until the device has finished the asynchronous work queued before it.

use super::errors::ErrorKind;
use axcl_sys::sim::axclSimCounters;

/// Direction of a copy that involves the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyKind {
    HostToDevice,
    DeviceToHost,
    DeviceToDevice,
}

/// A call that reaches the simulated card (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    SetDevice,
    ResetDevice,
    Malloc,
    Free,
    Memset,
    Memcpy(CopyKind),
    EngineInit,
    EngineFinalize,
    Load,
    Unload,
    EngineCreateContext,
    CreateIo,
    DestroyIo,
    Bind,
    Execute,
    /// Creating, destroying or synchronising a stream.
    Stream,
}

impl Call {
    pub(super) fn crosses_pcie(self) -> bool {
        self != Call::Bind
    }

    pub(super) fn fails_when_lost(self) -> bool {
        self.crosses_pcie() && self != Call::ResetDevice
    }

    /// Whether faults can fire on this call (the calls with a fault kind).
    pub(super) fn is_fault_point(self) -> bool {
        matches!(
            self,
            Call::Malloc | Call::Free | Call::Memset | Call::Memcpy(_) | Call::Load | Call::Bind | Call::Execute
        )
    }

    /// The failure an injected `fail=` without a code produces (engine calls, the
    /// rest of the fault points, get ENGINE EXECUTE_FAIL).
    pub(super) fn default_fault(self) -> ErrorKind {
        match self {
            Call::Malloc => ErrorKind::OutOfMemory,
            Call::Free | Call::Memset | Call::Memcpy(_) => ErrorKind::MemoryExecuteFailed,
            _ => ErrorKind::ExecuteFailed,
        }
    }

    /// Adds this call to the call counters (bytes are added by the copy itself).
    pub(super) fn count(self, c: &mut axclSimCounters) {
        c.calls += u64::from(self.crosses_pcie());
        let counter = match self {
            Call::Malloc => &mut c.malloc_calls,
            Call::Free => &mut c.free_calls,
            Call::Memset => &mut c.memset_calls,
            Call::Memcpy(CopyKind::HostToDevice) => &mut c.h2d_calls,
            Call::Memcpy(CopyKind::DeviceToHost) => &mut c.d2h_calls,
            Call::Memcpy(CopyKind::DeviceToDevice) => &mut c.d2d_calls,
            Call::Bind => &mut c.bind_calls,
            Call::Execute => &mut c.execute_calls,
            Call::Load => &mut c.load_calls,
            _ => return,
        };
        *counter += 1;
    }
}
