//! Simulated PCIe and NPU latency, and the accurate wait that spends it.

use super::calls::CopyKind;
use super::host::HostMemory;
use std::time::{Duration, Instant};

/// Configured latencies (all zero by default: no waiting).
///
/// A synchronous call that reaches the card costs the caller `call_us` (the
/// request), then its work (an execution, a transfer), then `sync_us` (the
/// completion round trip). An asynchronous call costs the caller `call_us`
/// and puts its work on the device timeline (see `stream`). The benchmark's
/// values and their sources are in `axsim_pack::calibration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Latency {
    /// Fixed cost of every call that crosses PCIe: the request (µs).
    pub call_us: f64,
    /// What a synchronous call waits beyond its work: the completion round
    /// trip an asynchronous call does not wait for (µs).
    pub sync_us: f64,
    /// One execute of a decode shape group of a decoder-layer model (µs), on top of `call_us`.
    pub exec_us: f64,
    /// One execute of a prefill shape group (µs), on top of `call_us`; `None`: `exec_us`.
    pub prefill_us: Option<f64>,
    /// One execute of a post model (µs), on top of `call_us`.
    pub post_us: f64,
    /// Host-to-device bandwidth in MB/s (10⁶ bytes per second); 0 = infinite.
    pub h2d_mbps: f64,
    /// Device-to-host bandwidth, like `h2d_mbps`.
    pub d2h_mbps: f64,
    /// On-card copy bandwidth, like `h2d_mbps`.
    pub d2d_mbps: f64,
    /// Extra cost of a copy whose host side is pageable memory rather than an
    /// `axclrtMallocHost` block (µs; the runtime pins the pages per transfer,
    /// hardware-facts: F15). 0 by default.
    pub pageable_us: f64,
    /// Executes of models whose header carries a cost take that device time
    /// instead of `exec_us`/`prefill_us`/`post_us`.
    pub header_costs: bool,
    /// Every simulated duration is multiplied by this (1 = real time), so a
    /// long benchmark can run faster; host CPU time is not scaled.
    pub time_scale: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            call_us: 0.0,
            sync_us: 0.0,
            exec_us: 0.0,
            prefill_us: None,
            post_us: 0.0,
            h2d_mbps: 0.0,
            d2h_mbps: 0.0,
            d2d_mbps: 0.0,
            pageable_us: 0.0,
            header_costs: false,
            time_scale: 1.0,
        }
    }
}

/// What an execution runs, for its latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExecKind {
    /// A shape group of a decoder layer whose `indices` hold one position.
    Decode,
    /// A shape group of a decoder layer whose `indices` hold a chunk of positions.
    Prefill,
    /// A post (lm_head) model.
    Post,
}

/// `us` microseconds, rounded up to the nanosecond (never understated).
fn micros(us: f64) -> Duration {
    Duration::from_nanos((us.max(0.0) * 1e3).ceil().min(u64::MAX as f64) as u64)
}

impl Latency {
    /// `us` microseconds of simulated time, scaled.
    fn micros(&self, us: f64) -> Duration {
        micros(us * self.time_scale)
    }

    /// A synchronous call that crosses PCIe, without its work: request and
    /// completion round trip.
    pub(super) fn call(&self) -> Duration {
        self.micros(self.call_us + self.sync_us)
    }

    /// What an asynchronous call costs its caller: the request.
    pub(super) fn submit(&self) -> Duration {
        self.micros(self.call_us)
    }

    /// `us` microseconds of device work (a header cost), scaled.
    pub(super) fn device(&self, us: f64) -> Duration {
        self.micros(us)
    }

    /// Moving `bytes` bytes, without the call.
    pub(super) fn transfer(&self, kind: CopyKind, bytes: u64) -> Duration {
        let mbps = match kind {
            CopyKind::HostToDevice => self.h2d_mbps,
            CopyKind::DeviceToHost => self.d2h_mbps,
            CopyKind::DeviceToDevice => self.d2d_mbps,
        };
        if mbps > 0.0 { self.micros(bytes as f64 / mbps) } else { Duration::ZERO }
    }

    /// A copy of `bytes` bytes.
    pub(super) fn copy(&self, kind: CopyKind, bytes: u64) -> Duration {
        self.call() + self.transfer(kind, bytes)
    }

    /// THE HOST-MEMORY HOOK: what the host side of an H2D or D2H copy adds,
    /// given whether it is pinned. Every copy's cost goes through here, so the
    /// latency model decides the pinned/pageable difference in this one place.
    pub(super) fn host_side(&self, host: HostMemory) -> Duration {
        match host {
            HostMemory::Pinned => Duration::ZERO,
            HostMemory::Pageable => self.micros(self.pageable_us),
        }
    }

    /// The NPU's time for one execution, without the call.
    pub(super) fn run(&self, kind: ExecKind) -> Duration {
        self.micros(match kind {
            ExecKind::Decode => self.exec_us,
            ExecKind::Prefill => self.prefill_us.unwrap_or(self.exec_us),
            ExecKind::Post => self.post_us,
        })
    }

    /// An engine execution (with the configured latencies, not `costs=header`).
    #[cfg(test)]
    pub(super) fn execute(&self, kind: ExecKind) -> Duration {
        self.call() + self.run(kind)
    }
}

/// How much of a wait is spun instead of slept: sleeping overshoots by tens of
/// microseconds, so the tail is spent busy-waiting for accuracy.
const SPIN_TAIL: Duration = Duration::from_micros(100);

/// Waits for `duration` (sleeping, then spinning the last ~100 µs); returns the time waited.
pub(super) fn wait(duration: Duration) -> Duration {
    if duration.is_zero() {
        return Duration::ZERO;
    }
    let start = Instant::now();
    if duration > SPIN_TAIL {
        std::thread::sleep(duration - SPIN_TAIL);
    }
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_add_call_and_transfer_time() {
        let l = Latency { call_us: 10.0, h2d_mbps: 1.0, post_us: 5.0, ..Latency::default() };
        assert_eq!(l.copy(CopyKind::HostToDevice, 1000), Duration::from_micros(1010));
        assert_eq!(l.copy(CopyKind::DeviceToHost, 1000), Duration::from_micros(10));
        assert_eq!(l.execute(ExecKind::Post), Duration::from_micros(15));
        assert_eq!(l.execute(ExecKind::Decode), Duration::from_micros(10));
        assert_eq!(l.execute(ExecKind::Prefill), Duration::from_micros(10), "defaults to exec_us");
        let l = Latency { prefill_us: Some(40.0), ..l };
        assert_eq!(l.execute(ExecKind::Prefill), Duration::from_micros(50));
        assert_eq!(wait(Duration::ZERO), Duration::ZERO);
        let l = Latency { pageable_us: 900.0, ..Latency::default() };
        assert_eq!(l.host_side(HostMemory::Pageable), Duration::from_micros(900));
        assert_eq!(l.host_side(HostMemory::Pinned), Duration::ZERO);
        let l = Latency { call_us: 40.0, sync_us: 60.0, time_scale: 0.5, ..Latency::default() };
        assert_eq!((l.call(), l.submit()), (Duration::from_micros(50), Duration::from_micros(20)), "sync pays both, scaled");
        assert_eq!(l.device(1000.0), Duration::from_micros(500));
        assert!(wait(Duration::from_micros(50)) >= Duration::from_micros(50));
    }
}
