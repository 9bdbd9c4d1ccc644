//! The exported C symbols: every function of `axcl_rt.h` and `axcl_sim.h`.
//!
//! Each export checks its pointer arguments, turns them into safe Rust values,
//! and runs its body through [`boundary`] (panics caught, failures recorded).
//! The `const` at the end proves at compile time that every signature matches
//! the one ABI definition in `axcl-sys`.
//!
//! Handles (`axclrtContext`, `axclrtEngineIOInfo`, `axclrtEngineIO`, `axclrtStream`) are opaque
//! integers dressed as pointers; device pointers are device addresses. Neither
//! is ever dereferenced.

use super::boundary::{self, status, value};
use super::errors::{ErrorKind, SimError, SimResult, Sub};
use super::model::Dir;
use super::{device, engine, execute, io, memory, state, stream, trace};
use axcl_sys::rt_opt::AxclRtOpt;
use axcl_sys::rt::{
    self, AxclRt, axclError, axclrtContext, axclrtDeviceList, axclrtDeviceProperties, axclrtEngineDataLayout, axclrtEngineDataType, axclrtEngineIO, axclrtEngineIODims,
    axclrtEngineIOInfo, axclrtEngineVNpuKind, axclrtMemMallocPolicy, axclrtMemcpyKind, axclrtStream,
};
use axcl_sys::sim::{AxclSim, axclSimCounters};
use std::ffi::{CStr, c_char, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

/// `axclSimVersion`'s string.
const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!("axcl-sim ", env!("CARGO_PKG_VERSION"), "\0").as_bytes())
{
    Ok(version) => version,
    Err(_) => panic!("the version string has no interior NUL"),
};

fn null(sub: Sub, name: &str) -> SimError {
    SimError::new(ErrorKind::NullPointer(sub), format!("{name} is NULL"))
}

/// The integer value of a device pointer or handle.
fn addr<T>(ptr: *const T) -> u64 {
    ptr.addr() as u64
}

/// A device address or handle as the pointer type the C API uses.
fn as_ptr(value: u64) -> *mut c_void {
    std::ptr::without_provenance_mut(value as usize)
}

/// A handle argument: NULL is refused, anything else is looked up later.
fn handle(ptr: *mut c_void, sub: Sub, name: &str) -> SimResult<u64> {
    if ptr.is_null() { Err(null(sub, name)) } else { Ok(addr(ptr)) }
}

/// An out-parameter checked to be non-NULL.
struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// # Safety
    /// `ptr` is NULL or valid for writing one `T` (the calling export's contract).
    unsafe fn new(ptr: *mut T, sub: Sub, name: &str) -> SimResult<Self> {
        NonNull::new(ptr).map(Self).ok_or_else(|| null(sub, name))
    }

    fn set(self, value: T) {
        // SAFETY: non-NULL (checked in `new`) and valid for writing one T, which
        // the caller of `new` guaranteed.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// # Safety
/// `ptr` is NULL or a NUL-terminated string that stays valid during the call.
unsafe fn c_str<'a>(ptr: *const c_char, sub: Sub, name: &str) -> SimResult<&'a CStr> {
    if ptr.is_null() {
        return Err(null(sub, name));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    Ok(unsafe { CStr::from_ptr(ptr) })
}

// ---- init / finalize ------------------------------------------------------

/// Initialises the runtime and applies `AXCL_SIM_CONFIG`; `config` (a JSON path)
/// is ignored, so NULL, an empty string and a missing file all mean "defaults",
/// as on a card (hardware-facts: F4).
///
/// # Safety
/// `config` is NULL or a NUL-terminated string (it is not read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclInit(config: *const c_char) -> axclError {
    let _ = config;
    status("axclInit", Sub::Device, state::init)
}

/// Frees every allocation, model, IO object and context.
///
/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclFinalize() -> axclError {
    trace::record(format_args!("axclFinalize"), status("axclFinalize", Sub::Device, state::finalize))
}

// ---- devices and contexts -------------------------------------------------

/// # Safety
/// `count` is NULL or valid for writing one `u32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtGetDeviceCount(count: *mut u32) -> axclError {
    status("axclrtGetDeviceCount", Sub::Device, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(count, Sub::Device, "count") }?;
        out.set(device::device_ids()?.len() as u32);
        Ok(())
    })
}

/// # Safety
/// `deviceList` is NULL or valid for writing one `axclrtDeviceList`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtGetDeviceList(device_list: *mut axclrtDeviceList) -> axclError {
    status("axclrtGetDeviceList", Sub::Device, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(device_list, Sub::Device, "deviceList") }?;
        let ids = device::device_ids()?;
        let mut list = axclrtDeviceList { num: ids.len() as u32, ..Default::default() };
        list.devices[..ids.len()].copy_from_slice(&ids);
        out.set(list);
        Ok(())
    })
}

/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtSetDevice(device_id: i32) -> axclError {
    status("axclrtSetDevice", Sub::Device, || device::set_device(device_id))
}

/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtResetDevice(device_id: i32) -> axclError {
    let st = status("axclrtResetDevice", Sub::Device, || device::reset_device(device_id));
    trace::record(format_args!("axclrtResetDevice({device_id})"), st)
}

/// # Safety
/// `deviceId` is NULL or valid for writing one `i32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtGetDevice(device_id: *mut i32) -> axclError {
    status("axclrtGetDevice", Sub::Device, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(device_id, Sub::Device, "deviceId") }?;
        out.set(device::current_device()?);
        Ok(())
    })
}

/// # Safety
/// `context` is NULL or valid for writing one `axclrtContext`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtCreateContext(context: *mut axclrtContext, device_id: i32) -> axclError {
    status("axclrtCreateContext", Sub::Context, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(context, Sub::Context, "context") }?;
        out.set(as_ptr(device::create_context(device_id)?));
        Ok(())
    })
}

/// # Safety
/// `context` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtDestroyContext(context: axclrtContext) -> axclError {
    status("axclrtDestroyContext", Sub::Context, || device::destroy_context(handle(context, Sub::Context, "context")?))
}

/// # Safety
/// `context` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtSetCurrentContext(context: axclrtContext) -> axclError {
    status("axclrtSetCurrentContext", Sub::Context, || {
        device::set_current_context(handle(context, Sub::Context, "context")?)
    })
}

/// Writes the current context, or NULL (with NO_BIND_CONTEXT) when the thread has none.
///
/// # Safety
/// `context` is NULL or valid for writing one `axclrtContext`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtGetCurrentContext(context: *mut axclrtContext) -> axclError {
    status("axclrtGetCurrentContext", Sub::Context, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(context, Sub::Context, "context") }?;
        let current = device::current_context();
        out.set(as_ptr(current.as_ref().map_or(0, |&c| c)));
        current.map(drop)
    })
}

// ---- device memory --------------------------------------------------------

/// # Safety
/// `devPtr` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtMalloc(
    dev_ptr: *mut *mut c_void,
    size: usize,
    policy: axclrtMemMallocPolicy,
) -> axclError {
    status("axclrtMalloc", Sub::Memory, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(dev_ptr, Sub::Memory, "devPtr") }?;
        out.set(as_ptr(memory::malloc(size as u64, policy)?));
        Ok(())
    })
}

/// # Safety
/// `devPtr` is a device address; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtFree(dev_ptr: *mut c_void) -> axclError {
    status("axclrtFree", Sub::Memory, || memory::free(handle(dev_ptr, Sub::Memory, "devPtr")?))
}

/// # Safety
/// `devPtr` is a device address; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtMemset(dev_ptr: *mut c_void, value: u8, count: usize) -> axclError {
    status("axclrtMemset", Sub::Memory, || memory::memset(handle(dev_ptr, Sub::Memory, "devPtr")?, value, count as u64))
}

/// The body of `axclrtMemcpy` and (with `stream`) `axclrtMemcpyAsync`.
///
/// # Safety
/// A host-side pointer is valid for `count` bytes (reads for the source, writes
/// for the destination) for the duration of the call (the simulator does an
/// asynchronous copy's work at once, see `stream`); device-side pointers are
/// device addresses and never dereferenced.
unsafe fn memcpy(
    dst_ptr: *mut c_void,
    src_ptr: *const c_void,
    count: usize,
    kind: axclrtMemcpyKind,
    stream: Option<u64>,
) -> SimResult<()> {
    if dst_ptr.is_null() {
        return Err(null(Sub::Memory, "dstPtr"));
    }
    if src_ptr.is_null() {
        return Err(null(Sub::Memory, "srcPtr"));
    }
    let (dst, src, n) = (addr(dst_ptr), addr(src_ptr), count as u64);
    match u32::try_from(kind) {
        Ok(rt::AXCL_MEMCPY_HOST_TO_DEVICE) => {
            memory::check_host_side(src, n, "source")?;
            // SAFETY: a non-NULL host buffer of `count` readable bytes (contract),
            // checked to lie outside the reserved device window.
            let bytes = unsafe { std::slice::from_raw_parts(src_ptr.cast::<u8>(), count) };
            memory::copy_to_device(dst, bytes, stream)
        }
        Ok(rt::AXCL_MEMCPY_DEVICE_TO_HOST) => {
            memory::check_host_side(dst, n, "destination")?;
            // SAFETY: a non-NULL host buffer of `count` writable bytes (contract),
            // checked to lie outside the reserved device window; nothing else
            // refers to it during the call.
            let bytes = unsafe { std::slice::from_raw_parts_mut(dst_ptr.cast::<u8>(), count) };
            memory::copy_to_host(bytes, src, stream)
        }
        Ok(rt::AXCL_MEMCPY_DEVICE_TO_DEVICE) => memory::copy_on_device(dst, src, n, stream),
        Ok(rt::AXCL_MEMCPY_HOST_TO_HOST) => {
            memory::check_host_side(src, n, "source")?;
            memory::check_host_side(dst, n, "destination")?;
            // SAFETY: two non-NULL host buffers of `count` bytes (contract);
            // `copy` allows them to overlap.
            unsafe { std::ptr::copy(src_ptr.cast::<u8>(), dst_ptr.cast::<u8>(), count) };
            Ok(())
        }
        Ok(rt::AXCL_MEMCPY_HOST_PHY_TO_DEVICE | rt::AXCL_MEMCPY_DEVICE_TO_HOST_PHY) => Err(SimError::new(
            ErrorKind::UnsupportedCopyKind,
            format!("copy kind {kind} (host physical memory) is not simulated"),
        )),
        _ => Err(SimError::new(ErrorKind::BadMemoryArgument, format!("unknown copy kind {kind}"))),
    }
}

/// Copies `count` bytes; `kind` says which side is the device.
///
/// # Safety
/// A host-side pointer is valid for `count` bytes (reads for the source, writes
/// for the destination); device-side pointers are device addresses and never
/// dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtMemcpy(
    dst_ptr: *mut c_void,
    src_ptr: *const c_void,
    count: usize,
    kind: axclrtMemcpyKind,
) -> axclError {
    // SAFETY: the caller's contract above.
    status("axclrtMemcpy", Sub::Memory, || unsafe { memcpy(dst_ptr, src_ptr, count, kind, None) })
}

/// Queues a copy of `count` bytes on `stream`.
///
/// # Safety
/// As `axclrtMemcpy`; host memory stays valid until the stream is synchronised.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtMemcpyAsync(
    dst_ptr: *mut c_void,
    src_ptr: *const c_void,
    count: usize,
    kind: axclrtMemcpyKind,
    stream: axclrtStream,
) -> axclError {
    status("axclrtMemcpyAsync", Sub::Memory, || {
        let stream = handle(stream, Sub::Stream, "stream")?;
        // SAFETY: the caller's contract above.
        unsafe { memcpy(dst_ptr, src_ptr, count, kind, Some(stream)) }
    })
}

// ---- streams --------------------------------------------------------------

/// # Safety
/// `stream` is NULL or valid for writing one handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtCreateStream(stream: *mut axclrtStream) -> axclError {
    status("axclrtCreateStream", Sub::Stream, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(stream, Sub::Stream, "stream") }?;
        out.set(as_ptr(stream::create()?));
        Ok(())
    })
}

/// # Safety
/// `stream` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtDestroyStream(stream: axclrtStream) -> axclError {
    status("axclrtDestroyStream", Sub::Stream, || stream::destroy(handle(stream, Sub::Stream, "stream")?))
}

/// # Safety
/// `stream` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtSynchronizeStream(stream: axclrtStream) -> axclError {
    status("axclrtSynchronizeStream", Sub::Stream, || stream::synchronize(handle(stream, Sub::Stream, "stream")?))
}

// ---- engine ---------------------------------------------------------------

/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineInit(npu_kind: axclrtEngineVNpuKind) -> axclError {
    status("axclrtEngineInit", Sub::Engine, || engine::init(npu_kind))
}

/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineFinalize() -> axclError {
    status("axclrtEngineFinalize", Sub::Engine, engine::finalize)
}

/// # Safety
/// `modelPath` is NULL or a NUL-terminated string; `modelId` is NULL or valid
/// for writing one `u64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineLoadFromFile(model_path: *const c_char, model_id: *mut u64) -> axclError {
    status("axclrtEngineLoadFromFile", Sub::Engine, || {
        // SAFETY: the caller's contract above (both).
        let (path, out) =
            unsafe { (c_str(model_path, Sub::Engine, "modelPath")?, Out::new(model_id, Sub::Engine, "modelId")?) };
        let path = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
        out.set(engine::load_file(path)?);
        Ok(())
    })
}

/// # Safety
/// `model` is a device address (never dereferenced); `modelId` is NULL or valid
/// for writing one `u64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineLoadFromMem(
    model: *const c_void,
    model_size: u64,
    model_id: *mut u64,
) -> axclError {
    status("axclrtEngineLoadFromMem", Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(model_id, Sub::Engine, "modelId") }?;
        let model = handle(model.cast_mut(), Sub::Engine, "model")?;
        out.set(engine::load_mem(model, model_size)?);
        Ok(())
    })
}

/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineUnload(model_id: u64) -> axclError {
    status("axclrtEngineUnload", Sub::Engine, || engine::unload(model_id))
}

/// # Safety
/// `contextId` is NULL or valid for writing one `u64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineCreateContext(model_id: u64, context_id: *mut u64) -> axclError {
    status("axclrtEngineCreateContext", Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(context_id, Sub::Engine, "contextId") }?;
        out.set(engine::create_context(model_id)?);
        Ok(())
    })
}

/// # Safety
/// `ioInfo` is NULL or valid for writing one `axclrtEngineIOInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetIOInfo(model_id: u64, io_info: *mut axclrtEngineIOInfo) -> axclError {
    status("axclrtEngineGetIOInfo", Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(io_info, Sub::Engine, "ioInfo") }?;
        out.set(as_ptr(io::get_io_info(model_id)?));
        Ok(())
    })
}

/// # Safety
/// `ioInfo` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineDestroyIOInfo(io_info: axclrtEngineIOInfo) -> axclError {
    status("axclrtEngineDestroyIOInfo", Sub::Engine, || io::destroy_io_info(handle(io_info, Sub::Engine, "ioInfo")?))
}

/// # Safety
/// `ioInfo` is an opaque handle; `count` is NULL or valid for writing one `i32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetShapeGroupsCount(io_info: axclrtEngineIOInfo, count: *mut i32) -> axclError {
    status("axclrtEngineGetShapeGroupsCount", Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(count, Sub::Engine, "count") }?;
        out.set(io::with_info(handle(io_info, Sub::Engine, "ioInfo")?, |t| Ok(t.groups.len() as i32))?);
        Ok(())
    })
}

fn tensor_count(call: &str, io_info: axclrtEngineIOInfo, dir: Dir) -> u32 {
    value(call, Sub::Engine, 0, || io::with_info(handle(io_info, Sub::Engine, "ioInfo")?, |t| Ok(t.count(dir) as u32)))
}

/// Number of inputs (the same in every group); 0 for an invalid handle.
///
/// # Safety
/// `ioInfo` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetNumInputs(io_info: axclrtEngineIOInfo) -> u32 {
    tensor_count("axclrtEngineGetNumInputs", io_info, Dir::Input)
}

/// Number of outputs (the same in every group); 0 for an invalid handle.
///
/// # Safety
/// `ioInfo` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetNumOutputs(io_info: axclrtEngineIOInfo) -> u32 {
    tensor_count("axclrtEngineGetNumOutputs", io_info, Dir::Output)
}

fn tensor_size(call: &str, io_info: axclrtEngineIOInfo, dir: Dir, group: u32, index: u32) -> u64 {
    value(call, Sub::Engine, 0, || {
        io::with_info(handle(io_info, Sub::Engine, "ioInfo")?, |t| Ok(t.tensor(dir, group, index)?.nbytes() as u64))
    })
}

/// Byte size of input `index` in `group`; 0 when invalid.
///
/// # Safety
/// `ioInfo` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetInputSizeByIndex(io_info: axclrtEngineIOInfo, group: u32, index: u32) -> u64 {
    tensor_size("axclrtEngineGetInputSizeByIndex", io_info, Dir::Input, group, index)
}

/// Byte size of output `index` in `group`; 0 when invalid.
///
/// # Safety
/// `ioInfo` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetOutputSizeByIndex(io_info: axclrtEngineIOInfo, group: u32, index: u32) -> u64 {
    tensor_size("axclrtEngineGetOutputSizeByIndex", io_info, Dir::Output, group, index)
}

fn tensor_name(call: &str, io_info: axclrtEngineIOInfo, dir: Dir, index: u32) -> *const c_char {
    value(call, Sub::Engine, std::ptr::null(), || {
        io::with_info(handle(io_info, Sub::Engine, "ioInfo")?, |t| Ok(t.name(dir, index)?.as_ptr()))
    })
}

/// Name of input `index`: NUL-terminated, owned by the IO info (valid until it is
/// destroyed); NULL when invalid.
///
/// # Safety
/// `ioInfo` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetInputNameByIndex(io_info: axclrtEngineIOInfo, index: u32) -> *const c_char {
    tensor_name("axclrtEngineGetInputNameByIndex", io_info, Dir::Input, index)
}

/// Name of output `index`, like [`axclrtEngineGetInputNameByIndex`].
///
/// # Safety
/// `ioInfo` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetOutputNameByIndex(io_info: axclrtEngineIOInfo, index: u32) -> *const c_char {
    tensor_name("axclrtEngineGetOutputNameByIndex", io_info, Dir::Output, index)
}

/// # Safety
/// `name` is NULL or a NUL-terminated string.
unsafe fn tensor_index(call: &str, io_info: axclrtEngineIOInfo, dir: Dir, name: *const c_char) -> i32 {
    value(call, Sub::Engine, -1, || {
        // SAFETY: the caller's contract above.
        let name = unsafe { c_str(name, Sub::Engine, "name") }?;
        io::with_info(handle(io_info, Sub::Engine, "ioInfo")?, |t| {
            let index = t.index_of(dir, name).ok_or_else(|| {
                SimError::new(ErrorKind::EngineArgument, format!("the model has no {} named {name:?}", dir.name()))
            })?;
            Ok(index as i32)
        })
    })
}

/// Index of the input called `name`; -1 when absent or invalid.
///
/// # Safety
/// `ioInfo` is an opaque handle; `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetInputIndexByName(io_info: axclrtEngineIOInfo, name: *const c_char) -> i32 {
    // SAFETY: forwards the caller's contract.
    unsafe { tensor_index("axclrtEngineGetInputIndexByName", io_info, Dir::Input, name) }
}

/// Index of the output called `name`; -1 when absent or invalid.
///
/// # Safety
/// `ioInfo` is an opaque handle; `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetOutputIndexByName(io_info: axclrtEngineIOInfo, name: *const c_char) -> i32 {
    // SAFETY: forwards the caller's contract.
    unsafe { tensor_index("axclrtEngineGetOutputIndexByName", io_info, Dir::Output, name) }
}

/// # Safety
/// `dims` is NULL or valid for writing one `axclrtEngineIODims`.
unsafe fn tensor_dims(
    call: &str,
    io_info: axclrtEngineIOInfo,
    dir: Dir,
    group: u32,
    index: u32,
    dims: *mut axclrtEngineIODims,
) -> axclError {
    status(call, Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(dims, Sub::Engine, "dims") }?;
        let value = io::with_info(handle(io_info, Sub::Engine, "ioInfo")?, |t| {
            let desc = t.tensor(dir, group, index)?;
            let mut value = axclrtEngineIODims { dimCount: desc.dims.len() as i32, ..Default::default() };
            value.dims[..desc.dims.len()].copy_from_slice(&desc.dims);
            Ok(value)
        })?;
        out.set(value);
        Ok(())
    })
}

/// # Safety
/// `ioInfo` is an opaque handle; `dims` is NULL or valid for writing one `axclrtEngineIODims`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetInputDims(
    io_info: axclrtEngineIOInfo,
    group: u32,
    index: u32,
    dims: *mut axclrtEngineIODims,
) -> axclError {
    // SAFETY: forwards the caller's contract.
    unsafe { tensor_dims("axclrtEngineGetInputDims", io_info, Dir::Input, group, index, dims) }
}

/// # Safety
/// `ioInfo` is an opaque handle; `dims` is NULL or valid for writing one `axclrtEngineIODims`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetOutputDims(
    io_info: axclrtEngineIOInfo,
    group: u32,
    index: u32,
    dims: *mut axclrtEngineIODims,
) -> axclError {
    // SAFETY: forwards the caller's contract.
    unsafe { tensor_dims("axclrtEngineGetOutputDims", io_info, Dir::Output, group, index, dims) }
}

/// # Safety
/// `type_` is NULL or valid for writing one `axclrtEngineDataType`.
unsafe fn tensor_dtype(
    call: &str,
    io_info: axclrtEngineIOInfo,
    dir: Dir,
    index: u32,
    type_: *mut axclrtEngineDataType,
) -> axclError {
    status(call, Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(type_, Sub::Engine, "type") }?;
        out.set(io::with_info(handle(io_info, Sub::Engine, "ioInfo")?, |t| {
            t.reported_dtype(dir, index)
        })?);
        Ok(())
    })
}

/// # Safety
/// `ioInfo` is an opaque handle; `type_` is NULL or valid for writing one `axclrtEngineDataType`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetInputDataType(
    io_info: axclrtEngineIOInfo,
    index: u32,
    type_: *mut axclrtEngineDataType,
) -> axclError {
    // SAFETY: forwards the caller's contract.
    unsafe { tensor_dtype("axclrtEngineGetInputDataType", io_info, Dir::Input, index, type_) }
}

/// # Safety
/// `ioInfo` is an opaque handle; `type_` is NULL or valid for writing one `axclrtEngineDataType`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetOutputDataType(
    io_info: axclrtEngineIOInfo,
    index: u32,
    type_: *mut axclrtEngineDataType,
) -> axclError {
    // SAFETY: forwards the caller's contract.
    unsafe { tensor_dtype("axclrtEngineGetOutputDataType", io_info, Dir::Output, index, type_) }
}

/// # Safety
/// `ioInfo` is an opaque handle; `io` is NULL or valid for writing one `axclrtEngineIO`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineCreateIO(io_info: axclrtEngineIOInfo, io: *mut axclrtEngineIO) -> axclError {
    status("axclrtEngineCreateIO", Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(io, Sub::Engine, "io") }?;
        out.set(as_ptr(io::create_io(handle(io_info, Sub::Engine, "ioInfo")?)?));
        Ok(())
    })
}

/// # Safety
/// `io` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineDestroyIO(io: axclrtEngineIO) -> axclError {
    status("axclrtEngineDestroyIO", Sub::Engine, || io::destroy_io(handle(io, Sub::Engine, "io")?))
}

fn bind(call: &str, io: axclrtEngineIO, dir: Dir, index: u32, buffer: *const c_void, size: u64) -> axclError {
    status(call, Sub::Engine, || {
        let io = handle(io, Sub::Engine, "io")?;
        let buffer = handle(buffer.cast_mut(), Sub::Engine, "dataBuffer")?;
        io::bind(io, dir, index, buffer, size)
    })
}

/// Binds device memory `[data_buffer, data_buffer + size)` to input `index`, as given.
///
/// # Safety
/// `io` is an opaque handle and `dataBuffer` a device address; neither is dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineSetInputBufferByIndex(
    io: axclrtEngineIO,
    index: u32,
    data_buffer: *const c_void,
    size: u64,
) -> axclError {
    bind("axclrtEngineSetInputBufferByIndex", io, Dir::Input, index, data_buffer, size)
}

/// Binds device memory `[data_buffer, data_buffer + size)` to output `index`, as given.
///
/// # Safety
/// `io` is an opaque handle and `dataBuffer` a device address; neither is dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineSetOutputBufferByIndex(
    io: axclrtEngineIO,
    index: u32,
    data_buffer: *const c_void,
    size: u64,
) -> axclError {
    bind("axclrtEngineSetOutputBufferByIndex", io, Dir::Output, index, data_buffer, size)
}

/// Runs shape group `group` of `modelId` synchronously on the buffers bound to `io`.
///
/// # Safety
/// `io` is an opaque handle; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineExecute(
    model_id: u64,
    context_id: u64,
    group: u32,
    io: axclrtEngineIO,
) -> axclError {
    status("axclrtEngineExecute", Sub::Engine, || {
        execute::execute(model_id, context_id, group, handle(io, Sub::Engine, "io")?, None)
    })
}

/// Queues shape group `group` of `modelId` on `stream` with `io`'s bindings as they are now.
///
/// # Safety
/// `io` and `stream` are opaque handles; they are never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineExecuteAsync(
    model_id: u64,
    context_id: u64,
    group: u32,
    io: axclrtEngineIO,
    stream: axclrtStream,
) -> axclError {
    status("axclrtEngineExecuteAsync", Sub::Engine, || {
        let stream = handle(stream, Sub::Stream, "stream")?;
        execute::execute(model_id, context_id, group, handle(io, Sub::Engine, "io")?, Some(stream))
    })
}

// ---- optional functions (axcl_rt.h after its "optional" marker) -----------

/// The SoC the simulator stands in for (hardware-facts: F1).
const SOC_NAME: &CStr = c"AX650N";
/// The runtime version the simulator's surface follows (hardware-facts: F2).
const RUNTIME_VERSION: (i32, i32, i32) = (3, 10, 2);
/// What `axclrtEngineGetModelCompilerVersion` reports for a simulated model.
const COMPILER_VERSION: &CStr = c"axsim-pack (simulated axmodel)";

/// The SoC name, "AX650N" (static).
///
/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtGetSocName() -> *const c_char {
    SOC_NAME.as_ptr()
}

/// # Safety
/// Each pointer is NULL or valid for writing one `i32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtGetVersion(major: *mut i32, minor: *mut i32, patch: *mut i32) -> axclError {
    status("axclrtGetVersion", Sub::Device, || {
        // SAFETY: the caller's contract above.
        let (a, b, c) = unsafe {
            (Out::new(major, Sub::Device, "major")?, Out::new(minor, Sub::Device, "minor")?, Out::new(patch, Sub::Device, "patch")?)
        };
        let (x, y, z) = RUNTIME_VERSION;
        a.set(x);
        b.set(y);
        c.set(z);
        Ok(())
    })
}

/// The device's implicit context (created by `axclrtSetDevice`).
///
/// # Safety
/// `context` is NULL or valid for writing one handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtGetDefaultContext(context: *mut axclrtContext, device_id: i32) -> axclError {
    status("axclrtGetDefaultContext", Sub::Context, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(context, Sub::Context, "context") }?;
        out.set(as_ptr(device::default_context(device_id)?));
        Ok(())
    })
}

/// The card's properties; `totalCmmSize`/`freeCmmSize` (KB) count loaded
/// models' weights and live allocations.
///
/// # Safety
/// `properties` is NULL or valid for writing one `axclrtDeviceProperties`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtGetDeviceProperties(device_id: i32, properties: *mut axclrtDeviceProperties) -> axclError {
    status("axclrtGetDeviceProperties", Sub::Device, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(properties, Sub::Device, "properties") }?;
        out.set(device::properties(device_id, VERSION)?);
        Ok(())
    })
}

/// `size` bytes of pinned host memory (zeroed), tracked until `axclrtFreeHost`.
///
/// # Safety
/// `hostPtr` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtMallocHost(host_ptr: *mut *mut c_void, size: usize) -> axclError {
    status("axclrtMallocHost", Sub::Memory, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(host_ptr, Sub::Memory, "hostPtr") }?;
        let addr = memory::malloc_host(size as u64)?;
        out.set(std::ptr::with_exposed_provenance_mut(addr));
        Ok(())
    })
}

/// # Safety
/// `hostPtr` came from `axclrtMallocHost` and is not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtFreeHost(host_ptr: *mut c_void) -> axclError {
    status("axclrtFreeHost", Sub::Memory, || {
        if host_ptr.is_null() {
            return Err(null(Sub::Memory, "hostPtr"));
        }
        memory::free_host(host_ptr.addr())
    })
}

/// Cached device memory; on the simulated card it behaves as `axclrtMalloc`.
///
/// # Safety
/// `devPtr` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtMallocCached(
    dev_ptr: *mut *mut c_void,
    size: usize,
    policy: axclrtMemMallocPolicy,
) -> axclError {
    status("axclrtMallocCached", Sub::Memory, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(dev_ptr, Sub::Memory, "devPtr") }?;
        out.set(as_ptr(memory::malloc(size as u64, policy)?));
        Ok(())
    })
}

/// # Safety
/// `devPtr` is a device address; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtMemFlush(dev_ptr: *mut c_void, size: usize) -> axclError {
    status("axclrtMemFlush", Sub::Memory, || {
        memory::cache_op(handle(dev_ptr, Sub::Memory, "devPtr")?, size as u64, "flushed range")
    })
}

/// # Safety
/// `devPtr` is a device address; it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtMemInvalidate(dev_ptr: *mut c_void, size: usize) -> axclError {
    status("axclrtMemInvalidate", Sub::Memory, || {
        memory::cache_op(handle(dev_ptr, Sub::Memory, "devPtr")?, size as u64, "invalidated range")
    })
}

/// # Safety
/// `npuKind` is NULL or valid for writing one `axclrtEngineVNpuKind`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetVNpuKind(npu_kind: *mut axclrtEngineVNpuKind) -> axclError {
    status("axclrtEngineGetVNpuKind", Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(npu_kind, Sub::Engine, "npuKind") }?;
        out.set(engine::vnpu_kind()?);
        Ok(())
    })
}

/// The compiler version string of a loaded model (static); NULL for an unknown id.
///
/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetModelCompilerVersion(model_id: u64) -> *const c_char {
    if engine::is_loaded(model_id) { COMPILER_VERSION.as_ptr() } else { std::ptr::null() }
}

/// (system, CMM) bytes the model file at `modelPath` needs once loaded.
///
/// # Safety
/// `modelPath` is NULL or a NUL-terminated string; `sysSize` and `cmmSize` are
/// NULL or valid for writing one `i64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetUsage(model_path: *const c_char, sys_size: *mut i64, cmm_size: *mut i64) -> axclError {
    status("axclrtEngineGetUsage", Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let path = unsafe { c_str(model_path, Sub::Engine, "modelPath") }?;
        // SAFETY: the caller's contract above.
        let (sys, cmm) = unsafe { (Out::new(sys_size, Sub::Engine, "sysSize")?, Out::new(cmm_size, Sub::Engine, "cmmSize")?) };
        let (s, c) = engine::usage(Path::new(std::ffi::OsStr::from_bytes(path.to_bytes())))?;
        sys.set(s);
        cmm.set(c);
        Ok(())
    })
}

/// # Safety
/// `layout` is NULL or valid for writing one `axclrtEngineDataLayout`.
unsafe fn tensor_layout(
    call: &str,
    io_info: axclrtEngineIOInfo,
    dir: Dir,
    index: u32,
    layout: *mut axclrtEngineDataLayout,
) -> axclError {
    status(call, Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(layout, Sub::Engine, "layout") }?;
        // LLM tensors are plain row-major arrays: NONE (hardware-facts: F9).
        io::with_info(handle(io_info, Sub::Engine, "ioInfo")?, |t| t.tensor(dir, 0, index).map(drop))?;
        out.set(rt::AXCL_DATA_LAYOUT_NONE as i32);
        Ok(())
    })
}

/// # Safety
/// `ioInfo` is an opaque handle; `layout` is NULL or valid for writing one `axclrtEngineDataLayout`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetInputDataLayout(
    io_info: axclrtEngineIOInfo,
    index: u32,
    layout: *mut axclrtEngineDataLayout,
) -> axclError {
    // SAFETY: forwards the caller's contract.
    unsafe { tensor_layout("axclrtEngineGetInputDataLayout", io_info, Dir::Input, index, layout) }
}

/// # Safety
/// `ioInfo` is an opaque handle; `layout` is NULL or valid for writing one `axclrtEngineDataLayout`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetOutputDataLayout(
    io_info: axclrtEngineIOInfo,
    index: u32,
    layout: *mut axclrtEngineDataLayout,
) -> axclError {
    // SAFETY: forwards the caller's contract.
    unsafe { tensor_layout("axclrtEngineGetOutputDataLayout", io_info, Dir::Output, index, layout) }
}

/// # Safety
/// `dataBuffer` and `size` are NULL or valid for writing one value each.
unsafe fn get_binding(
    call: &str,
    io: axclrtEngineIO,
    dir: Dir,
    index: u32,
    data_buffer: *mut *mut c_void,
    size: *mut u64,
) -> axclError {
    status(call, Sub::Engine, || {
        // SAFETY: the caller's contract above.
        let (buf, len) = unsafe { (Out::new(data_buffer, Sub::Engine, "dataBuffer")?, Out::new(size, Sub::Engine, "size")?) };
        let (addr, bytes) = io::binding(handle(io, Sub::Engine, "io")?, dir, index)?;
        buf.set(as_ptr(addr));
        len.set(bytes);
        Ok(())
    })
}

/// The (address, size) bound to input `index`, as given; (NULL, 0) when unbound.
///
/// # Safety
/// `io` is an opaque handle; `dataBuffer` and `size` are NULL or valid for writing one value each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetInputBufferByIndex(
    io: axclrtEngineIO,
    index: u32,
    data_buffer: *mut *mut c_void,
    size: *mut u64,
) -> axclError {
    // SAFETY: forwards the caller's contract.
    unsafe { get_binding("axclrtEngineGetInputBufferByIndex", io, Dir::Input, index, data_buffer, size) }
}

/// The (address, size) bound to output `index`, as given; (NULL, 0) when unbound.
///
/// # Safety
/// `io` is an opaque handle; `dataBuffer` and `size` are NULL or valid for writing one value each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclrtEngineGetOutputBufferByIndex(
    io: axclrtEngineIO,
    index: u32,
    data_buffer: *mut *mut c_void,
    size: *mut u64,
) -> axclError {
    // SAFETY: forwards the caller's contract.
    unsafe { get_binding("axclrtEngineGetOutputBufferByIndex", io, Dir::Output, index, data_buffer, size) }
}

// ---- simulator extras (axcl_sim.h) ----------------------------------------

/// The simulator's version string (static).
///
/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclSimVersion() -> *const c_char {
    VERSION.as_ptr()
}

/// # Safety
/// `out` is NULL or valid for writing one `axclSimCounters`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclSimGetCounters(out: *mut axclSimCounters) -> axclError {
    status("axclSimGetCounters", Sub::Config, || {
        // SAFETY: the caller's contract above.
        let out = unsafe { Out::new(out, Sub::Config, "out") }?;
        out.set(state::counters());
        Ok(())
    })
}

/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclSimResetCounters() -> axclError {
    status("axclSimResetCounters", Sub::Config, || {
        state::reset_counters();
        Ok(())
    })
}

/// # Safety
/// `spec` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclSimConfigure(spec: *const c_char) -> axclError {
    status("axclSimConfigure", Sub::Config, || {
        // SAFETY: the caller's contract above.
        let spec = unsafe { c_str(spec, Sub::Config, "spec") }?;
        let spec = spec.to_str().map_err(|_| SimError::new(ErrorKind::BadConfig, "the configuration is not UTF-8"))?;
        state::configure(spec)
    })
}

/// The calling thread's last error message; never NULL.
///
/// # Safety
/// No pointer arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axclSimLastErrorMessage() -> *const c_char {
    boundary::last_error()
}

/// Compile-time proof that every export has exactly the signature of the one
/// ABI definition (the bindgen output of `axcl_rt.h` / `axcl_sim.h`): assigning a
/// function whose signature differs from its field's type does not compile.
const _: fn(&mut AxclRt, &mut AxclRtOpt, &mut AxclSim) = |rt, opt, sim| {
    opt.axclrtGetSocName = Ok(axclrtGetSocName);
    opt.axclrtGetVersion = Ok(axclrtGetVersion);
    opt.axclrtGetDefaultContext = Ok(axclrtGetDefaultContext);
    opt.axclrtGetDeviceProperties = Ok(axclrtGetDeviceProperties);
    opt.axclrtMallocHost = Ok(axclrtMallocHost);
    opt.axclrtFreeHost = Ok(axclrtFreeHost);
    opt.axclrtMallocCached = Ok(axclrtMallocCached);
    opt.axclrtMemFlush = Ok(axclrtMemFlush);
    opt.axclrtMemInvalidate = Ok(axclrtMemInvalidate);
    opt.axclrtEngineGetVNpuKind = Ok(axclrtEngineGetVNpuKind);
    opt.axclrtEngineGetModelCompilerVersion = Ok(axclrtEngineGetModelCompilerVersion);
    opt.axclrtEngineGetUsage = Ok(axclrtEngineGetUsage);
    opt.axclrtEngineGetInputDataLayout = Ok(axclrtEngineGetInputDataLayout);
    opt.axclrtEngineGetOutputDataLayout = Ok(axclrtEngineGetOutputDataLayout);
    opt.axclrtEngineGetInputBufferByIndex = Ok(axclrtEngineGetInputBufferByIndex);
    opt.axclrtEngineGetOutputBufferByIndex = Ok(axclrtEngineGetOutputBufferByIndex);
    rt.axclInit = axclInit;
    rt.axclFinalize = axclFinalize;
    rt.axclrtGetDeviceCount = axclrtGetDeviceCount;
    rt.axclrtGetDeviceList = axclrtGetDeviceList;
    rt.axclrtSetDevice = axclrtSetDevice;
    rt.axclrtResetDevice = axclrtResetDevice;
    rt.axclrtGetDevice = axclrtGetDevice;
    rt.axclrtCreateContext = axclrtCreateContext;
    rt.axclrtDestroyContext = axclrtDestroyContext;
    rt.axclrtSetCurrentContext = axclrtSetCurrentContext;
    rt.axclrtGetCurrentContext = axclrtGetCurrentContext;
    rt.axclrtMalloc = axclrtMalloc;
    rt.axclrtFree = axclrtFree;
    rt.axclrtMemset = axclrtMemset;
    rt.axclrtMemcpy = axclrtMemcpy;
    rt.axclrtEngineInit = axclrtEngineInit;
    rt.axclrtEngineFinalize = axclrtEngineFinalize;
    rt.axclrtEngineLoadFromFile = axclrtEngineLoadFromFile;
    rt.axclrtEngineLoadFromMem = axclrtEngineLoadFromMem;
    rt.axclrtEngineUnload = axclrtEngineUnload;
    rt.axclrtEngineCreateContext = axclrtEngineCreateContext;
    rt.axclrtEngineGetIOInfo = axclrtEngineGetIOInfo;
    rt.axclrtEngineDestroyIOInfo = axclrtEngineDestroyIOInfo;
    rt.axclrtEngineGetShapeGroupsCount = axclrtEngineGetShapeGroupsCount;
    rt.axclrtEngineGetNumInputs = axclrtEngineGetNumInputs;
    rt.axclrtEngineGetNumOutputs = axclrtEngineGetNumOutputs;
    rt.axclrtEngineGetInputSizeByIndex = axclrtEngineGetInputSizeByIndex;
    rt.axclrtEngineGetOutputSizeByIndex = axclrtEngineGetOutputSizeByIndex;
    rt.axclrtEngineGetInputNameByIndex = axclrtEngineGetInputNameByIndex;
    rt.axclrtEngineGetOutputNameByIndex = axclrtEngineGetOutputNameByIndex;
    rt.axclrtEngineGetInputIndexByName = axclrtEngineGetInputIndexByName;
    rt.axclrtEngineGetOutputIndexByName = axclrtEngineGetOutputIndexByName;
    rt.axclrtEngineGetInputDims = axclrtEngineGetInputDims;
    rt.axclrtEngineGetOutputDims = axclrtEngineGetOutputDims;
    rt.axclrtEngineGetInputDataType = axclrtEngineGetInputDataType;
    rt.axclrtEngineGetOutputDataType = axclrtEngineGetOutputDataType;
    rt.axclrtEngineCreateIO = axclrtEngineCreateIO;
    rt.axclrtEngineDestroyIO = axclrtEngineDestroyIO;
    rt.axclrtEngineSetInputBufferByIndex = axclrtEngineSetInputBufferByIndex;
    rt.axclrtEngineSetOutputBufferByIndex = axclrtEngineSetOutputBufferByIndex;
    rt.axclrtEngineExecute = axclrtEngineExecute;
    rt.axclrtCreateStream = axclrtCreateStream;
    rt.axclrtDestroyStream = axclrtDestroyStream;
    rt.axclrtSynchronizeStream = axclrtSynchronizeStream;
    rt.axclrtMemcpyAsync = axclrtMemcpyAsync;
    rt.axclrtEngineExecuteAsync = axclrtEngineExecuteAsync;
    sim.axclSimVersion = axclSimVersion;
    sim.axclSimGetCounters = axclSimGetCounters;
    sim.axclSimResetCounters = axclSimResetCounters;
    sim.axclSimConfigure = axclSimConfigure;
    sim.axclSimLastErrorMessage = axclSimLastErrorMessage;
};
