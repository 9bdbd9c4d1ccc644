//! Simulated PCIe and NPU latency, and the accurate wait that spends it.

use super::calls::CopyKind;
use super::host::HostMemory;
use std::time::{Duration, Instant};

/// Configured latencies (all zero by default: no waiting).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Latency {
    /// Fixed cost of every call that crosses PCIe (µs).
    pub call_us: f64,
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
    /// Executes of models whose header carries a cost take that cost (round
    /// trip included) instead of `call_us` plus `exec_us`/`prefill_us`/`post_us`.
    pub header_costs: bool,
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

fn micros(us: f64) -> Duration {
    Duration::from_secs_f64(us.max(0.0) / 1e6)
}

impl Latency {
    /// A call that crosses PCIe and does nothing else that takes time.
    pub(super) fn call(&self) -> Duration {
        micros(self.call_us)
    }

    /// Moving `bytes` bytes, without the call.
    pub(super) fn transfer(&self, kind: CopyKind, bytes: u64) -> Duration {
        let mbps = match kind {
            CopyKind::HostToDevice => self.h2d_mbps,
            CopyKind::DeviceToHost => self.d2h_mbps,
            CopyKind::DeviceToDevice => self.d2d_mbps,
        };
        if mbps > 0.0 { Duration::from_secs_f64(bytes as f64 / (mbps * 1e6)) } else { Duration::ZERO }
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
            HostMemory::Pageable => micros(self.pageable_us),
        }
    }

    /// The NPU's time for one execution, without the call.
    pub(super) fn run(&self, kind: ExecKind) -> Duration {
        micros(match kind {
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
        assert!(wait(Duration::from_micros(50)) >= Duration::from_micros(50));
    }
}
