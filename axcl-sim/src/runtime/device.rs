//! Devices and runtime contexts.
//!
//! The simulator has one card, [`DEVICE_ID`]. `axclrtSetDevice` binds the card's
//! implicit context to the calling thread (the same context for every thread);
//! `axclrtCreateContext` makes an explicit one. Every thread starts without a
//! current context.

use super::calls::Call;
use super::errors::{ErrorKind, SimError, SimResult};
use super::state::{Context, DEVICE_ID, Device, bind_current, engine_lock, global, new_handle, pay};

fn check_id(id: i32) -> SimResult<()> {
    if id == DEVICE_ID {
        Ok(())
    } else {
        Err(SimError::new(
            ErrorKind::InvalidDeviceId,
            format!("device id {id} is not in the device list [{DEVICE_ID}]"),
        ))
    }
}

/// The ids `axclrtGetDeviceList` reports.
pub(super) fn device_ids() -> SimResult<Vec<i32>> {
    global().runtime()?;
    Ok(vec![DEVICE_ID])
}

/// `axclrtSetDevice`: binds the device's implicit context to the calling thread.
pub(super) fn set_device(id: i32) -> SimResult<()> {
    let cost = {
        let mut g = global();
        g.runtime()?;
        check_id(id)?;
        g.enter(Call::SetDevice)?;
        let rt = g.runtime()?;
        let context = match rt.device.default_context {
            Some(context) => context,
            None => {
                let context = new_handle();
                rt.contexts.insert(context, Context { implicit: true });
                rt.device.default_context = Some(context);
                context
            }
        };
        bind_current(context);
        g.config.latency.call()
    };
    pay(cost);
    Ok(())
}

/// `axclrtResetDevice`: destroys the device's contexts and frees its memory and
/// models (the real runtime releases the process's CMM); clears a lost device.
pub(super) fn reset_device(id: i32) -> SimResult<()> {
    let _engine = engine_lock();
    let cost = {
        let mut g = global();
        g.runtime()?;
        check_id(id)?;
        g.enter(Call::ResetDevice)?;
        let rt = g.runtime()?;
        rt.contexts.clear();
        rt.streams.clear();
        rt.device = Device::default();
        rt.engine.unload_all();
        g.config.latency.call()
    };
    pay(cost);
    Ok(())
}

/// `axclrtGetDevice`: the device of the calling thread's current context.
pub(super) fn current_device() -> SimResult<i32> {
    global().with_context()?;
    Ok(DEVICE_ID)
}

/// `axclrtCreateContext`: a new explicit context, current for the calling thread.
pub(super) fn create_context(id: i32) -> SimResult<u64> {
    let mut g = global();
    let rt = g.runtime()?;
    check_id(id)?;
    let context = new_handle();
    rt.contexts.insert(context, Context { implicit: false });
    bind_current(context);
    Ok(context)
}

/// `axclrtDestroyContext`.
pub(super) fn destroy_context(context: u64) -> SimResult<()> {
    let mut g = global();
    let rt = g.runtime()?;
    match rt.contexts.get(&context) {
        None => Err(SimError::new(ErrorKind::ContextDestroy, format!("context 0x{context:x} does not exist"))),
        Some(c) if c.implicit => Err(SimError::new(
            ErrorKind::ContextDestroy,
            format!(
                "context 0x{context:x} is the implicit context of device {DEVICE_ID}; axclrtResetDevice releases it"
            ),
        )),
        Some(_) => {
            rt.contexts.remove(&context);
            Ok(())
        }
    }
}

/// `axclrtSetCurrentContext`.
pub(super) fn set_current_context(context: u64) -> SimResult<()> {
    let mut g = global();
    if !g.runtime()?.contexts.contains_key(&context) {
        return Err(SimError::new(
            ErrorKind::ContextBind,
            format!("context 0x{context:x} does not exist (destroyed, or its device was reset)"),
        ));
    }
    bind_current(context);
    Ok(())
}

/// `axclrtGetCurrentContext`.
pub(super) fn current_context() -> SimResult<u64> {
    global().current_context()
}

/// `axclrtGetDefaultContext`: the implicit context of `id` (it exists once
/// `axclrtSetDevice` ran).
pub(super) fn default_context(id: i32) -> SimResult<u64> {
    let mut g = global();
    let rt = g.runtime()?;
    check_id(id)?;
    rt.device.default_context.ok_or_else(|| {
        SimError::new(
            ErrorKind::NoBindContext,
            format!("device {id} has no default context yet (call axclrtSetDevice({id}) first)"),
        )
    })
}

/// `axclrtGetDeviceProperties` (host-local). The PCIe bus number is the one
/// the device id is derived from (hardware-facts: F3); CMM sizes are in KB and
/// count loaded models' weights (hardware-facts: F10, F11).
pub(super) fn properties(id: i32, version: &std::ffi::CStr) -> SimResult<axcl_sys::rt::axclrtDeviceProperties> {
    let mut g = global();
    let total = g.config.mem_bytes();
    let rt = g.runtime()?;
    check_id(id)?;
    let used = rt.device.memory.live_bytes() + rt.engine.cmm_bytes();
    let mut p = axcl_sys::rt::axclrtDeviceProperties::default();
    for (dst, src) in p.swVersion.iter_mut().zip(version.to_bytes().iter().take(63)) {
        *dst = *src as std::ffi::c_char;
    }
    p.pciBusID = DEVICE_ID as u32;
    p.totalCmmSize = u32::try_from(total >> 10).unwrap_or(u32::MAX);
    p.freeCmmSize = u32::try_from(total.saturating_sub(used) >> 10).unwrap_or(u32::MAX);
    Ok(p)
}
