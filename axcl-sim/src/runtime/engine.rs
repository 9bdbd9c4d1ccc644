//! The engine's model lifecycle (init, load, unload, engine contexts); the
//! registries themselves are in `objects`.
//!
//! Every engine call that reaches the card holds the engine mutex for its whole
//! duration, latency included, so engine work never overlaps.

use super::calls::Call;
use super::errors::{ErrorKind, SimError, SimResult};
use super::model::Model;
use super::state::{DEVICE_ID, Runtime, engine_lock, global, new_handle, pay};
use axcl_sys::rt;
use std::path::Path;

/// Fails unless `axclrtEngineInit` ran on the device.
pub(super) fn require_engine(rt: &Runtime) -> SimResult<()> {
    match rt.device.engine_kind {
        Some(_) => Ok(()),
        None => Err(SimError::new(
            ErrorKind::EngineNotInitialized,
            format!("the engine of device {DEVICE_ID} is not initialised (call axclrtEngineInit)"),
        )),
    }
}

/// `axclrtEngineInit`: the same kind again is accepted, another kind is refused.
pub(super) fn init(kind: i32) -> SimResult<()> {
    let _engine = engine_lock();
    let mut g = global();
    g.with_context()?;
    if !(rt::AXCL_VNPU_DISABLE as i32..=rt::AXCL_VNPU_LITTLE_BIG as i32).contains(&kind) {
        return Err(SimError::new(ErrorKind::EngineArgument, format!("unknown vNPU kind {kind}")));
    }
    g.enter(Call::EngineInit)?;
    let device = &mut g.runtime()?.device;
    match device.engine_kind {
        Some(current) if current != kind => {
            return Err(SimError::new(
                ErrorKind::EngineBusy,
                format!("the engine already runs with vNPU kind {current}; finalise it before using kind {kind}"),
            ));
        }
        _ => device.engine_kind = Some(kind),
    }
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(())
}

/// `axclrtEngineFinalize`: loaded models stay loaded (INFERRED), but nothing new
/// can be loaded or executed until the engine is initialised again.
pub(super) fn finalize() -> SimResult<()> {
    let _engine = engine_lock();
    let mut g = global();
    g.with_context()?;
    g.enter(Call::EngineFinalize)?;
    let rt = g.runtime()?;
    require_engine(rt)?;
    rt.device.engine_kind = None;
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(())
}

/// Parses model bytes outside the state lock (the engine mutex is held) and registers the model.
fn install(bytes: &[u8], source: &str) -> SimResult<u64> {
    let model = Model::parse(bytes, source)?;
    let mut g = global();
    let capacity = g.config.mem_bytes();
    let rt = g.runtime()?;
    let used = rt.device.memory.live_bytes() + rt.engine.cmm_bytes();
    if used + model.cmm_bytes > capacity {
        return Err(SimError::new(
            ErrorKind::OutOfMemory,
            format!(
                "{source}: its {} bytes of weights do not fit: {used} of {} MiB of CMM are in use",
                model.cmm_bytes,
                capacity >> 20
            ),
        ));
    }
    let id = new_handle();
    g.runtime()?.engine.models.insert(id, model);
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(id)
}

/// Gate of a load: context, the card, an initialised engine.
fn begin_load() -> SimResult<()> {
    let mut g = global();
    g.with_context()?;
    g.enter(Call::Load)?;
    require_engine(g.runtime()?)
}

/// `axclrtEngineLoadFromFile`: `path` is on the host.
pub(super) fn load_file(path: &Path) -> SimResult<u64> {
    let _engine = engine_lock();
    begin_load()?;
    let bytes = std::fs::read(path)
        .map_err(|e| SimError::new(ErrorKind::ModelOpen, format!("cannot read model file {}: {e}", path.display())))?;
    install(&bytes, &path.display().to_string())
}

/// `axclrtEngineLoadFromMem`: the model bytes must be device memory.
pub(super) fn load_mem(addr: u64, size: u64) -> SimResult<u64> {
    let _engine = engine_lock();
    begin_load()?;
    let bytes = global()
        .runtime()?
        .device
        .memory
        .read(addr, size, "model buffer (LoadFromMem needs device memory)")
        .map_err(|e| SimError::new(ErrorKind::EngineArgument, e.message))?
        .to_vec();
    install(&bytes, &format!("model in device memory at 0x{addr:x}"))
}

/// `axclrtEngineUnload`: the model's engine contexts go with it; its IO objects
/// can no longer execute.
pub(super) fn unload(id: u64) -> SimResult<()> {
    let _engine = engine_lock();
    let mut g = global();
    g.with_context()?;
    g.enter(Call::Unload)?;
    let engine = &mut g.runtime()?.engine;
    engine.model(id)?;
    engine.models.remove(&id);
    engine.contexts.retain(|_, model| *model != id);
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(())
}

/// `axclrtEngineCreateContext`: an engine context tied to `model`.
pub(super) fn create_context(model: u64) -> SimResult<u64> {
    let _engine = engine_lock();
    let mut g = global();
    g.with_context()?;
    g.enter(Call::EngineCreateContext)?;
    let rt = g.runtime()?;
    require_engine(rt)?;
    rt.engine.model(model)?;
    let context = new_handle();
    rt.engine.contexts.insert(context, model);
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(context)
}

/// `axclrtEngineGetUsage`: (system, CMM) bytes the model file at `path` needs,
/// without loading it (host-local: the runtime reads the file's header).
pub(super) fn usage(path: &Path) -> SimResult<(i64, i64)> {
    global().runtime()?;
    let bytes = std::fs::read(path)
        .map_err(|e| SimError::new(ErrorKind::ModelOpen, format!("cannot read model file {}: {e}", path.display())))?;
    crate::format::SimModelFile::parse(&bytes).map_err(|e| {
        let kind = match e {
            crate::format::FormatError::Io(_) => ErrorKind::ModelOpen,
            crate::format::FormatError::RealAxmodel
            | crate::format::FormatError::BadMagic
            | crate::format::FormatError::Version(_) => ErrorKind::ModelUnsupported,
            _ => ErrorKind::EngineArgument,
        };
        SimError::new(kind, format!("{}: {e}", path.display()))
    })?;
    Ok(super::model::usage(bytes.len() as u64))
}

/// `axclrtEngineGetVNpuKind`: the kind the engine was initialised with.
pub(super) fn vnpu_kind() -> SimResult<i32> {
    let mut g = global();
    let rt = g.with_context()?;
    require_engine(rt)?;
    Ok(rt.device.engine_kind.unwrap_or(rt::AXCL_VNPU_DISABLE as i32))
}

/// Whether `id` names a loaded model.
pub(super) fn is_loaded(id: u64) -> bool {
    global().runtime().is_ok_and(|rt| rt.engine.models.contains_key(&id))
}
