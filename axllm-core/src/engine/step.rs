//! The buffers one kind of step (decode or prefill) shares across all layers,
//! and the host staging area its inputs are assembled in.
//!
//! The staging area is pinned host memory ([`HostBuffer`]: `axclrtMallocHost`,
//! or heap memory where the runtime lacks it), so the step's uploads do not
//! pay per-transfer page pinning (hardware-facts: F15). It has the packed layout: the first layer's hidden rows at 0,
//! the indices and the mask at the next 128-byte-aligned offsets. With
//! [`InputUpload::Packed`] the device holds the same image in one allocation and
//! one H2D copy moves it; with [`InputUpload::Separate`] each tensor has its own
//! allocation and its own copy of the matching staging slice
//! ([`InputUpload::Tables`] and [`InputUpload::Ahead`] too: their decode steps
//! upload only the hidden rows when the indices and mask are already on the
//! card).

use super::schedule::InputUpload;
use crate::error::Result;
use crate::npu::{DeviceBuffer, Entered, HostBuffer, Stream};

/// Alignment of every packed offset: the runtime's own allocation alignment
/// (the card-side worker's), so a bound address is never less aligned than an allocation.
const ALIGN: usize = 128;

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// A tensor's place on the device: one of our allocations and a byte offset.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
    alloc: usize,
    offset: usize,
}

/// Byte sizes of a step kind's tensors (the largest over its shape groups).
#[derive(Debug, Clone, Copy)]
pub(super) struct StepSizes {
    pub hidden: usize,
    pub indices: usize,
    pub mask: usize,
    pub kv_out: usize,
}

impl StepSizes {
    /// Device bytes [`StepBuffers::new`] allocates for these sizes (the
    /// memory guard counts them before anything is loaded).
    pub fn device_bytes(&self, upload: InputUpload) -> u64 {
        let inputs = match upload {
            InputUpload::Packed => align(self.hidden) + align(self.indices) + self.mask,
            InputUpload::Separate | InputUpload::Ahead | InputUpload::Tables => self.hidden + self.indices + self.mask,
        };
        (inputs + self.hidden + 2 * self.kv_out) as u64
    }
}

/// One step kind's shared device buffers and staging.
#[derive(Debug)]
pub(super) struct StepBuffers {
    allocs: Vec<DeviceBuffer>,
    /// `hidden[0]`: the first layer's input and every odd layer's output;
    /// `hidden[1]`: the other. Layer `m` reads `hidden[m % 2]`, writes the other.
    pub hidden: [Place; 2],
    pub indices: Place,
    pub mask: Place,
    /// Scratch rows for `K_cache_out`/`V_cache_out` when rows are copied.
    pub k_out: Place,
    pub v_out: Place,
    /// Host image of the packed layout (8-byte aligned: every offset is aligned).
    staging: HostBuffer,
    indices_off: usize,
    mask_off: usize,
    upload: InputUpload,
}

impl StepBuffers {
    /// Allocates and zeroes the buffers of one step kind.
    pub fn new(cx: &Entered<'_>, s: StepSizes, upload: InputUpload) -> Result<StepBuffers> {
        let (indices_off, mask_off) = (align(s.hidden), align(s.hidden) + align(s.indices));
        let packed_len = mask_off + s.mask;
        let mut allocs = Vec::with_capacity(7);
        let mut add = |size: usize| -> Result<Place> {
            allocs.push(DeviceBuffer::zeroed(cx, size)?);
            Ok(Place { alloc: allocs.len() - 1, offset: 0 })
        };
        let (hidden0, indices, mask) = match upload {
            InputUpload::Packed => {
                let p = add(packed_len)?;
                (p, Place { offset: indices_off, ..p }, Place { offset: mask_off, ..p })
            }
            InputUpload::Separate | InputUpload::Ahead | InputUpload::Tables => (add(s.hidden)?, add(s.indices)?, add(s.mask)?),
        };
        let hidden1 = add(s.hidden)?;
        let (k_out, v_out) = (add(s.kv_out)?, add(s.kv_out)?);
        Ok(StepBuffers {
            allocs,
            hidden: [hidden0, hidden1],
            indices,
            mask,
            k_out,
            v_out,
            staging: HostBuffer::new(cx, packed_len.div_ceil(8) * 8)?,
            indices_off,
            mask_off,
            upload,
        })
    }

    /// The allocation and offset of a place.
    pub fn at(&self, p: Place) -> (&DeviceBuffer, usize) {
        (&self.allocs[p.alloc], p.offset)
    }

    /// Bytes allocated on the device.
    pub fn device_bytes(&self) -> u64 {
        self.allocs.iter().map(|b| b.size() as u64).sum()
    }

    fn bytes(&mut self) -> &mut [u8] {
        self.staging.as_mut_slice()
    }

    /// Staging for the first layer's hidden rows.
    pub fn hidden_in(&mut self, len: usize) -> &mut [u8] {
        &mut self.bytes()[..len]
    }

    /// Staging for the indices.
    pub fn indices_in(&mut self, count: usize) -> &mut [u32] {
        let off = self.indices_off;
        bytemuck::cast_slice_mut(&mut self.bytes()[off..off + count * 4])
    }

    /// Staging for the mask.
    pub fn mask_in(&mut self, count: usize) -> &mut [u16] {
        let off = self.mask_off;
        bytemuck::cast_slice_mut(&mut self.bytes()[off..off + count * 2])
    }

    /// Copies the staged inputs (`hidden`, `indices` and `mask` bytes long) to the card.
    pub fn upload(&self, cx: &Entered<'_>, hidden: usize, indices: usize, mask: usize) -> Result<()> {
        let (indices_off, mask_off) = (self.indices_off, self.mask_off);
        let bytes: &[u8] = self.staging.as_slice();
        match self.upload {
            InputUpload::Packed => self.allocs[self.hidden[0].alloc].write(cx, 0, &bytes[..mask_off + mask]),
            InputUpload::Separate | InputUpload::Ahead | InputUpload::Tables => {
                let (h, i, m) = (self.hidden[0].alloc, self.indices.alloc, self.mask.alloc);
                self.allocs[h].write(cx, 0, &bytes[..hidden])?;
                self.allocs[i].write(cx, 0, &bytes[indices_off..indices_off + indices])?;
                self.allocs[m].write(cx, 0, &bytes[mask_off..mask_off + mask])
            }
        }
    }

    /// Copies only the staged hidden rows (`hidden` bytes) to the card
    /// ([`InputUpload::Ahead`], [`InputUpload::Tables`]: the indices and mask
    /// are already there).
    pub fn upload_hidden(&self, cx: &Entered<'_>, hidden: usize) -> Result<()> {
        debug_assert!(matches!(self.upload, InputUpload::Ahead | InputUpload::Tables));
        self.allocs[self.hidden[0].alloc].write(cx, 0, &self.staging.as_slice()[..hidden])
    }

    /// Queues the staged indices and mask (`indices` and `mask` bytes long)
    /// on `queue` ([`InputUpload::Ahead`]). The staging must not be written
    /// before the queue's next synchronisation.
    pub fn upload_inputs_async(&self, cx: &Entered<'_>, indices: usize, mask: usize, queue: &Stream) -> Result<()> {
        debug_assert!(self.upload == InputUpload::Ahead);
        let (indices_off, mask_off) = (self.indices_off, self.mask_off);
        // The staging lives as long as the model, and every decode step starts
        // after a synchronisation: nothing rewrites it while the copies wait.
        self.allocs[self.indices.alloc].write_async(cx, 0, &self.staging, indices_off..indices_off + indices, queue)?;
        self.allocs[self.mask.alloc].write_async(cx, 0, &self.staging, mask_off..mask_off + mask, queue)
    }
}
