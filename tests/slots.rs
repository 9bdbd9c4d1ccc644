//! KV slots end to end on the simulator: which slot a prompt takes, several
//! generations stepped alternately producing exactly what each produces
//! alone (greedy and seeded, every call schedule), cancellation of one
//! leaving the others intact, prefills interleaved chunk by chunk (and
//! cancelled at a chunk boundary), a pipelined generation (the default
//! schedule queues a token's step before returning its text) ending on a
//! stop string or a cancel while another slot's generation interleaves with
//! it, and device memory per slot.

use axllm_core::{GenerateOptions, Generation, KvSlots, LoadOptions, Model, SamplingOptions, Step, StopReason};
use axllm_testkit::*;
use axsim_pack::{Family, HybridOptions, Layout};

fn load(dir: &std::path::Path, slots: usize, schedule: &str) -> Model {
    let opts = LoadOptions { kv_slots: KvSlots::Count(slots), schedule: schedule.parse().unwrap(), ..load_options() };
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
    for schedule in ["safe", "kv-bind", "fewest-calls,async", "default", "safe,input-tables", "default,queued-logits"] {
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

/// Pulls one generation to its end: (tokens, text, reason).
fn run_text(g: &mut Generation) -> (Vec<u32>, String, StopReason) {
    let mut text = String::new();
    loop {
        match g.next().unwrap() {
            Step::Text(t) => text.push_str(&t),
            Step::Done(r) => return (g.tokens().to_vec(), text, r),
        }
    }
}

#[test]
fn a_pipelined_stop_string_or_cancel_leaves_the_cache_as_without_pipelining() {
    let dir = tempdir();
    let pkg = package(dir.path());
    let piped = load(&pkg, 3, "default");
    assert!(piped.info().schedule == axllm_core::Schedule::OBSERVED);
    let reference = load(&pkg, 1, "safe");
    let ps = prompts(&piped);
    // A stop string from the middle of the first prompt's greedy answer.
    let (_, text, _) = run_text(&mut reference.begin_tokens(&ps[0], &greedy(24)).unwrap());
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 8, "a long enough answer: {text:?}");
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 3].iter().collect();
    let stopping = GenerateOptions { stop: vec![stop.clone()], ..greedy(24) };
    reference.reset_cache().unwrap();
    let mut g = reference.begin_tokens(&ps[0], &stopping).unwrap();
    let want_stop = run_text(&mut g);
    assert_eq!(want_stop.2, StopReason::StopString, "{stop:?} in {text:?}");
    let want_stop_cache = reference.slot_tokens(g.slot());
    drop(g);
    let want_other = run(load(&pkg, 1, "safe").begin_tokens(&ps[1], &seeded(20, 5)).unwrap());
    let want_cancelled = run(load(&pkg, 1, "safe").begin_tokens(&ps[2], &greedy(20)).unwrap());

    // All three round-robin on the pipelined model; the third is cancelled mid-way.
    let opts = [stopping, seeded(20, 5), greedy(20)];
    let mut gens: Vec<Generation> = ps.iter().zip(&opts).map(|(p, o)| piped.begin_tokens(p, o).unwrap()).collect();
    let mut texts = vec![String::new(); 3];
    let mut done: Vec<Option<StopReason>> = vec![None; 3];
    let mut step = 0;
    while done.iter().any(Option::is_none) {
        step += 1;
        if step == 5 {
            gens[2].cancel_handle().cancel();
        }
        for ((g, d), text) in gens.iter_mut().zip(&mut done).zip(&mut texts) {
            if d.is_none() {
                match g.next().unwrap() {
                    Step::Text(t) => text.push_str(&t),
                    Step::Done(r) => *d = Some(r),
                }
            }
        }
    }
    assert_eq!((gens[0].tokens().to_vec(), texts[0].clone(), done[0].unwrap()), want_stop);
    assert_eq!(piped.slot_tokens(gens[0].slot()), want_stop_cache, "the token that completed the stop string is not cached");
    assert_eq!((gens[1].tokens().to_vec(), done[1].unwrap()), want_other);
    assert_eq!(done[2], Some(StopReason::Cancelled));
    let cancelled = gens[2].tokens().to_vec();
    assert!(!cancelled.is_empty() && cancelled.len() < want_cancelled.0.len());
    assert_eq!(cancelled, want_cancelled.0[..cancelled.len()]);
    let held: Vec<u32> = ps[2].iter().chain(&cancelled).copied().collect();
    assert_eq!(piped.slot_tokens(gens[2].slot()), held, "a cancel keeps every emitted token, as without pipelining");
    drop(gens);
    // The rows on the card match the token lists: each conversation's next
    // turn, on its warm slot, equals a cold run of the same prompt.
    for (prompt, answer) in [(&ps[0], &want_stop.0), (&ps[2], &cancelled)] {
        let turn2: Vec<u32> = prompt.iter().chain(answer).chain(&ps[1]).copied().collect();
        let g = piped.begin_tokens(&turn2, &greedy(8)).unwrap();
        assert!(g.stats().prompt_reused >= prompt.len(), "{:?}", g.stats());
        let warm = run(g);
        let cold = run(load(&pkg, 1, "safe").begin_tokens(&turn2, &greedy(8)).unwrap());
        assert_eq!(warm, cold);
    }
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
        let e = Model::load(&pkg, &LoadOptions { kv_slots: KvSlots::Count(bad), ..load_options() }).unwrap_err();
        assert_eq!(e.kind(), axllm_core::ErrorKind::InvalidArgument, "{bad}: {e}");
    }
}

#[test]
fn a_hybrid_model_keeps_one_slot() {
    let dir = tempdir();
    let pkg = packed_qwen35(dir.path(), "q35", HybridOptions::default(), 2);
    let model = Model::load(&pkg, &LoadOptions { kv_slots: KvSlots::Count(4), ..load_options() }).unwrap();
    assert!(model.info().linear_layers > 0);
    assert_eq!(model.info().kv_slots, 1);
    assert!(!model.generate("hello", &greedy(3), |_| true).unwrap().tokens.is_empty());
}

/// A prompt of `chunks` prefill chunks of the small test geometry (16 tokens each).
fn long_prompt(model: &Model, chunks: usize) -> Vec<u32> {
    let text = "the sea is wide and the night is long, and a story goes on ".repeat(8);
    let ids = model.tokenizer().encode(&text, false).unwrap();
    assert!(ids.len() >= chunks * 16, "{} tokens", ids.len());
    ids[..chunks * 16 - 3].to_vec()
}

/// Which generation took each turn, and what it did ('p' a chunk, 't' a token).
type TurnLog = Vec<(usize, char)>;

/// Starts every prompt without feeding it, then gives the generations turns
/// round-robin: a prefill chunk while one is prefilling, else one `next`.
/// Returns each one's (tokens, reason) and the turn log ('p' a chunk, 't'
/// a token, per generation index).
fn interleaved_prefill(model: &Model, prompts: &[Vec<u32>], opts: &[GenerateOptions]) -> (Vec<(Vec<u32>, StopReason)>, TurnLog) {
    let mut gens: Vec<Generation> = prompts.iter().zip(opts).map(|(p, o)| model.start_tokens(p, o).unwrap()).collect();
    let mut done: Vec<Option<StopReason>> = vec![None; gens.len()];
    let mut log = Vec::new();
    while done.iter().any(Option::is_none) {
        for (i, (g, d)) in gens.iter_mut().zip(&mut done).enumerate() {
            if d.is_some() {
                continue;
            }
            if g.prefilling() {
                g.prefill_step().unwrap();
                log.push((i, 'p'));
            } else if let Step::Done(r) = g.next().unwrap() {
                *d = Some(r);
            } else {
                log.push((i, 't'));
            }
        }
    }
    (gens.iter().zip(done).map(|(g, d)| (g.tokens().to_vec(), d.unwrap())).collect(), log)
}

#[test]
fn prefill_chunks_interleave_with_other_generations_and_outputs_equal_each_alone() {
    let dir = tempdir();
    let pkg = package(dir.path());
    for schedule in ["safe", "kv-bind", "fewest-calls,async"] {
        let model = load(&pkg, 2, schedule);
        let ps = vec![long_prompt(&model, 4), prompts(&model)[1].clone()];
        for opts in [vec![greedy(12), greedy(12)], vec![seeded(12, 5), seeded(12, 6)]] {
            let alone: Vec<_> = ps
                .iter()
                .zip(&opts)
                .map(|(p, o)| run(load(&pkg, 1, "safe").begin_tokens(p, o).unwrap()))
                .collect();
            model.reset_cache().unwrap();
            let (out, log) = interleaved_prefill(&model, &ps, &opts);
            assert_eq!(out, alone, "{schedule}");
            // The long prompt's four chunks alternate with the short request's
            // prefill and first tokens: it does not wait for the whole prefill.
            let long_chunks: Vec<usize> = log.iter().enumerate().filter(|(_, e)| **e == (0, 'p')).map(|(i, _)| i).collect();
            assert_eq!(long_chunks.len(), 4, "{log:?}");
            let short_tokens_before_long_done = log[..*long_chunks.last().unwrap()].iter().filter(|e| **e == (1, 't')).count();
            assert!(short_tokens_before_long_done >= 2, "{log:?}");
        }
    }
}

#[test]
fn a_prompt_arriving_during_a_generation_prefills_between_its_tokens() {
    let dir = tempdir();
    let pkg = package(dir.path());
    let model = load(&pkg, 2, "kv-bind");
    let short = prompts(&model)[0].clone();
    let long = long_prompt(&model, 5);
    let alone_short = run(load(&pkg, 1, "safe").begin_tokens(&short, &greedy(20)).unwrap());
    let alone_long = run(load(&pkg, 1, "safe").begin_tokens(&long, &seeded(10, 3)).unwrap());
    let mut a = model.begin_tokens(&short, &greedy(20)).unwrap();
    let mut a_done = None;
    for _ in 0..3 {
        assert!(matches!(a.next().unwrap(), Step::Text(_)));
    }
    let mut b = model.start_tokens(&long, &seeded(10, 3)).unwrap();
    let mut left = Vec::new();
    while b.prefilling() {
        left.push(b.prefill_step().unwrap());
        if a_done.is_none()
            && let Step::Done(r) = a.next().unwrap()
        {
            a_done = Some(r);
        }
    }
    assert_eq!(left, [long.len() - 16, long.len() - 32, long.len() - 48, long.len() - 64, 0]);
    assert_eq!(b.stats().prompt_tokens, long.len());
    assert_eq!(run(b), alone_long);
    a_done.get_or_insert_with(|| run_rest(&mut a));
    assert_eq!((a.tokens().to_vec(), a_done.unwrap()), alone_short);
}

#[test]
fn cancelling_during_prefill_stops_at_a_chunk_boundary_and_frees_the_slot() {
    let dir = tempdir();
    let pkg = package(dir.path());
    let model = load(&pkg, 2, "kv-bind");
    let short = prompts(&model)[1].clone();
    let long = long_prompt(&model, 4);
    let alone_short = run(load(&pkg, 1, "safe").begin_tokens(&short, &greedy(16)).unwrap());
    let mut a = model.begin_tokens(&short, &greedy(16)).unwrap();
    let mut b = model.start_tokens(&long, &greedy(8)).unwrap();
    let slot = b.slot();
    assert_ne!(slot, a.slot());
    assert_eq!(b.prefill_step().unwrap(), long.len() - 16);
    a.next().unwrap();
    assert_eq!(b.prefill_step().unwrap(), long.len() - 32);
    b.cancel_handle().cancel();
    a.next().unwrap();
    assert_eq!(b.prefill_step().unwrap(), 0, "cancelled: nothing more is fed");
    assert!(!b.prefilling());
    assert_eq!(b.next().unwrap(), Step::Done(StopReason::Cancelled));
    assert!(b.tokens().is_empty());
    assert_eq!(b.stats().prompt_tokens, long.len());
    // The slot holds exactly the two chunks fed.
    assert_eq!(model.slot_tokens(slot), long[..32]);
    drop(b);
    // The slot is free again, and its rows are the ones its token list
    // names: the same prompt goes back to it, reuses the 32 tokens and
    // generates what it generates from a cold cache.
    let again = model.begin_tokens(&long, &greedy(8)).unwrap();
    assert_eq!(again.slot(), slot);
    assert_eq!(again.stats().prompt_reused, 32);
    let cold = run(load(&pkg, 1, "safe").begin_tokens(&long, &greedy(8)).unwrap());
    assert_eq!(run(again), cold);
    assert_eq!((a.tokens().len() < 16, run_rest(&mut a)), (true, StopReason::MaxTokens));
    assert_eq!(a.tokens(), alone_short.0, "the other generation is untouched");
}

#[test]
fn a_generation_cancelled_before_its_first_chunk_feeds_nothing() {
    let dir = tempdir();
    let model = load(&package(dir.path()), 2, "safe");
    let long = long_prompt(&model, 3);
    let mut g = model.start_tokens(&long, &greedy(4)).unwrap();
    let slot = g.slot();
    model.cancel();
    assert_eq!(run_rest(&mut g), StopReason::Cancelled);
    assert!(model.slot_tokens(slot).is_empty());
    assert_eq!(g.stats().prompt_reused, 0);
}
