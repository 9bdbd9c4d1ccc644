//! Simulated device memory (the card's CMM pool).
//!
//! Addresses are "physical" device addresses in a window starting at
//! 0x1_4800_0000, like the real pool; the host never dereferences
//! them. Each allocation is backed by its own host vector, kept by start address,
//! and every access is bounds-checked against one live allocation.

use super::config::MAX_MEM_MB;
use super::errors::{ErrorKind, SimError, SimResult};
use std::collections::BTreeMap;

/// First device address of the pool.
pub(super) const BASE: u64 = 0x1_4800_0000;
/// Size of the device address window (the largest configurable pool).
pub(super) const WINDOW: u64 = MAX_MEM_MB << 20;
/// Alignment of every allocation, as the card-side worker requests.
pub(super) const ALIGN: u64 = 128;
/// Fill byte of fresh allocations: uninitialised CMM is garbage, and 0xFFFF is a
/// bf16 NaN, so a runner that forgets to zero its KV cache sees NaN.
const FRESH_FILL: u8 = 0xFF;

// Device addresses are host-sized integers in handles and pointers.
const _: () = assert!(usize::BITS >= 64, "axcl-sim needs a 64-bit host");

/// Whether the host range `[addr, addr + len)` touches the device address window.
pub(super) fn overlaps_window(addr: u64, len: u64) -> bool {
    addr < BASE + WINDOW && addr.saturating_add(len.max(1)) > BASE
}

fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

/// The live allocations of one device.
#[derive(Debug, Default)]
pub(super) struct Arena {
    blocks: BTreeMap<u64, Vec<u8>>,
    live_bytes: u64,
}

impl Arena {
    pub(super) fn live_allocations(&self) -> u64 {
        self.blocks.len() as u64
    }

    pub(super) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Allocates `size` bytes at a multiple of `align` (itself a multiple of
    /// [`ALIGN`]) inside the first `capacity` bytes of the pool, first fit.
    pub(super) fn alloc(&mut self, size: u64, align: u64, capacity: u64) -> SimResult<u64> {
        let mut cursor = BASE;
        let mut found = None;
        for (&start, block) in &self.blocks {
            let candidate = align_up(cursor, align);
            if candidate + size <= start {
                found = Some(candidate);
                break;
            }
            cursor = start + block.len() as u64;
        }
        let addr = found.unwrap_or_else(|| align_up(cursor, align));
        if addr + size > BASE + capacity {
            return Err(SimError::new(
                ErrorKind::OutOfMemory,
                format!(
                    "no free range of {size} bytes in {} MiB of device memory ({} bytes live in {} allocations)",
                    capacity >> 20,
                    self.live_bytes,
                    self.blocks.len()
                ),
            ));
        }
        self.blocks.insert(addr, vec![FRESH_FILL; size as usize]);
        self.live_bytes += size;
        Ok(addr)
    }

    /// Frees the allocation starting exactly at `addr`.
    pub(super) fn free(&mut self, addr: u64) -> SimResult<()> {
        let block = self.blocks.remove(&addr).ok_or_else(|| {
            SimError::new(
                ErrorKind::BadMemoryArgument,
                format!("0x{addr:x} is not the start of a live device allocation"),
            )
        })?;
        self.live_bytes -= block.len() as u64;
        Ok(())
    }

    /// Start address and offset of the live allocation holding `[addr, addr + len)`.
    fn locate(&self, addr: u64, len: u64, what: &str) -> SimResult<(u64, usize)> {
        let outside = |detail: String| {
            SimError::new(
                ErrorKind::BadMemoryArgument,
                format!("{what}: device range 0x{addr:x}..+{len} is not inside one live allocation ({detail})"),
            )
        };
        let Some((&start, block)) = self.blocks.range(..=addr).next_back() else {
            return Err(outside(format!("no allocation contains 0x{addr:x}")));
        };
        let offset = addr - start;
        let size = block.len() as u64;
        if offset >= size {
            return Err(outside(format!("no allocation contains 0x{addr:x}")));
        }
        if len > size - offset {
            return Err(outside(format!(
                "allocation 0x{start:x} holds {size} bytes; the range ends {} bytes past it",
                offset.saturating_add(len) - size
            )));
        }
        Ok((start, offset as usize))
    }

    /// Whether `[addr, addr + len)` lies inside one live allocation (`what` names it in the error).
    pub(super) fn check(&self, addr: u64, len: u64, what: &str) -> SimResult<()> {
        self.locate(addr, len, what).map(|_| ())
    }

    /// The bytes of `[addr, addr + len)`.
    pub(super) fn read(&self, addr: u64, len: u64, what: &str) -> SimResult<&[u8]> {
        let (start, offset) = self.locate(addr, len, what)?;
        Ok(&self.blocks[&start][offset..offset + len as usize])
    }

    /// The bytes of `[addr, addr + len)`, writable.
    pub(super) fn write(&mut self, addr: u64, len: u64, what: &str) -> SimResult<&mut [u8]> {
        let (start, offset) = self.locate(addr, len, what)?;
        let block = self.blocks.get_mut(&start).expect("located block exists");
        Ok(&mut block[offset..offset + len as usize])
    }

    /// Copies `len` bytes on the device; overlapping ranges behave like `memmove`.
    pub(super) fn copy(&mut self, dst: u64, src: u64, len: u64) -> SimResult<()> {
        let (src_start, src_off) = self.locate(src, len, "source")?;
        let (dst_start, dst_off) = self.locate(dst, len, "destination")?;
        let len = len as usize;
        if src_start == dst_start {
            let block = self.blocks.get_mut(&src_start).expect("located block exists");
            block.copy_within(src_off..src_off + len, dst_off);
        } else {
            let bytes = self.blocks[&src_start][src_off..src_off + len].to_vec();
            let block = self.blocks.get_mut(&dst_start).expect("located block exists");
            block[dst_off..dst_off + len].copy_from_slice(&bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_aligned_and_reuses_gaps() {
        let mut a = Arena::default();
        let cap = 1 << 20;
        let x = a.alloc(100, ALIGN, cap).unwrap();
        let y = a.alloc(300, ALIGN, cap).unwrap();
        assert_eq!((x, y), (BASE, BASE + 128));
        a.free(x).unwrap();
        assert_eq!(a.alloc(128, ALIGN, cap).unwrap(), BASE, "the gap is reused");
        assert_eq!(a.alloc(8, 4096, cap).unwrap() % 4096, 0);
        assert_eq!(a.read(y, 4, "t").unwrap(), &[0xFF; 4]);
        assert!(a.alloc(cap, ALIGN, cap).is_err());
        assert!(a.free(y + 1).is_err());
    }

    #[test]
    fn accesses_stay_inside_one_allocation() {
        let mut a = Arena::default();
        let x = a.alloc(16, ALIGN, 1 << 20).unwrap();
        a.write(x + 3, 4, "t").unwrap().copy_from_slice(&[1, 2, 3, 4]);
        a.copy(x + 4, x + 3, 4).unwrap();
        assert_eq!(a.read(x + 3, 5, "t").unwrap(), &[1, 1, 2, 3, 4]);
        assert!(a.read(x + 10, 7, "t").unwrap_err().message.contains("1 bytes past it"));
        assert!(a.read(x + 16, 0, "t").is_err());
        assert!(a.read(BASE - 1, 1, "t").is_err());
    }

    #[test]
    fn window_overlap() {
        assert!(overlaps_window(BASE, 1));
        assert!(overlaps_window(BASE - 1, 2));
        assert!(!overlaps_window(BASE - 1, 1));
        assert!(!overlaps_window(0x1000, 64));
    }
}
