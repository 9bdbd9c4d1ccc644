//! Compiled models on the NPU: load, IO description per shape group, IO
//! objects with bound device buffers, execution.

use super::load_error;
use super::memory::DeviceBuffer;
use super::runtime::{Device, Entered, c_path};
use super::stream::Stream;
use crate::error::{Error, Result};
use axcl_sys::rt;
use std::ffi::{CStr, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One input or output tensor of a shape group, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (the layer contract's names, e.g. `K_cache`).
    pub name: String,
    /// Dimensions as reported.
    pub dims: Vec<i32>,
    /// Raw `axclrtEngineDataType` value (see [`super::dtype`]).
    pub dtype: i32,
    /// Bytes.
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements (product of the dims).
    pub fn elements(&self) -> usize {
        self.dims.iter().map(|&d| d.max(0) as usize).product()
    }
}

/// Inputs and outputs of one shape group, in the runtime's index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Inputs, in index order.
    pub inputs: Vec<TensorInfo>,
    /// Outputs, in index order.
    pub outputs: Vec<TensorInfo>,
}

impl GroupInfo {
    /// Finds an input by name (never by position: index order is not guaranteed).
    pub fn input(&self, name: &str) -> Option<(usize, &TensorInfo)> {
        self.inputs.iter().enumerate().find(|(_, t)| t.name == name)
    }
    /// Finds an output by name.
    pub fn output(&self, name: &str) -> Option<(usize, &TensorInfo)> {
        self.outputs.iter().enumerate().find(|(_, t)| t.name == name)
    }
}

/// A loaded model with its engine context and IO description; unloaded on drop.
#[derive(Debug)]
pub struct EngineModel {
    dev: Arc<Device>,
    id: u64,
    context: u64,
    info: IoInfoPtr,
    groups: Vec<GroupInfo>,
    path: PathBuf,
}

#[derive(Debug)]
struct IoInfoPtr(rt::axclrtEngineIOInfo);
// SAFETY: an opaque runtime handle, usable from any thread with a current
// context; all uses are serialised by the owner (`&mut`/engine lock).
unsafe impl Send for IoInfoPtr {}
// SAFETY: as above; shared references only read Rust-side copies.
unsafe impl Sync for IoInfoPtr {}

impl EngineModel {
    /// The CMM bytes the model file at `file` will occupy once loaded
    /// (`axclrtEngineGetUsage`), without loading it; `None` when the runtime
    /// lacks the call (hardware-facts: F11). `path` names it in errors.
    pub fn cmm_usage(cx: &Entered<'_>, file: &Path, path: &Path) -> Result<Option<u64>> {
        let Ok(get_usage) = cx.dev.rt.opt.axclrtEngineGetUsage.as_ref() else { return Ok(None) };
        let c = c_path(file)?;
        let (mut sys, mut cmm) = (0i64, 0i64);
        // SAFETY: a valid C string and two out-parameters.
        let status = unsafe { get_usage(c.as_ptr(), &mut sys, &mut cmm) };
        if status != rt::AXCL_SUCC as rt::axclError {
            let e = load_error(cx.dev.rt.sim.as_ref(), "axclrtEngineGetUsage", status, path, None);
            return Err(with_path(e, path));
        }
        Ok(Some(u64::try_from(cmm).unwrap_or(0)))
    }

    /// Loads the model file at `file` and reads its IO description; `path`
    /// names it in errors (the two differ when `file` is a resolved symlink).
    pub fn load_file(cx: &Entered<'_>, file: &Path, path: &Path) -> Result<EngineModel> {
        let c = c_path(file)?;
        let api = &cx.dev.rt.api;
        let mut id = 0u64;
        // SAFETY: valid C string and out-parameter.
        let status = unsafe { (api.axclrtEngineLoadFromFile)(c.as_ptr(), &mut id) };
        if status != rt::AXCL_SUCC as rt::axclError {
            let bytes = std::fs::metadata(path).ok().map(|m| m.len());
            let e = load_error(cx.dev.rt.sim.as_ref(), "axclrtEngineLoadFromFile", status, path, bytes);
            return Err(with_path(e, path));
        }
        Self::finish_load(cx, id, path).map_err(|e| with_path(e, path))
    }

    /// Loads a model from a copy of its file's `bytes` in device memory (the
    /// runtime requires device memory here); the staging buffer is freed
    /// afterwards. `path` names the file in errors.
    pub fn load_via_device_memory(cx: &Entered<'_>, path: &Path, bytes: &[u8]) -> Result<EngineModel> {
        let staging = DeviceBuffer::alloc(cx, bytes.len())?;
        staging.write(cx, 0, bytes)?;
        let mut id = 0u64;
        // SAFETY: `staging` is a live device allocation of exactly `len` bytes.
        let status = unsafe {
            (cx.dev.rt.api.axclrtEngineLoadFromMem)(staging.addr() as *const c_void, bytes.len() as u64, &mut id)
        };
        if status != rt::AXCL_SUCC as rt::axclError {
            let e =
                load_error(cx.dev.rt.sim.as_ref(), "axclrtEngineLoadFromMem", status, path, Some(bytes.len() as u64));
            return Err(with_path(e, path));
        }
        Self::finish_load(cx, id, path).map_err(|e| with_path(e, path))
    }

    fn finish_load(cx: &Entered<'_>, id: u64, path: &Path) -> Result<EngineModel> {
        let api = &cx.dev.rt.api;
        // From here on, `model` owns the id: an early return unloads it.
        let mut model = EngineModel {
            dev: Arc::clone(cx.dev),
            id,
            context: 0,
            info: IoInfoPtr(std::ptr::null_mut()),
            groups: Vec::new(),
            path: path.to_path_buf(),
        };
        // SAFETY: valid model id and out-parameter.
        let status = unsafe { (api.axclrtEngineCreateContext)(id, &mut model.context) };
        cx.dev.check("axclrtEngineCreateContext", status)?;
        let mut info: rt::axclrtEngineIOInfo = std::ptr::null_mut();
        // SAFETY: valid model id and out-parameter.
        let status = unsafe { (api.axclrtEngineGetIOInfo)(id, &mut info) };
        cx.dev.check("axclrtEngineGetIOInfo", status)?;
        model.info = IoInfoPtr(info);
        model.groups = model.read_groups(cx)?;
        Ok(model)
    }

    /// Copies the runtime's IO description of every group into Rust values.
    fn read_groups(&self, cx: &Entered<'_>) -> Result<Vec<GroupInfo>> {
        let api = &cx.dev.rt.api;
        let info = self.info.0;
        let mut count = 0i32;
        // SAFETY: `info` is our live IO-info handle; valid out-parameter.
        cx.dev.check("axclrtEngineGetShapeGroupsCount", unsafe {
            (api.axclrtEngineGetShapeGroupsCount)(info, &mut count)
        })?;
        if !(1..=1024).contains(&count) {
            return Err(Error::bad_file(&self.path, format!("the runtime reports {count} shape groups")));
        }
        // SAFETY: live handle.
        let (n_in, n_out) = unsafe { ((api.axclrtEngineGetNumInputs)(info), (api.axclrtEngineGetNumOutputs)(info)) };
        let tensor = |group: u32, index: u32, input: bool| -> Result<TensorInfo> {
            // SAFETY: live handle; indices below the reported counts; the name is
            // a NUL-terminated string owned by `info`, copied at once.
            unsafe {
                let name_ptr = if input {
                    (api.axclrtEngineGetInputNameByIndex)(info, index)
                } else {
                    (api.axclrtEngineGetOutputNameByIndex)(info, index)
                };
                if name_ptr.is_null() {
                    return Err(Error::bad_file(&self.path, format!("the runtime has no name for tensor {index}")));
                }
                let name = CStr::from_ptr(name_ptr).to_string_lossy().into_owned();
                let mut dims = rt::axclrtEngineIODims::default();
                let mut dtype = 0i32;
                let (size, s1, s2) = if input {
                    (
                        (api.axclrtEngineGetInputSizeByIndex)(info, group, index),
                        (api.axclrtEngineGetInputDims)(info, group, index, &mut dims),
                        (api.axclrtEngineGetInputDataType)(info, index, &mut dtype),
                    )
                } else {
                    (
                        (api.axclrtEngineGetOutputSizeByIndex)(info, group, index),
                        (api.axclrtEngineGetOutputDims)(info, group, index, &mut dims),
                        (api.axclrtEngineGetOutputDataType)(info, index, &mut dtype),
                    )
                };
                cx.dev.check("axclrtEngineGet*Dims", s1)?;
                cx.dev.check("axclrtEngineGet*DataType", s2)?;
                let n = (dims.dimCount.max(0) as usize).min(dims.dims.len());
                Ok(TensorInfo { name, dims: dims.dims[..n].to_vec(), dtype, size })
            }
        };
        (0..count as u32)
            .map(|g| {
                Ok(GroupInfo {
                    inputs: (0..n_in).map(|i| tensor(g, i, true)).collect::<Result<_>>()?,
                    outputs: (0..n_out).map(|i| tensor(g, i, false)).collect::<Result<_>>()?,
                })
            })
            .collect()
    }

    /// The IO description of every shape group.
    pub fn groups(&self) -> &[GroupInfo] {
        &self.groups
    }
    /// A new IO object for this model (buffers unbound).
    pub fn create_io(&self, cx: &Entered<'_>) -> Result<EngineIo> {
        let mut io: rt::axclrtEngineIO = std::ptr::null_mut();
        // SAFETY: our live IO-info handle; valid out-parameter.
        let status = unsafe { (cx.dev.rt.api.axclrtEngineCreateIO)(self.info.0, &mut io) };
        cx.dev.check("axclrtEngineCreateIO", status)?;
        Ok(EngineIo { dev: Arc::clone(cx.dev), io: IoPtr(io) })
    }

    /// Runs shape group `group` with the buffers bound in `io` (synchronous).
    pub fn execute(&self, cx: &Entered<'_>, group: u32, io: &EngineIo) -> Result<()> {
        // SAFETY: live model, context and IO handles of this model.
        let status = unsafe { (cx.dev.rt.api.axclrtEngineExecute)(self.id, self.context, group, io.io.0) };
        cx.dev.check("axclrtEngineExecute", status)
    }

    /// Queues shape group `group` on `stream` with `io`'s bindings as they are
    /// now. The bound buffers must outlive the stream's next synchronisation.
    pub fn execute_async(&self, cx: &Entered<'_>, group: u32, io: &EngineIo, stream: &Stream) -> Result<()> {
        // SAFETY: live model, context, IO and stream handles.
        let status =
            unsafe { (cx.dev.rt.api.axclrtEngineExecuteAsync)(self.id, self.context, group, io.io.0, stream.raw()) };
        cx.dev.check("axclrtEngineExecuteAsync", status)
    }
}

impl Drop for EngineModel {
    fn drop(&mut self) {
        if self.dev.make_current().is_err() {
            return;
        }
        let api = &self.dev.rt.api;
        // SAFETY: our own handles, released once; IO objects of this model are
        // dropped before it by their owner (field order).
        unsafe {
            if !self.info.0.is_null() {
                (api.axclrtEngineDestroyIOInfo)(self.info.0);
            }
            (api.axclrtEngineUnload)(self.id);
        }
    }
}

#[derive(Debug)]
struct IoPtr(rt::axclrtEngineIO);
// SAFETY: opaque runtime handle; used only by its owner with a current context.
unsafe impl Send for IoPtr {}
// SAFETY: as above.
unsafe impl Sync for IoPtr {}

/// An IO object: one (device address, size) binding per input and output.
#[derive(Debug)]
pub struct EngineIo {
    dev: Arc<Device>,
    io: IoPtr,
}

impl EngineIo {
    /// Binds `size` bytes of `buf` starting at `offset` as input `index`.
    pub fn bind_input(
        &mut self,
        cx: &Entered<'_>,
        index: usize,
        buf: &DeviceBuffer,
        offset: usize,
        size: usize,
    ) -> Result<()> {
        self.bind(cx, true, index, buf, offset, size)
    }
    /// Binds `size` bytes of `buf` starting at `offset` as output `index`.
    pub fn bind_output(
        &mut self,
        cx: &Entered<'_>,
        index: usize,
        buf: &DeviceBuffer,
        offset: usize,
        size: usize,
    ) -> Result<()> {
        self.bind(cx, false, index, buf, offset, size)
    }

    fn bind(
        &mut self,
        cx: &Entered<'_>,
        input: bool,
        index: usize,
        buf: &DeviceBuffer,
        offset: usize,
        size: usize,
    ) -> Result<()> {
        if offset.checked_add(size).is_none_or(|e| e > buf.size()) {
            return Err(Error::invalid(format!(
                "binding {size} bytes at offset {offset} of a {}-byte device buffer",
                buf.size()
            )));
        }
        let ptr = (buf.addr() + offset as u64) as *const c_void;
        let api = &cx.dev.rt.api;
        // SAFETY: live IO handle; `ptr..ptr+size` is inside a live device allocation.
        let status = unsafe {
            if input {
                (api.axclrtEngineSetInputBufferByIndex)(self.io.0, index as u32, ptr, size as u64)
            } else {
                (api.axclrtEngineSetOutputBufferByIndex)(self.io.0, index as u32, ptr, size as u64)
            }
        };
        cx.dev.check(
            if input { "axclrtEngineSetInputBufferByIndex" } else { "axclrtEngineSetOutputBufferByIndex" },
            status,
        )
    }
}

impl Drop for EngineIo {
    fn drop(&mut self) {
        if self.dev.make_current().is_ok() {
            // SAFETY: our own IO handle, destroyed once.
            unsafe { (self.dev.rt.api.axclrtEngineDestroyIO)(self.io.0) };
        }
    }
}

/// Names the model file in a runtime error that does not already say it.
fn with_path(e: Error, path: &Path) -> Error {
    let name = |detail: String| {
        let p = path.display().to_string();
        if detail.contains(&p) {
            detail
        } else if detail.is_empty() {
            p
        } else {
            format!("{p}: {detail}")
        }
    };
    match e {
        Error::Runtime { call, status, detail } => Error::Runtime { call, status, detail: name(detail) },
        Error::OutOfMemory { call, status, bytes, detail } => {
            Error::OutOfMemory { call, status, bytes, detail: name(detail) }
        }
        Error::DeviceLost { call, status, detail } => Error::DeviceLost { call, status, detail: name(detail) },
        other => other,
    }
}
