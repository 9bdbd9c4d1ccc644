//! Diagnostics of the test bed, apart from the product: when the runtime is
//! axcl-sim (the CPU stand-in for the card), its counters and fault injection
//! are reachable here, and nowhere else in the API. On a card there is nothing
//! to reach: [`crate::Model::simulator`] returns `None`.

use crate::error::Result;
use crate::npu::Runtime;
use std::sync::Arc;

/// The simulator behind a model (see [`crate::Model::simulator`]).
#[derive(Debug, Clone)]
pub struct Simulator {
    runtime: Arc<Runtime>,
}

/// Runtime calls and bytes moved since the last reset, and what the simulated
/// card holds now (the `live_*` and `peak_bytes` fields are not reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimulatorCounters {
    /// Every runtime call that would cross PCIe.
    pub calls: u64,
    /// Device allocations.
    pub malloc_calls: u64,
    /// Device frees.
    pub free_calls: u64,
    /// Device memsets.
    pub memset_calls: u64,
    /// Host-to-device copies.
    pub h2d_calls: u64,
    /// Device-to-host copies.
    pub d2h_calls: u64,
    /// On-card copies.
    pub d2d_calls: u64,
    /// Bytes copied host to device.
    pub h2d_bytes: u64,
    /// Bytes copied device to host.
    pub d2h_bytes: u64,
    /// Bytes copied on the card.
    pub d2d_bytes: u64,
    /// IO buffer bindings.
    pub bind_calls: u64,
    /// Engine executions.
    pub execute_calls: u64,
    /// Executions of post (lm_head) models.
    pub post_execute_calls: u64,
    /// Model loads.
    pub load_calls: u64,
    /// Simulated latency charged to callers, in nanoseconds.
    pub latency_ns: u64,
    /// Device allocations alive now (every model's of the process).
    pub live_allocations: u64,
    /// Device bytes alive now.
    pub live_bytes: u64,
    /// High-water mark of `live_bytes`.
    pub peak_bytes: u64,
    /// Engine models loaded now.
    pub live_models: u64,
    /// H2D and D2H copies whose host side was `axclrtMallocHost` memory.
    pub pinned_copies: u64,
}

impl Simulator {
    /// The simulator of `runtime`, if it is one.
    pub(crate) fn of(runtime: &Arc<Runtime>) -> Option<Simulator> {
        runtime.simulator()?;
        Some(Simulator { runtime: Arc::clone(runtime) })
    }

    fn hooks(&self) -> &crate::npu::SimHooks {
        self.runtime.simulator().expect("checked in Simulator::of")
    }

    /// The simulator's version, for example `axcl-sim 0.1.0`.
    pub fn version(&self) -> String {
        self.hooks().version()
    }

    /// Applies a configuration: latencies, memory size, injected faults
    /// (`fail=execute:3`, `lose_device=execute:5`...; the syntax is in
    /// `axcl_sim.h`). Process-wide: it affects every model of the process.
    pub fn configure(&self, spec: &str) -> Result<()> {
        self.hooks().configure(spec)
    }

    /// The counters now.
    pub fn counters(&self) -> Result<SimulatorCounters> {
        let c = self.hooks().counters()?;
        Ok(SimulatorCounters {
            calls: c.calls,
            malloc_calls: c.malloc_calls,
            free_calls: c.free_calls,
            memset_calls: c.memset_calls,
            h2d_calls: c.h2d_calls,
            d2h_calls: c.d2h_calls,
            d2d_calls: c.d2d_calls,
            h2d_bytes: c.h2d_bytes,
            d2h_bytes: c.d2h_bytes,
            d2d_bytes: c.d2d_bytes,
            bind_calls: c.bind_calls,
            execute_calls: c.execute_calls,
            post_execute_calls: c.post_execute_calls,
            load_calls: c.load_calls,
            pinned_copies: c.pinned_copies,
            latency_ns: c.latency_ns,
            live_allocations: c.live_allocations,
            live_bytes: c.live_bytes,
            peak_bytes: c.peak_bytes,
            live_models: c.live_models,
        })
    }

    /// Zeroes the call counters (the live figures stay).
    pub fn reset_counters(&self) -> Result<()> {
        self.hooks().reset_counters()
    }
}
