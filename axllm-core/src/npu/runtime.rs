//! Loading the AXCL runtime library, process-wide init/finalize, devices and
//! the per-thread current context.

use super::{SimHooks, check};
use crate::error::{Error, Result};
use axcl_sys::rt::{self, AxclRt};
use axcl_sys::rt_opt::AxclRtOpt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::CString;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

/// The library name the vendor installs.
pub const RUNTIME_SONAME: &str = "libaxcl_rt.so";
/// Where the vendor's installer puts it.
pub const RUNTIME_DIR: &str = "/usr/lib/axcl";

/// The loaded and initialised runtime. One per process: [`Runtime::open`]
/// hands out the live one; `axclFinalize` runs when the last user drops it.
pub struct Runtime {
    pub(super) api: AxclRt,
    /// The optional functions (axcl_rt.h after its marker), each `Err` when the
    /// runtime lacks it (older stacks, hardware-facts: F20).
    pub(super) opt: AxclRtOpt,
    pub(super) sim: Option<SimHooks>,
    path: PathBuf,
    devices: Mutex<HashMap<usize, Weak<Device>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("path", &self.path).field("simulator", &self.sim.is_some()).finish()
    }
}

static LIVE: Mutex<Weak<Runtime>> = Mutex::new(Weak::new());

/// The candidates tried in order: the explicit path alone; else the dynamic
/// loader's search for the soname, then the vendor's install directory.
fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    vec![PathBuf::from(RUNTIME_SONAME), Path::new(RUNTIME_DIR).join(RUNTIME_SONAME)]
}

impl Runtime {
    /// Opens (or shares) the runtime: `explicit`, else `libaxcl_rt.so` through
    /// the dynamic loader, else `/usr/lib/axcl/`. (The library never reads the
    /// environment: callers pass the path.)
    /// Every symbol of the header is resolved here; then `axclInit` runs once.
    pub fn open(explicit: Option<&Path>) -> Result<Arc<Runtime>> {
        let mut live = LIVE.lock();
        if let Some(rt) = live.upgrade() {
            if let Some(p) = explicit.filter(|p| *p != rt.path.as_path()) {
                return Err(Error::invalid(format!(
                    "the AXCL runtime {} is already loaded in this process; cannot also load {}",
                    rt.path.display(),
                    p.display()
                )));
            }
            return Ok(rt);
        }
        let mut failures = Vec::new();
        let mut last = None;
        let tried = candidates(explicit);
        for cand in &tried {
            // SAFETY: loading a shared library runs its initialisers; the AXCL
            // runtime (or our simulator) is a plain C library meant to be loaded.
            match unsafe { libloading::Library::new(cand) } {
                Ok(lib) => {
                    // SAFETY: the same library again: the loader only bumps its refcount.
                    let sim = unsafe { libloading::Library::new(cand) }.ok().and_then(SimHooks::probe);
                    // SAFETY: as above.
                    let opt = unsafe { libloading::Library::new(cand) }.map_err(|e| Error::RuntimeUnavailable {
                        library: cand.display().to_string(),
                        reason: "cannot open it a second time".into(),
                        source: Some(e.into()),
                    })?;
                    let rt = Self::from_library(lib, opt, sim, cand.clone())?;
                    let rt = Arc::new(rt);
                    *live = Arc::downgrade(&rt);
                    return Ok(rt);
                }
                Err(e) => {
                    failures.push(format!("{}: {e}", cand.display()));
                    last = Some(e);
                }
            }
        }
        let names: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        // One candidate: its loader error is the cause. Several: each one's is in the reason.
        let (reason, source) = match (failures.len(), last) {
            (1, Some(e)) => ("cannot load it".to_string(), Some(e.into())),
            _ => (format!("cannot load it ({})", failures.join("; ")), None),
        };
        Err(Error::RuntimeUnavailable {
            library: names.join(", "),
            reason: format!("{reason}; install the AXCL runtime or pass the library's path"),
            source,
        })
    }

    fn from_library(lib: libloading::Library, opt: libloading::Library, sim: Option<SimHooks>, path: PathBuf) -> Result<Runtime> {
        // SAFETY: `from_library` resolves every symbol declared in our header and
        // fails if one is missing; the types come from the same header.
        let api = unsafe { AxclRt::from_library(lib) }.map_err(|e| Error::RuntimeUnavailable {
            library: path.display().to_string(),
            reason: "it lacks a symbol of the AXCL runtime".into(),
            source: Some(e.into()),
        })?;
        // SAFETY: resolves each optional symbol with the type our header
        // declares; a missing one is an `Err` field, never called.
        let opt = unsafe { AxclRtOpt::from_library(opt) }.map_err(|e| Error::RuntimeUnavailable {
            library: path.display().to_string(),
            reason: "cannot read its symbols".into(),
            source: Some(e.into()),
        })?;
        let rt = Runtime { api, opt, sim, path, devices: Mutex::new(HashMap::new()) };
        // SAFETY: NULL config is documented as "use defaults".
        let status = unsafe { (rt.api.axclInit)(std::ptr::null()) };
        rt.check("axclInit", status).map_err(|e| Error::RuntimeUnavailable {
            library: rt.path.display().to_string(),
            reason: "axclInit failed".into(),
            source: Some(e.into()),
        })?;
        Ok(rt)
    }

    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The simulator's extra controls, when the runtime is axcl-sim.
    pub fn simulator(&self) -> Option<&SimHooks> {
        self.sim.as_ref()
    }

    /// Turns a status into a result, adding the simulator's explanation when there is one.
    pub(super) fn check(&self, call: &'static str, status: rt::axclError) -> Result<()> {
        check(self.sim.as_ref(), call, status)
    }

    /// Whether the runtime has the optional function `name` (for diagnostics and
    /// the conformance kit).
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn has(&self, name: &str) -> bool {
        let o = &self.opt;
        match name {
            "axclrtGetSocName" => o.axclrtGetSocName.is_ok(),
            "axclrtGetVersion" => o.axclrtGetVersion.is_ok(),
            "axclrtGetDefaultContext" => o.axclrtGetDefaultContext.is_ok(),
            "axclrtGetDeviceProperties" => o.axclrtGetDeviceProperties.is_ok(),
            "axclrtMallocHost" => o.axclrtMallocHost.is_ok() && o.axclrtFreeHost.is_ok(),
            "axclrtFreeHost" => o.axclrtFreeHost.is_ok(),
            "axclrtEngineGetUsage" => o.axclrtEngineGetUsage.is_ok(),
            "axclrtEngineGetVNpuKind" => o.axclrtEngineGetVNpuKind.is_ok(),
            "axclrtEngineGetModelCompilerVersion" => o.axclrtEngineGetModelCompilerVersion.is_ok(),
            "axclrtEngineGetInputBufferByIndex" => o.axclrtEngineGetInputBufferByIndex.is_ok(),
            "axclrtEngineGetOutputBufferByIndex" => o.axclrtEngineGetOutputBufferByIndex.is_ok(),
            "axclrtEngineGetInputDataLayout" => o.axclrtEngineGetInputDataLayout.is_ok(),
            "axclrtEngineGetOutputDataLayout" => o.axclrtEngineGetOutputDataLayout.is_ok(),
            "axclrtMallocCached" => o.axclrtMallocCached.is_ok(),
            "axclrtMemFlush" => o.axclrtMemFlush.is_ok(),
            "axclrtMemInvalidate" => o.axclrtMemInvalidate.is_ok(),
            _ => false,
        }
    }

    /// The runtime's version (`axclrtGetVersion`), when it has the call.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn version(&self) -> Option<(i32, i32, i32)> {
        let f = self.opt.axclrtGetVersion.as_ref().ok()?;
        let (mut a, mut b, mut c) = (0, 0, 0);
        // SAFETY: three valid out-parameters.
        let status = unsafe { f(&mut a, &mut b, &mut c) };
        (status == rt::AXCL_SUCC as rt::axclError).then_some((a, b, c))
    }

    /// The SoC name (`axclrtGetSocName`), when the runtime has the call.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn soc_name(&self) -> Option<String> {
        let f = self.opt.axclrtGetSocName.as_ref().ok()?;
        // SAFETY: no arguments; the result is NULL or a static NUL-terminated string.
        let p = unsafe { f() };
        // SAFETY: non-NULL and NUL-terminated (documented).
        (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    /// The runtime's device ids, in list order (indices are what users pass).
    pub fn device_ids(&self) -> Result<Vec<i32>> {
        let mut list = rt::axclrtDeviceList::default();
        // SAFETY: `list` is a valid out-parameter of the declared type.
        let status = unsafe { (self.api.axclrtGetDeviceList)(&mut list) };
        self.check("axclrtGetDeviceList", status)?;
        let n = (list.num as usize).min(list.devices.len());
        Ok(list.devices[..n].to_vec())
    }

    /// Opens (or shares) the device at `index` in the device list: selects it,
    /// creates our explicit context and initialises its NPU engine.
    pub fn device(self: &Arc<Self>, index: usize) -> Result<Arc<Device>> {
        let mut devices = self.devices.lock();
        if let Some(d) = devices.get(&index).and_then(Weak::upgrade) {
            return Ok(d);
        }
        let ids = self.device_ids()?;
        let id = *ids.get(index).ok_or_else(|| {
            Error::invalid(format!("device index {index} is out of range: the runtime lists {} device(s)", ids.len()))
        })?;
        // SAFETY: plain value arguments.
        self.check("axclrtSetDevice", unsafe { (self.api.axclrtSetDevice)(id) })?;
        let mut ctx: rt::axclrtContext = std::ptr::null_mut();
        // SAFETY: `ctx` is a valid out-parameter.
        let status = unsafe { (self.api.axclrtCreateContext)(&mut ctx, id) };
        if let Err(e) = self.check("axclrtCreateContext", status) {
            // SAFETY: undoes the SetDevice above.
            unsafe { (self.api.axclrtResetDevice)(id) };
            return Err(e);
        }
        let dev = Arc::new(Device { rt: Arc::clone(self), id, ctx: CtxPtr(ctx) });
        // SAFETY: our context is current on this thread (CreateContext made it so).
        let status = unsafe { (self.api.axclrtEngineInit)(rt::AXCL_VNPU_DISABLE as i32) };
        self.check("axclrtEngineInit", status)?; // on error `dev` drops and resets the device
        devices.insert(index, Arc::downgrade(&dev));
        Ok(dev)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // SAFETY: every device, buffer and model holds an Arc to us, so nothing
        // uses the runtime any more.
        unsafe { (self.api.axclFinalize)() };
    }
}

/// A raw context handle; only ever used through the runtime.
#[derive(Debug)]
struct CtxPtr(rt::axclrtContext);
// SAFETY: an AXCL context is a process-wide handle that any thread may make
// current (documented threading model); we never dereference it.
unsafe impl Send for CtxPtr {}
// SAFETY: as above; the runtime serialises its own use of the handle.
unsafe impl Sync for CtxPtr {}

/// One card, selected and with our own context. Dropping the last handle
/// finalises its engine and resets the device (freeing anything left on it).
#[derive(Debug)]
pub struct Device {
    pub(super) rt: Arc<Runtime>,
    id: i32,
    ctx: CtxPtr,
}

impl Device {
    /// The device's id as the runtime reports it (for example 129).
    pub fn id(&self) -> i32 {
        self.id
    }
    /// Makes our context current on the calling thread. Every operation on the
    /// device takes the returned token, which cannot leave this thread.
    pub fn enter(self: &Arc<Self>) -> Result<Entered<'_>> {
        self.make_current()?;
        Ok(Entered { dev: self, _thread_bound: PhantomData })
    }

    /// Total and free CMM of the card in bytes (`axclrtGetDeviceProperties`,
    /// which reports KB); `None` when the runtime lacks the call
    /// (hardware-facts: F10).
    pub fn cmm(&self) -> Result<Option<(u64, u64)>> {
        let Ok(f) = self.rt.opt.axclrtGetDeviceProperties.as_ref() else { return Ok(None) };
        let mut p = rt::axclrtDeviceProperties::default();
        // SAFETY: `p` is a valid out-parameter of the declared type.
        let status = unsafe { f(self.id, &mut p) };
        self.rt.check("axclrtGetDeviceProperties", status)?;
        Ok(Some((u64::from(p.totalCmmSize) << 10, u64::from(p.freeCmmSize) << 10)))
    }

    pub(super) fn make_current(&self) -> Result<()> {
        // SAFETY: `ctx` was created by this runtime and is destroyed only in Drop.
        let status = unsafe { (self.rt.api.axclrtSetCurrentContext)(self.ctx.0) };
        self.rt.check("axclrtSetCurrentContext", status)
    }

    pub(super) fn check(&self, call: &'static str, status: rt::axclError) -> Result<()> {
        self.rt.check(call, status)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let api = &self.rt.api;
        // SAFETY: nothing else uses the device now (every user holds an Arc to
        // it); the calls release what `Runtime::device` set up, in reverse order.
        unsafe {
            (api.axclrtSetCurrentContext)(self.ctx.0);
            (api.axclrtEngineFinalize)();
            (api.axclrtDestroyContext)(self.ctx.0);
            (api.axclrtResetDevice)(self.id);
        }
    }
}

/// Proof that the device's context is current on this thread. Not `Send`.
#[derive(Debug)]
pub struct Entered<'d> {
    pub(super) dev: &'d Arc<Device>,
    _thread_bound: PhantomData<*const ()>,
}

/// A C string for a path, with a clear error for interior NULs.
pub(super) fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::invalid(format!("path {} contains a NUL byte", path.display())))
}
