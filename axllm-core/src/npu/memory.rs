//! Device memory: allocations the host cannot dereference, moved with explicit copies.

use super::runtime::{Device, Entered};
use super::status_error;
use super::stream::Stream;
use crate::error::{Error, Result};
use axcl_sys::rt;
use std::ffi::c_void;
use std::sync::Arc;

/// One device allocation, freed on drop. The address is a device (physical)
/// address: it is only ever passed back to the runtime.
#[derive(Debug)]
pub struct DeviceBuffer {
    dev: Arc<Device>,
    addr: u64,
    size: usize,
}

impl DeviceBuffer {
    /// Allocates `size` bytes on the device (contents undefined until written).
    pub fn alloc(cx: &Entered<'_>, size: usize) -> Result<DeviceBuffer> {
        if size == 0 {
            return Err(Error::invalid("zero-sized device allocation"));
        }
        let dev = cx.dev;
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid out-parameter; policy is one of the documented values.
        let status = unsafe { (dev.rt.api.axclrtMalloc)(&mut ptr, size, rt::AXCL_MEM_MALLOC_HUGE_FIRST as i32) };
        if status != rt::AXCL_SUCC as rt::axclError {
            return Err(status_error(dev.rt.sim.as_ref(), "axclrtMalloc", status, Some(size as u64)));
        }
        Ok(DeviceBuffer { dev: Arc::clone(dev), addr: ptr as u64, size })
    }

    /// Allocates and zero-fills.
    pub fn zeroed(cx: &Entered<'_>, size: usize) -> Result<DeviceBuffer> {
        let b = Self::alloc(cx, size)?;
        b.fill(cx, 0)?;
        Ok(b)
    }

    /// The device address (never dereferenced on the host).
    pub fn addr(&self) -> u64 {
        self.addr
    }
    /// Bytes allocated.
    pub fn size(&self) -> usize {
        self.size
    }

    fn range(&self, offset: usize, len: usize, what: &str) -> Result<*mut c_void> {
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(Error::invalid(format!(
                "{what}: {len} bytes at offset {offset} exceed the {}-byte device buffer",
                self.size
            )));
        }
        Ok((self.addr + offset as u64) as *mut c_void)
    }

    /// Byte fill of the whole buffer.
    pub fn fill(&self, cx: &Entered<'_>, byte: u8) -> Result<()> {
        // SAFETY: device address and size of a live allocation of ours.
        let status = unsafe { (cx.dev.rt.api.axclrtMemset)(self.addr as *mut c_void, byte, self.size) };
        cx.dev.check("axclrtMemset", status)
    }

    /// Host to device: `data` lands at `offset`.
    pub fn write(&self, cx: &Entered<'_>, offset: usize, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let dst = self.range(offset, data.len(), "host-to-device copy")?;
        // SAFETY: `dst..+len` lies inside our allocation (checked); `data` is
        // valid host memory for `len` bytes.
        let status = unsafe {
            (cx.dev.rt.api.axclrtMemcpy)(dst, data.as_ptr().cast(), data.len(), rt::AXCL_MEMCPY_HOST_TO_DEVICE as i32)
        };
        cx.dev.check("axclrtMemcpy(host to device)", status)
    }

    /// Like [`DeviceBuffer::write`] from `src[range]`, queued on `stream`. The
    /// runtime reads the host bytes when the copy runs: both buffers must
    /// outlive the stream's next synchronisation, and `src[range]` must not
    /// be written before it (else the card gets the new bytes).
    pub fn write_async(&self, cx: &Entered<'_>, offset: usize, src: &HostBuffer, range: std::ops::Range<usize>, stream: &Stream) -> Result<()> {
        let data = &src.as_slice()[range];
        if data.is_empty() {
            return Ok(());
        }
        let dst = self.range(offset, data.len(), "host-to-device copy")?;
        // SAFETY: `dst..+len` lies inside our allocation (checked); `data` is
        // valid host memory for `len` bytes, owned by a `HostBuffer` that the
        // caller keeps alive until the stream is synchronised (documented above).
        let status = unsafe {
            (cx.dev.rt.api.axclrtMemcpyAsync)(dst, data.as_ptr().cast(), data.len(), rt::AXCL_MEMCPY_HOST_TO_DEVICE as i32, stream.raw())
        };
        cx.dev.check("axclrtMemcpyAsync(host to device)", status)
    }

    /// Device to host: fills `out` from `offset`.
    pub fn read(&self, cx: &Entered<'_>, offset: usize, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let src = self.range(offset, out.len(), "device-to-host copy")?;
        // SAFETY: `src..+len` lies inside our allocation (checked); `out` is
        // writable host memory for `len` bytes.
        let status = unsafe {
            (cx.dev.rt.api.axclrtMemcpy)(out.as_mut_ptr().cast(), src, out.len(), rt::AXCL_MEMCPY_DEVICE_TO_HOST as i32)
        };
        cx.dev.check("axclrtMemcpy(device to host)", status)
    }

    /// Like [`DeviceBuffer::read`] into all of `dst`, queued on `stream`. The
    /// runtime writes the host bytes when the copy runs: `dst` must outlive
    /// the stream's next synchronisation and must not be read or written
    /// before it (the caller keeps it out of reach until then).
    pub fn read_async(&self, cx: &Entered<'_>, offset: usize, dst: &mut HostBuffer, stream: &Stream) -> Result<()> {
        let out = dst.as_mut_slice();
        if out.is_empty() {
            return Ok(());
        }
        let src = self.range(offset, out.len(), "device-to-host copy")?;
        // SAFETY: `src..+len` lies inside our allocation (checked); `out` is
        // writable host memory for `len` bytes, owned by a `HostBuffer` that
        // the caller keeps alive and untouched until the stream is
        // synchronised (documented above).
        let status = unsafe {
            (cx.dev.rt.api.axclrtMemcpyAsync)(out.as_mut_ptr().cast(), src, out.len(), rt::AXCL_MEMCPY_DEVICE_TO_HOST as i32, stream.raw())
        };
        cx.dev.check("axclrtMemcpyAsync(device to host)", status)
    }

    /// Device to device on the card: `len` bytes from `src[src_off..]` to `self[dst_off..]`.
    pub fn copy_from(
        &self,
        cx: &Entered<'_>,
        dst_off: usize,
        src: &DeviceBuffer,
        src_off: usize,
        len: usize,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let dst = self.range(dst_off, len, "device-to-device copy (destination)")?;
        let from = src.range(src_off, len, "device-to-device copy (source)")?;
        // SAFETY: both ranges lie inside live allocations of ours (checked).
        let status = unsafe { (cx.dev.rt.api.axclrtMemcpy)(dst, from, len, rt::AXCL_MEMCPY_DEVICE_TO_DEVICE as i32) };
        cx.dev.check("axclrtMemcpy(device to device)", status)
    }

    /// Like [`DeviceBuffer::copy_from`], queued on `stream`. Both buffers must
    /// outlive the stream's next synchronisation.
    pub fn copy_from_async(
        &self,
        cx: &Entered<'_>,
        dst_off: usize,
        src: &DeviceBuffer,
        src_off: usize,
        len: usize,
        stream: &Stream,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let dst = self.range(dst_off, len, "device-to-device copy (destination)")?;
        let from = src.range(src_off, len, "device-to-device copy (source)")?;
        // SAFETY: both ranges lie inside live allocations of ours (checked); no host memory is involved.
        let status = unsafe {
            (cx.dev.rt.api.axclrtMemcpyAsync)(dst, from, len, rt::AXCL_MEMCPY_DEVICE_TO_DEVICE as i32, stream.raw())
        };
        cx.dev.check("axclrtMemcpyAsync(device to device)", status)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // A drop may run on any thread: make our context current first. Errors
        // cannot be reported from Drop; a device reset frees the memory anyway.
        if self.dev.make_current().is_ok() {
            // SAFETY: our own live allocation, freed exactly once.
            unsafe { (self.dev.rt.api.axclrtFree)(self.addr as *mut c_void) };
        }
    }
}

/// Host memory for staging copies: pinned (`axclrtMallocHost`) when the runtime
/// has it, else ordinary heap memory, which every copy also accepts (the
/// documented fallback for runtimes without the call, or when it fails;
/// pinned memory only makes copies cheaper, hardware-facts: F14, F15). The
/// bytes are 8-byte aligned either way, so they can be viewed as `u16`,
/// `u32` or `u64` elements. Freed on drop.
pub struct HostBuffer {
    /// `Some` when the bytes came from `axclrtMallocHost`.
    pinned: Option<Arc<Device>>,
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    /// The fallback's storage (`ptr` points into it; u64 words for alignment).
    heap: Option<Box<[u64]>>,
}

impl std::fmt::Debug for HostBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuffer").field("len", &self.len).field("pinned", &self.is_pinned()).finish()
    }
}

// SAFETY: the buffer exclusively owns its bytes (pinned or heap); the device
// handle is Send + Sync.
unsafe impl Send for HostBuffer {}
// SAFETY: shared references only read the bytes.
unsafe impl Sync for HostBuffer {}

impl HostBuffer {
    /// `len` zeroed bytes (`len` > 0): pinned if the runtime offers it and the
    /// allocation succeeds, ordinary memory otherwise.
    pub fn new(cx: &Entered<'_>, len: usize) -> Result<HostBuffer> {
        if len == 0 {
            return Err(Error::invalid("zero-sized host buffer"));
        }
        let dev = cx.dev;
        if let Ok(malloc_host) = dev.rt.opt.axclrtMallocHost.as_ref()
            && dev.rt.opt.axclrtFreeHost.is_ok()
        {
            let mut p: *mut c_void = std::ptr::null_mut();
            // SAFETY: valid out-parameter; our context is current (`cx`).
            let status = unsafe { malloc_host(&mut p, len) };
            if status == rt::AXCL_SUCC as rt::axclError
                && let Some(ptr) = std::ptr::NonNull::new(p.cast::<u8>())
            {
                if ptr.as_ptr().addr() % 8 != 0 {
                    if let Ok(free_host) = dev.rt.opt.axclrtFreeHost.as_ref() {
                        // SAFETY: `p` came from axclrtMallocHost just now and is freed once.
                        unsafe { free_host(p) };
                    }
                    return Ok(HostBuffer::heap(len));
                }
                // SAFETY: the runtime handed out `len` writable bytes at `ptr`.
                unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, len) };
                return Ok(HostBuffer { pinned: Some(Arc::clone(dev)), ptr, len, heap: None });
            }
        }
        Ok(HostBuffer::heap(len))
    }

    /// `len` zeroed bytes of ordinary (pageable) memory.
    fn heap(len: usize) -> HostBuffer {
        let mut heap = vec![0u64; len.div_ceil(8)].into_boxed_slice();
        let ptr = std::ptr::NonNull::new(heap.as_mut_ptr().cast::<u8>()).expect("a boxed slice is never NULL");
        HostBuffer { pinned: None, ptr, len, heap: Some(heap) }
    }

    /// Whether the bytes are the runtime's pinned memory.
    pub fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` bytes for the buffer's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        if let Some(dev) = &self.pinned
            && let Ok(free_host) = dev.rt.opt.axclrtFreeHost.as_ref()
        {
            // SAFETY: `ptr` came from axclrtMallocHost of this runtime and is freed once.
            unsafe { free_host(self.ptr.as_ptr().cast()) };
        }
        drop(self.heap.take());
    }
}
