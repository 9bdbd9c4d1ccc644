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
