//! Hardware fidelity on the simulator: the optional runtime surface as the
//! core sees it (version, SoC, free CMM, pinned host memory with its
//! fallback), and the memory guard refusing a model that cannot fit (its
//! files, or its files and our buffers) before any file reaches the card.
//! One sequential test: the runtime is per process.

use axllm_core::npu::{HostBuffer, Runtime};
use axllm_core::{ErrorKind, LoadOptions, Model};
use axllm_testkit::*;

#[test]
fn optional_surface_and_memory_guard() {
    let rt = Runtime::open(Some(&sim_library())).unwrap();
    let sim = rt.simulator().expect("the simulator");
    assert_eq!(rt.soc_name().as_deref(), Some("AX650N"));
    assert_eq!(rt.version(), Some((3, 10, 2)));
    for f in ["axclrtGetDeviceProperties", "axclrtMallocHost", "axclrtEngineGetUsage", "axclrtGetDefaultContext"] {
        assert!(rt.has(f), "{f}");
    }
    let dev = rt.device(0).unwrap();
    assert_eq!(dev.id(), 129, "a bus-derived id, not 0");
    let (total, free) = dev.cmm().unwrap().expect("the simulator reports CMM");
    assert_eq!(total, 7040 << 20);
    assert!(free <= total);

    // Pinned host memory: zeroed, writable, recognised by the runtime.
    {
        let cx = dev.enter().unwrap();
        let mut h = HostBuffer::new(&cx, 4096).unwrap();
        assert!(h.is_pinned());
        assert!(h.as_slice().iter().all(|b| *b == 0));
        h.as_mut_slice()[4095] = 7;
        assert_eq!(sim.counters().unwrap().live_host_blocks, 1);
        drop(h);
        assert_eq!(sim.counters().unwrap().live_host_blocks, 0, "freed on drop");
        assert!(HostBuffer::new(&cx, 0).is_err());
    }

    // The guard: 1 MiB of CMM cannot hold the model plus a 1 MiB reserve.
    let dir = tempdir();
    let m = packed(dir.path(), axsim_pack::Family::Qwen3, axsim_pack::Layout::Axllm, 2);
    sim.configure("mem_mb=1").unwrap();
    sim.reset_counters().unwrap();
    let opts = LoadOptions { mem_guard_floor_mb: Some(1), ..load_options() };
    let e = Model::load(&m, &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    assert!(e.is_out_of_memory());
    let text = e.to_string();
    assert!(text.contains("does not fit in the card's free CMM") && text.contains("reserve: 1 MiB"), "{text}");
    let c = sim.counters().unwrap();
    assert_eq!((c.load_calls, c.malloc_calls, c.live_models), (0, 0, 0), "refused before anything reached the card");

    // With the whole card it loads, and the loaded weights show in the free CMM.
    sim.configure("mem_mb=7040").unwrap();
    let model = Model::load(&m, &load_options()).unwrap();
    let (_, free_after) = dev.cmm().unwrap().unwrap();
    let weights: u64 = std::fs::read_dir(&m)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "axmodel"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(free_after + weights <= free, "free CMM {free_after} after loading {weights} bytes of weights (was {free})");
    assert!(!model.generate("hello", &greedy(2), |_| true).unwrap().tokens.is_empty());
    drop(model);

    // Our buffers count before the first file too: a model whose files fit
    // but whose K/V caches (8191 positions) do not is refused before any file
    // reaches the card, naming the buffers; the same model fits with more CMM.
    let big = pack_random(
        &dir.path().join("long"),
        &axsim_pack::RandomOptions { heads: 8, kv_heads: 8, ..Default::default() },
        &axsim_pack::PackOptions {
            io: axsim_pack::IoOptions { chunk: 16, context: 8191, prefill_history: vec![16] },
            ..Default::default()
        },
    );
    // Without the decode input tables first (they are checked below).
    let uploads = LoadOptions { schedule: "default,upload-inputs".parse().unwrap(), ..load_options() };
    let model = Model::load(&big, &uploads).unwrap();
    let files: Vec<u64> = std::fs::read_dir(&big)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "axmodel"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    let usage: u64 = files.iter().map(|l| l.div_ceil(128) * 128).sum();
    let buffers = model.info().device_bytes - files.iter().sum::<u64>();
    assert!(buffers > 4 << 20, "K/V of 8191 positions: {buffers} bytes");
    drop(model);
    // Room for the files and the 1 MiB reserve, not for the buffers as well.
    let mem_mb = (usage + buffers / 2).div_ceil(1 << 20) + 1;
    assert!(usage + (1 << 20) <= mem_mb << 20 && usage + buffers + (1 << 20) > mem_mb << 20);
    sim.configure(&format!("mem_mb={mem_mb}")).unwrap();
    sim.reset_counters().unwrap();
    let opts = LoadOptions { mem_guard_floor_mb: Some(1), ..uploads.clone() };
    let e = Model::load(&big, &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    let text = e.to_string();
    let needle = format!("buffers: {:.1} MiB", buffers as f64 / (1u64 << 20) as f64);
    assert!(text.contains(&needle) && text.contains("does not fit"), "{needle:?} in {text}");
    let c = sim.counters().unwrap();
    assert_eq!((c.load_calls, c.malloc_calls, c.live_models), (0, 0, 0), "refused before any file or buffer reached the card");
    // With room for the buffers too it loads and generates.
    sim.configure(&format!("mem_mb={}", (usage + buffers).div_ceil(1 << 20) + 2)).unwrap();
    let model = Model::load(&big, &opts).unwrap();
    let want = model.generate("hello", &greedy(2), |_| true).unwrap().tokens;
    assert!(!want.is_empty());
    drop(model);

    // The decode input tables count too (here the first positions of 8191,
    // within the default 64 MiB budget). With room for everything but them,
    // the default loads without them: the per-token uploads instead.
    let default = LoadOptions { mem_guard_floor_mb: Some(1), ..load_options() };
    let model = Model::load(&big, &default).unwrap();
    let info = model.info();
    assert_eq!(info.schedule.to_string(), "decode-kv-bind,async", "the tables did not fit");
    assert_eq!((info.input_table_positions, info.input_table_bytes, info.device_bytes), (0, 0, buffers + files.iter().sum::<u64>()));
    assert_eq!(model.generate("hello", &greedy(2), |_| true).unwrap().tokens, want);
    drop(model);
    // With the whole card it loads them, and counts them in its device bytes.
    sim.configure("mem_mb=7040").unwrap();
    let model = Model::load(&big, &default).unwrap();
    let info = model.info();
    assert_eq!(info.schedule.to_string(), "decode-kv-bind,input-tables,async");
    let per_position = 4 + 8192 * 2;
    assert_eq!(info.input_table_positions as u64, axllm_core::DEFAULT_INPUT_TABLE_BUDGET / per_position);
    assert_eq!(info.input_table_bytes, info.input_table_positions as u64 * per_position);
    assert_eq!(info.device_bytes, buffers + files.iter().sum::<u64>() + info.input_table_bytes);
    assert_eq!(model.generate("hello", &greedy(2), |_| true).unwrap().tokens, want);
}
