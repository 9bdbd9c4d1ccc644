//! The automatic KV slot count (`KvSlots::Auto`) on simulated cards of
//! several sizes: a big card gets the most, a smaller one fewer, a card with
//! little to spare one, and the memory guard still refuses a model that does
//! not fit with one slot. The chosen count is reported and allocated as an
//! explicit one is. One sequential test: the runtime (and the simulated
//! card's size) is per process.

use axllm_core::npu::Runtime;
use axllm_core::{AUTO_KV_SLOTS_MAX, ErrorKind, KvSlots, LoadOptions, Model};
use axllm_testkit::*;

/// CMM the guard keeps free in this test (MiB).
const FLOOR_MB: u64 = 1;
const MIB: u64 = 1 << 20;

fn opts(kv_slots: KvSlots) -> LoadOptions {
    // No decode input tables: a load that does not fit with them drops them
    // (tests/schedules.rs), which would move the thresholds measured here.
    LoadOptions { kv_slots, mem_guard_floor_mb: Some(FLOOR_MB), input_table_budget: Some(0), ..load_options() }
}

#[test]
fn automatic_slot_count_follows_the_free_cmm() {
    let rt = Runtime::open(Some(&sim_library())).unwrap();
    let sim = rt.simulator().expect("the simulator");
    let dev = rt.device(0).unwrap();
    // A long context, so that a slot's K/V caches are several MiB and the
    // card's size (set in whole MiB) can be placed between the thresholds.
    let dir = tempdir();
    let pkg = pack_random(
        &dir.path().join("long"),
        &axsim_pack::RandomOptions { heads: 8, kv_heads: 8, ..Default::default() },
        &axsim_pack::PackOptions {
            io: axsim_pack::IoOptions { chunk: 16, context: 8191, prefill_history: vec![16] },
            ..Default::default()
        },
    );

    // The standard card: what one slot takes (files and buffers), and a slot's K/V.
    sim.configure("mem_mb=7040").unwrap();
    let (_, free) = dev.cmm().unwrap().unwrap();
    let one = Model::load(&pkg, &opts(KvSlots::Count(1))).unwrap();
    let per_slot = one.info().kv_slot_bytes;
    let taken = free - dev.cmm().unwrap().unwrap().1;
    drop(one);
    assert_eq!(dev.cmm().unwrap().unwrap().1, free, "everything freed");
    assert!(per_slot > 2 * MIB, "a slot of 8191 positions: {per_slot} bytes");

    // A card of `mem_mb` MiB: the automatic load's count and device bytes.
    let auto_on = |mem_mb: u64| -> (usize, u64) {
        sim.configure(&format!("mem_mb={mem_mb}")).unwrap();
        let auto = Model::load(&pkg, &opts(KvSlots::Auto)).unwrap();
        (auto.info().kv_slots, auto.info().device_bytes)
    };
    // An explicit count of `n` on the same card: its device bytes.
    let explicit = |n: usize| Model::load(&pkg, &opts(KvSlots::Count(n))).unwrap().info().device_bytes;
    // The card's size that leaves `rest` bytes once the files, the buffers
    // with one slot and the floor are set aside (rounded up by < 1 MiB).
    let mem_for = |rest: u64| (taken + (FLOOR_MB << 20) + rest).div_ceil(MIB);

    // The standard card holds the most, allocated as an explicit count is.
    let (n, bytes) = auto_on(7040);
    assert_eq!(n, AUTO_KV_SLOTS_MAX);
    assert_eq!(bytes, explicit(n));
    // Extra slots may take a quarter of the rest: 6 slots' worth left is room
    // for one more (1.5 of them), 10 for two (2.5), 2 for none.
    let (n, bytes) = auto_on(mem_for(6 * per_slot));
    assert_eq!(n, 2);
    assert_eq!(bytes, explicit(2));
    assert_eq!(auto_on(mem_for(10 * per_slot)).0, 3);
    assert_eq!(auto_on(mem_for(2 * per_slot)).0, 1);
    // Just room for one slot: it loads with one, and generates.
    sim.configure(&format!("mem_mb={}", mem_for(0))).unwrap();
    let auto = Model::load(&pkg, &opts(KvSlots::Auto)).unwrap();
    assert_eq!(auto.info().kv_slots, 1);
    assert!(!auto.generate("hello", &greedy(2), |_| true).unwrap().tokens.is_empty());
    drop(auto);

    // Not room for one slot: the guard refuses before anything reaches the card.
    sim.configure(&format!("mem_mb={}", mem_for(0) - 2)).unwrap();
    sim.reset_counters().unwrap();
    let e = Model::load(&pkg, &opts(KvSlots::Auto)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    assert!(e.to_string().contains("does not fit in the card's free CMM"), "{e}");
    let c = sim.counters().unwrap();
    assert_eq!((c.load_calls, c.malloc_calls, c.live_models), (0, 0, 0), "refused before anything reached the card");
    sim.configure("mem_mb=7040").unwrap();
}
