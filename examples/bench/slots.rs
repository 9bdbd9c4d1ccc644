//! `--slots`: KV slots on the Qwen3-0.6B timing model with the Pi 5 latency
//! model, 1 slot against 2 (issue 20's workload, as Open WebUI makes it):
//!
//! * a short chat request (a 30-token prompt, 20 tokens) arriving while a
//!   long background generation (`--long-tokens`, Open WebUI's title request
//!   asks for up to 1000) is running: the chat's time to first token, and
//!   the tokens per second of each while both run;
//! * a conversation's second turn (its 300-token first turn, the answer, 20
//!   new tokens) after an unrelated 300-token prompt ran in between: the
//!   second turn's TTFT and the prompt tokens it reused.
//!
//! * a short chat request arriving while a long PROMPT (1000 tokens, eight
//!   prefill chunks) is being fed: the chat's TTFT with 1 slot, with 2 slots
//!   when the prompt is fed whole in one turn (as before prefill was
//!   interleaved: a session holds the NPU for it), and with 2 slots fed
//!   chunk by chunk; and what the interleaving costs the long prompt.
//!
//! The long request and the chat run on two threads, as two clients of the
//! runner do; the library interleaves their steps per token and per prefill
//! chunk.

use anyhow::{Context, Result};
use axllm_core::{GenerateOptions, KvSlots, LoadOptions, Model, SamplingOptions, Step};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Prompt token ids that do not depend on the tokenizer (a timing model has none worth using).
fn ids(n: usize, seed: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + seed * 104_729) % (vocab - 1000)) as u32 + 500).collect()
}

fn opts(n: usize) -> GenerateOptions {
    GenerateOptions { sampling: SamplingOptions { seed: 7, ..Default::default() }, num_predict: Some(n), ..Default::default() }
}

/// What one slot count measured.
struct Figures {
    chat_ttft: Duration,
    chat_tok_s: f64,
    long_tok_s_alone: f64,
    long_tok_s_shared: f64,
    second_ttft: Duration,
    second_reused: usize,
    second_prompt: usize,
}

/// Tokens per second between the pieces that arrived at `times` (from the first).
fn rate(times: &[Instant]) -> f64 {
    match (times.first(), times.last()) {
        (Some(a), Some(b)) if times.len() > 1 => (times.len() - 1) as f64 / (*b - *a).as_secs_f64(),
        _ => 0.0,
    }
}

fn measure(dir: &Path, lib: &Path, spec: &str, slots: usize, long_tokens: usize) -> Result<Figures> {
    let load = LoadOptions { runtime_library: Some(PathBuf::from(lib)), kv_slots: KvSlots::Count(slots), ..Default::default() };
    let model = Model::load(dir, &load)?;
    model.simulator().context("the runtime is not axcl-sim")?.configure(spec)?;
    let vocab = model.info().vocab;

    // A long generation; the chat arrives after its 20th token.
    let (arrive, chat_now) = mpsc::channel::<()>();
    let long = {
        let (model, prompt) = (model.clone(), ids(60, 1, vocab));
        std::thread::spawn(move || -> Result<Vec<Instant>> {
            let mut g = model.begin_tokens(&prompt, &opts(long_tokens))?;
            let mut times = Vec::new();
            while let Step::Text(_) = g.next()? {
                times.push(Instant::now());
                if times.len() == 20 {
                    arrive.send(()).ok();
                }
            }
            Ok(times)
        })
    };
    chat_now.recv().context("the long generation ended before its 20th token")?;
    let asked = Instant::now();
    let mut chat = model.begin_tokens(&ids(30, 2, vocab), &opts(20))?;
    let mut chat_times = Vec::new();
    while let Step::Text(_) = chat.next()? {
        chat_times.push(Instant::now());
    }
    drop(chat);
    let long_times = long.join().expect("the long generation's thread")?;
    let chat_ttft = chat_times.first().map_or(Duration::ZERO, |t| *t - asked);
    let (chat_start, chat_end) = (chat_times[0], *chat_times.last().unwrap());
    let during: Vec<Instant> = long_times.iter().copied().filter(|t| *t >= chat_start && *t <= chat_end).collect();
    let before: Vec<Instant> = long_times.iter().copied().filter(|t| *t < asked).collect();
    let after: Vec<Instant> = long_times.iter().copied().filter(|t| *t > chat_end).collect();
    let long_tok_s_alone = if after.len() > before.len() { rate(&after) } else { rate(&before) };

    // A conversation's second turn after an unrelated prompt.
    model.reset_cache()?;
    let first = ids(300, 3, vocab);
    let mut g = model.begin_tokens(&first, &opts(20))?;
    while let Step::Text(_) = g.next()? {}
    let answer = g.tokens().to_vec();
    drop(g);
    let mut other = model.begin_tokens(&ids(300, 4, vocab), &opts(20))?;
    while let Step::Text(_) = other.next()? {}
    drop(other);
    let second: Vec<u32> = first.iter().chain(&answer).copied().chain(ids(20, 5, vocab)).collect();
    let asked = Instant::now();
    let mut g = model.begin_tokens(&second, &opts(1))?;
    let _ = g.next()?;
    let second_ttft = asked.elapsed();
    Ok(Figures {
        chat_ttft,
        chat_tok_s: rate(&chat_times),
        long_tok_s_alone,
        long_tok_s_shared: rate(&during),
        second_ttft,
        second_reused: g.stats().prompt_reused,
        second_prompt: second.len(),
    })
}

/// Chat TTFT and the long prompt's own TTFT while a `LONG_PROMPT`-token prompt is fed.
struct PrefillFigures {
    chat_ttft: Duration,
    long_ttft: Duration,
}

/// Tokens of the long prompt in the prefill workload.
const LONG_PROMPT: usize = 1000;

/// The chat (30-token prompt, 20 tokens) arrives once the long prompt's first
/// chunk is in; `whole` feeds the rest of the prompt in one turn.
fn measure_prefill(dir: &Path, lib: &Path, spec: &str, slots: usize, whole: bool) -> Result<PrefillFigures> {
    let load = LoadOptions { runtime_library: Some(PathBuf::from(lib)), kv_slots: KvSlots::Count(slots), ..Default::default() };
    let model = Model::load(dir, &load)?;
    model.simulator().context("the runtime is not axcl-sim")?.configure(spec)?;
    let (vocab, chunk) = (model.info().vocab, model.info().chunk);
    let (arrive, chat_now) = mpsc::channel::<()>();
    let long = {
        let (model, prompt) = (model.clone(), ids(LONG_PROMPT, 6, vocab));
        std::thread::spawn(move || -> Result<Duration> {
            let started = Instant::now();
            if whole {
                // The NPU held for the whole prompt, as one turn.
                let mut s = model.session();
                s.feed_prompt(&prompt[..chunk])?;
                arrive.send(()).ok();
                s.feed_prompt(&prompt)?;
                return Ok(started.elapsed());
            }
            let mut g = model.start_tokens(&prompt, &opts(20))?;
            let mut first = true;
            while g.prefill_step()? > 0 {
                if std::mem::take(&mut first) {
                    arrive.send(()).ok();
                }
            }
            let _ = g.next()?;
            let ttft = started.elapsed();
            while let Step::Text(_) = g.next()? {}
            Ok(ttft)
        })
    };
    chat_now.recv().context("the long prompt was fed in one chunk")?;
    let asked = Instant::now();
    let mut chat = model.begin_tokens(&ids(30, 2, vocab), &opts(20))?;
    let _ = chat.next()?;
    let chat_ttft = asked.elapsed();
    while let Step::Text(_) = chat.next()? {}
    drop(chat);
    let long_ttft = long.join().expect("the long prompt's thread")?;
    Ok(PrefillFigures { chat_ttft, long_ttft })
}

/// Runs the workload with 1 and with 2 slots and prints the figures and their ratios.
pub fn run(lib: &Path, long_tokens: usize) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = axsim_pack::write_timing_model(tmp.path(), &axsim_pack::TimingPreset::Qwen3_0_6B.options())?.model_dir;
    let spec = axsim_pack::calibration::pi5_spec();
    println!("\n== KV slots: Qwen3-0.6B w8a16 timing model, Pi 5 latency model, default schedule");
    println!("long generation {long_tokens} tokens (60-token prompt); chat 30-token prompt, 20 tokens, arriving after the long one's 20th token");
    let one = measure(&dir, lib, &spec, 1, long_tokens)?;
    let two = measure(&dir, lib, &spec, 2, long_tokens)?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{:<52} {:>12} {:>12} {:>10}", "", "1 slot", "2 slots", "1/2");
    let row = |name: &str, a: f64, b: f64| println!("{name:<52} {a:>12.1} {b:>12.1} {:>9.1}x", a / b);
    row("chat TTFT during the long generation, ms", ms(one.chat_ttft), ms(two.chat_ttft));
    row("chat tok/s", one.chat_tok_s, two.chat_tok_s);
    println!("{:<52} {:>12.1} {:>12.1}", "long generation tok/s alone", one.long_tok_s_alone, two.long_tok_s_alone);
    println!("{:<52} {:>12} {:>12.1}", "long generation tok/s while the chat streams", "(paused)", two.long_tok_s_shared);
    row("second-turn TTFT after an unrelated prompt, ms", ms(one.second_ttft), ms(two.second_ttft));
    println!(
        "{:<52} {:>12} {:>12}",
        "  prompt tokens reused",
        format!("{}/{}", one.second_reused, one.second_prompt),
        format!("{}/{}", two.second_reused, two.second_prompt)
    );

    println!("\na chat (30-token prompt, 20 tokens) arriving while a {LONG_PROMPT}-token prompt is fed, after its first chunk:");
    let one = measure_prefill(&dir, lib, &spec, 1, false)?;
    let whole = measure_prefill(&dir, lib, &spec, 2, true)?;
    let chunked = measure_prefill(&dir, lib, &spec, 2, false)?;
    println!("{:<52} {:>12} {:>12} {:>12}", "", "1 slot", "2, whole", "2, chunked");
    println!(
        "{:<52} {:>12.1} {:>12.1} {:>12.1}",
        "chat TTFT, ms",
        ms(one.chat_ttft),
        ms(whole.chat_ttft),
        ms(chunked.chat_ttft)
    );
    println!(
        "{:<52} {:>12.1} {:>12.1} {:>12.1}",
        "long prompt's prefill (whole) / TTFT (chunked), ms",
        ms(one.long_ttft),
        ms(whole.long_ttft),
        ms(chunked.long_ttft)
    );
    println!(
        "{:<52} {:>12} {:>11.1}x {:>11.1}x",
        "chat TTFT: 1 slot / this",
        "",
        ms(one.chat_ttft) / ms(whole.chat_ttft),
        ms(one.chat_ttft) / ms(chunked.chat_ttft)
    );
    Ok(())
}
