//! KV slots end to end on the simulator: which slot a prompt takes, several
//! generations stepped alternately producing exactly what each produces
//! alone (greedy and seeded, every call schedule), cancellation of one
//! leaving the others intact, and device memory per slot.

use axllm_core::{GenerateOptions, Generation, LoadOptions, Model, SamplingOptions, Step, StopReason};
use axllm_testkit::*;
use axsim_pack::{Family, HybridOptions, Layout};

fn load(dir: &std::path::Path, slots: usize, schedule: &str) -> Model {
    let opts = LoadOptions { kv_slots: Some(slots), schedule: schedule.parse().unwrap(), ..load_options() };
    Model::load(dir, &opts).unwrap()
}

fn package(dir: &std::path::Path) -> std::path::PathBuf {
    packed(dir, Family::Qwen3, Layout::Axllm, 1)
}

fn seeded(n: usize, seed: i64) -> GenerateOptions {
    GenerateOptions { sampling: SamplingOptions { seed, ..Default::default() }, num_predict: Some(n), ..Default::default() }
}

/// Three prompts that share no prefix (as token ids, one chunk or more).
fn prompts(model: &Model) -> Vec<Vec<u32>> {
    ["tell me a long story about the sea", "what is two plus two", "<|im_start|>user\nhello<|im_end|>\n"]
        .iter()
        .map(|p| model.tokenizer().encode(p, false).unwrap())
        .collect()
}

/// Pulls one generation to its end: (tokens, reason).
fn run(mut g: Generation) -> (Vec<u32>, StopReason) {
    loop {
        if let Step::Done(r) = g.next().unwrap() {
            return (g.tokens().to_vec(), r);
        }
    }
}

/// Begins every prompt, then steps the generations round-robin (one `next`
/// each in turn) until all have ended: each one's (tokens, reason).
fn interleaved(model: &Model, prompts: &[Vec<u32>], opts: &[GenerateOptions]) -> Vec<(Vec<u32>, StopReason)> {
    let mut gens: Vec<Generation> = prompts.iter().zip(opts).map(|(p, o)| model.begin_tokens(p, o).unwrap()).collect();
    let slots: Vec<usize> = gens.iter().map(Generation::slot).collect();
    let mut sorted = slots.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), gens.len(), "each generation has its own slot: {slots:?}");
    let mut done: Vec<Option<StopReason>> = vec![None; gens.len()];
    while done.iter().any(Option::is_none) {
        for (g, d) in gens.iter_mut().zip(&mut done) {
            if d.is_none()
                && let Step::Done(r) = g.next().unwrap()
            {
                *d = Some(r);
            }
        }
    }
    gens.iter().zip(done).map(|(g, d)| (g.tokens().to_vec(), d.unwrap())).collect()
}

#[test]
fn interleaved_generations_equal_each_alone_greedy_and_seeded_on_every_schedule() {
    let dir = tempdir();
    let pkg = package(dir.path());
    for schedule in ["safe", "kv-bind", "fewest-calls,async"] {
        let model = load(&pkg, 3, schedule);
        let ps = prompts(&model);
        for opts in [vec![greedy(20), greedy(9), greedy(14)], vec![seeded(20, 7), seeded(9, 8), seeded(14, 9)]] {
            let alone: Vec<_> = ps
                .iter()
                .zip(&opts)
                .map(|(p, o)| {
                    model.reset_cache().unwrap();
                    run(model.begin_tokens(p, o).unwrap())
                })
                .collect();
            assert!(alone.iter().all(|(t, _)| !t.is_empty()));
            model.reset_cache().unwrap();
            assert_eq!(interleaved(&model, &ps[..2], &opts[..2]), alone[..2], "{schedule}: two at a time");
            model.reset_cache().unwrap();
            assert_eq!(interleaved(&model, &ps, &opts), alone, "{schedule}: three at a time");
        }
    }
}

#[test]
fn interleaving_on_warm_slots_reuses_each_conversations_prefix() {
    let dir = tempdir();
    let pkg = package(dir.path());
    let model = load(&pkg, 2, "kv-bind");
    let ps = prompts(&model);
    let first: Vec<_> = interleaved(&model, &ps[..2], &[greedy(6), greedy(6)]);
    // Each conversation's next turn: its prompt, its answer, and more.
    let next: Vec<Vec<u32>> = ps[..2]
        .iter()
        .zip(&first)
        .map(|(p, (t, _))| p.iter().chain(t).chain(&ps[2]).copied().collect())
        .collect();
    let warm = interleaved(&model, &next, &[greedy(8), greedy(8)]);
    let cold: Vec<_> = next
        .iter()
        .map(|p| run(load(&pkg, 1, "safe").begin_tokens(p, &greedy(8)).unwrap()))
        .collect();
    assert_eq!(warm, cold);
    // Both slots now hold their own conversation.
    let held: Vec<Vec<u32>> = (0..2).map(|s| model.slot_tokens(s)).collect();
    for p in &next {
        assert!(held.iter().any(|h| h.starts_with(p)), "a slot holds {p:?}");
    }
}

#[test]
fn a_prompt_takes_the_slot_with_the_longest_prefix_else_the_least_recently_used() {
    let dir = tempdir();
    let model = load(&package(dir.path()), 3, "safe");
    let ps = prompts(&model);
    let first = model.begin_tokens(&ps[0], &greedy(4)).unwrap();
    let (a, first) = (first.slot(), run(first));
    let held = model.slot_tokens(a);
    assert!(held.len() > ps[0].len() && held.starts_with(&ps[0]));
    let b = model.begin_tokens(&ps[1], &greedy(4)).unwrap();
    let b_slot = b.slot();
    assert_ne!(a, b_slot, "an unrelated prompt takes a least recently used slot");
    drop(b);
    let c = model.begin_tokens(&ps[2], &greedy(4)).unwrap();
    assert!(c.slot() != a && c.slot() != b_slot, "the third slot was never used");
    drop(c);
    // The first conversation's next turn goes back to its slot and feeds only the new tokens.
    let turn2: Vec<u32> = ps[0].iter().chain(&first.0).chain(&ps[2]).copied().collect();
    let g = model.begin_tokens(&turn2, &greedy(4)).unwrap();
    assert_eq!(g.slot(), a);
    assert_eq!(g.stats().prompt_reused, held.len(), "{:?}", g.stats());
    drop(g);
    // Now every slot is used; a new prompt takes the least recently used: `b`'s.
    let d = model.begin_tokens(&[3, 4, 5], &greedy(2)).unwrap();
    assert_eq!(d.slot(), b_slot);
}

#[test]
fn second_turn_after_an_unrelated_prompt_refeeds_nothing_with_two_slots_and_everything_with_one() {
    let dir = tempdir();
    let pkg = package(dir.path());
    let (mut reused, mut held) = (Vec::new(), Vec::new());
    for slots in [1, 2] {
        let model = load(&pkg, slots, "safe");
        let ps = prompts(&model);
        let g = model.begin_tokens(&ps[0], &greedy(5)).unwrap();
        let slot = g.slot();
        let (answer, _) = run(g);
        held.push(model.slot_tokens(slot).len());
        run(model.begin_tokens(&ps[1], &greedy(5)).unwrap());
        let turn2: Vec<u32> = ps[0].iter().chain(&answer).chain(&ps[2]).copied().collect();
        let g = model.begin_tokens(&turn2, &greedy(5)).unwrap();
        reused.push(g.stats().prompt_reused);
        let warm = run(g);
        let cold = run(load(&pkg, 1, "safe").begin_tokens(&turn2, &greedy(5)).unwrap());
        assert_eq!(warm, cold, "{slots} slots");
    }
    let ps = prompts(&load(&pkg, 1, "safe"));
    assert!(held[1] > ps[0].len());
    assert_eq!(reused[1], held[1], "two slots: everything the first turn fed is reused");
    assert!(reused[0] < ps[0].len(), "one slot: the unrelated prompt replaced it ({reused:?})");
}

#[test]
fn cancelling_one_generation_leaves_the_others_intact() {
    let dir = tempdir();
    let pkg = package(dir.path());
    let model = load(&pkg, 3, "kv-bind");
    let ps = prompts(&model);
    let opts = [seeded(16, 1), greedy(16), seeded(16, 3)];
    let alone: Vec<_> = ps
        .iter()
        .zip(&opts)
        .map(|(p, o)| run(load(&pkg, 1, "safe").begin_tokens(p, o).unwrap()))
        .collect();
    let mut gens: Vec<Generation> = ps.iter().zip(&opts).map(|(p, o)| model.begin_tokens(p, o).unwrap()).collect();
    let mut out: Vec<Option<StopReason>> = vec![None; 3];
    let mut step = 0;
    while out.iter().any(Option::is_none) {
        step += 1;
        if step == 4 {
            gens[1].cancel_handle().cancel();
        }
        for (g, o) in gens.iter_mut().zip(&mut out) {
            if o.is_none()
                && let Step::Done(r) = g.next().unwrap()
            {
                *o = Some(r);
            }
        }
    }
    assert_eq!(out[1], Some(StopReason::Cancelled));
    assert!(gens[1].tokens().len() < alone[1].0.len());
    assert_eq!(gens[1].tokens(), &alone[1].0[..gens[1].tokens().len()], "the cancelled one's tokens so far are right");
    for i in [0, 2] {
        assert_eq!((gens[i].tokens().to_vec(), out[i].unwrap()), alone[i], "generation {i}");
    }
    // Finished generations hold their slots until dropped; one dropped
    // mid-way frees its slot too.
    drop(gens);
    let mut g = model.begin_tokens(&ps[0], &greedy(30)).unwrap();
    g.next().unwrap();
    drop(g);
    let again: Vec<_> = (0..3).map(|i| model.begin_tokens(&ps[i], &opts[i]).unwrap()).collect();
    assert_eq!(again.len(), 3, "all three slots are free again");
}

#[test]
fn model_cancel_cancels_every_running_generation() {
    let dir = tempdir();
    let model = load(&package(dir.path()), 2, "safe");
    let ps = prompts(&model);
    let mut a = model.begin_tokens(&ps[0], &greedy(50)).unwrap();
    let mut b = model.begin_tokens(&ps[1], &greedy(50)).unwrap();
    a.next().unwrap();
    model.cancel();
    assert_eq!(run_rest(&mut a), StopReason::Cancelled);
    assert_eq!(run_rest(&mut b), StopReason::Cancelled);
}

fn run_rest(g: &mut Generation) -> StopReason {
    loop {
        if let Step::Done(r) = g.next().unwrap() {
            return r;
        }
    }
}

#[test]
fn more_generations_than_slots_wait_for_one_to_end() {
    let dir = tempdir();
    let model = load(&package(dir.path()), 2, "safe");
    let ps = prompts(&model);
    let alone: Vec<_> = ps.iter().map(|p| run(model.begin_tokens(p, &greedy(10)).unwrap())).collect();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (m, p) = (model.clone(), ps[i % 3].clone());
            std::thread::spawn(move || run(m.begin_tokens(&p, &greedy(10)).unwrap()))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), alone[i % 3], "thread {i}");
    }
}

#[test]
fn slots_are_reported_counted_in_device_memory_and_checked() {
    let dir = tempdir();
    let pkg = package(dir.path());
    let one = load(&pkg, 1, "safe");
    let three = load(&pkg, 3, "safe");
    assert_eq!((one.info().kv_slots, three.info().kv_slots), (1, 3));
    let per_slot = one.info().kv_slot_bytes;
    assert!(per_slot > 0);
    assert_eq!(three.info().kv_slot_bytes, per_slot);
    assert_eq!(three.info().device_bytes - one.info().device_bytes, 2 * per_slot);
    let default = Model::load(&pkg, &load_options()).unwrap();
    assert_eq!(default.info().kv_slots, 1);
    for bad in [0, axllm_core::MAX_KV_SLOTS + 1] {
        let e = Model::load(&pkg, &LoadOptions { kv_slots: Some(bad), ..load_options() }).unwrap_err();
        assert_eq!(e.kind(), axllm_core::ErrorKind::InvalidArgument, "{bad}: {e}");
    }
}

#[test]
fn a_hybrid_model_keeps_one_slot() {
    let dir = tempdir();
    let pkg = packed_qwen35(dir.path(), "q35", HybridOptions::default(), 2);
    let model = Model::load(&pkg, &LoadOptions { kv_slots: Some(4), ..load_options() }).unwrap();
    assert!(model.info().linear_layers > 0);
    assert_eq!(model.info().kv_slots, 1);
    assert!(!model.generate("hello", &greedy(3), |_| true).unwrap().tokens.is_empty());
}
