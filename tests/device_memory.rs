//! Device memory accounting on the simulator, in its own process: loading
//! and dropping models returns every allocation; a load that does not fit
//! reports out-of-memory and leaves nothing behind.

use axllm_core::{Error, ErrorKind, LoadMethod, LoadOptions, Model};
use axllm_testkit::*;

#[test]
fn models_free_everything_and_oom_is_reported() {
    let dir = tempdir();
    let m = packed(dir.path(), axsim_pack::Family::Qwen3, axsim_pack::Layout::Axllm, 4);
    let keeper = Model::load(&m, &load_options()).unwrap(); // keeps the runtime alive
    let sim = keeper.simulator().expect("runs on the simulator");
    let base = sim.counters().unwrap();
    assert!(base.live_allocations > 0 && base.live_models == 3);

    for method in [LoadMethod::File, LoadMethod::DeviceMemory] {
        let model = Model::load(&m, &LoadOptions { load_method: method, ..load_options() }).unwrap();
        model.generate("hello there", &greedy(6), |_| true).unwrap();
        let during = sim.counters().unwrap();
        assert!(during.live_allocations > base.live_allocations);
        drop(model);
        let after = sim.counters().unwrap();
        assert_eq!((after.live_allocations, after.live_bytes, after.live_models), (base.live_allocations, base.live_bytes, base.live_models), "{method:?}");
    }

    // Card memory exhausted part-way through a load (the 5th allocation fails
    // with the runtime's no-memory code): the load reports out-of-memory,
    // everything it had allocated is freed, and the next load succeeds.
    sim.configure("fail=malloc:5:0x80300507").unwrap();
    let e = Model::load(&m, &load_options()).unwrap_err();
    assert!(
        matches!(e, Error::OutOfMemory { call: "axclrtMalloc", bytes: Some(_), .. }) && e.is_out_of_memory(),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::OutOfMemory);
    let after = sim.counters().unwrap();
    assert_eq!((after.live_allocations, after.live_models), (base.live_allocations, base.live_models));
    Model::load(&m, &load_options()).unwrap();
}
