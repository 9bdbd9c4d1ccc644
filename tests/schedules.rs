//! Every call schedule computes exactly what the default one does: the same
//! greedy tokens and bit-identical logits through full and partial prefill
//! chunks, prefix reuse, decode-fed prompt tokens and the last cache row; and
//! each makes the number of runtime calls per token its documentation states.

use axllm_core::{LoadOptions, Model, Schedule};
use axllm_testkit::*;
use axsim_pack::{Family, Layout};

/// The simulator's counters are process-wide: the tests of this file take
/// turns so that one test's calls never land in another's count.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `safe` first (the reference: every call waited for, rows copied), the
/// default (`decode-kv-bind,async`) among the rest.
const SCHEDULES: [&str; 8] =
    ["safe", "packed-inputs", "kv-bind", "fewest-calls", "safe,async", "fewest-calls,async", "decode-kv-bind", "decode-kv-bind,async"];

fn load(dir: &std::path::Path, schedule: &str) -> Model {
    let opts = LoadOptions { schedule: schedule.parse().unwrap(), ..load_options() };
    let model = Model::load(dir, &opts).unwrap();
    assert_eq!(model.info().schedule.to_string(), schedule);
    model
}

/// Greedy steps after `prompt`: (tokens, every step's logits as bf16 bits).
fn greedy(model: &Model, prompt: &[u32], steps: usize) -> (Vec<u32>, Vec<Vec<u16>>) {
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

/// A conversation that reaches every path of the layer loop (chunk 16, decode
/// capacity 127, prefill up to 80 positions).
fn conversation(model: &Model) -> Vec<(Vec<u32>, Vec<Vec<u16>>)> {
    let ids = |n: usize, seed: u32| (0..n as u32).map(|i| (i * 7919 + seed * 104_729) % 500).collect::<Vec<_>>();
    let turn1 = ids(45, 1); // two full chunks and a partial one
    let first = greedy(model, &turn1, 12);
    let mut turn2 = turn1.clone();
    turn2.extend(&first.0[..11]);
    turn2.extend(ids(9, 2)); // reuses 56 positions, one partial chunk
    let second = greedy(model, &turn2, 12);
    model.reset_cache().unwrap();
    let full = ids(64, 3); // four full chunks from an empty cache
    let third = greedy(model, &full, 4);
    let long = ids(90, 4); // 80 by prefill, 10 fed through decode, then to the last row
    let fourth = greedy(model, &long, 200);
    assert_eq!(fourth.0.len(), 127 - 90 + 1, "ran into the context limit");
    vec![first, second, third, fourth]
}

#[test]
fn every_schedule_gives_bit_identical_logits() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 21);
    let want = conversation(&load(&m, "safe"));
    for schedule in &SCHEDULES[1..] {
        let got = conversation(&load(&m, schedule));
        for (turn, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.0, g.0, "{schedule}: tokens of turn {turn}");
            assert!(w.1 == g.1, "{schedule}: logits of turn {turn} differ");
        }
    }
}

#[test]
fn each_schedule_makes_its_documented_calls_per_token() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 22);
    for name in SCHEDULES {
        let model = load(&m, name);
        let sim = model.simulator().expect("runs on the simulator");
        let mut s = model.session();
        s.feed_prompt(&[1, 2, 3]).unwrap();
        sim.reset_counters().unwrap();
        s.feed_token(4).unwrap();
        let c = sim.counters().unwrap();
        let schedule: Schedule = name.parse().unwrap();
        let layers = model.info().layers;
        assert_eq!(c.calls as usize, schedule.calls_per_token(layers), "{name}: {c:?}");
        assert_eq!((c.execute_calls, c.d2h_calls), (layers as u64 + 1, 1), "{name}");
    }
}

#[test]
fn the_default_is_the_observed_schedule_with_pinned_staging() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 23);
    let model = Model::load(&m, &load_options()).unwrap();
    assert_eq!(model.info().schedule, Schedule::OBSERVED);
    assert_eq!(model.info().schedule.to_string(), "decode-kv-bind,async");
    let sim = model.simulator().unwrap();
    let mut s = model.session();
    // A prompt of two full chunks and a partial one, then decode tokens.
    let prompt: Vec<u32> = (0..40).map(|i| (i * 31 + 7) % 500).collect();
    sim.reset_counters().unwrap();
    s.feed_prompt(&prompt).unwrap();
    let c = sim.counters().unwrap();
    let layers = model.info().layers as u64;
    // Prefill: every host copy from pinned staging; K/V rows scattered from
    // the staging outputs (2 copies per layer per chunk), never bound in place.
    assert_eq!(c.pinned_copies, c.h2d_calls + c.d2h_calls, "{c:?}");
    assert_eq!(c.d2d_calls, 3 * 2 * layers + 1, "K/V scatter per chunk and layer, one hidden row to the post model: {c:?}");
    for token in [5, 6, 7] {
        sim.reset_counters().unwrap();
        s.feed_token(token).unwrap();
        let c = sim.counters().unwrap();
        assert_eq!(c.pinned_copies, c.h2d_calls + c.d2h_calls, "{c:?}");
        assert_eq!((c.h2d_calls, c.d2d_calls, c.d2h_calls), (3, 0, 1), "decode writes K/V rows in place: {c:?}");
        assert_eq!(c.calls as usize, Schedule::OBSERVED.calls_per_token(layers as usize));
    }
}
