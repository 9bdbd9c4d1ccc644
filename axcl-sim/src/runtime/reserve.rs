//! Reserves the device address window in the host's address space.
//!
//! Real device addresses are physical addresses on the card: a runner that
//! dereferences one on the host crashes. Mapping the simulated window
//! `PROT_NONE` gives the same behaviour (a fault instead of reading unrelated
//! host memory). The reservation costs no memory (`MAP_NORESERVE`), lives for the
//! whole process and is best effort: when the range is taken or the platform
//! lacks the flags, the simulator just runs without it.

use super::arena::{BASE, WINDOW};
use std::sync::Once;

/// Reserves the window the first time it is called.
pub(super) fn reserve_device_window() {
    static RESERVED: Once = Once::new();
    RESERVED.call_once(map_window);
}

#[cfg(target_os = "linux")]
fn map_window() {
    let want = std::ptr::without_provenance_mut::<libc::c_void>(BASE as usize);
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE;
    // SAFETY: an anonymous PROT_NONE mapping at a fixed address that must not
    // replace existing mappings (MAP_FIXED_NOREPLACE): it cannot disturb memory the
    // process uses, and nothing reads or writes through it.
    let got = unsafe { libc::mmap(want, WINDOW as usize, libc::PROT_NONE, flags, -1, 0) };
    if got != libc::MAP_FAILED && got != want {
        // A kernel without MAP_FIXED_NOREPLACE treats the address as a hint and may
        // map elsewhere: give that mapping back.
        // SAFETY: `got` is the start of the WINDOW-byte mapping mmap just created.
        unsafe { libc::munmap(got, WINDOW as usize) };
    }
}

#[cfg(not(target_os = "linux"))]
fn map_window() {}
