//! Every call schedule computes exactly what the default one does: the same
//! greedy tokens and bit-identical logits through full and partial prefill
//! chunks, prefix reuse, decode-fed prompt tokens and the last cache row; and
//! each makes the number of runtime calls per token its documentation states.
//! The default stages each prefill chunk (its executes queued, one
//! synchronisation, then the row copies). The decode input tables of the default are checked covering every
//! position, only the first ones (past them the step uploads), and refused
//! by the runtime (the per-token uploads instead).

use axllm_core::{LoadOptions, Model, Schedule};
use axllm_testkit::*;
use axsim_pack::{Family, Layout};

/// The simulator's counters are process-wide: the tests of this file take
/// turns so that one test's calls never land in another's count.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `safe` first (the reference: every call waited for, rows copied), the
/// default (`decode-kv-bind,input-tables,async`) and the default before the
/// input tables (`decode-kv-bind,async`) among the rest.
const SCHEDULES: [&str; 16] = [
    "safe",
    "packed-inputs",
    "kv-bind",
    "fewest-calls",
    "safe,async",
    "fewest-calls,async",
    "decode-kv-bind",
    "decode-kv-bind,async",
    "safe,async-copies",
    "decode-kv-bind,async-copies",
    "decode-kv-bind,inputs-ahead,async",
    "decode-kv-bind,input-tables,async",
    "safe,input-tables",
    "kv-bind,input-tables,async",
    "decode-kv-bind,input-tables,async,queued-logits",
    "decode-kv-bind,input-tables,async,waited-chunks",
];

fn load(dir: &std::path::Path, schedule: &str) -> Model {
    load_with(dir, schedule, None)
}

/// Loads with an input-table budget (`None`: the default).
fn load_with(dir: &std::path::Path, schedule: &str, budget: Option<u64>) -> Model {
    let opts = LoadOptions { schedule: schedule.parse().unwrap(), input_table_budget: budget, ..load_options() };
    let model = Model::load(dir, &opts).unwrap();
    assert_eq!(model.info().schedule.to_string(), schedule);
    let i = model.info();
    if schedule.contains("input-tables") {
        assert!(i.input_table_positions > 0, "{schedule}: tables loaded");
    } else {
        assert_eq!((i.input_table_positions, i.input_table_bytes), (0, 0), "{schedule}: no tables");
    }
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
        // A token after a token: `inputs-ahead` queued this one's indices and mask.
        s.feed_token(4).unwrap();
        sim.reset_counters().unwrap();
        s.feed_token(5).unwrap();
        let c = sim.counters().unwrap();
        let schedule: Schedule = name.parse().unwrap();
        let layers = model.info().layers;
        assert_eq!(c.calls as usize, schedule.calls_per_token(layers), "{name}: {c:?}");
        assert_eq!((c.execute_calls, c.d2h_calls), (layers as u64 + 1, 1), "{name}");
    }
}

#[test]
fn the_default_pipelines_a_generation_and_safe_does_not() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 24);
    for (name, pipelined) in [("default", true), ("safe", false), ("decode-kv-bind", false), ("safe,async", false)] {
        let opts = LoadOptions { schedule: name.parse().unwrap(), ..load_options() };
        let model = Model::load(&m, &opts).unwrap();
        let sim = model.simulator().unwrap();
        let layers = model.info().layers as u64;
        let mut g = model.begin_tokens(&[1, 2, 3], &axllm_testkit::greedy(6)).unwrap();
        for _ in 0..3 {
            let before = g.tokens().len() as u64;
            sim.reset_counters().unwrap();
            assert!(matches!(g.next().unwrap(), axllm_core::Step::Text(_)));
            let c = sim.counters().unwrap();
            // Every emitted token's step is on the card (a call emits more than
            // one token when text is held back); pipelined, a step's logits are
            // read by the next call, so the first call reads none of its own.
            let k = g.tokens().len() as u64 - before;
            assert_eq!(c.execute_calls, k * (layers + 1), "{name}: {c:?}");
            let d2h = if pipelined && before == 0 { k - 1 } else { k };
            assert_eq!(c.d2h_calls, d2h, "{name}, {k} tokens after {before}: {c:?}");
        }
    }
}

#[test]
fn the_default_is_the_observed_schedule_with_pinned_staging() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 23);
    let model = Model::load(&m, &load_options()).unwrap();
    assert_eq!(model.info().schedule, Schedule::OBSERVED);
    assert_eq!(model.info().schedule.to_string(), "decode-kv-bind,input-tables,async");
    // Every position has its tables (capacity 127: masks of 128 bf16).
    assert_eq!(model.info().context_length, 127);
    assert_eq!((model.info().input_table_positions, model.info().input_table_bytes), (127, 127 * (4 + 128 * 2)));
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
    // Each chunk is staged: its executes queued into the layers' own outputs,
    // one synchronisation, then the copies; per chunk 3 uploads, L executes,
    // 1 synchronisation, 2L copies; then the row copy, the post model, the logits.
    assert_eq!((c.execute_calls, c.h2d_calls), (3 * layers + 1, 9), "{c:?}");
    assert_eq!(c.calls, 3 * (3 + layers + 1 + 2 * layers) + 3, "one synchronisation per chunk: {c:?}");
    for token in [5, 6, 7] {
        sim.reset_counters().unwrap();
        s.feed_token(token).unwrap();
        let c = sim.counters().unwrap();
        assert_eq!(c.pinned_copies, c.h2d_calls + c.d2h_calls, "{c:?}");
        assert_eq!(
            (c.h2d_calls, c.d2d_calls, c.d2h_calls),
            (1, 0, 1),
            "decode uploads its hidden row only and writes K/V rows in place: {c:?}"
        );
        assert_eq!(c.calls as usize, Schedule::OBSERVED.calls_per_token(layers as usize));
    }
}

/// `waited-chunks` turns the staging off: a chunk's executes and copies are
/// each waited for (no synchronisation call), with the same outputs.
#[test]
fn waited_chunks_wait_for_every_call_of_a_chunk() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 25);
    let prompt: Vec<u32> = (0..40).map(|i| (i * 31 + 7) % 500).collect();
    let mut logits = Vec::new();
    for (name, syncs) in [("default", 3), ("default,waited-chunks", 0)] {
        let model = load(&m, if name == "default" { "decode-kv-bind,input-tables,async" } else { "decode-kv-bind,input-tables,async,waited-chunks" });
        let sim = model.simulator().unwrap();
        let layers = model.info().layers as u64;
        let mut s = model.session();
        sim.reset_counters().unwrap();
        logits.push(s.feed_prompt(&prompt).unwrap().1.to_vec());
        let c = sim.counters().unwrap();
        assert_eq!(c.calls, 3 * (3 + 3 * layers) + syncs + 3, "{name}: {c:?}");
    }
    assert!(logits[0] == logits[1], "staged and waited chunks compute the same");
}

/// Tables that cover only the first positions: a step past them uploads its
/// `indices` and `mask` (three uploads), one inside them only its hidden row;
/// the outputs stay those of `safe` whichever way the positions go (past the
/// tables, back to position 0 after a reset, a reused prefix).
#[test]
fn partial_input_tables_upload_past_their_end_and_compute_the_same() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 21);
    let want = conversation(&load(&m, "safe"));
    // 30 positions: 4 bytes of indices and 256 of mask each.
    let budget = 30 * (4 + 128 * 2) + 100;
    for schedule in ["decode-kv-bind,input-tables,async", "safe,input-tables"] {
        let model = load_with(&m, schedule, Some(budget));
        assert_eq!((model.info().input_table_positions, model.info().input_table_bytes), (30, budget - 100));
        let got = conversation(&model);
        for (turn, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.0, g.0, "{schedule}: tokens of turn {turn}");
            assert!(w.1 == g.1, "{schedule}: logits of turn {turn} differ");
        }
        // Calls per token inside the tables and past them.
        let sim = model.simulator().unwrap();
        let layers = model.info().layers;
        let parsed: Schedule = schedule.parse().unwrap();
        model.reset_cache().unwrap();
        let mut s = model.session();
        s.feed_prompt(&(1..=27).collect::<Vec<u32>>()).unwrap();
        for (token, position) in [(3, 27), (4, 28), (5, 29), (6, 30), (7, 31)] {
            sim.reset_counters().unwrap();
            s.feed_token(token).unwrap();
            let c = sim.counters().unwrap();
            let extra = if position < 30 { 0 } else { 2 };
            assert_eq!(c.h2d_calls, 1 + extra as u64, "{schedule} at {position}: {c:?}");
            assert_eq!(c.calls as usize, parsed.calls_per_token(layers) + extra, "{schedule} at {position}: {c:?}");
        }
    }
}

/// A runtime that refuses the tables' allocations leaves the default with the
/// per-token uploads: the load succeeds with `decode-kv-bind,async`, frees
/// what it allocated for the tables and computes the same.
#[test]
fn refused_input_tables_fall_back_to_uploads() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 25);
    let want = conversation(&load(&m, "decode-kv-bind,async"));
    // The allocations of a load without tables; the tables come after them.
    let probe = load(&m, "decode-kv-bind,async");
    let sim = probe.simulator().unwrap();
    let live = sim.counters().unwrap();
    drop(probe);
    sim.reset_counters().unwrap();
    let without = load(&m, "decode-kv-bind,async");
    let mallocs = sim.counters().unwrap().malloc_calls;
    drop(without);
    // The fifth table allocation fails.
    sim.configure(&format!("fail=malloc:{}", mallocs + 5)).unwrap();
    sim.reset_counters().unwrap();
    let opts = LoadOptions { schedule: Schedule::OBSERVED, ..load_options() };
    let model = Model::load(&m, &opts).unwrap();
    assert!(sim.counters().unwrap().malloc_calls >= mallocs + 5, "the fault fired during the load");
    let info = model.info();
    assert_eq!(info.schedule.to_string(), "decode-kv-bind,async", "the uploads instead of the tables");
    assert_eq!((info.input_table_positions, info.input_table_bytes), (0, 0));
    let c = sim.counters().unwrap();
    assert_eq!((c.live_allocations, c.live_bytes), (live.live_allocations, live.live_bytes), "nothing of the tables is left");
    let got = conversation(&model);
    assert!(want == got, "same tokens and logits as the uploads");
    // Decode makes the uploads' calls.
    let mut s = model.session();
    s.feed_prompt(&[1, 2, 3]).unwrap();
    sim.reset_counters().unwrap();
    s.feed_token(4).unwrap();
    let c = sim.counters().unwrap();
    assert_eq!((c.h2d_calls, c.calls as usize), (3, info.schedule.calls_per_token(info.layers)), "{c:?}");
}
