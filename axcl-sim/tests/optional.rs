//! The optional functions of `axcl_rt.h` (after its marker) as the simulator
//! exports them, called through the generated `AxclRtOpt` loader the way a
//! runner calls them: identification, CMM accounting of loaded weights,
//! `axclrtEngineGetUsage`, binding read-back (a buffer larger than the tensor
//! kept as given), layouts, cached memory, pinned host memory in copies.
//! One test: the runtime is per process.
#![allow(unsafe_code, clippy::undocumented_unsafe_blocks)]

use axcl_sys::rt::{self, AxclRt, axclrtDeviceList, axclrtDeviceProperties};
use axcl_sys::rt_opt::AxclRtOpt;
use axcl_sys::sim::{AxclSim, axclSimCounters};
use std::ffi::{CStr, CString, c_void};

const OK: i32 = 0;

#[test]
fn optional_functions_behave_as_documented() {
    let path = axllm_testkit::sim_library();
    let open = || unsafe { libloading::Library::new(&path) }.unwrap();
    let api = unsafe { AxclRt::from_library(open()) }.unwrap();
    let opt = unsafe { AxclRtOpt::from_library(open()) }.unwrap();
    let sim = unsafe { AxclSim::from_library(open()) }.unwrap();
    let counters = || {
        let mut c = axclSimCounters::default();
        assert_eq!(unsafe { (sim.axclSimGetCounters)(&mut c) }, OK);
        c
    };
    unsafe {
        // An empty (zero-length) config string means defaults.
        assert_eq!((api.axclInit)(c"".as_ptr()), OK);
        assert_eq!((sim.axclSimConfigure)(c"reset;mem_mb=64".as_ptr()), OK);
        let mut list = axclrtDeviceList::default();
        assert_eq!((api.axclrtGetDeviceList)(&mut list), OK);
        let dev = list.devices[0];
        assert_eq!((list.num, dev), (1, 129));
        let mut ctx: rt::axclrtContext = std::ptr::null_mut();
        assert_ne!(opt.axclrtGetDefaultContext.as_ref().unwrap()(&mut ctx, dev), OK, "no default context before SetDevice");
        assert_eq!((api.axclrtSetDevice)(dev), OK);
        assert_eq!(opt.axclrtGetDefaultContext.as_ref().unwrap()(&mut ctx, dev), OK);
        let mut cur: rt::axclrtContext = std::ptr::null_mut();
        assert_eq!((api.axclrtGetCurrentContext)(&mut cur), OK);
        assert_eq!(ctx, cur, "SetDevice binds the default context");
        let mut ctx2: rt::axclrtContext = std::ptr::null_mut();
        assert_ne!(opt.axclrtGetDefaultContext.as_ref().unwrap()(&mut ctx2, 0), OK, "id 0 is not a device");
        assert_eq!((api.axclrtEngineInit)(rt::AXCL_VNPU_DISABLE as i32), OK);
        let mut kind = -1;
        assert_eq!(opt.axclrtEngineGetVNpuKind.as_ref().unwrap()(&mut kind), OK);
        assert_eq!(kind, rt::AXCL_VNPU_DISABLE as i32);
        assert_eq!(CStr::from_ptr(opt.axclrtGetSocName.as_ref().unwrap()()).to_str().unwrap(), "AX650N");

        let props = || {
            let mut p = axclrtDeviceProperties::default();
            assert_eq!(opt.axclrtGetDeviceProperties.as_ref().unwrap()(dev, &mut p), OK);
            p
        };
        let p0 = props();
        assert_eq!((p0.totalCmmSize, p0.freeCmmSize), (64 << 10, 64 << 10));
        assert_eq!(p0.pciBusID, 129, "the id is derived from the bus");

        // Usage from the file, then the same bytes gone from free CMM once loaded.
        let dir = axllm_testkit::tempdir();
        let layer = dir.path().join("l0.axmodel");
        axllm_testkit::models::tiny_layer(&layer);
        let len = std::fs::metadata(&layer).unwrap().len() as i64;
        let c_layer = CString::new(layer.to_str().unwrap()).unwrap();
        let (mut sys, mut cmm) = (-1i64, -1i64);
        assert_eq!(opt.axclrtEngineGetUsage.as_ref().unwrap()(c_layer.as_ptr(), &mut sys, &mut cmm), OK);
        assert!(cmm >= len && cmm < len + 128 && sys == 0, "usage {cmm} for {len} bytes");
        assert_ne!(opt.axclrtEngineGetUsage.as_ref().unwrap()(c"/nonexistent.axmodel".as_ptr(), &mut sys, &mut cmm), OK);
        assert_eq!(counters().load_calls, 0, "GetUsage loads nothing");
        let mut model = 0u64;
        assert_eq!((api.axclrtEngineLoadFromFile)(c_layer.as_ptr(), &mut model), OK);
        assert_eq!(props().freeCmmSize as i64, ((64 << 20) - cmm) >> 10, "loaded weights occupy CMM");
        let version = opt.axclrtEngineGetModelCompilerVersion.as_ref().unwrap()(model);
        assert!(!version.is_null());
        assert!(opt.axclrtEngineGetModelCompilerVersion.as_ref().unwrap()(model + 1000).is_null());

        // Layouts, and a binding larger than the tensor read back as given.
        let mut info: rt::axclrtEngineIOInfo = std::ptr::null_mut();
        assert_eq!((api.axclrtEngineGetIOInfo)(model, &mut info), OK);
        let mut layout = -1;
        assert_eq!(opt.axclrtEngineGetInputDataLayout.as_ref().unwrap()(info, 0, &mut layout), OK);
        assert_eq!(layout, rt::AXCL_DATA_LAYOUT_NONE as i32);
        assert_eq!(opt.axclrtEngineGetOutputDataLayout.as_ref().unwrap()(info, 0, &mut layout), OK);
        assert_ne!(opt.axclrtEngineGetInputDataLayout.as_ref().unwrap()(info, 999, &mut layout), OK);
        let mut io: rt::axclrtEngineIO = std::ptr::null_mut();
        assert_eq!((api.axclrtEngineCreateIO)(info, &mut io), OK);
        let size0 = (api.axclrtEngineGetInputSizeByIndex)(info, 0, 0);
        let mut buf: *mut c_void = std::ptr::null_mut();
        assert_eq!((api.axclrtMalloc)(&mut buf, (size0 * 2) as usize, 0), OK);
        assert_eq!((api.axclrtEngineSetInputBufferByIndex)(io, 0, buf, size0 * 2), OK);
        let (mut got, mut got_size): (*mut c_void, u64) = (std::ptr::null_mut(), 0);
        assert_eq!(opt.axclrtEngineGetInputBufferByIndex.as_ref().unwrap()(io, 0, &mut got, &mut got_size), OK);
        assert_eq!((got, got_size), (buf, size0 * 2));
        assert_eq!(opt.axclrtEngineGetOutputBufferByIndex.as_ref().unwrap()(io, 0, &mut got, &mut got_size), OK);
        assert_eq!((got, got_size), (std::ptr::null_mut(), 0), "unbound");
        assert_ne!(opt.axclrtEngineGetOutputBufferByIndex.as_ref().unwrap()(io, 999, &mut got, &mut got_size), OK);

        // Cached memory: flush/invalidate inside the allocation only.
        let mut cached: *mut c_void = std::ptr::null_mut();
        assert_eq!(opt.axclrtMallocCached.as_ref().unwrap()(&mut cached, 4096, 0), OK);
        assert_eq!(opt.axclrtMemFlush.as_ref().unwrap()(cached, 4096), OK);
        assert_eq!(opt.axclrtMemInvalidate.as_ref().unwrap()(cached, 4096), OK);
        assert_ne!(opt.axclrtMemFlush.as_ref().unwrap()(cached, 4097), OK, "past the end");

        // Pinned host memory: recognised as the host side of a copy, bounds-checked.
        let mut host: *mut c_void = std::ptr::null_mut();
        assert_eq!(opt.axclrtMallocHost.as_ref().unwrap()(&mut host, 4096), OK);
        let before = counters().pinned_copies;
        assert_eq!((api.axclrtMemcpy)(cached, host, 4096, rt::AXCL_MEMCPY_HOST_TO_DEVICE as i32), OK);
        assert_eq!((api.axclrtMemcpy)(host.cast::<u8>().add(96).cast(), cached, 4000, rt::AXCL_MEMCPY_DEVICE_TO_HOST as i32), OK);
        assert_eq!(counters().pinned_copies, before + 2);
        assert_ne!(
            (api.axclrtMemcpy)(host.cast::<u8>().add(128).cast(), cached, 4000, rt::AXCL_MEMCPY_DEVICE_TO_HOST as i32),
            OK,
            "a copy that runs past the pinned block is refused"
        );
        let pageable = [0u8; 64];
        assert_eq!((api.axclrtMemcpy)(cached, pageable.as_ptr().cast(), 64, rt::AXCL_MEMCPY_HOST_TO_DEVICE as i32), OK);
        assert_eq!(counters().pinned_copies, before + 2, "heap memory is pageable, and accepted");
        assert_eq!(counters().live_host_blocks, 1);
        assert_eq!(opt.axclrtFreeHost.as_ref().unwrap()(host), OK);
        assert_ne!(opt.axclrtFreeHost.as_ref().unwrap()(host), OK, "double free");
        assert_eq!(counters().live_host_blocks, 0);

        // CMM exhausted by weights: a load that does not fit fails with NO_MEMORY.
        assert_eq!((sim.axclSimConfigure)(c"mem_mb=1".as_ptr()), OK);
        let free = i64::from(props().freeCmmSize) << 10;
        let mut filler: *mut c_void = std::ptr::null_mut();
        assert_eq!((api.axclrtMalloc)(&mut filler, (free - cmm / 2) as usize, 0), OK);
        let mut second = 0u64;
        let status = (api.axclrtEngineLoadFromFile)(c_layer.as_ptr(), &mut second);
        let parts = axcl_sys::axcl_err_parts(status);
        assert_eq!(parts.map(|p| p.2), Some(rt::AXCL_ERR_NO_MEMORY), "status {status:#x}");

        assert_eq!((api.axclrtEngineDestroyIO)(io), OK);
        assert_eq!((api.axclrtEngineDestroyIOInfo)(info), OK);
        assert_eq!((api.axclrtEngineUnload)(model), OK);
        assert_eq!((api.axclrtResetDevice)(dev), OK);
        assert_eq!((sim.axclSimConfigure)(c"reset;mem_mb=7040".as_ptr()), OK);
        assert_eq!((api.axclFinalize)(), OK);
    }
}
