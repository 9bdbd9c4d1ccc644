//! Test harness for the simulator loaded the way a user loads it: the cdylib
//! (`target/<profile>/libaxcl_sim.so`) opened through `axcl_sys`'s loaders, which
//! also proves that every symbol of the headers is exported.
//!
//! All tests of a binary share the one loaded runtime, so a [`Sim`] holds a
//! process-wide lock and starts from a clean, finalised runtime. The wrappers
//! below are the test crate's only `unsafe`; they return the raw status codes.

use axcl_sys::rt::{AxclRt, axclrtDeviceList, axclrtEngineIODims};
use axcl_sys::sim::{AxclSim, axclSimCounters};
pub use axllm_testkit::models::*;
use parking_lot::{Mutex, MutexGuard};
use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The id of the simulated card.
pub const DEVICE: i32 = 129;
/// The masked value of the mask inputs (0xC780).
pub const MASKED: f32 = -65536.0;

struct Lib {
    rt: AxclRt,
    sim: AxclSim,
}

fn lib() -> &'static Lib {
    static LIB: OnceLock<Lib> = OnceLock::new();
    LIB.get_or_init(|| {
        let path = axllm_testkit::sim_library();
        // SAFETY: loading our own cdylib runs no foreign initialisers; `new` checks
        // every symbol of the header exists and has the bindgen signature's name.
        unsafe {
            Lib {
                rt: AxclRt::new(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display())),
                sim: AxclSim::new(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display())),
            }
        }
    })
}

fn ptr(value: u64) -> *mut c_void {
    std::ptr::without_provenance_mut(value as usize)
}

/// A test's temporary directory.
pub struct Dir(pub axllm_testkit::TempDir);

impl Dir {
    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// One test's exclusive use of the simulator.
pub struct Sim {
    _serial: MutexGuard<'static, ()>,
    pub dir: Dir,
}

impl Sim {
    /// Exclusive, finalised simulator with default configuration and zeroed counters.
    pub fn bare() -> Self {
        static SERIAL: Mutex<()> = Mutex::new(());
        let sim = Self { _serial: SERIAL.lock(), dir: Dir(axllm_testkit::tempdir()) };
        let _ = sim.finalize();
        sim.ok(sim.configure("reset;mem_mb=7040"));
        sim.ok(sim.reset_counters());
        sim
    }

    /// [`Sim::bare`], then `axclInit`, `axclrtSetDevice(129)`, `axclrtEngineInit`.
    pub fn start() -> Self {
        let sim = Self::bare();
        sim.ok(sim.init());
        sim.ok(sim.set_device(DEVICE));
        sim.ok(sim.engine_init(0));
        sim
    }

    /// Asserts success, showing the last error message otherwise.
    #[track_caller]
    pub fn ok(&self, code: i32) {
        assert_eq!(code, 0, "call failed with 0x{:08x}: {}", code as u32, self.last_error());
    }

    /// Asserts a failure with `want` whose last error message contains every part of `parts`.
    #[track_caller]
    pub fn fails(&self, code: i32, want: u32, parts: &[&str]) {
        let message = self.last_error();
        assert_eq!(code as u32, want, "expected 0x{want:08x}, got 0x{:08x} ({message})", code as u32);
        for part in parts {
            assert!(message.contains(part), "message {message:?} does not mention {part:?}");
        }
    }

    fn rt(&self) -> &'static AxclRt {
        &lib().rt
    }

    fn sim(&self) -> &'static AxclSim {
        &lib().sim
    }

    // ---- simulator extras ------------------------------------------------

    pub fn last_error(&self) -> String {
        // SAFETY: the simulator returns a NUL-terminated thread-local string, never NULL.
        unsafe { CStr::from_ptr(self.sim().axclSimLastErrorMessage()) }.to_string_lossy().into_owned()
    }

    pub fn version(&self) -> String {
        // SAFETY: a static NUL-terminated string.
        unsafe { CStr::from_ptr(self.sim().axclSimVersion()) }.to_string_lossy().into_owned()
    }

    pub fn configure(&self, spec: &str) -> i32 {
        let spec = CString::new(spec).expect("no NUL");
        // SAFETY: a valid C string for the duration of the call.
        unsafe { self.sim().axclSimConfigure(spec.as_ptr()) }
    }

    pub fn counters(&self) -> axclSimCounters {
        let mut c = axclSimCounters::default();
        // SAFETY: `c` is a valid out-parameter.
        self.ok(unsafe { self.sim().axclSimGetCounters(&mut c) });
        c
    }

    pub fn reset_counters(&self) -> i32 {
        // SAFETY: no arguments.
        unsafe { self.sim().axclSimResetCounters() }
    }

    // ---- init, devices, contexts -------------------------------------------

    pub fn init(&self) -> i32 {
        // SAFETY: NULL config is allowed.
        unsafe { self.rt().axclInit(std::ptr::null()) }
    }

    pub fn finalize(&self) -> i32 {
        // SAFETY: no arguments.
        unsafe { self.rt().axclFinalize() }
    }

    pub fn device_count(&self) -> (i32, u32) {
        let mut n = 0;
        // SAFETY: valid out-parameter.
        (unsafe { self.rt().axclrtGetDeviceCount(&mut n) }, n)
    }

    pub fn device_count_to_null(&self) -> i32 {
        // SAFETY: NULL is checked by the runtime.
        unsafe { self.rt().axclrtGetDeviceCount(std::ptr::null_mut()) }
    }

    pub fn device_list(&self) -> (i32, axclrtDeviceList) {
        let mut list = axclrtDeviceList::default();
        // SAFETY: valid out-parameter.
        (unsafe { self.rt().axclrtGetDeviceList(&mut list) }, list)
    }

    pub fn set_device(&self, id: i32) -> i32 {
        // SAFETY: no pointer arguments.
        unsafe { self.rt().axclrtSetDevice(id) }
    }

    pub fn reset_device(&self, id: i32) -> i32 {
        // SAFETY: no pointer arguments.
        unsafe { self.rt().axclrtResetDevice(id) }
    }

    pub fn device(&self) -> (i32, i32) {
        let mut id = 0;
        // SAFETY: valid out-parameter.
        (unsafe { self.rt().axclrtGetDevice(&mut id) }, id)
    }

    pub fn create_context(&self, id: i32) -> (i32, u64) {
        let mut ctx = std::ptr::null_mut();
        // SAFETY: valid out-parameter.
        (unsafe { self.rt().axclrtCreateContext(&mut ctx, id) }, ctx.addr() as u64)
    }

    pub fn destroy_context(&self, ctx: u64) -> i32 {
        // SAFETY: handles are opaque to the runtime, never dereferenced.
        unsafe { self.rt().axclrtDestroyContext(ptr(ctx)) }
    }

    pub fn set_current_context(&self, ctx: u64) -> i32 {
        // SAFETY: handles are opaque to the runtime, never dereferenced.
        unsafe { self.rt().axclrtSetCurrentContext(ptr(ctx)) }
    }

    pub fn current_context(&self) -> (i32, u64) {
        let mut ctx = ptr(0xdead);
        // SAFETY: valid out-parameter.
        (unsafe { self.rt().axclrtGetCurrentContext(&mut ctx) }, ctx.addr() as u64)
    }

    // ---- memory ------------------------------------------------------------

    pub fn malloc(&self, size: usize) -> (i32, u64) {
        self.malloc_policy(size, 0)
    }

    pub fn malloc_policy(&self, size: usize, policy: i32) -> (i32, u64) {
        let mut p = std::ptr::null_mut();
        // SAFETY: valid out-parameter.
        (unsafe { self.rt().axclrtMalloc(&mut p, size, policy) }, p.addr() as u64)
    }

    pub fn malloc_to_null(&self) -> i32 {
        // SAFETY: NULL is checked by the runtime.
        unsafe { self.rt().axclrtMalloc(std::ptr::null_mut(), 64, 0) }
    }

    /// A successful allocation.
    #[track_caller]
    pub fn alloc(&self, size: usize) -> u64 {
        let (code, addr) = self.malloc(size);
        self.ok(code);
        addr
    }

    pub fn free(&self, addr: u64) -> i32 {
        // SAFETY: device addresses are never dereferenced on the host.
        unsafe { self.rt().axclrtFree(ptr(addr)) }
    }

    pub fn memset(&self, addr: u64, value: u8, count: usize) -> i32 {
        // SAFETY: device addresses are never dereferenced on the host.
        unsafe { self.rt().axclrtMemset(ptr(addr), value, count) }
    }

    pub fn h2d(&self, dst: u64, src: &[u8]) -> i32 {
        // SAFETY: `src` is a live host buffer of `src.len()` bytes; `dst` is a device address.
        unsafe { self.rt().axclrtMemcpy(ptr(dst), src.as_ptr().cast(), src.len(), 1) }
    }

    pub fn d2h(&self, dst: &mut [u8], src: u64) -> i32 {
        // SAFETY: `dst` is a live, exclusive host buffer of `dst.len()` bytes.
        unsafe { self.rt().axclrtMemcpy(dst.as_mut_ptr().cast(), ptr(src), dst.len(), 2) }
    }

    /// Reads device memory that must be readable.
    #[track_caller]
    pub fn read(&self, src: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.ok(self.d2h(&mut out, src));
        out
    }

    pub fn h2h(&self, dst: &mut [u8], src: &[u8]) -> i32 {
        assert_eq!(dst.len(), src.len());
        // SAFETY: two live host buffers of `src.len()` bytes, the destination exclusive.
        unsafe { self.rt().axclrtMemcpy(dst.as_mut_ptr().cast(), src.as_ptr().cast(), src.len(), 0) }
    }

    pub fn d2d(&self, dst: u64, src: u64, count: usize) -> i32 {
        // SAFETY: both are device addresses, never dereferenced on the host.
        unsafe { self.rt().axclrtMemcpy(ptr(dst), ptr(src), count, 3) }
    }

    /// `axclrtMemcpy` with integer pointers; only for pointers the runtime must
    /// refuse before touching them (device addresses, bad kinds).
    pub fn memcpy_raw(&self, dst: u64, src: u64, count: usize, kind: i32) -> i32 {
        // SAFETY: the caller passes only arguments the runtime refuses without dereferencing.
        unsafe { self.rt().axclrtMemcpy(ptr(dst), ptr(src), count, kind) }
    }

    // ---- engine --------------------------------------------------------------

    pub fn engine_init(&self, kind: i32) -> i32 {
        // SAFETY: no pointer arguments.
        unsafe { self.rt().axclrtEngineInit(kind) }
    }

    pub fn engine_finalize(&self) -> i32 {
        // SAFETY: no arguments.
        unsafe { self.rt().axclrtEngineFinalize() }
    }

    pub fn load_file(&self, path: &Path) -> (i32, u64) {
        let path = CString::new(path.to_str().expect("UTF-8 path")).expect("no NUL");
        let mut id = 0;
        // SAFETY: valid C string and out-parameter.
        (unsafe { self.rt().axclrtEngineLoadFromFile(path.as_ptr(), &mut id) }, id)
    }

    /// A model that must load.
    #[track_caller]
    pub fn load(&self, path: &Path) -> u64 {
        let (code, id) = self.load_file(path);
        self.ok(code);
        id
    }

    pub fn load_mem(&self, addr: u64, size: u64) -> (i32, u64) {
        let mut id = 0;
        // SAFETY: `addr` is never dereferenced on the host; valid out-parameter.
        (unsafe { self.rt().axclrtEngineLoadFromMem(ptr(addr), size, &mut id) }, id)
    }

    /// `axclrtEngineLoadFromMem` given host memory (which it must refuse without reading).
    pub fn load_host_mem(&self, bytes: &[u8]) -> i32 {
        let mut id = 0;
        // SAFETY: a live host buffer; the runtime only looks its address up.
        unsafe { self.rt().axclrtEngineLoadFromMem(bytes.as_ptr().cast(), bytes.len() as u64, &mut id) }
    }

    pub fn unload(&self, model: u64) -> i32 {
        // SAFETY: no pointer arguments.
        unsafe { self.rt().axclrtEngineUnload(model) }
    }

    pub fn engine_context(&self, model: u64) -> (i32, u64) {
        let mut ctx = 0;
        // SAFETY: valid out-parameter.
        (unsafe { self.rt().axclrtEngineCreateContext(model, &mut ctx) }, ctx)
    }

    pub fn io_info(&self, model: u64) -> (i32, u64) {
        let mut info = std::ptr::null_mut();
        // SAFETY: valid out-parameter.
        (unsafe { self.rt().axclrtEngineGetIOInfo(model, &mut info) }, info.addr() as u64)
    }

    pub fn destroy_io_info(&self, info: u64) -> i32 {
        // SAFETY: handles are opaque to the runtime.
        unsafe { self.rt().axclrtEngineDestroyIOInfo(ptr(info)) }
    }

    pub fn group_count(&self, info: u64) -> (i32, i32) {
        let mut n = -1;
        // SAFETY: valid out-parameter; opaque handle.
        (unsafe { self.rt().axclrtEngineGetShapeGroupsCount(ptr(info), &mut n) }, n)
    }

    pub fn num_inputs(&self, info: u64) -> u32 {
        // SAFETY: opaque handle.
        unsafe { self.rt().axclrtEngineGetNumInputs(ptr(info)) }
    }

    pub fn num_outputs(&self, info: u64) -> u32 {
        // SAFETY: opaque handle.
        unsafe { self.rt().axclrtEngineGetNumOutputs(ptr(info)) }
    }

    pub fn size(&self, info: u64, input: bool, group: u32, index: u32) -> u64 {
        // SAFETY: opaque handle.
        unsafe {
            if input {
                self.rt().axclrtEngineGetInputSizeByIndex(ptr(info), group, index)
            } else {
                self.rt().axclrtEngineGetOutputSizeByIndex(ptr(info), group, index)
            }
        }
    }

    pub fn name(&self, info: u64, input: bool, index: u32) -> Option<String> {
        // SAFETY: opaque handle; a non-NULL result is a NUL-terminated string owned by the info.
        unsafe {
            let p = if input {
                self.rt().axclrtEngineGetInputNameByIndex(ptr(info), index)
            } else {
                self.rt().axclrtEngineGetOutputNameByIndex(ptr(info), index)
            };
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    }

    pub fn index(&self, info: u64, input: bool, name: &str) -> i32 {
        let name = CString::new(name).expect("no NUL");
        // SAFETY: opaque handle and a valid C string.
        unsafe {
            if input {
                self.rt().axclrtEngineGetInputIndexByName(ptr(info), name.as_ptr())
            } else {
                self.rt().axclrtEngineGetOutputIndexByName(ptr(info), name.as_ptr())
            }
        }
    }

    pub fn dims(&self, info: u64, input: bool, group: u32, index: u32) -> (i32, Vec<i32>) {
        let mut d = axclrtEngineIODims::default();
        // SAFETY: opaque handle and a valid out-parameter.
        let code = unsafe {
            if input {
                self.rt().axclrtEngineGetInputDims(ptr(info), group, index, &mut d)
            } else {
                self.rt().axclrtEngineGetOutputDims(ptr(info), group, index, &mut d)
            }
        };
        (code, d.dims[..d.dimCount.clamp(0, 32) as usize].to_vec())
    }

    pub fn dtype(&self, info: u64, input: bool, index: u32) -> (i32, i32) {
        let mut t = -1;
        // SAFETY: opaque handle and a valid out-parameter.
        let code = unsafe {
            if input {
                self.rt().axclrtEngineGetInputDataType(ptr(info), index, &mut t)
            } else {
                self.rt().axclrtEngineGetOutputDataType(ptr(info), index, &mut t)
            }
        };
        (code, t)
    }

    pub fn create_io(&self, info: u64) -> (i32, u64) {
        let mut io = std::ptr::null_mut();
        // SAFETY: opaque handle and a valid out-parameter.
        (unsafe { self.rt().axclrtEngineCreateIO(ptr(info), &mut io) }, io.addr() as u64)
    }

    pub fn destroy_io(&self, io: u64) -> i32 {
        // SAFETY: opaque handle.
        unsafe { self.rt().axclrtEngineDestroyIO(ptr(io)) }
    }

    pub fn bind(&self, io: u64, input: bool, index: u32, addr: u64, size: u64) -> i32 {
        // SAFETY: opaque handle and a device address, neither dereferenced.
        unsafe {
            if input {
                self.rt().axclrtEngineSetInputBufferByIndex(ptr(io), index, ptr(addr), size)
            } else {
                self.rt().axclrtEngineSetOutputBufferByIndex(ptr(io), index, ptr(addr), size)
            }
        }
    }

    pub fn execute(&self, model: u64, ctx: u64, group: u32, io: u64) -> i32 {
        // SAFETY: opaque handle.
        unsafe { self.rt().axclrtEngineExecute(model, ctx, group, ptr(io)) }
    }

    // ---- streams ---------------------------------------------------------------

    pub fn create_stream(&self) -> (i32, u64) {
        let mut s: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid out-parameter.
        let code = unsafe { self.rt().axclrtCreateStream(&mut s) };
        (code, s.addr() as u64)
    }

    pub fn destroy_stream(&self, stream: u64) -> i32 {
        // SAFETY: opaque handle.
        unsafe { self.rt().axclrtDestroyStream(ptr(stream)) }
    }

    pub fn sync_stream(&self, stream: u64) -> i32 {
        // SAFETY: opaque handle.
        unsafe { self.rt().axclrtSynchronizeStream(ptr(stream)) }
    }

    pub fn d2d_async(&self, dst: u64, src: u64, count: usize, stream: u64) -> i32 {
        // SAFETY: device addresses and an opaque handle, never dereferenced on the host.
        unsafe { self.rt().axclrtMemcpyAsync(ptr(dst), ptr(src), count, 3, ptr(stream)) }
    }

    pub fn run_async(&self, b: &Bound, stream: u64) -> i32 {
        // SAFETY: opaque handles.
        unsafe { self.rt().axclrtEngineExecuteAsync(b.model, b.ctx, b.group, ptr(b.io), ptr(stream)) }
    }

    // ---- composite helpers ---------------------------------------------------

    /// Loads `path` and binds one fresh device buffer of the exact tensor size to
    /// every tensor of `group` (zeroed when `zero`, else left as fresh 0xFF bytes).
    #[track_caller]
    pub fn bound(&self, path: &Path, group: u32, zero: bool) -> Bound {
        let model = self.load(path);
        self.bound_model(model, group, zero)
    }

    /// Like [`Sim::bound`] for an already loaded model.
    #[track_caller]
    pub fn bound_model(&self, model: u64, group: u32, zero: bool) -> Bound {
        let (code, ctx) = self.engine_context(model);
        self.ok(code);
        let (code, info) = self.io_info(model);
        self.ok(code);
        let (code, io) = self.create_io(info);
        self.ok(code);
        let mut tensors = Vec::new();
        for input in [true, false] {
            let count = if input { self.num_inputs(info) } else { self.num_outputs(info) };
            for i in 0..count {
                let size = self.size(info, input, group, i);
                let addr = self.alloc(size as usize);
                if zero {
                    self.ok(self.memset(addr, 0, size as usize));
                }
                self.ok(self.bind(io, input, i, addr, size));
                tensors.push(Tensor { name: self.name(info, input, i).expect("name"), index: i, addr, size });
            }
        }
        Bound { model, ctx, info, io, group, tensors }
    }

    /// Writes `values` as bf16 into the named tensor.
    #[track_caller]
    pub fn put_bf16(&self, b: &Bound, name: &str, values: &[f32]) {
        self.ok(self.h2d(b.tensor(name).addr, &bf16_bytes(values)));
    }

    /// Reads the named tensor as f32 (from bf16).
    #[track_caller]
    pub fn get_bf16(&self, b: &Bound, name: &str) -> Vec<f32> {
        let t = b.tensor(name);
        from_bf16_bytes(&self.read(t.addr, t.size as usize))
    }

    /// Executes the bound group.
    pub fn run(&self, b: &Bound) -> i32 {
        self.execute(b.model, b.ctx, b.group, b.io)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.finalize();
        let _ = self.configure("reset;mem_mb=7040");
    }
}

/// One bound tensor.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub index: u32,
    pub addr: u64,
    pub size: u64,
}

/// A model with an engine context, IO info and one IO object bound for `group`.
#[derive(Debug)]
pub struct Bound {
    pub model: u64,
    pub ctx: u64,
    pub info: u64,
    pub io: u64,
    pub group: u32,
    pub tensors: Vec<Tensor>,
}

impl Bound {
    #[track_caller]
    pub fn tensor(&self, name: &str) -> &Tensor {
        self.tensors.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}"))
    }
}
