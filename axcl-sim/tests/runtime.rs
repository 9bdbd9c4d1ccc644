//! The simulator as a user sees it: the cdylib loaded at run time through the
//! `axcl-sys` loaders, every call checked for the documented code and message.
//!
//! Tests share the one loaded runtime; `support::Sim` serialises them and starts
//! each from a finalised runtime.

#[allow(unsafe_code)]
mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use support::*;

// Composed vendor codes (runtime module 0x30): 0x8030_<sub><id>.
const DEVICE_NULL: u32 = 0x8030_0102;
const ALREADY_INITIALIZED: u32 = 0x8030_0106;
const DEVICE_LOST: u32 = 0x8030_0105;
const INVALID_DEVICE: u32 = 0x8030_0184;
const NOT_INITIALIZED: u32 = 0x8030_0185;
const CONTEXT_NULL: u32 = 0x8030_0202;
const CONTEXT_DESTROY: u32 = 0x8030_0282;
const CONTEXT_BIND: u32 = 0x8030_0283;
const NO_BIND_CONTEXT: u32 = 0x8030_0284;
const MEMORY_NULL: u32 = 0x8030_0502;
const MEMORY_ILLEGAL: u32 = 0x8030_0503;
const MEMORY_UNSUPPORT: u32 = 0x8030_0504;
const NO_MEMORY: u32 = 0x8030_0507;
const MEMORY_EXECUTE_FAIL: u32 = 0x8030_050C;
const CONFIG_ILLEGAL: u32 = 0x8030_0603;
const ENGINE_FAIL: u32 = 0x8030_0701;
const ENGINE_NULL: u32 = 0x8030_0702;
const ENGINE_ILLEGAL: u32 = 0x8030_0703;
const ENGINE_UNSUPPORT: u32 = 0x8030_0704;
const ENGINE_BUSY: u32 = 0x8030_0706;
const ENGINE_OPEN: u32 = 0x8030_070B;
const ENGINE_EXECUTE_FAIL: u32 = 0x8030_070C;
const INVALID_INDEX: u32 = 0x8030_0781;

const BASE: u64 = 0x1_4800_0000;

fn layer_path(sim: &Sim) -> PathBuf {
    let path = sim.dir.path("layer.axmodel");
    tiny_layer(&path);
    path
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 0.02 * w.abs() + 2e-3, "element {i}: {g} vs {w}");
    }
}

/// A decode mask for slot `visible_past`: history `[0, s)` and the last column visible.
fn decode_mask(visible_past: usize) -> Vec<f32> {
    (0..=C).map(|j| if j < visible_past || j == C { 0.0 } else { MASKED }).collect()
}

// ---- lifecycle, devices, contexts -------------------------------------------

#[test]
fn exports_load_and_report_a_version() {
    let sim = Sim::bare();
    assert!(sim.version().starts_with("axcl-sim "), "{}", sim.version());
    let fresh = std::thread::scope(|s| s.spawn(|| sim.last_error()).join().unwrap());
    assert_eq!(fresh, "", "a thread without failures has an empty message");
}

#[test]
fn calls_before_init_fail() {
    let sim = Sim::bare();
    sim.fails(sim.malloc(64).0, NOT_INITIALIZED, &["axclrtMalloc", "axclInit"]);
    sim.fails(sim.device_count().0, NOT_INITIALIZED, &["axclrtGetDeviceCount"]);
    sim.fails(sim.set_device(DEVICE), NOT_INITIALIZED, &["not initialised"]);
    assert_eq!(sim.num_inputs(1), 0);
    assert!(sim.last_error().contains("axclrtEngineGetNumInputs"));
    sim.fails(sim.finalize(), NOT_INITIALIZED, &["axclFinalize"]);
    // The pure simulator calls work at any time.
    sim.ok(sim.configure("call_us=0"));
    sim.ok(sim.reset_counters());
    assert_eq!(sim.counters().calls, 0);
}

#[test]
fn init_twice_fails_and_init_after_finalize_works() {
    let sim = Sim::start();
    sim.fails(sim.init(), ALREADY_INITIALIZED, &["axclInit", "already initialised"]);
    sim.ok(sim.finalize());
    sim.fails(sim.malloc(64).0, NOT_INITIALIZED, &["axclInit"]);
    sim.ok(sim.init());
    sim.fails(sim.malloc(64).0, NO_BIND_CONTEXT, &["no current context"]);
    sim.ok(sim.set_device(DEVICE));
    sim.alloc(64);
}

#[test]
fn set_device_needs_a_listed_id() {
    let sim = Sim::start();
    let (code, list) = sim.device_list();
    sim.ok(code);
    assert_eq!((list.num, list.devices[0]), (1, DEVICE));
    assert_eq!(sim.device_count(), (0, 1));
    sim.fails(sim.set_device(0), INVALID_DEVICE, &["axclrtSetDevice", "device id 0", "[129]"]);
    sim.fails(sim.create_context(1).0, INVALID_DEVICE, &["device id 1"]);
    sim.fails(sim.reset_device(-1), INVALID_DEVICE, &["device id -1"]);
    assert_eq!(sim.device(), (0, DEVICE));
}

#[test]
fn a_thread_without_context_is_refused() {
    let sim = Sim::start();
    let (code, explicit) = sim.create_context(DEVICE);
    sim.ok(code);
    assert_eq!(sim.current_context(), (0, explicit));
    std::thread::scope(|s| {
        s.spawn(|| {
            sim.fails(sim.malloc(64).0, NO_BIND_CONTEXT, &["axclrtMalloc", "no current context"]);
            sim.fails(sim.memset(BASE, 0, 1), NO_BIND_CONTEXT, &["axclrtMemset"]);
            sim.fails(sim.engine_init(0), NO_BIND_CONTEXT, &["axclrtEngineInit"]);
            let (code, ctx) = sim.current_context();
            sim.fails(code, NO_BIND_CONTEXT, &["axclrtGetCurrentContext"]);
            assert_eq!(ctx, 0, "GetCurrentContext writes NULL when there is none");
            sim.ok(sim.set_current_context(explicit));
            sim.alloc(64);
        })
        .join()
        .unwrap();
        s.spawn(|| {
            sim.ok(sim.create_context(DEVICE).0);
            sim.alloc(64);
        })
        .join()
        .unwrap();
    });
}

#[test]
fn contexts_are_validated() {
    let sim = Sim::start();
    let (_, implicit) = sim.current_context();
    sim.fails(sim.destroy_context(implicit), CONTEXT_DESTROY, &["implicit", "axclrtResetDevice"]);
    sim.fails(sim.destroy_context(0x1234_5678), CONTEXT_DESTROY, &["does not exist"]);
    sim.fails(sim.set_current_context(0x1234_5678), CONTEXT_BIND, &["does not exist"]);
    sim.fails(sim.set_current_context(0), CONTEXT_NULL, &["context is NULL"]);
    let (_, explicit) = sim.create_context(DEVICE);
    sim.ok(sim.destroy_context(explicit));
    sim.fails(sim.malloc(64).0, NO_BIND_CONTEXT, &["destroyed"]);
    sim.ok(sim.set_current_context(implicit));
    sim.alloc(64);
}

#[test]
fn null_pointers_are_refused() {
    let sim = Sim::start();
    sim.fails(sim.malloc_to_null(), MEMORY_NULL, &["devPtr is NULL"]);
    sim.fails(sim.device_count_to_null(), DEVICE_NULL, &["count is NULL"]);
    sim.fails(sim.free(0), MEMORY_NULL, &["devPtr"]);
    sim.fails(sim.memcpy_raw(0, BASE, 4, 3), MEMORY_NULL, &["dstPtr"]);
    sim.fails(sim.execute(1, 1, 0, 0), ENGINE_NULL, &["io is NULL"]);
    sim.fails(sim.destroy_io_info(0), ENGINE_NULL, &["ioInfo"]);
}

// ---- device memory --------------------------------------------------------

#[test]
fn allocations_are_aligned_fresh_and_checked() {
    let sim = Sim::start();
    for size in [1, 100, 129, 4096] {
        let addr = sim.alloc(size);
        assert!(addr >= BASE && addr.is_multiple_of(128), "0x{addr:x}");
        assert!(sim.read(addr, size).iter().all(|&b| b == 0xFF), "fresh memory is 0xFF garbage");
    }
    let (code, addr) = sim.malloc_policy(3000, 3);
    sim.ok(code);
    assert_eq!(addr % 4096, 0, "SIZE_ALIGN aligns to the (power-of-two) size");
    sim.fails(sim.malloc_policy(64, 9).0, MEMORY_ILLEGAL, &["policy 9"]);
    sim.fails(sim.malloc(0).0, MEMORY_ILLEGAL, &["size 0"]);
    sim.fails(sim.malloc(5 << 30).0, MEMORY_ILLEGAL, &["size"]);
}

#[test]
fn out_of_bounds_copies_fail_and_odd_offsets_work() {
    let sim = Sim::start();
    let a = sim.alloc(256);
    let data: Vec<u8> = (0..16).collect();
    sim.ok(sim.h2d(a + 3, &data));
    assert_eq!(sim.read(a + 3, 16), data);
    // D2D at odd offsets inside one allocation, overlapping like memmove.
    sim.ok(sim.d2d(a + 5, a + 3, 16));
    let mut want = vec![0u8, 1];
    want.extend(0..16);
    assert_eq!(sim.read(a + 3, 18), want);
    let b = sim.alloc(64);
    sim.ok(sim.d2d(b + 1, a + 7, 9));
    assert_eq!(sim.read(b + 1, 9), want[4..13]);
    sim.ok(sim.memset(a + 101, 9, 7));
    assert_eq!(sim.read(a + 100, 9), [0xFF, 9, 9, 9, 9, 9, 9, 9, 0xFF]);

    sim.fails(
        sim.h2d(a + 250, &data),
        MEMORY_ILLEGAL,
        &["axclrtMemcpy", "not inside one live allocation", "10 bytes past"],
    );
    let mut host = [0u8; 16];
    sim.fails(sim.d2h(&mut host, b + 64), MEMORY_ILLEGAL, &["no allocation contains"]);
    sim.fails(sim.d2d(b, a, 65), MEMORY_ILLEGAL, &["destination"]);
    sim.fails(sim.d2d(b + 60, a + 254, 4), MEMORY_ILLEGAL, &["source", "2 bytes past"]);
    sim.fails(sim.memset(b, 0, 65), MEMORY_ILLEGAL, &["axclrtMemset", "memset"]);
    sim.fails(sim.h2d(BASE - 64, &data), MEMORY_ILLEGAL, &["not inside"]);
    assert_eq!(sim.read(b, 1), [0xFF], "failed calls had no effect");
}

#[test]
fn the_device_window_is_reserved_inaccessible_in_the_host() {
    let sim = Sim::start();
    let a = sim.alloc(64);
    let maps = std::fs::read_to_string("/proc/self/maps").expect("procfs");
    let window = maps.lines().find(|l| l.starts_with("148000000-")).expect("a mapping at the device window");
    assert!(window.contains(" ---p "), "PROT_NONE, so dereferencing 0x{a:x} faults: {window}");
}

#[test]
fn device_addresses_are_not_host_memory_and_host_copies_work() {
    let sim = Sim::start();
    let a = sim.alloc(64);
    let b = sim.alloc(64);
    sim.fails(sim.memcpy_raw(a, b, 16, 2), MEMORY_ILLEGAL, &["destination", "device address window"]);
    sim.fails(sim.memcpy_raw(a, b, 16, 1), MEMORY_ILLEGAL, &["source", "device address window"]);
    sim.fails(sim.memcpy_raw(a, b, 16, 4), MEMORY_UNSUPPORT, &["host physical"]);
    sim.fails(sim.memcpy_raw(a, b, 16, 9), MEMORY_ILLEGAL, &["unknown copy kind 9"]);
    let (src, mut dst) = ([1u8, 2, 3], [0u8; 3]);
    sim.ok(sim.h2h(&mut dst, &src));
    assert_eq!(dst, src);
}

#[test]
fn free_of_an_unknown_address_fails() {
    let sim = Sim::start();
    let a = sim.alloc(256);
    sim.fails(sim.free(a + 128), MEMORY_ILLEGAL, &["axclrtFree", "not the start of a live device allocation"]);
    sim.fails(sim.free(0x1000), MEMORY_ILLEGAL, &["0x1000"]);
    sim.ok(sim.free(a));
    sim.fails(sim.free(a), MEMORY_ILLEGAL, &["not the start"]);
}

#[test]
fn out_of_memory_follows_mem_mb() {
    let sim = Sim::start();
    sim.ok(sim.configure("mem_mb=1"));
    sim.fails(sim.malloc(2 << 20).0, NO_MEMORY, &["axclrtMalloc", "no free range", "1 MiB"]);
    let a = sim.alloc(512 << 10);
    sim.alloc(256 << 10);
    sim.fails(sim.malloc(512 << 10).0, NO_MEMORY, &["no free range"]);
    sim.ok(sim.free(a));
    sim.alloc(512 << 10);
}

// ---- configuration, faults, counters -------------------------------------------

#[test]
fn a_bad_configuration_changes_nothing() {
    let sim = Sim::start();
    sim.fails(sim.configure("mem_mb=1;bogus=3"), CONFIG_ILLEGAL, &["axclSimConfigure", "bogus"]);
    sim.alloc(2 << 20);
    sim.fails(sim.configure("fail=malloc:x"), CONFIG_ILLEGAL, &["N must be"]);
    sim.fails(sim.configure("fail=mallocs:1"), CONFIG_ILLEGAL, &["unknown kind"]);
    sim.fails(sim.configure("call_us=-1"), CONFIG_ILLEGAL, &["call_us"]);
    sim.fails(sim.configure("mem_mb"), CONFIG_ILLEGAL, &["key=value"]);
    sim.alloc(64);
    sim.ok(sim.configure(""));
}

const KINDS: [&str; 11] = ["malloc", "free", "memset", "memcpy", "h2d", "d2h", "d2d", "load", "bind", "execute", "any"];

/// The code an injected `fail=KIND:N` returns by default.
fn default_fault_code(kind: &str) -> u32 {
    match kind {
        "malloc" | "any" => NO_MEMORY,
        "load" | "bind" | "execute" => ENGINE_EXECUTE_FAIL,
        _ => MEMORY_EXECUTE_FAIL,
    }
}

/// What one call of each fault kind needs.
struct Rig {
    bound: Bound,
    path: PathBuf,
    /// 256 bytes holding 0, 1, 2, …
    buf: u64,
    /// Allocations for `free` calls to release.
    spare: Vec<u64>,
}

fn rig(sim: &Sim) -> Rig {
    let path = layer_path(sim);
    let bound = sim.bound(&path, 0, true);
    let buf = sim.alloc(256);
    sim.ok(sim.h2d(buf, &(0..=255).collect::<Vec<u8>>()));
    let spare = (0..4).map(|_| sim.alloc(64)).collect();
    Rig { bound, path, buf, spare }
}

/// One call of `kind` (`any` uses a malloc); returns its status.
fn call_of(sim: &Sim, rig: &mut Rig, kind: &str) -> i32 {
    match kind {
        "malloc" | "any" => sim.malloc(64).0,
        "free" => sim.free(rig.spare.pop().expect("a spare allocation")),
        "memset" => sim.memset(rig.buf, 1, 16),
        "memcpy" | "h2d" => sim.h2d(rig.buf, &[2; 16]),
        "d2h" => sim.d2h(&mut [0u8; 16], rig.buf),
        "d2d" => sim.d2d(rig.buf + 64, rig.buf, 16),
        "load" => sim.load_file(&rig.path).0,
        "bind" => {
            let t = rig.bound.tensor("mask");
            sim.bind(rig.bound.io, true, t.index, t.addr, t.size)
        }
        "execute" => sim.run(&rig.bound),
        _ => unreachable!("unknown fault kind {kind}"),
    }
}

/// Device state a call could change: live objects, `buf`, and the layer output.
fn device_state(sim: &Sim, rig: &Rig) -> (u64, u64, Vec<u8>, Vec<u8>) {
    let c = sim.counters();
    let out = rig.bound.tensor("output");
    (c.live_allocations, c.live_models, sim.read(rig.buf, 256), sim.read(out.addr, out.size as usize))
}

#[test]
fn every_fail_kind_fires_on_its_nth_call_without_effect() {
    let sim = Sim::start();
    for kind in KINDS {
        let mut rig = rig(&sim);
        sim.ok(sim.configure(&format!("reset;fail={kind}:2")));
        sim.ok(call_of(&sim, &mut rig, kind));
        let want = default_fault_code(kind);
        sim.fails(call_of(&sim, &mut rig, kind), want, &[&format!("injected fault fail={kind}:2")]);
        sim.ok(call_of(&sim, &mut rig, kind));

        let out = rig.bound.tensor("output");
        sim.ok(sim.memset(out.addr, 0x55, out.size as usize));
        let before = device_state(&sim, &rig);
        sim.ok(sim.configure(&format!("fail={kind}:1:0x80301234")));
        sim.fails(call_of(&sim, &mut rig, kind), 0x8030_1234, &[&format!("fail={kind}:1")]);
        assert_eq!(device_state(&sim, &rig), before, "a failed {kind} call changed the device");
    }
}

#[test]
fn a_lost_device_fails_every_device_call_until_reset() {
    let sim = Sim::start();
    for kind in KINDS {
        let mut rig = rig(&sim);
        sim.ok(sim.configure(&format!("reset;lose_device={kind}:1")));
        sim.fails(call_of(&sim, &mut rig, kind), DEVICE_LOST, &[&format!("lose_device={kind}:1"), "lost"]);
        sim.fails(sim.malloc(64).0, DEVICE_LOST, &["axclrtMalloc", "axclrtResetDevice(129)"]);
        sim.fails(sim.run(&rig.bound), DEVICE_LOST, &["lost"]);
        sim.fails(sim.set_device(DEVICE), DEVICE_LOST, &["lost"]);
        assert_eq!(sim.num_inputs(rig.bound.info), 5, "host-local getters keep working");
        sim.ok(sim.reset_device(DEVICE));
        let c = sim.counters();
        assert_eq!((c.live_allocations, c.live_bytes, c.live_models), (0, 0, 0), "reset frees the device");
        sim.fails(sim.malloc(64).0, NO_BIND_CONTEXT, &["no current context"]);
        sim.ok(sim.set_device(DEVICE));
        sim.fails(sim.load_file(&rig.path).0, ENGINE_FAIL, &["axclrtEngineInit"]);
        sim.ok(sim.engine_init(0));
        sim.fails(sim.run(&rig.bound), ENGINE_ILLEGAL, &["not loaded"]);
        sim.alloc(64);
    }
}

#[test]
fn counters_track_calls_bytes_and_live_objects() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    sim.ok(sim.reset_counters());
    let a = sim.alloc(256);
    let b = sim.alloc(256);
    sim.ok(sim.h2d(a, &[1; 100]));
    sim.read(a, 50);
    sim.ok(sim.d2d(b, a, 64));
    sim.ok(sim.memset(b, 0, 256));
    sim.ok(sim.free(a));
    let c = sim.counters();
    assert_eq!((c.calls, c.malloc_calls, c.free_calls, c.memset_calls), (7, 2, 1, 1));
    assert_eq!((c.h2d_calls, c.d2h_calls, c.d2d_calls), (1, 1, 1));
    assert_eq!((c.h2d_bytes, c.d2h_bytes, c.d2d_bytes), (100, 50, 64));
    assert_eq!((c.live_allocations, c.live_bytes), (1, 256));
    let peak = c.peak_bytes;
    assert!(peak >= 512, "peak_bytes is a high-water mark: {peak}");
    sim.ok(sim.free(b));

    sim.ok(sim.reset_counters());
    let bound = sim.bound(&path, 0, true); // load, ctx, create IO; 8 × (malloc, memset, bind)
    sim.ok(sim.run(&bound));
    let post_path = sim.dir.path("post.axmodel");
    tiny_post(&post_path, 16);
    let post = sim.bound(&post_path, 0, true);
    sim.ok(sim.run(&post));
    let c = sim.counters();
    assert_eq!((c.load_calls, c.bind_calls, c.execute_calls, c.post_execute_calls), (2, 10, 2, 1));
    assert_eq!((c.malloc_calls, c.memset_calls), (10, 10));
    assert_eq!(
        c.calls,
        2 * 3 + 10 + 10 + 2,
        "load, engine context and create-IO per model, mallocs, memsets, executes"
    );
    assert_eq!((c.live_allocations, c.live_models), (10, 2));
    assert!(c.peak_bytes >= peak, "peak_bytes is not reset");

    sim.ok(sim.unload(bound.model));
    assert_eq!(sim.counters().live_models, 1);
    for t in &bound.tensors {
        sim.ok(sim.free(t.addr));
    }
    assert_eq!(sim.counters().live_allocations, 2);
    sim.ok(sim.finalize());
    let c = sim.counters();
    assert_eq!((c.live_allocations, c.live_bytes, c.live_models), (0, 0, 0));
}

#[test]
fn latency_is_waited_and_counted() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let bound = sim.bound(&path, 0, true);
    sim.ok(sim.configure("call_us=300;h2d_mbps=1;exec_us=500"));
    sim.ok(sim.reset_counters());
    let a = sim.alloc(256); // 300 µs
    sim.ok(sim.h2d(a, &[0; 100])); // 300 µs + 100 bytes at 1 MB/s
    let t = bound.tensor("input");
    sim.ok(sim.bind(bound.io, true, t.index, t.addr, t.size)); // host-local: free
    sim.ok(sim.run(&bound)); // 300 + 500 µs
    assert!(sim.counters().latency_ns >= 1_500_000, "{:?}", sim.counters());
    sim.ok(sim.configure("reset"));
    sim.ok(sim.reset_counters());
    sim.alloc(64);
    assert_eq!(sim.counters().latency_ns, 0, "reset clears the latencies");
}

#[test]
fn prefill_groups_take_prefill_us() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let decode = sim.bound(&path, 0, true);
    let model = sim.load(&path);
    let prefill = sim.bound_model(model, 1, true);
    sim.ok(sim.configure("exec_us=0;prefill_us=3000"));
    sim.ok(sim.reset_counters());
    sim.ok(sim.run(&decode));
    assert_eq!(sim.counters().latency_ns, 0, "decode groups take exec_us");
    sim.ok(sim.run(&prefill));
    assert!(sim.counters().latency_ns >= 3_000_000, "{:?}", sim.counters());
    sim.ok(sim.configure("reset;exec_us=0"));
    sim.ok(sim.reset_counters());
    sim.ok(sim.run(&prefill));
    assert_eq!(sim.counters().latency_ns, 0, "reset makes prefill groups take exec_us again");
}

#[test]
fn async_work_runs_in_order_and_its_device_time_is_waited_at_synchronisation() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let bound = sim.bound(&path, 0, true);
    let (code, stream) = sim.create_stream();
    sim.ok(code);
    let (a, b) = (sim.alloc(8), sim.alloc(8));
    sim.ok(sim.h2d(a, &[1, 2, 3, 4, 5, 6, 7, 8]));
    sim.ok(sim.configure("exec_us=30000;d2d_mbps=0.0004"));
    sim.ok(sim.reset_counters());
    sim.ok(sim.run_async(&bound, stream)); // 30 ms on the device
    sim.ok(sim.d2d_async(b, a, 4, stream)); // 4 bytes at 400 B/s: 10 ms on the device
    sim.ok(sim.d2d_async(b + 4, b, 4, stream)); // sees the copy queued before it
    let c = sim.counters();
    assert_eq!(c.latency_ns, 0, "queuing waits only for call_us (0 here)");
    assert_eq!((c.execute_calls, c.d2d_calls, c.d2d_bytes), (1, 2, 8));
    sim.ok(sim.sync_stream(stream));
    // What is left of the 50 ms of device time when the host gets here.
    assert!(sim.counters().latency_ns > 0, "{:?}", sim.counters());
    assert_eq!(sim.read(b, 8), [1, 2, 3, 4, 1, 2, 3, 4]);
    sim.ok(sim.run_async(&bound, stream));
    sim.ok(sim.reset_counters());
    sim.read(a, 1); // a synchronous call waits for the queued work first
    assert!(sim.counters().latency_ns > 0, "{:?}", sim.counters());
    sim.ok(sim.destroy_stream(stream));
    sim.fails(sim.sync_stream(stream), 0x8030_0303, &["stream", "unknown"]);
    sim.fails(sim.d2d_async(b, a, 4, stream), 0x8030_0303, &["stream"]);
    sim.fails(sim.run_async(&bound, 0), 0x8030_0302, &["stream is NULL"]);
}

const ABORT_CHILD: &str = "AXCL_SIM_TEST_ABORT_CHILD";

#[test]
fn abort_fault_kills_the_process() {
    if std::env::var_os(ABORT_CHILD).is_some() {
        // Child: axclInit applies AXCL_SIM_CONFIG=abort=malloc:2.
        let sim = Sim::start();
        sim.alloc(64);
        println!("first malloc ok");
        let _ = sim.malloc(64);
        panic!("the second malloc should have aborted the process");
    }
    let out = axllm_testkit::self_command()
        .args(["abort_fault_kills_the_process", "--exact", "--nocapture", "--test-threads=1"])
        .env(ABORT_CHILD, "1")
        .env("AXCL_SIM_CONFIG", "abort=malloc:2")
        .output()
        .expect("run the child");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "child status {:?}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("first malloc ok"), "{stdout}");
    assert!(stderr.contains("injected fault abort=malloc:2"), "{stderr}");
}

const TRACE_CHILD: &str = "AXCL_SIM_TEST_TRACE_CHILD";

#[test]
fn trace_file_records_the_release_of_the_card() {
    if std::env::var_os(TRACE_CHILD).is_some() {
        // Child: AXCL_SIM_TRACE_FILE is set; release the card as a runner does.
        let sim = Sim::start();
        sim.ok(sim.reset_device(DEVICE));
        sim.ok(sim.finalize());
        return;
    }
    let dir = Dir(axllm_testkit::tempdir());
    let trace = dir.path("trace");
    let child = axllm_testkit::self_command()
        .args(["trace_file_records_the_release_of_the_card", "--exact", "--test-threads=1"])
        .env(TRACE_CHILD, "1")
        .env("AXCL_SIM_TRACE_FILE", &trace)
        .stdout(Stdio::null())
        .spawn()
        .expect("run the child");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for the child");
    assert!(out.status.success(), "child status {:?}", out.status);
    let text = std::fs::read_to_string(&trace).expect("the trace file was written");
    let lines: Vec<&str> = text.lines().collect();
    // The harness adds finalize calls of its own (failing: not initialised);
    // the child's release is there, in order, and every line names the child.
    let release = [format!("{pid} axclrtResetDevice({DEVICE}) 0x0"), format!("{pid} axclFinalize 0x0")];
    assert!(lines.windows(2).any(|w| w == release), "{text}");
    assert!(lines.iter().all(|l| l.starts_with(&format!("{pid} "))), "{text}");
}

// ---- engine: loading and IO descriptions ---------------------------------------

#[test]
fn io_info_reports_every_group_exactly() {
    let sim = Sim::start();
    let spec = TinyLayer { history: vec![4, 6], timing_only: false };
    let path = sim.dir.path("four-groups.axmodel");
    spec.write(&path, 3);
    let groups = spec.groups();
    let model = sim.load(&path);
    let (code, info) = sim.io_info(model);
    sim.ok(code);
    assert_eq!(sim.group_count(info), (0, 4));
    assert_eq!((sim.num_inputs(info), sim.num_outputs(info)), (5, 3));
    for input in [true, false] {
        for (i, want) in expected(&groups, 0, input).iter().enumerate() {
            let i = i as u32;
            assert_eq!(sim.name(info, input, i).as_deref(), Some(want.name.as_str()));
            assert_eq!(sim.index(info, input, &want.name), i as i32);
            assert_eq!(sim.dtype(info, input, i), (0, want.dtype.axcl_code()));
            for g in 0..groups.len() {
                let want = &expected(&groups, g, input)[i as usize];
                assert_eq!(sim.dims(info, input, g as u32, i), (0, want.dims.clone()), "{} group {g}", want.name);
                assert_eq!(sim.size(info, input, g as u32, i), want.nbytes() as u64, "{} group {g}", want.name);
            }
        }
    }
    assert_eq!(sim.dtype(info, true, 2), (0, 8), "indices are UINT32");
    assert_eq!(sim.dtype(info, true, 3), (0, 14), "hidden states are BF16");

    assert_eq!(sim.size(info, true, 4, 0), 0);
    assert!(sim.last_error().contains("shape group 4 is out of range"));
    sim.fails(sim.dims(info, false, 4, 0).0, INVALID_INDEX, &["axclrtEngineGetOutputDims", "shape group 4"]);
    sim.fails(sim.dims(info, true, 0, 5).0, INVALID_INDEX, &["input index 5"]);
    sim.fails(sim.dtype(info, false, 3).0, INVALID_INDEX, &["output index 3"]);
    assert_eq!(sim.name(info, true, 5), None);
    assert_eq!(sim.index(info, true, "K_cache_out"), -1);
    assert!(sim.last_error().contains("no input named"));
    sim.ok(sim.destroy_io_info(info));
    assert_eq!(sim.num_inputs(info), 0);
    assert!(sim.last_error().contains("unknown"));
    sim.fails(sim.destroy_io_info(info), ENGINE_ILLEGAL, &["unknown"]);
}

#[test]
fn real_axmodels_and_missing_files_are_refused() {
    let sim = Sim::start();
    let real = sim.dir.path("qwen3_p128_l0_together.axmodel");
    std::fs::write(&real, [0x08, 0x07, 0x12, 0x09, b'p', b'u', b'l', b's', b'a', b'r', b'2']).unwrap();
    sim.fails(
        sim.load_file(&real).0,
        ENGINE_UNSUPPORT,
        &["axclrtEngineLoadFromFile", "real .axmodel", "AXCL runtime", "AX650 card", "qwen3_p128_l0_together"],
    );
    let text = sim.dir.path("notes.txt");
    std::fs::write(&text, "not a model at all").unwrap();
    sim.fails(sim.load_file(&text).0, ENGINE_UNSUPPORT, &["bad magic"]);
    let missing = sim.dir.path("missing.axmodel");
    sim.fails(sim.load_file(&missing).0, ENGINE_OPEN, &["cannot read model file", missing.to_str().unwrap()]);
    assert_eq!(sim.counters().live_models, 0);
}

#[test]
fn models_load_from_device_memory_only() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let bytes = std::fs::read(&path).unwrap();
    let buf = sim.alloc(bytes.len());
    sim.ok(sim.h2d(buf, &bytes));
    let (code, from_mem) = sim.load_mem(buf, bytes.len() as u64);
    sim.ok(code);
    let from_file = sim.load(&path);
    assert!(from_mem != 0 && from_file != 0 && from_mem != from_file);
    sim.ok(sim.free(buf)); // the model keeps its own copy
    let bound = sim.bound_model(from_mem, 0, true);
    sim.ok(sim.run(&bound));

    sim.fails(sim.load_host_mem(&bytes), ENGINE_ILLEGAL, &["axclrtEngineLoadFromMem", "device memory"]);
    let small = sim.alloc(64);
    sim.fails(sim.load_mem(small, 65).0, ENGINE_ILLEGAL, &["not inside one live allocation"]);
    sim.ok(sim.h2d(small, &bytes[..64]));
    sim.fails(sim.load_mem(small, 64).0, ENGINE_ILLEGAL, &["truncated"]);
}

#[test]
fn engine_calls_need_an_initialised_engine() {
    let sim = Sim::bare();
    sim.ok(sim.init());
    sim.ok(sim.set_device(DEVICE));
    let path = layer_path(&sim);
    sim.fails(sim.load_file(&path).0, ENGINE_FAIL, &["axclrtEngineLoadFromFile", "axclrtEngineInit"]);
    sim.fails(sim.engine_finalize(), ENGINE_FAIL, &["not initialised"]);
    sim.fails(sim.engine_init(7), ENGINE_ILLEGAL, &["vNPU kind 7"]);
    sim.ok(sim.engine_init(0));
    sim.ok(sim.engine_init(0));
    sim.fails(sim.engine_init(1), ENGINE_BUSY, &["kind 0"]);
    let bound = sim.bound(&path, 0, true);
    sim.ok(sim.engine_finalize());
    sim.fails(sim.run(&bound), ENGINE_FAIL, &["axclrtEngineExecute", "axclrtEngineInit"]);
    sim.ok(sim.engine_init(1));
    sim.ok(sim.run(&bound));
}

#[test]
fn unload_invalidates_io_and_objects_are_destroyed_once() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let bound = sim.bound(&path, 0, true);
    sim.ok(sim.unload(bound.model));
    sim.fails(sim.run(&bound), ENGINE_ILLEGAL, &["axclrtEngineExecute", "is not loaded"]);
    sim.fails(sim.unload(bound.model), ENGINE_ILLEGAL, &["is not loaded"]);
    sim.fails(sim.engine_context(bound.model).0, ENGINE_ILLEGAL, &["is not loaded"]);
    sim.fails(sim.create_io(bound.info).0, ENGINE_ILLEGAL, &["is not loaded"]);
    assert_eq!(sim.num_inputs(bound.info), 5, "an IO info is host memory and outlives the model");
    sim.ok(sim.destroy_io(bound.io));
    sim.fails(sim.destroy_io(bound.io), ENGINE_ILLEGAL, &["axclrtEngineDestroyIO", "unknown"]);
    sim.fails(sim.bind(bound.io, true, 0, BASE, 2), ENGINE_ILLEGAL, &["unknown"]);
    sim.ok(sim.destroy_io_info(bound.info));
    sim.fails(sim.destroy_io_info(bound.info), ENGINE_ILLEGAL, &["unknown"]);
    assert_eq!(sim.counters().live_models, 0);
}

// ---- engine: execution ------------------------------------------------------

#[test]
fn execute_checks_the_group_and_every_binding() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let bound = sim.bound(&path, 0, true);
    sim.fails(
        sim.execute(bound.model, bound.ctx, 3, bound.io),
        INVALID_INDEX,
        &["axclrtEngineExecute", "shape group 3"],
    );
    sim.fails(sim.bind(bound.io, true, 5, BASE, 2), INVALID_INDEX, &["input index 5"]);
    sim.fails(sim.bind(bound.io, false, 0, 0, 2), ENGINE_NULL, &["dataBuffer"]);

    let mask = bound.tensor("mask");
    sim.ok(sim.bind(bound.io, true, mask.index, mask.addr, mask.size - 2));
    sim.fails(
        sim.run(&bound),
        ENGINE_ILLEGAL,
        &["input mask of group 0", &format!("{} bytes", mask.size - 2), &format!("needs {} bytes", mask.size)],
    );
    sim.ok(sim.bind(bound.io, true, mask.index, mask.addr, mask.size + 64));
    sim.fails(sim.run(&bound), ENGINE_ILLEGAL, &["input mask of group 0", "not inside one live allocation"]);
    let roomy = sim.alloc(mask.size as usize + 64);
    sim.ok(sim.memset(roomy, 0, mask.size as usize + 64));
    sim.ok(sim.bind(bound.io, true, mask.index, roomy, mask.size + 64));
    sim.ok(sim.run(&bound)); // a larger buffer is fine (the vendor's runners bind them)

    let (_, info) = sim.io_info(bound.model);
    let (_, unbound) = sim.create_io(info);
    sim.fails(
        sim.execute(bound.model, bound.ctx, 0, unbound),
        ENGINE_ILLEGAL,
        &["input K_cache of group 0 is not bound"],
    );

    let other = sim.load(&path);
    let (_, other_ctx) = sim.engine_context(other);
    sim.fails(sim.execute(bound.model, other_ctx, 0, bound.io), ENGINE_ILLEGAL, &["belongs to model"]);
    sim.fails(sim.execute(other, other_ctx, 0, bound.io), ENGINE_ILLEGAL, &["created for model"]);
    sim.fails(sim.execute(bound.model, bound.ctx, 0, 0xdead_beef), ENGINE_ILLEGAL, &["unknown"]);
}

#[test]
fn decode_reads_the_mask_and_the_cache() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let b = sim.bound(&path, 0, true);
    sim.put_bf16(&b, "input", &random(1, H, 1.0));
    sim.ok(sim.h2d(b.tensor("indices").addr, &u32_bytes(&[1])));
    let row0 = |seed| [random(seed, D, 2.0), vec![0.0; (C - 1) * D]].concat();
    sim.put_bf16(&b, "K_cache", &row0(2));
    sim.put_bf16(&b, "V_cache", &row0(3));
    sim.put_bf16(&b, "mask", &decode_mask(0));
    sim.ok(sim.run(&b));
    let alone = sim.get_bf16(&b, "output");
    let k_out = sim.get_bf16(&b, "K_cache_out");

    sim.put_bf16(&b, "V_cache", &row0(4));
    sim.ok(sim.run(&b));
    assert_eq!(sim.get_bf16(&b, "output"), alone, "a masked cache row does not contribute");

    sim.put_bf16(&b, "mask", &decode_mask(1));
    sim.ok(sim.run(&b));
    let with_row = sim.get_bf16(&b, "output");
    assert_ne!(with_row, alone, "unhiding cache row 0 changes the output");
    assert!(with_row.iter().all(|v| v.is_finite()));
    assert_eq!(sim.get_bf16(&b, "K_cache_out"), k_out, "K of the token depends on input and position only");
}

#[test]
fn masked_garbage_rows_poison_until_zeroed() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let b = sim.bound(&path, 0, false); // fresh 0xFF everywhere, as uninitialised CMM
    sim.put_bf16(&b, "input", &random(1, H, 1.0));
    sim.ok(sim.h2d(b.tensor("indices").addr, &u32_bytes(&[0])));
    sim.put_bf16(&b, "mask", &decode_mask(0));
    sim.ok(sim.run(&b));
    let poisoned = sim.get_bf16(&b, "output");
    assert!(poisoned.iter().all(|v| v.is_nan()), "masked NaN rows poison the output: {poisoned:?}");
    assert!(sim.get_bf16(&b, "K_cache_out").iter().all(|v| v.is_finite()));

    for name in ["K_cache", "V_cache"] {
        let t = b.tensor(name);
        sim.ok(sim.memset(t.addr, 0, t.size as usize));
    }
    sim.ok(sim.run(&b));
    let clean = sim.get_bf16(&b, "output");
    assert!(clean.iter().all(|v| v.is_finite()), "zeroed caches give a clean output: {clean:?}");
}

#[test]
fn prefill_then_decode_matches_a_longer_prefill() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let x = random(5, T * H, 1.0);
    let causal = |valid: usize| -> Vec<f32> {
        (0..T).flat_map(|r| (0..T).map(move |c| if r < valid && c <= r { 0.0 } else { MASKED })).collect()
    };
    let prefill = sim.bound(&path, 1, true);
    let decode = sim.bound_model(prefill.model, 0, true);

    // All T tokens in one chunk.
    sim.put_bf16(&prefill, "input", &x);
    sim.ok(sim.h2d(prefill.tensor("indices").addr, &u32_bytes(&[0, 1, 2, 3])));
    sim.put_bf16(&prefill, "mask", &causal(T));
    sim.ok(sim.run(&prefill));
    let full = sim.get_bf16(&prefill, "output");

    // T-1 tokens (the last row padding), K/V rows written back with D2D, then one decode step.
    sim.put_bf16(&prefill, "input", &[&x[..(T - 1) * H], &[0.0; H][..]].concat());
    sim.ok(sim.h2d(prefill.tensor("indices").addr, &u32_bytes(&[0, 1, 2, 0])));
    sim.put_bf16(&prefill, "mask", &causal(T - 1));
    sim.ok(sim.run(&prefill));
    for (cache, out) in [("K_cache", "K_cache_out"), ("V_cache", "V_cache_out")] {
        sim.ok(sim.d2d(decode.tensor(cache).addr, prefill.tensor(out).addr, (T - 1) * D * 2));
    }
    sim.put_bf16(&decode, "input", &x[(T - 1) * H..]);
    sim.ok(sim.h2d(decode.tensor("indices").addr, &u32_bytes(&[T as u32 - 1])));
    sim.put_bf16(&decode, "mask", &decode_mask(T - 1));
    sim.ok(sim.run(&decode));
    assert_close(&sim.get_bf16(&decode, "output"), &full[(T - 1) * H..]);
}

#[test]
fn post_model_turns_hidden_states_into_logits() {
    let sim = Sim::start();
    let path = sim.dir.path("post.axmodel");
    tiny_post(&path, 16);
    let b = sim.bound(&path, 0, true);
    assert_eq!(b.tensor("output").size, 32);
    sim.put_bf16(&b, "input", &random(21, H, 1.0));
    sim.ok(sim.reset_counters());
    sim.ok(sim.run(&b));
    let logits = sim.get_bf16(&b, "output");
    assert!(logits.iter().all(|v| v.is_finite()) && logits.iter().any(|&v| v != 0.0), "{logits:?}");
    sim.put_bf16(&b, "input", &random(22, H, 1.0));
    sim.ok(sim.run(&b));
    assert_ne!(sim.get_bf16(&b, "output"), logits);
    assert_eq!(sim.counters().post_execute_calls, 2);
}

#[test]
fn timing_only_models_leave_outputs_untouched() {
    let sim = Sim::start();
    let path = sim.dir.path("timing.axmodel");
    TinyLayer { history: vec![4], timing_only: true }.write(&path, 0);
    let b = sim.bound(&path, 1, false);
    sim.ok(sim.run(&b));
    let out = b.tensor("output");
    assert!(sim.read(out.addr, out.size as usize).iter().all(|&v| v == 0xFF));
}

#[test]
fn concurrent_threads_get_identical_results() {
    let sim = Sim::start();
    let path = layer_path(&sim);
    let model = sim.load(&path);
    let run_decode = |b: &Bound| {
        sim.put_bf16(b, "input", &random(31, H, 1.0));
        sim.ok(sim.h2d(b.tensor("indices").addr, &u32_bytes(&[0])));
        sim.put_bf16(b, "mask", &decode_mask(0));
        for _ in 0..5 {
            sim.ok(sim.run(b));
        }
        sim.get_bf16(b, "output")
    };
    let want = run_decode(&sim.bound_model(model, 0, true));
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    sim.ok(sim.set_device(DEVICE));
                    run_decode(&sim.bound_model(model, 0, true))
                })
            })
            .collect();
        for w in workers {
            assert_eq!(w.join().unwrap(), want);
        }
    });
}
