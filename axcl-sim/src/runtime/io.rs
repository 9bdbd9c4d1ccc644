//! The calls on IO descriptions (`axclrtEngineIOInfo`) and IO objects
//! (`axclrtEngineIO`), host-side objects named by opaque handles that are
//! looked up (and so validated) on every use (the objects are in `objects`).

use super::calls::Call;
use super::errors::{ErrorKind, SimError, SimResult};
use super::model::{Dir, IoTable};
use super::objects::{Binding, IoInfo, IoObject};
use super::state::{engine_lock, global, new_handle, pay};
use std::sync::Arc;

fn unknown(what: &str, handle: u64) -> SimError {
    SimError::new(
        ErrorKind::EngineArgument,
        format!("{what} handle 0x{handle:x} is unknown (destroyed, or never created)"),
    )
}

/// `axclrtEngineGetIOInfo`.
pub(super) fn get_io_info(model: u64) -> SimResult<u64> {
    let mut g = global();
    let engine = &mut g.with_context()?.engine;
    let table = Arc::clone(&engine.model(model)?.io);
    let info = new_handle();
    engine.infos.insert(info, IoInfo { model, table });
    Ok(info)
}

/// `axclrtEngineDestroyIOInfo`.
pub(super) fn destroy_io_info(info: u64) -> SimResult<()> {
    let mut g = global();
    g.with_context()?.engine.infos.remove(&info).map(|_| ()).ok_or_else(|| unknown("IO info", info))
}

/// Runs an IO-info getter on the table of `info` (host-local: no context needed).
pub(super) fn with_info<T>(info: u64, getter: impl FnOnce(&IoTable) -> SimResult<T>) -> SimResult<T> {
    let mut g = global();
    let entry = g.runtime()?.engine.infos.get(&info).ok_or_else(|| unknown("IO info", info))?;
    getter(&entry.table)
}

/// `axclrtEngineCreateIO`: one unbound slot per input and output.
pub(super) fn create_io(info: u64) -> SimResult<u64> {
    let _engine = engine_lock();
    let mut g = global();
    g.with_context()?;
    g.enter(Call::CreateIo)?;
    let engine = &mut g.runtime()?.engine;
    let model = engine.infos.get(&info).ok_or_else(|| unknown("IO info", info))?.model;
    let table = &engine.model(model)?.io;
    let object = IoObject::new(model, table.count(Dir::Input), table.count(Dir::Output));
    let io = new_handle();
    engine.ios.insert(io, object);
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(io)
}

/// `axclrtEngineDestroyIO`.
pub(super) fn destroy_io(io: u64) -> SimResult<()> {
    let _engine = engine_lock();
    let mut g = global();
    g.with_context()?;
    g.enter(Call::DestroyIo)?;
    g.runtime()?.engine.ios.remove(&io).ok_or_else(|| unknown("IO object", io))?;
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(())
}

/// `axclrtEngineSet{Input,Output}BufferByIndex` (host-local: no latency).
pub(super) fn bind(io: u64, dir: Dir, index: u32, addr: u64, size: u64) -> SimResult<()> {
    let mut g = global();
    g.with_context()?;
    let count = g.runtime()?.engine.ios.get(&io).ok_or_else(|| unknown("IO object", io))?.slots(dir).len();
    if index as usize >= count {
        return Err(SimError::new(
            ErrorKind::InvalidIndex,
            format!("{} index {index} is out of range (the model has {count} {}s)", dir.name(), dir.name()),
        ));
    }
    g.enter(Call::Bind)?;
    let object = g.runtime()?.engine.ios.get_mut(&io).ok_or_else(|| unknown("IO object", io))?;
    object.slots_mut(dir)[index as usize] = Some(Binding { addr, size });
    Ok(())
}

/// `axclrtEngineGet{Input,Output}BufferByIndex`: the binding as given; an
/// unbound tensor reads as (NULL, 0).
pub(super) fn binding(io: u64, dir: Dir, index: u32) -> SimResult<(u64, u64)> {
    let mut g = global();
    let object = g.with_context()?.engine.ios.get(&io).ok_or_else(|| unknown("IO object", io))?;
    Ok(object.binding(dir, index)?.map_or((0, 0), |b| (b.addr, b.size)))
}
