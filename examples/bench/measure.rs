//! The workloads and what they measure. Every token is sampled with the
//! library's sampler on realistic synthetic logits (timing-only models return
//! zeros), so the host work per token is the real one.

use crate::runner::Runner;
use crate::sys::{self, thread_cpu_ns};
use anyhow::{Context, Result};
use axllm_core::npu::{SimCounters, SimHooks};
use axllm_core::sampling::{Sampler, SamplingOptions};
use std::time::Instant;

/// Resident set size of this process, KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// A deterministic stream for prompts and logits (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// `n` prompt token ids below 100 000, the same for every `seed`.
pub fn ids(n: usize, seed: u64) -> Vec<u32> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n).map(|_| (r.next() % 100_000) as u32).collect()
}

/// Logits shaped like a language model's: a normal body (σ 2.5) and a few
/// dozen likely tokens 8–18 above it, as bf16 bits.
pub fn synthetic_logits(vocab: usize) -> Vec<u16> {
    let mut r = Rng(0x5EED);
    let mut x: Vec<f32> = (0..vocab)
        .map(|_| {
            let (u, v) = (r.unit().max(1e-7), r.unit());
            2.5 * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        })
        .collect();
    for _ in 0..32 {
        let i = (r.next() % vocab as u64) as usize;
        x[i] += 8.0 + 10.0 * r.unit();
    }
    x.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect()
}

/// The sampler every workload uses: Ollama's defaults, seeded.
pub fn sampler(vocab: usize) -> Sampler {
    Sampler::new(SamplingOptions { seed: 7, ..Default::default() }, vocab)
}

/// Per-token averages of the simulator's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerToken {
    pub calls: f64,
    pub h2d_calls: f64,
    pub d2d_calls: f64,
    pub d2h_calls: f64,
    pub executes: f64,
    pub binds: f64,
    /// H2D and D2H copies whose host side was `axclrtMallocHost` memory.
    pub pinned: f64,
    pub h2d_bytes: f64,
    pub d2d_bytes: f64,
    pub d2h_bytes: f64,
}

impl PerToken {
    fn of(c: &SimCounters, n: usize) -> PerToken {
        let f = |v: u64| v as f64 / n as f64;
        PerToken {
            calls: f(c.calls),
            h2d_calls: f(c.h2d_calls),
            d2d_calls: f(c.d2d_calls),
            d2h_calls: f(c.d2h_calls),
            executes: f(c.execute_calls),
            binds: f(c.bind_calls),
            pinned: f(c.pinned_copies),
            h2d_bytes: f(c.h2d_bytes),
            d2d_bytes: f(c.d2d_bytes),
            d2h_bytes: f(c.d2h_bytes),
        }
    }
}

/// Decode speed and traffic.
#[derive(Debug, Clone, Copy)]
pub struct Decode {
    pub tok_s: f64,
    pub per_token: PerToken,
}

/// Host work per token with zero latency.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// CPU time of the thread per token: our code, the sampler and the simulator.
    pub cpu_us: f64,
    /// Rust allocations per token in this process (the simulator's are its own).
    pub allocations: f64,
    pub per_token: PerToken,
}

/// Feeds a short prompt and `warmup` tokens; returns the next token to feed.
fn prime(r: &mut dyn Runner, s: &mut Sampler, logits: &[u16], warmup: usize) -> Result<u32> {
    r.reset()?;
    r.feed_prompt(&ids(16, 1))?;
    let mut t = s.sample(logits);
    for _ in 0..warmup {
        r.feed_token(t)?;
        s.accept(t);
        t = s.sample(logits);
    }
    Ok(t)
}

/// Feeds `n` tokens, sampling each next one (the token loop of a generation).
fn loop_tokens(r: &mut dyn Runner, s: &mut Sampler, logits: &[u16], mut t: u32, n: usize) -> Result<()> {
    for _ in 0..n {
        r.feed_token(t)?;
        s.accept(t);
        t = s.sample(logits);
    }
    Ok(())
}

/// Decode tok/s over `n` tokens with whatever latency is configured, from the
/// median time per token (robust to the odd preemption on a shared machine).
pub fn decode(r: &mut dyn Runner, sim: &SimHooks, logits: &[u16], n: usize) -> Result<Decode> {
    anyhow::ensure!(n > 0, "no decode tokens");
    let mut s = sampler(logits.len());
    let mut t = prime(r, &mut s, logits, 2)?;
    let mut times = Vec::with_capacity(n);
    sim.reset_counters()?;
    for _ in 0..n {
        let start = Instant::now();
        r.feed_token(t)?;
        s.accept(t);
        t = s.sample(logits);
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(Decode { tok_s: 1.0 / times[n / 2], per_token: PerToken::of(&sim.counters()?, n) })
}

/// Host CPU and allocations per token over `n` tokens; the caller has set zero latency.
pub fn host(r: &mut dyn Runner, sim: &SimHooks, logits: &[u16], n: usize) -> Result<Host> {
    let mut s = sampler(logits.len());
    let t = prime(r, &mut s, logits, 70)?; // past the penalty window: steady state
    sim.reset_counters()?;
    let cpu = thread_cpu_ns();
    let allocs = sys::allocations();
    loop_tokens(r, &mut s, logits, t, n)?;
    let allocs = sys::allocations() - allocs;
    let cpu = thread_cpu_ns() - cpu;
    Ok(Host {
        cpu_us: cpu as f64 / 1e3 / n as f64,
        allocations: allocs as f64 / n as f64,
        per_token: PerToken::of(&sim.counters()?, n),
    })
}

/// Time to first token of `prompt` from an empty cache, s.
pub fn ttft(r: &mut dyn Runner, logits: &[u16], prompt: &[u32]) -> Result<f64> {
    r.reset()?;
    let mut s = sampler(logits.len());
    let start = Instant::now();
    r.feed_prompt(prompt)?;
    s.sample(logits);
    Ok(start.elapsed().as_secs_f64())
}

/// Second turn: (TTFT reusing `prefix` with `new` more tokens, TTFT of re-prefilling it all), s.
pub fn second_turn(r: &mut dyn Runner, logits: &[u16], prefix: usize, new: usize) -> Result<(f64, f64)> {
    let all = ids(prefix + new, 3);
    r.reset()?;
    r.feed_prompt(&all[..prefix])?;
    let mut s = sampler(logits.len());
    let start = Instant::now();
    r.feed_prompt(&all)?;
    s.sample(logits);
    let reuse = start.elapsed().as_secs_f64();
    Ok((reuse, ttft(r, logits, &all)?))
}

/// Sampling time over `logits` with `opts` after a warm-up: (mean, 99th
/// percentile, max) µs over `n` draws.
pub fn sampling(logits: &[u16], opts: SamplingOptions, n: usize) -> Result<(f64, f64, f64)> {
    anyhow::ensure!(n > 0, "no samples");
    let mut s = Sampler::new(opts, logits.len());
    for t in ids(64, 9) {
        s.accept(t);
    }
    for _ in 0..20 {
        s.sample(logits);
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let t = s.sample(logits);
        times.push(start.elapsed().as_secs_f64() * 1e6);
        s.accept(t);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / n as f64;
    Ok((mean, times[(n * 99 / 100).min(n - 1)], times[n - 1]))
}

/// Load time and memory of one runner, measured in a fresh child process.
#[derive(Debug, Clone, Copy)]
pub struct LoadProbe {
    pub load_s: f64,
    pub rss_kib: u64,
    /// Device memory the simulator holds (part of the RSS here; on the card on hardware).
    pub device_kib: u64,
}

impl LoadProbe {
    /// Parses the child's report line `load_s=.. rss_kib=.. device_kib=..`.
    pub fn parse(line: &str) -> Result<LoadProbe> {
        let field = |k: &str| -> Result<&str> {
            line.split_whitespace().find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')).with_context(|| format!("{k} in {line:?}"))
        };
        Ok(LoadProbe { load_s: field("load_s")?.parse()?, rss_kib: field("rss_kib")?.parse()?, device_kib: field("device_kib")?.parse()? })
    }

    pub fn line(&self) -> String {
        format!("load_s={} rss_kib={} device_kib={}", self.load_s, self.rss_kib, self.device_kib)
    }
}
