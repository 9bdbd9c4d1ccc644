//! Every way a simulated call fails, and the composed vendor code it returns.
//!
//! This is the one place that maps situations to codes. A code is
//! `0x80000000 | 0x30 << 16 | sub << 8 | id` (runtime module 0, see
//! [`axcl_sys::axcl_err`]); ids below 0x80 are the vendor's generic
//! `AXCL_ERROR_E` values, ids from 0x80 are sub-module specific.
//!
//! "Documented" means the vendor headers or documentation give the code and its
//! meaning. **INFERRED** means the vendor does not say which
//! code the real runtime returns in that situation: the choice is ours, and a
//! conformance run on a real card should settle it.

use axcl_sys::axcl_err;
use axcl_sys::rt::{self, axclError};

/// The runtime sub-modules the simulator reports errors for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sub {
    Device,
    Context,
    Stream,
    Memory,
    Config,
    Engine,
}

impl Sub {
    const fn id(self) -> u32 {
        match self {
            Sub::Device => rt::AXCL_SUBMOD_DEVICE,
            Sub::Context => rt::AXCL_SUBMOD_CONTEXT,
            Sub::Stream => rt::AXCL_SUBMOD_STREAM,
            Sub::Memory => rt::AXCL_SUBMOD_MEMORY,
            Sub::Config => rt::AXCL_SUBMOD_CONFIG,
            Sub::Engine => rt::AXCL_SUBMOD_ENGINE,
        }
    }
}

/// A failure situation. Each variant's doc gives its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorKind {
    /// `<sub> NULL_POINTER` (0x80300102, 0x80300202, 0x80300502, 0x80300602,
    /// 0x80300702): a required pointer or handle argument is NULL. Documented
    /// (the vendor headers define one such code per sub-module).
    NullPointer(Sub),
    /// 0x80300185 DEVICE NO_ACTIVE_DEVICE: any call other than the version,
    /// configuration and counter calls before `axclInit` or after `axclFinalize`.
    /// INFERRED.
    NotInitialized,
    /// 0x80300106 DEVICE BUSY: `axclInit` while already initialised. INFERRED;
    /// newer vendor documentation describes `axclInit` as reference counted (a
    /// second call succeeds); the simulator rejects it so that a runner that
    /// initialises twice is caught in tests.
    AlreadyInitialized,
    /// 0x80300603 CONFIG ILLEGAL_PARAM: a simulator configuration
    /// (`axclSimConfigure`, `AXCL_SIM_CONFIG`) that does not parse. Simulator-only.
    BadConfig,
    /// 0x80300184 DEVICE INVALID_ID: a device id that is not in the device list.
    /// Documented.
    InvalidDeviceId,
    /// 0x80300105 DEVICE TIMEOUT: the device was lost (fault injection); every
    /// call that reaches the card fails until `axclrtResetDevice`. INFERRED (a card
    /// that drops off the bus makes the runtime's messages time out).
    DeviceLost,
    /// 0x80300284 CONTEXT NO_BIND_CONTEXT: the calling thread has no current
    /// context. Documented code; INFERRED that calls touching the device return it
    /// (the vendor documents it for `axclrtGetCurrentContext`).
    NoBindContext,
    /// 0x80300282 CONTEXT DESTROY: `axclrtDestroyContext` of an unknown context or
    /// of a device's implicit context (released by `axclrtResetDevice`).
    /// Documented code; applicability INFERRED.
    ContextDestroy,
    /// 0x80300283 CONTEXT BIND_THREAD: `axclrtSetCurrentContext` of an unknown
    /// (destroyed or reset) context. Documented: the runtime returns it when binding
    /// the context to the thread fails.
    ContextBind,
    /// 0x80300303 STREAM ILLEGAL_PARAM: an unknown (destroyed, or never created)
    /// stream handle. INFERRED.
    UnknownStream,
    /// 0x80300503 MEMORY ILLEGAL_PARAM: a bad size, policy or copy kind, a device
    /// range that does not lie inside one live allocation (out-of-bounds copies,
    /// `axclrtFree` of an unknown address, host memory where device memory is
    /// required), or a host pointer inside the device address window. INFERRED (the
    /// card-side worker only reports −1 for an unknown address).
    BadMemoryArgument,
    /// 0x80300504 MEMORY UNSUPPORT: `axclrtMemcpy` with the `*_PHY` kinds (host
    /// physical memory), which the simulator cannot model. INFERRED.
    UnsupportedCopyKind,
    /// 0x80300507 MEMORY NO_MEMORY: the device memory (`mem_mb`) has no free range
    /// large enough. INFERRED (generic id of the memory sub-module).
    OutOfMemory,
    /// 0x8030050C MEMORY EXECUTE_FAIL: default code of an injected fault on free,
    /// memset and copies (the card could not carry out the operation). INFERRED.
    MemoryExecuteFailed,
    /// 0x80300701 ENGINE FAIL: loading, creating an engine context or executing on
    /// a device whose engine is not initialised (`axclrtEngineInit`), or
    /// `axclrtEngineFinalize` without it. INFERRED.
    EngineNotInitialized,
    /// 0x80300706 ENGINE BUSY: `axclrtEngineInit` with a vNPU kind other than the
    /// one the engine already runs. INFERRED (the same kind again succeeds).
    EngineBusy,
    /// 0x8030070B ENGINE OPEN: the model file cannot be read. INFERRED.
    ModelOpen,
    /// 0x80300704 ENGINE UNSUPPORT: the bytes are not a simulated model: a real
    /// compiled `.axmodel` (which needs the AXCL runtime and an AX650 card), an
    /// unknown magic or an unknown format version. INFERRED.
    ModelUnsupported,
    /// 0x80300703 ENGINE ILLEGAL_PARAM: a corrupt simulated model, an unknown
    /// handle (model, engine context, IO info, IO object), a handle belonging to
    /// another model, a bad vNPU kind, or an unusable buffer binding at execute
    /// (unbound, smaller than the tensor, or not inside one live allocation).
    /// Documented generic id; applicability INFERRED.
    EngineArgument,
    /// 0x80300781 ENGINE INVALID_INDEX: a shape-group or tensor index out of
    /// range. Documented code; INFERRED that tensor indices also return it.
    InvalidIndex,
    /// 0x8030070C ENGINE EXECUTE_FAIL: the model's computation failed; also the
    /// default code of injected load, bind and execute faults. INFERRED.
    ExecuteFailed,
    /// `<sub> FAIL` (id 0x01): a panic inside the simulator (a bug), caught at the
    /// C boundary. Simulator-only.
    Internal(Sub),
}

impl ErrorKind {
    /// The composed code returned to C.
    pub(super) const fn code(self) -> axclError {
        use ErrorKind::*;
        use Sub::*;
        let (sub, id) = match self {
            NullPointer(sub) => (sub, rt::AXCL_ERR_NULL_POINTER),
            NotInitialized => (Device, rt::AXCL_ERR_DEVICE_NO_ACTIVE_DEVICE),
            AlreadyInitialized => (Device, rt::AXCL_ERR_BUSY),
            BadConfig => (Config, rt::AXCL_ERR_ILLEGAL_PARAM),
            InvalidDeviceId => (Device, rt::AXCL_ERR_DEVICE_INVALID_ID),
            DeviceLost => (Device, rt::AXCL_ERR_TIMEOUT),
            NoBindContext => (Context, rt::AXCL_ERR_CONTEXT_NO_BIND_CONTEXT),
            ContextDestroy => (Context, rt::AXCL_ERR_CONTEXT_DESTROY),
            ContextBind => (Context, rt::AXCL_ERR_CONTEXT_BIND_THREAD),
            UnknownStream => (Stream, rt::AXCL_ERR_ILLEGAL_PARAM),
            BadMemoryArgument => (Memory, rt::AXCL_ERR_ILLEGAL_PARAM),
            UnsupportedCopyKind => (Memory, rt::AXCL_ERR_UNSUPPORT),
            OutOfMemory => (Memory, rt::AXCL_ERR_NO_MEMORY),
            MemoryExecuteFailed => (Memory, rt::AXCL_ERR_EXECUTE_FAIL),
            EngineNotInitialized => (Engine, rt::AXCL_ERR_FAIL),
            EngineBusy => (Engine, rt::AXCL_ERR_BUSY),
            ModelOpen => (Engine, rt::AXCL_ERR_OPEN),
            ModelUnsupported => (Engine, rt::AXCL_ERR_UNSUPPORT),
            EngineArgument => (Engine, rt::AXCL_ERR_ILLEGAL_PARAM),
            InvalidIndex => (Engine, rt::AXCL_ERR_ENGINE_INVALID_INDEX),
            ExecuteFailed => (Engine, rt::AXCL_ERR_EXECUTE_FAIL),
            Internal(sub) => (sub, rt::AXCL_ERR_FAIL),
        };
        axcl_err(sub.id(), id)
    }
}

/// A failed call: the code returned to C and the message `axclSimLastErrorMessage` reports.
#[derive(Debug)]
pub(super) struct SimError {
    pub code: axclError,
    pub message: String,
}

impl SimError {
    pub(super) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { code: kind.code(), message: message.into() }
    }

    /// A failure with a caller-chosen code (injected faults).
    pub(super) fn with_code(code: axclError, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

pub(super) type SimResult<T> = Result<T, SimError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_documented_values() {
        assert_eq!(ErrorKind::InvalidIndex.code() as u32, 0x8030_0781);
        assert_eq!(ErrorKind::NoBindContext.code() as u32, 0x8030_0284);
        assert_eq!(ErrorKind::InvalidDeviceId.code() as u32, 0x8030_0184);
        assert_eq!(ErrorKind::OutOfMemory.code() as u32, 0x8030_0507);
        assert_eq!(ErrorKind::NullPointer(Sub::Memory).code() as u32, 0x8030_0502);
        assert_eq!(ErrorKind::ModelUnsupported.code() as u32, 0x8030_0704);
        assert_eq!(ErrorKind::UnknownStream.code() as u32, 0x8030_0303);
    }
}
