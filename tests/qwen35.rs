//! Hybrid Qwen3.5 packages end to end on the simulator (the token values are
//! checked against mlx-lm in tests/python/test_reference_qwen35.py): how the
//! layer kinds are found, every call schedule giving bit-identical logits
//! (including the ping-pong state of `kv-bind`), the calls per token, the
//! bounded snapshot slots and how they are reported, and failures in the
//! middle of the state's round trip.

use axllm_core::{Error, LoadOptions, Model, Schedule};
use axllm_testkit::*;
use axsim_pack::{HybridOptions, LayerKeys, StateDtype};
use std::path::Path;

/// The simulator's counters and faults are process-wide: one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn load(dir: &Path, schedule: &str) -> Model {
    let opts = LoadOptions { schedule: schedule.parse().unwrap(), ..load_options() };
    Model::load(dir, &opts).unwrap()
}

fn ids(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 7919 + seed * 104_729) % 500).collect()
}

/// Greedy steps after `prompt`: (tokens, every step's logits as bf16 bits).
fn greedy_steps(model: &Model, prompt: &[u32], steps: usize) -> (Vec<u32>, Vec<Vec<u16>>) {
    let mut s = model.session();
    let (_, logits) = s.feed_prompt(prompt).unwrap();
    let mut logits = logits.to_vec();
    let (mut tokens, mut all) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let t = argmax_bf16(&logits);
        tokens.push(t);
        all.push(std::mem::take(&mut logits));
        if !s.has_room() {
            break;
        }
        logits = s.feed_token(t).unwrap().to_vec();
    }
    (tokens, all)
}

/// A conversation through every path: padded and full chunks, a turn that
/// continues the state, one that restarts from a snapshot, one from the empty
/// state, decode-fed prompt tokens and the last position.
fn conversation(model: &Model) -> Vec<(Vec<u32>, Vec<Vec<u16>>)> {
    let turn1 = ids(45, 1);
    let first = greedy_steps(model, &turn1, 12);
    let mut turn2 = turn1.clone();
    turn2.extend(&first.0[..11]);
    turn2.extend(ids(9, 2));
    let second = greedy_steps(model, &turn2, 8);
    let mut diverged = turn1[..40].to_vec();
    diverged.extend(ids(7, 3)); // restores the snapshot at 32
    let third = greedy_steps(model, &diverged, 8);
    let fourth = greedy_steps(model, &ids(90, 4), 200); // 80 prefilled, 10 by decode, to the last row
    assert_eq!(fourth.0.len(), 127 - 90 + 1);
    vec![first, second, third, fourth]
}

#[test]
fn layer_kinds_come_from_the_config_or_the_io() {
    let _t = turn();
    let dir = tempdir();
    for keys in [LayerKeys::Both, LayerKeys::Interval, LayerKeys::LayerTypes, LayerKeys::None] {
        let m = packed_qwen35(dir.path(), &format!("{keys:?}"), HybridOptions { layer_keys: keys, ..Default::default() }, 5);
        let model = Model::load(&m, &load_options()).unwrap();
        let info = model.info();
        assert_eq!((info.layers, info.linear_layers, info.context_length, info.chunk), (6, 5, 127, 16), "{keys:?}");
        assert_eq!(info.snapshot_slots, axllm_core::DEFAULT_SNAPSHOT_SLOTS);
        // Per linear layer: conv history 3 × 128 and recurrent state 4 × 16 × 16, bf16.
        assert_eq!(info.snapshot_bytes, 5 * (3 * 128 + 4 * 16 * 16) * 2);
    }
    // A config that names a linear layer full is refused, naming the layer file.
    let m = packed_qwen35(dir.path(), "lying", HybridOptions::default(), 5);
    let cfg_path = m.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["layer_types"][1] = "full_attention".into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = Model::load(&m, &load_options()).unwrap_err();
    assert!(matches!(&err, Error::BadPackage { file, .. } if file.ends_with("qwen3_5_text_p16_l1_together.axmodel")), "{err}");
    assert!(err.to_string().contains("names layer 1 Full"), "{err}");
    cfg["layer_types"] = serde_json::json!(["linear_attention"]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    assert!(Model::load(&m, &load_options()).unwrap_err().to_string().contains("layer_types names 1 layers"));
}

#[test]
fn every_schedule_gives_bit_identical_logits() {
    let _t = turn();
    let dir = tempdir();
    for (name, state) in [("bf16", StateDtype::Bf16), ("f32", StateDtype::F32)] {
        let hybrid = HybridOptions { state_dtype: state, linear_prefill_groups: Some(2), ..Default::default() };
        let m = packed_qwen35(dir.path(), name, hybrid, 6);
        let want = conversation(&load(&m, "safe"));
        for schedule in ["kv-bind", "fewest-calls", "safe,async", "fewest-calls,async", "decode-kv-bind,async", "default", "safe,input-tables"] {
            let got = conversation(&load(&m, schedule));
            for (turn, (w, g)) in want.iter().zip(&got).enumerate() {
                assert_eq!(w.0, g.0, "{name} {schedule}: tokens of turn {turn}");
                assert!(w.1 == g.1, "{name} {schedule}: logits of turn {turn} differ");
            }
        }
    }
}

#[test]
fn each_schedule_makes_its_documented_calls_per_token() {
    let _t = turn();
    let dir = tempdir();
    let m = packed_qwen35(dir.path(), "calls", HybridOptions::default(), 7);
    for name in ["safe", "packed-inputs", "kv-bind", "fewest-calls", "fewest-calls,async", "safe,input-tables", "kv-bind,input-tables"] {
        let model = load(&m, name);
        let sim = model.simulator().unwrap();
        let mut s = model.session();
        s.feed_prompt(&[1, 2, 3]).unwrap();
        sim.reset_counters().unwrap();
        s.feed_token(4).unwrap();
        let c = sim.counters().unwrap();
        let schedule: Schedule = name.parse().unwrap();
        // A linear layer copies its two state tensors back where a full layer
        // copies its K/V rows: the same count per layer.
        assert_eq!(c.calls as usize, schedule.calls_per_token(6), "{name}: {c:?}");
        let state_bytes = 5 * (3 * 128 + 4 * 16 * 16) * 2;
        let copied = if name.contains("fewest") || name.starts_with("kv-bind") { 0 } else { state_bytes + 2 * 32 * 2 };
        assert_eq!(c.d2d_bytes as usize, copied, "{name}: the whole state and the full layer's rows");
    }
}

#[test]
fn snapshot_slots_are_bounded_counted_and_reported() {
    let _t = turn();
    let dir = tempdir();
    let m = packed_qwen35(dir.path(), "slots", HybridOptions::default(), 8);
    let with = |slots| Model::load(&m, &LoadOptions { snapshot_slots: Some(slots), ..load_options() }).unwrap();
    let (two, none) = (with(2), with(0));
    let each = two.info().snapshot_bytes;
    assert_eq!(two.info().device_bytes - none.info().device_bytes, 2 * each);
    let opts = greedy(4);
    let g = two.begin_tokens(&ids(70, 9), &opts).unwrap();
    assert_eq!(g.stats().snapshots_held, 2, "five chunk ends, two slots");
    drop(g);
    assert!(two.session().snapshot_lengths().iter().all(|&l| l <= 70));
    // Without slots a diverging prompt starts from the empty state.
    let first = ids(40, 10);
    let prompt = [&first[..35], &ids(8, 11)[..]].concat();
    assert_ne!(prompt[35], first[35]);
    let (a, b) = (with(8), none);
    for model in [&a, &b] {
        let mut g = model.begin_tokens(&first, &greedy(3)).unwrap();
        while let axllm_core::Step::Text(_) = g.next().unwrap() {}
    }
    assert_eq!(a.session().snapshot_lengths(), vec![16, 32, 40, 42], "chunk ends, the prompt's and the turn's end");
    let (ga, gb) = (a.begin_tokens(&prompt, &opts).unwrap(), b.begin_tokens(&prompt, &opts).unwrap());
    assert_eq!((ga.stats().prompt_restored, ga.stats().prompt_reused), (Some(32), 32));
    assert_eq!((gb.stats().prompt_restored, gb.stats().prompt_reused), (None, 0));
}

#[test]
fn a_failed_state_copy_or_restore_fails_cleanly_and_the_next_request_is_fresh() {
    let _t = turn();
    let dir = tempdir();
    let m = packed_qwen35(dir.path(), "faults", HybridOptions::default(), 12);
    let model = Model::load(&m, &load_options()).unwrap();
    let sim = model.simulator().unwrap();
    let prompt = ids(40, 13);
    let want = greedy_steps(&model, &prompt, 10).0;
    model.reset_cache().unwrap();
    // The 3rd device-to-device copy is a linear layer's state copy of the first chunk.
    sim.configure("fail=d2d:3").unwrap();
    let mut s = model.session();
    let err = s.feed_prompt(&prompt).unwrap_err();
    assert!(err.is_device_failure() && err.to_string().contains("device to device"), "{err}");
    assert!(s.snapshot_lengths().is_empty() && s.cached_tokens().is_empty());
    drop(s);
    assert_eq!(greedy_steps(&model, &prompt, 10).0, want, "the state was reset, not left half-written");
    // A restore that fails: the prompt diverges at 35, the snapshot at 32 is copied back.
    let diverged = [&prompt[..35], &ids(6, 14)[..]].concat();
    let fresh = {
        model.reset_cache().unwrap();
        greedy_steps(&model, &diverged, 6).0
    };
    model.reset_cache().unwrap();
    greedy_steps(&model, &prompt, 3);
    sim.configure("fail=d2d:1").unwrap();
    let err = model.session().feed_prompt(&diverged).unwrap_err();
    assert!(err.is_device_failure(), "{err}");
    assert_eq!(greedy_steps(&model, &diverged, 6).0, fresh);
}
