//! Streams: ordered queues of asynchronous device work. Only work that touches
//! device memory alone is queued from this crate (executions and device-to-device
//! copies), so no host buffer has to outlive a call.

use super::runtime::{Device, Entered};
use crate::error::Result;
use axcl_sys::rt;
use std::sync::Arc;

#[derive(Debug)]
struct StreamPtr(rt::axclrtStream);
// SAFETY: an opaque runtime handle, used only by its owner with a current context.
unsafe impl Send for StreamPtr {}
// SAFETY: as above.
unsafe impl Sync for StreamPtr {}

/// A stream, destroyed on drop.
#[derive(Debug)]
pub struct Stream {
    dev: Arc<Device>,
    ptr: StreamPtr,
}

impl Stream {
    /// Creates a stream on the entered device.
    pub fn new(cx: &Entered<'_>) -> Result<Stream> {
        let mut ptr: rt::axclrtStream = std::ptr::null_mut();
        // SAFETY: valid out-parameter.
        let status = unsafe { (cx.dev.rt.api.axclrtCreateStream)(&mut ptr) };
        cx.dev.check("axclrtCreateStream", status)?;
        Ok(Stream { dev: Arc::clone(cx.dev), ptr: StreamPtr(ptr) })
    }

    /// Waits until everything queued on the stream has finished.
    pub fn synchronize(&self, cx: &Entered<'_>) -> Result<()> {
        // SAFETY: our live stream handle.
        let status = unsafe { (cx.dev.rt.api.axclrtSynchronizeStream)(self.ptr.0) };
        cx.dev.check("axclrtSynchronizeStream", status)
    }

    pub(super) fn raw(&self) -> rt::axclrtStream {
        self.ptr.0
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.dev.make_current().is_ok() {
            // SAFETY: our own stream handle, destroyed once.
            unsafe { (self.dev.rt.api.axclrtDestroyStream)(self.ptr.0) };
        }
    }
}
