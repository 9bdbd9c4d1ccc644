//! The runtime's contract for Qwen3.5 layer files, through the exported C
//! symbols (hardware-facts: F29–F31, F34): what the IO info reports for each
//! layer kind, the state in and out of linear layers, gate masks, and the
//! behaviours a test can switch (padding, indices, unwritten outputs, costs).

#[allow(unsafe_code, dead_code)]
mod support;

use axcl_sim::format::SimModelFile;
use axsim_pack::{self as pack, Family, HybridOptions, IoOptions, PackOptions, RandomOptions, StateDtype};
use std::path::{Path, PathBuf};
use support::{Bound, Sim, from_bf16_bytes, random, u32_bytes};

const T: usize = 4;
const H: usize = 64;

/// Packs a random 4-layer Qwen3.5 checkpoint (l0–l2 linear, l3 full) into `dir/model`.
fn packed(dir: &Path, hybrid: HybridOptions) -> PathBuf {
    let ckpt = dir.join("ckpt");
    if !ckpt.exists() {
        pack::write_random_checkpoint(&ckpt, &RandomOptions { arch: Family::Qwen35, layers: 4, ..Default::default() })
            .unwrap();
    }
    let out = dir.join(format!("model-{:?}-{}", hybrid.state_dtype, hybrid.report_state_dtype_none));
    let io = IoOptions { chunk: T, context: 15, prefill_history: vec![4, 8] };
    pack::pack_checkpoint(&ckpt, &out, &PackOptions { io, hybrid, ..Default::default() }).unwrap();
    out
}

fn layer(model: &Path, i: usize) -> PathBuf {
    model.join(format!("qwen3_5_text_p{T}_l{i}_together.axmodel"))
}

fn state_sizes(path: &Path) -> (usize, usize) {
    let f = SimModelFile::read(path).unwrap();
    let g = &f.header.groups[0];
    (g.inputs[0].nbytes(), g.inputs[1].nbytes())
}

#[test]
fn linear_layers_report_their_state_by_bytes_and_dtype() {
    let sim = Sim::start();
    for (dtype, none, size, code) in [
        (StateDtype::Bf16, false, 2, axcl_sys::rt::AXCL_DATA_TYPE_BF16),
        (StateDtype::F32, false, 4, axcl_sys::rt::AXCL_DATA_TYPE_FP32),
        (StateDtype::F32, true, 4, axcl_sys::rt::AXCL_DATA_TYPE_NONE),
    ] {
        let model = packed(&sim.dir.path(""), HybridOptions { state_dtype: dtype, report_state_dtype_none: none, ..Default::default() });
        let id = sim.load(&layer(&model, 0));
        let (_, info) = sim.io_info(id);
        assert_eq!(sim.group_count(info).1, 4, "decode + 3 prefill groups");
        // conv history [1, K-1, conv_dim] = [1, 3, 2·2·16 + 4·16], recurrent [1, Hv, Dk, Dv] = [1, 4, 16, 16].
        for g in 0..4 {
            for input in [true, false] {
                assert_eq!(sim.dims(info, input, g, 0).1, vec![1, 3, 128]);
                assert_eq!(sim.dims(info, input, g, 1).1, vec![1, 4, 16, 16]);
                assert_eq!(sim.size(info, input, g, 0), (3 * 128 * size) as u64);
                assert_eq!(sim.size(info, input, g, 1), (4 * 16 * 16 * size) as u64);
                assert_eq!(sim.dtype(info, input, 0).1, code as i32);
            }
        }
        assert_eq!(sim.dims(info, true, 0, 4).1, vec![1, 1, 1], "decode gate mask");
        assert_eq!(sim.dims(info, true, 2, 4).1, vec![1, 1, T as i32], "prefill gate mask");
        // The full layer keeps the Qwen3 contract: C + 1 mask columns, bf16 rows.
        let full = sim.load(&layer(&model, 3));
        let (_, finfo) = sim.io_info(full);
        assert_eq!(sim.dims(finfo, true, 0, 4).1, vec![1, 1, 16]);
        assert_eq!(sim.dtype(finfo, true, 0).1, axcl_sys::rt::AXCL_DATA_TYPE_BF16 as i32);
    }
}

/// A linear layer's decode group bound, zeroed, with the gate set to 1.0.
fn decode(sim: &Sim, path: &Path) -> Bound {
    let b = sim.bound(path, 0, true);
    sim.put_bf16(&b, "mask", &[1.0]);
    b
}

#[test]
fn linear_decode_carries_the_whole_state_out() {
    let sim = Sim::start();
    let model = packed(&sim.dir.path(""), HybridOptions::default());
    let path = layer(&model, 1);
    let b = decode(&sim, &path);
    let (conv, rec) = state_sizes(&path);
    sim.put_bf16(&b, "input", &random(1, H, 1.0));
    sim.ok(sim.run(&b));
    let first = sim.get_bf16(&b, "output");
    let (k1, v1) = (sim.read(b.tensor("K_cache_out").addr, conv), sim.read(b.tensor("V_cache_out").addr, rec));
    assert!(v1.iter().any(|&x| x != 0), "the state moved");
    // The same token again, from the state it left: a different output.
    sim.ok(sim.d2d(b.tensor("K_cache").addr, b.tensor("K_cache_out").addr, conv));
    sim.ok(sim.d2d(b.tensor("V_cache").addr, b.tensor("V_cache_out").addr, rec));
    sim.ok(sim.run(&b));
    assert_ne!(sim.get_bf16(&b, "output"), first, "the output depends on the state");
    // The newest conv history row is the token's projection: both steps agree on it.
    let k2 = sim.read(b.tensor("K_cache_out").addr, conv);
    assert_eq!(k1[2 * 128 * 2..], k2[2 * 128 * 2..]);
    assert_eq!(k2[128 * 2..2 * 128 * 2], k1[2 * 128 * 2..], "history shifts by one row per token");
}

#[test]
fn a_wrong_mask_fails_and_checked_indices_must_be_positions() {
    let sim = Sim::start();
    let model = packed(&sim.dir.path(""), HybridOptions::default());
    let b = sim.bound(&layer(&model, 0), 1, true);
    sim.put_bf16(&b, "input", &random(2, T * H, 1.0));
    sim.put_bf16(&b, "mask", &[0.0, -65536.0, -65536.0, -65536.0]);
    assert_ne!(sim.run(&b), 0, "an additive mask is not a gate");
    assert!(sim.last_error().contains("gate"), "{}", sim.last_error());
    sim.put_bf16(&b, "mask", &[1.0, 1.0, 0.0, 0.0]);
    sim.ok(sim.h2d(b.tensor("indices").addr, &u32_bytes(&[7, 9, 0, 0])));
    sim.ok(sim.run(&b));
    sim.ok(sim.configure("linear_indices=check"));
    assert_ne!(sim.run(&b), 0);
    assert!(sim.last_error().contains("reads indices"));
    sim.ok(sim.h2d(b.tensor("indices").addr, &u32_bytes(&[7, 8, 0, 0])));
    sim.ok(sim.run(&b));
}

#[test]
fn few_valid_rows_can_leave_the_output_unwritten() {
    let sim = Sim::start();
    let model = packed(&sim.dir.path(""), HybridOptions::default());
    for (i, mask) in [(0, vec![1.0, 1.0, 1.0, 0.0]), (3, {
        let m = -65536.0;
        vec![0.0, m, m, m, 0.0, 0.0, m, m, 0.0, 0.0, 0.0, m, m, m, m, m]
    })] {
        let b = sim.bound(&layer(&model, i), 1, true);
        sim.put_bf16(&b, "input", &random(3, T * H, 1.0));
        sim.put_bf16(&b, "mask", &mask);
        sim.ok(sim.h2d(b.tensor("indices").addr, &u32_bytes(&[0, 1, 2, 0])));
        let out = b.tensor("output");
        sim.ok(sim.h2d(out.addr, &vec![0xEE; out.size as usize]));
        sim.ok(sim.configure("min_output_rows=4"));
        sim.ok(sim.run(&b));
        assert!(sim.read(out.addr, out.size as usize).iter().all(|&x| x == 0xEE), "layer {i}: 3 rows < 4");
        let k = b.tensor("K_cache_out");
        assert!(sim.read(k.addr, k.size as usize).iter().any(|&x| x != 0), "layer {i}: K is still written");
        sim.ok(sim.configure("min_output_rows=3"));
        sim.ok(sim.run(&b));
        let written = from_bf16_bytes(&sim.read(out.addr, out.size as usize));
        assert!(written[..3 * H].iter().all(|v| v.is_finite()), "layer {i}: 3 rows >= 3");
    }
}

#[test]
fn header_costs_replace_the_configured_latency() {
    let sim = Sim::start();
    let dir = sim.dir.path("timing");
    let mut opts = pack::HybridPreset::Qwen35_0_8B.options();
    opts.io = IoOptions { chunk: 128, context: 255, prefill_history: vec![128] };
    pack::hybrid::write_hybrid_timing_model(&dir, &opts).unwrap();
    let path = dir.join("qwen3_5_text_p128_l0_together.axmodel");
    let cost = SimModelFile::read(&path).unwrap().header.cost.unwrap();
    assert!(cost.decode_us > 418.0 && cost.prefill_us > cost.decode_us, "{cost:?}");
    let b = sim.bound(&path, 0, true);
    sim.ok(sim.configure("costs=header"));
    sim.ok(sim.reset_counters());
    sim.ok(sim.run(&b));
    // A lower bound only: the wait is at least the cost (tests never bound time from above).
    let waited = sim.counters().latency_ns;
    assert!(waited as f64 >= cost.decode_us * 1e3, "{waited} ns for a cost of {} µs", cost.decode_us);
}
