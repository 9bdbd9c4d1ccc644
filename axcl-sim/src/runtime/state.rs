//! The simulator's state, in one place: a global behind a mutex, an engine mutex
//! that serialises engine calls, and the calling thread's current context.
//!
//! Lock order: the engine mutex (if needed) before the state mutex. Nothing
//! waits for simulated latency while holding the state mutex.

use super::arena::Arena;
use super::calls::Call;
use super::config::Config;
use super::errors::{ErrorKind, SimError, SimResult};
use super::faults::FaultAction;
use super::latency;
use super::objects::Engine;
use super::reserve::reserve_device_window;
use axcl_sys::sim::axclSimCounters;
use parking_lot::{Mutex, MutexGuard};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The id of the one simulated card (bus-derived ids are not 0-based; 129 is typical; hardware-facts: F3).
pub(super) const DEVICE_ID: i32 = 129;

/// Environment variable whose configuration text `axclInit` applies.
const CONFIG_ENV: &str = "AXCL_SIM_CONFIG";

/// Everything the simulator knows.
#[derive(Debug, Default)]
pub(super) struct Global {
    pub config: Config,
    /// Call counters; the `live_*` fields are filled in when read.
    pub counters: axclSimCounters,
    /// `Some` between `axclInit` and `axclFinalize`.
    pub runtime: Option<Runtime>,
}

/// State that exists while the runtime is initialised.
#[derive(Debug, Default)]
pub(super) struct Runtime {
    pub device: Device,
    /// Live contexts by handle.
    pub contexts: HashMap<u64, Context>,
    pub engine: Engine,
    /// Live stream handles.
    pub streams: std::collections::HashSet<u64>,
    /// Live `axclrtMallocHost` blocks (host memory: not freed by a device reset).
    pub host: super::host::HostBlocks,
}

/// The simulated card.
#[derive(Debug, Default)]
pub(super) struct Device {
    /// Set by a `lose_device` fault, cleared by `axclrtResetDevice`.
    pub lost: bool,
    /// The vNPU kind `axclrtEngineInit` set, if the engine is initialised.
    pub engine_kind: Option<i32>,
    /// The implicit context `axclrtSetDevice` binds (created on first use).
    pub default_context: Option<u64>,
    pub memory: Arena,
    /// When the asynchronous work queued so far will have finished (the device
    /// timeline, see `stream`); `None` before the first asynchronous call.
    pub busy_until: Option<Instant>,
}

/// A runtime context (all contexts belong to the one device).
#[derive(Debug, Clone, Copy)]
pub(super) struct Context {
    /// The device's implicit context, which only `axclrtResetDevice` releases.
    pub implicit: bool,
}

fn state() -> &'static Mutex<Global> {
    static STATE: OnceLock<Mutex<Global>> = OnceLock::new();
    STATE.get_or_init(Mutex::default)
}

/// Locks the simulator state.
pub(super) fn global() -> MutexGuard<'static, Global> {
    state().lock()
}

/// Serialises engine calls, including their simulated latency (one NPU job at a
/// time, like the card-side engine worker's mutex; hardware-facts: F26).
pub(super) fn engine_lock() -> MutexGuard<'static, ()> {
    static ENGINE: Mutex<()> = Mutex::new(());
    ENGINE.lock()
}

/// A fresh non-zero handle. Handles of every kind come from one counter and are
/// never reused, so a stale or foreign handle can never name a live object.
pub(super) fn new_handle() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    /// The calling thread's current context handle (0 = none).
    static CURRENT_CONTEXT: Cell<u64> = const { Cell::new(0) };
}

/// Makes `context` the calling thread's current context.
pub(super) fn bind_current(context: u64) {
    CURRENT_CONTEXT.with(|c| c.set(context));
}

/// A synchronous call's latency: waits until the device has finished the
/// asynchronous work queued before it, then for `cost`; counts the time charged.
pub(super) fn pay(cost: Duration) {
    pay_since(Instant::now(), cost);
}

/// [`pay`] for a call that entered the simulator at `start`: the simulator's
/// own work since then (a copy's bytes moved, a layer's math) stands for the
/// card's work and counts toward `cost` instead of adding to it, so the
/// caller is released at `max(start, queued work done) + cost`, as on a card.
pub(super) fn pay_since(start: Instant, cost: Duration) {
    let busy = global().runtime.as_ref().and_then(|rt| rt.device.busy_until);
    let from = busy.map_or(start, |t| t.max(start));
    let end = from + cost;
    latency::wait(end.saturating_duration_since(Instant::now()));
    // The cost as spent (at least the cost; the simulator's work may outlast it).
    let spent = if cost.is_zero() { cost } else { Instant::now().saturating_duration_since(from).max(cost) };
    count_waited(from.saturating_duration_since(start) + spent);
}

/// An asynchronous call's latency: the caller waits for `message` (the request
/// reaching the card; the simulator's work since the call entered at `start`
/// counts toward it, as in [`pay_since`]); `device` (the work itself) is
/// appended to the device timeline, after whatever was queued before it.
pub(super) fn pay_async(start: Instant, message: Duration, device: Duration) {
    latency::wait((start + message).saturating_duration_since(Instant::now()));
    let spent = if message.is_zero() { message } else { Instant::now().saturating_duration_since(start).max(message) };
    let mut g = global();
    if let Some(rt) = g.runtime.as_mut() {
        let now = Instant::now();
        rt.device.busy_until = Some(rt.device.busy_until.map_or(now, |t| t.max(now)) + device);
    }
    drop(g);
    count_waited(spent);
}

fn count_waited(waited: Duration) {
    if !waited.is_zero() {
        global().counters.latency_ns += u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
    }
}

fn not_initialized() -> SimError {
    SimError::new(ErrorKind::NotInitialized, "the runtime is not initialised (call axclInit first)")
}

impl Global {
    /// The initialised runtime.
    pub(super) fn runtime(&mut self) -> SimResult<&mut Runtime> {
        self.runtime.as_mut().ok_or_else(not_initialized)
    }

    /// The runtime, provided the calling thread has a live current context.
    pub(super) fn with_context(&mut self) -> SimResult<&mut Runtime> {
        let rt = self.runtime()?;
        let current = CURRENT_CONTEXT.with(Cell::get);
        if !rt.contexts.contains_key(&current) {
            let why = if current == 0 { "has none" } else { "was destroyed or its device reset" };
            return Err(SimError::new(
                ErrorKind::NoBindContext,
                format!(
                    "the calling thread has no current context (it {why}): call axclrtSetDevice, \
                     axclrtCreateContext or axclrtSetCurrentContext on this thread first"
                ),
            ));
        }
        Ok(rt)
    }

    /// The calling thread's live current context.
    pub(super) fn current_context(&mut self) -> SimResult<u64> {
        self.with_context()?;
        Ok(CURRENT_CONTEXT.with(Cell::get))
    }

    /// A call reaches the card: fails on a lost device, counts the call, and
    /// fires injected faults (a failing call has no other effect).
    pub(super) fn enter(&mut self, call: Call) -> SimResult<()> {
        let Global { config, counters, runtime } = self;
        let rt = runtime.as_mut().ok_or_else(not_initialized)?;
        if rt.device.lost && call.fails_when_lost() {
            return Err(SimError::new(
                ErrorKind::DeviceLost,
                format!("device {DEVICE_ID} is lost; call axclrtResetDevice({DEVICE_ID}) to recover"),
            ));
        }
        call.count(counters);
        let Some(fault) = config.faults.on_call(call) else { return Ok(()) };
        let what = format!("injected fault {} fired", fault.describe());
        match fault.action {
            FaultAction::Abort => {
                eprintln!("axcl-sim: {what}: aborting the process");
                std::process::abort();
            }
            FaultAction::LoseDevice => {
                rt.device.lost = true;
                Err(SimError::new(ErrorKind::DeviceLost, format!("{what}: device {DEVICE_ID} is lost")))
            }
            FaultAction::Fail(code) => Err(SimError::with_code(code.unwrap_or(call.default_fault().code()), what)),
        }
    }

    /// The counters, with the live figures of the current runtime.
    pub(super) fn snapshot(&self) -> axclSimCounters {
        let mut c = self.counters;
        let rt = self.runtime.as_ref();
        c.live_allocations = rt.map_or(0, |rt| rt.device.memory.live_allocations());
        c.live_bytes = rt.map_or(0, |rt| rt.device.memory.live_bytes());
        c.live_models = rt.map_or(0, |rt| rt.engine.live_models());
        c.live_host_blocks = rt.map_or(0, |rt| rt.host.live_blocks());
        c
    }
}

/// `axclInit`: applies `AXCL_SIM_CONFIG` and creates the runtime (once until finalised).
pub(super) fn init() -> SimResult<()> {
    let mut g = global();
    if g.runtime.is_some() {
        return Err(SimError::new(
            ErrorKind::AlreadyInitialized,
            "the runtime is already initialised (call axclFinalize first)",
        ));
    }
    if let Some(spec) = std::env::var_os(CONFIG_ENV) {
        let spec = spec
            .to_str()
            .ok_or_else(|| SimError::new(ErrorKind::BadConfig, format!("{CONFIG_ENV} is not valid UTF-8")))?;
        g.config.apply(spec).map_err(|e| SimError::new(ErrorKind::BadConfig, format!("{CONFIG_ENV}: {e}")))?;
    }
    reserve_device_window();
    g.runtime = Some(Runtime::default());
    Ok(())
}

/// `axclFinalize`: frees every allocation, model, IO object and context.
pub(super) fn finalize() -> SimResult<()> {
    let _engine = engine_lock();
    let mut g = global();
    g.runtime()?;
    g.runtime = None;
    Ok(())
}

/// `axclSimGetCounters`.
pub(super) fn counters() -> axclSimCounters {
    global().snapshot()
}

/// `axclSimResetCounters`: zeroes the call counters; `peak_bytes` and the live figures stay.
pub(super) fn reset_counters() {
    let mut g = global();
    g.counters = axclSimCounters { peak_bytes: g.counters.peak_bytes, ..Default::default() };
}

/// `axclSimConfigure`: applies a configuration text (nothing changes when it does not parse).
pub(super) fn configure(spec: &str) -> SimResult<()> {
    global().config.apply(spec).map_err(|e| SimError::new(ErrorKind::BadConfig, e))
}
