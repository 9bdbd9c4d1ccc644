//! Device memory calls: malloc, free, memset and the copies.
//!
//! Each needs a current context, reaches the card (see `calls`), and touches
//! device memory only inside one live allocation.

use super::arena::{ALIGN, overlaps_window};
use super::calls::{Call, CopyKind};
use super::errors::{ErrorKind, SimError, SimResult};
use super::host::HostMemory;
use super::state::{global, pay, pay_async, pay_since};
use super::stream;
use axcl_sys::rt;

/// The card takes allocation sizes as 32-bit values (INFERRED limit, hardware-facts: F16).
const MAX_ALLOC: u64 = u32::MAX as u64;

fn bad(message: String) -> SimError {
    SimError::new(ErrorKind::BadMemoryArgument, message)
}

/// `axclrtMalloc`: `size` bytes of fresh (0xFF-filled) device memory.
pub(super) fn malloc(size: u64, policy: i32) -> SimResult<u64> {
    let mut g = global();
    g.with_context()?;
    if size == 0 || size > MAX_ALLOC {
        return Err(bad(format!("size {size} is not in 1..={MAX_ALLOC} bytes")));
    }
    let align = match u32::try_from(policy) {
        Ok(rt::AXCL_MEM_MALLOC_HUGE_FIRST | rt::AXCL_MEM_MALLOC_HUGE_ONLY | rt::AXCL_MEM_MALLOC_NORMAL_ONLY) => ALIGN,
        // The worker aligns SIZE_ALIGN allocations to their size; rounding
        // that to a power of two is our simplification.
        Ok(rt::AXCL_MEM_MALLOC_SIZE_ALIGN) => size.next_power_of_two().max(ALIGN),
        _ => return Err(bad(format!("unknown allocation policy {policy}"))),
    };
    g.enter(Call::Malloc)?;
    // Loaded models' weights occupy CMM too (hardware-facts: F11).
    let models = g.runtime()?.engine.cmm_bytes();
    let capacity = g.config.mem_bytes().saturating_sub(models);
    let memory = &mut g.runtime()?.device.memory;
    let addr = memory.alloc(size, align, capacity)?;
    let live = memory.live_bytes();
    g.counters.peak_bytes = g.counters.peak_bytes.max(live);
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(addr)
}

/// `axclrtFree`: `addr` must be the start of a live allocation.
pub(super) fn free(addr: u64) -> SimResult<()> {
    let mut g = global();
    g.with_context()?;
    g.enter(Call::Free)?;
    g.runtime()?.device.memory.free(addr)?;
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(())
}

/// `axclrtMemset`: fills `count` bytes with `value`.
pub(super) fn memset(addr: u64, value: u8, count: u64) -> SimResult<()> {
    let mut g = global();
    g.with_context()?;
    g.enter(Call::Memset)?;
    g.runtime()?.device.memory.write(addr, count, "memset")?.fill(value);
    let cost = g.config.latency.call();
    drop(g);
    pay(cost);
    Ok(())
}

/// Checks the host side of a copy before the host buffer is touched: the call
/// needs a current context, and a host range must not lie in the device window
/// (a device address passed as a host pointer, usually a wrong copy kind).
pub(super) fn check_host_side(host: u64, count: u64, what: &str) -> SimResult<()> {
    global().with_context()?;
    if overlaps_window(host, count) {
        return Err(bad(format!(
            "{what} 0x{host:x}..+{count} lies in the device address window: it is a device address, \
             not host memory (wrong copy kind?)"
        )));
    }
    Ok(())
}

/// Runs one device copy: gate, the copy itself, byte counter, latency. With
/// `stream` it is `axclrtMemcpyAsync` (see `stream`). `host` is the address of
/// the host side (H2D and D2H): a range inside an `axclrtMallocHost` block is a
/// pinned copy, one that runs past such a block's end is refused.
fn copy(
    kind: CopyKind,
    count: u64,
    stream: Option<u64>,
    host: Option<usize>,
    op: impl FnOnce(&mut super::arena::Arena) -> SimResult<()>,
) -> SimResult<()> {
    let start = std::time::Instant::now();
    let mut g = global();
    let rt = g.with_context()?;
    if let Some(s) = stream {
        stream::require(rt, s)?;
    }
    let host = match host {
        Some(addr) => Some(rt.host.classify(addr, count)?),
        None => None,
    };
    g.enter(Call::Memcpy(kind))?;
    op(&mut g.runtime()?.device.memory)?;
    let c = &mut g.counters;
    *match kind {
        CopyKind::HostToDevice => &mut c.h2d_bytes,
        CopyKind::DeviceToHost => &mut c.d2h_bytes,
        CopyKind::DeviceToDevice => &mut c.d2d_bytes,
    } += count;
    if host == Some(HostMemory::Pinned) {
        g.counters.pinned_copies += 1;
    }
    let latency = g.config.latency;
    drop(g);
    let host_cost = host.map_or(std::time::Duration::ZERO, |h| latency.host_side(h));
    match stream {
        None => pay_since(start, latency.copy(kind, count) + host_cost),
        Some(_) => pay_async(start, latency.submit() + host_cost, latency.transfer(kind, count)),
    }
    Ok(())
}

/// `axclrtMemcpy` HOST_TO_DEVICE (`axclrtMemcpyAsync` with `stream`).
pub(super) fn copy_to_device(dst: u64, src: &[u8], stream: Option<u64>) -> SimResult<()> {
    let count = src.len() as u64;
    copy(CopyKind::HostToDevice, count, stream, Some(src.as_ptr().addr()), |m| {
        m.write(dst, count, "destination")?.copy_from_slice(src);
        Ok(())
    })
}

/// `axclrtMemcpy` DEVICE_TO_HOST (`axclrtMemcpyAsync` with `stream`).
pub(super) fn copy_to_host(dst: &mut [u8], src: u64, stream: Option<u64>) -> SimResult<()> {
    let count = dst.len() as u64;
    copy(CopyKind::DeviceToHost, count, stream, Some(dst.as_ptr().addr()), |m| {
        dst.copy_from_slice(m.read(src, count, "source")?);
        Ok(())
    })
}

/// `axclrtMemcpy` DEVICE_TO_DEVICE (overlapping ranges behave like `memmove`;
/// `axclrtMemcpyAsync` with `stream`).
pub(super) fn copy_on_device(dst: u64, src: u64, count: u64, stream: Option<u64>) -> SimResult<()> {
    copy(CopyKind::DeviceToDevice, count, stream, None, |m| m.copy(dst, src, count))
}

/// `axclrtMallocHost`: `size` zeroed bytes of pinned host memory.
pub(super) fn malloc_host(size: u64) -> SimResult<usize> {
    let mut g = global();
    let rt = g.with_context()?;
    rt.host.alloc(size)
}

/// `axclrtFreeHost`: `addr` must be the start of a live `axclrtMallocHost` block.
pub(super) fn free_host(addr: usize) -> SimResult<()> {
    let mut g = global();
    let rt = g.runtime()?;
    rt.host.free(addr)
}

/// `axclrtMemFlush` / `axclrtMemInvalidate`: the range must lie inside one live
/// device allocation. (The simulated card has no cache, so coherence holds by
/// itself; the check keeps a runner's ranges honest.)
pub(super) fn cache_op(addr: u64, size: u64, call: &str) -> SimResult<()> {
    let mut g = global();
    let rt = g.with_context()?;
    rt.device.memory.check(addr, size, call)
}
