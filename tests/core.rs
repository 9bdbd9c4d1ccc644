//! axllm-core end to end on the simulator: layouts, generation semantics,
//! cancellation, seeds, stop strings, UTF-8 streaming, serialisation.

use axcl_sim::format::SimModelFile;
use axllm_core::{GenerateOptions, Model, SamplingOptions, Step, StopReason};
use axllm_testkit::*;
use axsim_pack::{Family, Layout};
use std::sync::mpsc;

#[test]
fn every_vendor_layout_loads_and_generates_the_same() {
    let mut outputs = Vec::new();
    for layout in [Layout::Axllm, Layout::HfPackage, Layout::Compiled] {
        let dir = tempdir();
        let m = packed(dir.path(), Family::Qwen3, layout, 7);
        let model = Model::load(&m, &load_options()).unwrap_or_else(|e| panic!("{layout:?}: {e}"));
        assert_eq!(model.info().layers, 2);
        assert_eq!(model.info().context_length, 127);
        assert_eq!(model.info().max_prefill, 80);
        assert!(model.simulator().is_some());
        let c = model
            .generate("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n", &greedy(12), |_| true)
            .unwrap();
        outputs.push(c.tokens);
    }
    assert!(!outputs[0].is_empty());
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:?}");
}

#[test]
fn tensors_are_found_by_name_not_by_index() {
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen2, Layout::Axllm, 3);
    let prompt = "the quick brown fox";
    let want = Model::load(&m, &load_options()).unwrap().generate(prompt, &greedy(10), |_| true).unwrap().tokens;
    // Reverse the order of every group's inputs and outputs in every layer file.
    for entry in std::fs::read_dir(&m).unwrap() {
        let p = entry.unwrap().path();
        if !p.to_string_lossy().ends_with("_together.axmodel") {
            continue;
        }
        let f = SimModelFile::read(&p).unwrap();
        let mut h = f.header.clone();
        for g in &mut h.groups {
            g.inputs.reverse();
            g.outputs.reverse();
        }
        let mut w = axcl_sim::format::SimModelWriter::new(h.clone());
        for t in &f.header.tensors {
            w.add_tensor(&t.name, t.dtype, &t.shape, f.tensor_bytes(&t.name).unwrap().1);
        }
        w.write(&p).unwrap();
    }
    let got = Model::load(&m, &load_options()).unwrap().generate(prompt, &greedy(10), |_| true).unwrap().tokens;
    assert_eq!(got, want);
}

#[test]
fn cache_holds_exactly_the_fed_tokens_and_reuses_prefixes() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let tok = model.tokenizer();
    let p1 = tok.encode("<|im_start|>user\nwhat is a tree?<|im_end|>\n<|im_start|>assistant\n", false).unwrap();
    let c1 = model.generate_tokens_for_test(&p1, 8);
    let mut expect = p1.clone();
    expect.extend(&c1.tokens[..c1.tokens.len() - 1]);
    assert_eq!(model.cached_tokens(), expect, "the last sampled token is never fed");

    // Second turn: the conversation so far plus new text reuses all of it.
    let mut p2 = p1.clone();
    p2.extend(&c1.tokens);
    p2.extend(tok.encode("<|im_end|>\n<|im_start|>user\nand a bush?<|im_end|>\n", false).unwrap());
    let c2 = model.generate_tokens_for_test(&p2, 4);
    assert_eq!(c2.stats.prompt_reused, expect.len());
    let mut expect2 = p2.clone();
    expect2.extend(&c2.tokens[..c2.tokens.len() - 1]);
    assert_eq!(model.cached_tokens(), expect2);

    // A different prompt shares only a prefix: the rest is fed again, and the
    // result equals a run on a cleared cache.
    let p3 = tok.encode("<|im_start|>user\nwhat is a bird?<|im_end|>\n<|im_start|>assistant\n", false).unwrap();
    let c3 = model.generate_tokens_for_test(&p3, 8);
    let common = p1.iter().zip(&p3).take_while(|(a, b)| a == b).count();
    assert_eq!(c3.stats.prompt_reused, common);
    model.reset_cache().unwrap();
    assert!(model.cached_tokens().is_empty());
    let fresh = model.generate_tokens_for_test(&p3, 8);
    assert_eq!(fresh.stats.prompt_reused, 0);
    assert_eq!(fresh.tokens, c3.tokens);
}

trait TestGenerate {
    fn generate_tokens_for_test(&self, prompt: &[u32], n: usize) -> axllm_core::Completion;
}

impl TestGenerate for Model {
    fn generate_tokens_for_test(&self, prompt: &[u32], n: usize) -> axllm_core::Completion {
        let mut g = self.begin_tokens(prompt, &greedy(n)).unwrap();
        let mut text = String::new();
        loop {
            match g.next().unwrap() {
                Step::Text(t) => text.push_str(&t),
                Step::Done(reason) => {
                    return axllm_core::Completion { text, reason, stats: g.stats(), tokens: g.tokens().to_vec(), logprobs: g.take_logprobs() };
                }
            }
        }
    }
}

#[test]
fn stop_reasons_num_predict_and_context_full() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let c = model.generate("one two", &greedy(5), |_| true).unwrap();
    assert!(c.reason == StopReason::MaxTokens && c.tokens.len() == 5 || c.reason == StopReason::EndOfSequence);

    // A long prompt plus unlimited generation ends at the context limit.
    let prompt: Vec<u32> = (0..120).map(|i| (i * 7 % 400) as u32).collect();
    let opts = GenerateOptions { sampling: SamplingOptions::greedy(), ..Default::default() };
    let mut g = model.begin_tokens(&prompt, &opts).unwrap();
    let reason = loop {
        if let Step::Done(r) = g.next().unwrap() {
            break r;
        }
    };
    let n = g.tokens().len();
    drop(g);
    // (This fixed model and prompt never produce an end token early.)
    assert_eq!(reason, StopReason::ContextFull);
    assert_eq!(n, 127 - 120 + 1);
    assert_eq!(model.cached_tokens().len(), 127);
    // A prompt longer than the context is refused and changes nothing.
    let too_long: Vec<u32> = (0..128).collect();
    let before = model.cached_tokens();
    assert!(matches!(
        model.begin_tokens(&too_long, &opts),
        Err(axllm_core::Error::PromptTooLong { tokens: 128, max: 127 })
    ));
    assert_eq!(model.cached_tokens(), before);
}

#[test]
fn stop_strings_cut_the_text() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let prompt = "a b c d";
    let full = model.generate(prompt, &greedy(40), |_| true).unwrap();
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() > 12, "need some text to cut: {:?}", full.text);
    let stop: String = chars[8..11].iter().collect();
    let first = full.text.find(&stop).unwrap();
    let opts = GenerateOptions { stop: vec![stop.clone()], ..greedy(40) };
    let cut = model.generate(prompt, &opts, |_| true).unwrap();
    assert_eq!(cut.reason, StopReason::StopString);
    assert_eq!(cut.text, full.text[..first], "stop string {stop:?}");
}

#[test]
fn streamed_pieces_are_whole_characters_and_add_up() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let tok = model.tokenizer();
    // Token by token through the stream decoder: multi-byte characters split
    // across tokens come out whole.
    let text = "café, naïve 日本語 🎉 <think>x</think> done";
    let ids = tok.encode(text, false).unwrap();
    assert!(ids.len() > text.chars().count() / 2);
    let mut dec = axllm_core::StreamDecoder::new();
    let mut pieces = Vec::new();
    for &id in &ids {
        let p = dec.push(tok, id).unwrap();
        assert!(!p.contains('\u{FFFD}'), "piece {p:?} has a broken character");
        pieces.push(p);
    }
    pieces.push(dec.finish(tok).unwrap());
    assert_eq!(pieces.concat(), text);
    // And the generation API streams the decoding of exactly its tokens.
    let c = model.generate("日本語 🎉", &greedy(30), |p| !p.is_empty()).unwrap();
    assert_eq!(c.text, tok.decode(&c.tokens).unwrap().trim_end_matches('\u{FFFD}'));
}

#[test]
fn special_tokens_and_end_set() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let tok = model.tokenizer();
    let start = tok.token_id("<|im_start|>").unwrap();
    let end = tok.token_id("<|im_end|>").unwrap();
    let think = tok.token_id("<think>").unwrap();
    let ids = tok.encode("<|im_start|>user\n<think>hi</think><|im_end|>", false).unwrap();
    assert_eq!(ids[0], start);
    assert!(ids.contains(&think) && ids.ends_with(&[end]));
    assert!(tok.is_eos(end) && tok.is_eos(tok.token_id("<|endoftext|>").unwrap()));
    assert!(!tok.is_eos(start));
    assert!(tok.decode(&[think]).unwrap() == "<think>", "tags stay visible");
    assert!(tok.chat_template().unwrap().contains("<think>"));
}

#[test]
fn same_seed_same_text() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let run = |seed| {
        let opts = GenerateOptions {
            sampling: SamplingOptions { temperature: 1.5, top_k: 0, top_p: 1.0, seed, ..Default::default() },
            num_predict: Some(40),
            ..Default::default()
        };
        model.generate("once upon a time", &opts, |_| true).unwrap().tokens
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn cancel_from_another_thread_ends_within_one_token() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let opts = GenerateOptions { sampling: SamplingOptions { seed: 1, ..Default::default() }, ..Default::default() };
    let mut g = model.begin("tell me a long story", &opts).unwrap();
    let (go, wait_go) = mpsc::channel::<()>();
    let (done, wait_done) = mpsc::channel::<()>();
    let canceller = {
        let model = model.clone();
        std::thread::spawn(move || {
            wait_go.recv().unwrap();
            model.cancel();
            done.send(()).unwrap();
        })
    };
    let mut pieces = 0;
    let mut cancelled_at = None;
    let reason = loop {
        match g.next().unwrap() {
            Step::Text(_) => {
                pieces += 1;
                if pieces == 3 {
                    go.send(()).unwrap();
                    wait_done.recv().unwrap();
                    cancelled_at = Some(g.tokens().len());
                }
            }
            Step::Done(r) => break r,
        }
    };
    canceller.join().unwrap();
    let at = cancelled_at.expect("the fixed model streams more than 3 pieces");
    assert_eq!(reason, StopReason::Cancelled);
    assert_eq!(g.tokens().len(), at, "no token after the cancel");
    drop(g);
    // The model serves the next request normally.
    assert!(!model.generate("again", &greedy(3), |_| true).unwrap().tokens.is_empty());
}

#[test]
fn concurrent_requests_are_serialised_and_agree_with_serial_runs() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let prompts = ["alpha beta", "gamma delta epsilon", "zeta", "eta theta iota kappa"];
    let serial: Vec<_> = prompts.iter().map(|p| model.generate(p, &greedy(12), |_| true).unwrap().tokens).collect();
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (m, p) = (model.clone(), p.to_string());
            std::thread::spawn(move || m.generate(&p, &greedy(12), |_| true).unwrap().tokens)
        })
        .collect();
    let parallel: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(parallel, serial);
}
