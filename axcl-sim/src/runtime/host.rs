//! Pinned host memory (`axclrtMallocHost` / `axclrtFreeHost`): a distinct kind
//! of allocation the simulator hands out, tracks, bounds-checks, and recognises
//! when it is the host side of a copy (hardware-facts: F14, F15).
//!
//! The blocks are ordinary heap memory owned by the simulator; what makes them
//! "pinned" is only that the simulator knows them. A copy whose host range lies
//! wholly inside one block is a pinned copy; a range that starts inside a block
//! but runs past its end is refused (it would read or write beyond memory the
//! runtime handed out). Any other host pointer is pageable memory, accepted as
//! the documentation says.

use super::errors::{ErrorKind, SimError, SimResult};
use std::alloc::Layout;
use std::collections::BTreeMap;

/// Alignment of a pinned block (a cache line, as a DMA-able buffer would be).
const HOST_ALIGN: usize = 64;

/// The host side of a copy, as far as its cost is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HostMemory {
    /// Inside a block from `axclrtMallocHost`.
    Pinned,
    /// Anything else the caller owns (`malloc`, the stack, a mapping).
    Pageable,
}

/// One live pinned block.
#[derive(Debug)]
struct Block {
    layout: Layout,
}

/// The live pinned blocks, by address.
#[derive(Debug, Default)]
pub(super) struct HostBlocks {
    blocks: BTreeMap<usize, Block>,
    live_bytes: u64,
}

impl HostBlocks {
    /// Allocates `size` zeroed bytes; returns the address.
    pub(super) fn alloc(&mut self, size: u64) -> SimResult<usize> {
        let bad = || SimError::new(ErrorKind::BadMemoryArgument, format!("host size {size} is not allocatable"));
        if size == 0 {
            return Err(bad());
        }
        let layout = usize::try_from(size).ok().and_then(|s| Layout::from_size_align(s, HOST_ALIGN).ok()).ok_or_else(bad)?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(SimError::new(ErrorKind::OutOfMemory, format!("no host memory for {size} pinned bytes")));
        }
        let addr = ptr.addr();
        self.blocks.insert(addr, Block { layout });
        self.live_bytes += size;
        Ok(addr)
    }

    /// Frees the block starting exactly at `addr`.
    pub(super) fn free(&mut self, addr: usize) -> SimResult<()> {
        let block = self.blocks.remove(&addr).ok_or_else(|| {
            SimError::new(
                ErrorKind::BadMemoryArgument,
                format!("host pointer 0x{addr:x} is not the start of a live axclrtMallocHost block"),
            )
        })?;
        self.live_bytes -= block.layout.size() as u64;
        // SAFETY: `addr` was returned by `alloc_zeroed` with this layout and is
        // removed from the map, so it is freed exactly once.
        unsafe { std::alloc::dealloc(std::ptr::with_exposed_provenance_mut(addr), block.layout) };
        Ok(())
    }

    /// Classifies the host range `[addr, addr + len)` of a copy.
    pub(super) fn classify(&self, addr: usize, len: u64) -> SimResult<HostMemory> {
        let Some((&start, block)) = self.blocks.range(..=addr).next_back() else { return Ok(HostMemory::Pageable) };
        let end = start + block.layout.size();
        if addr >= end {
            return Ok(HostMemory::Pageable);
        }
        if (addr - start) as u64 + len > block.layout.size() as u64 {
            return Err(SimError::new(
                ErrorKind::BadMemoryArgument,
                format!(
                    "host range 0x{addr:x}..+{len} runs past the end of its axclrtMallocHost block \
                     (0x{start:x}..+{})",
                    block.layout.size()
                ),
            ));
        }
        Ok(HostMemory::Pinned)
    }

    pub(super) fn live_blocks(&self) -> u64 {
        self.blocks.len() as u64
    }

    #[cfg(test)]
    pub(super) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }
}

impl Drop for HostBlocks {
    fn drop(&mut self) {
        // Blocks still live at axclFinalize are released with the runtime.
        for addr in self.blocks.keys().copied().collect::<Vec<_>>() {
            let _ = self.free(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_tracked_and_bounds_checked() {
        let mut h = HostBlocks::default();
        let a = h.alloc(100).unwrap();
        assert_eq!((h.live_blocks(), h.live_bytes()), (1, 100));
        assert_eq!(h.classify(a, 100).unwrap(), HostMemory::Pinned);
        assert_eq!(h.classify(a + 40, 60).unwrap(), HostMemory::Pinned);
        assert!(h.classify(a + 40, 61).unwrap_err().message.contains("runs past the end"));
        assert_eq!(h.classify(a + 100, 8).unwrap(), HostMemory::Pageable);
        let on_stack = [0u8; 4];
        assert_eq!(h.classify(on_stack.as_ptr().addr(), 4).unwrap(), HostMemory::Pageable);
        assert!(h.free(a + 1).is_err(), "not the start of a block");
        h.free(a).unwrap();
        assert!(h.free(a).is_err(), "double free is refused");
        assert_eq!((h.live_blocks(), h.live_bytes()), (0, 0));
        assert!(h.alloc(0).is_err());
    }
}
