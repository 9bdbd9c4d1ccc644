//! Streams: ordered queues of asynchronous work (`axclrtCreateStream`,
//! `axclrtSynchronizeStream`, the `*Async` calls of the vendor's API).
//!
//! The simulated card does one thing at a time, so all streams feed one device
//! timeline (SIMPLIFICATION: on the card NPU and DMA may overlap, and streams
//! may run side by side). An asynchronous call does its work at once, in call
//! order (a caller may not look at the results before synchronising, so it
//! cannot tell), waits only for its request message (`call_us`), and appends
//! the device's time for the work (execution or transfer) to the timeline.
//! `axclrtSynchronizeStream`, like every synchronous call that reaches the
//! card, first waits for the timeline to drain. INFERRED: how much of a call's
//! round trip an asynchronous call saves on the real runtime is not documented.

use super::calls::Call;
use super::errors::{ErrorKind, SimError, SimResult};
use super::state::{Runtime, global, new_handle, pay};

/// Fails unless `stream` is a live stream handle.
pub(super) fn require(rt: &Runtime, stream: u64) -> SimResult<()> {
    if rt.streams.contains(&stream) {
        Ok(())
    } else {
        Err(SimError::new(ErrorKind::UnknownStream, format!("stream handle 0x{stream:x} is unknown (destroyed, or never created)")))
    }
}

/// `axclrtCreateStream`.
pub(super) fn create() -> SimResult<u64> {
    let mut g = global();
    g.with_context()?;
    g.enter(Call::Stream)?;
    let stream = new_handle();
    g.runtime()?.streams.insert(stream);
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(stream)
}

/// `axclrtDestroyStream`: waits for the queued work like a synchronisation.
pub(super) fn destroy(stream: u64) -> SimResult<()> {
    let mut g = global();
    require(g.with_context()?, stream)?;
    g.enter(Call::Stream)?;
    g.runtime()?.streams.remove(&stream);
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(())
}

/// `axclrtSynchronizeStream`: returns when the queued work has finished.
pub(super) fn synchronize(stream: u64) -> SimResult<()> {
    let mut g = global();
    require(g.with_context()?, stream)?;
    g.enter(Call::Stream)?;
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(())
}
