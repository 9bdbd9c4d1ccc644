//! The benchmark: our call schedules against the vendor runner's, on the
//! simulator's timing-only models at Qwen3-0.6B, 1.7B and 4B geometry, with a
//! latency model calibrated to the published AX650N and Raspberry Pi 5 numbers
//! (see `calibration.rs` and BENCHMARKS.md). Not part of the test suite.
//!
//! `cargo build --release -p axcl-sim && cargo run --release --example bench [-- --models 0.6b,4b]`
//!
//! From one run it prints, per model and side by side for the vendor runner and
//! our schedules: decode tok/s and its ratio to an ideal runner; runtime calls
//! and bytes per token; host CPU per token with zero latency (with the
//! simulator's estimated share and the allocations per token); TTFT of 128,
//! 512, 1024 and 2000-token prompts and its ratio to ideal; second-turn TTFT
//! reusing a 1000-token prefix against a full re-prefill; load time and RSS.

mod calibration;
#[path = "../support/env.rs"]
mod env;
mod hybrid;
mod measure;
mod runner;
mod slots;
mod sys;
mod vendor;

use anyhow::{Context, Result, bail};
use axllm_core::Execution;
use axllm_core::Schedule;
use axllm_core::npu::{Runtime, SimHooks};
use calibration::{Calibration, MODELS, Shape};
use clap::Parser;
use measure::{Decode, Host, LoadProbe};
use runner::{Ours, Runner};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vendor::{CallCosts, Vendor};

#[global_allocator]
static ALLOC: sys::Counting = sys::Counting;

const TTFT_PROMPTS: [usize; 4] = [128, 512, 1024, 2000];
const PREFIX: usize = 1000;
const NEW: usize = 20;

#[derive(Parser, Debug)]
#[command(about = "Call schedules against the vendor runner on the calibrated simulator")]
struct Args {
    /// Models to run: 0.6b, 1.7b, 4b (default: all).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Decode tokens timed per runner with the Pi 5 latency model.
    #[arg(long, default_value_t = 32)]
    decode_tokens: usize,
    /// Tokens timed per runner with zero latency (host CPU).
    #[arg(long, default_value_t = 300)]
    host_tokens: usize,
    /// Our schedules to measure next to the vendor runner, one per flag
    /// (default: safe, fewest-calls, fewest-calls,async).
    #[arg(long = "schedule", value_name = "SCHEDULE")]
    schedules: Vec<Schedule>,
    /// Internal: load `RUNNER` from `DIR` in this process and report load time and RSS.
    #[arg(long, hide = true, num_args = 2, value_names = ["DIR", "RUNNER"])]
    probe_load: Vec<String>,
    /// Print the Pi 5 simulator configuration of a model (0.6b, 1.7b, 4b) and exit.
    #[arg(long, value_name = "MODEL")]
    pi5_spec: Option<String>,
    /// Generate through the library's generation API from the package at DIR
    /// (latency from AXCL_SIM_CONFIG, schedule from AXLLM_SCHEDULE) and print
    /// the rate as JSON: the reference scripts/bench_ollama.py compares Ollama with.
    #[arg(long, value_name = "DIR")]
    library_generate: Option<PathBuf>,
    /// Tokens for --library-generate.
    #[arg(long, default_value_t = 48)]
    num_predict: usize,
    /// Run the Qwen3.5 packages instead of the Qwen3 ones (`--models` filters
    /// by name, e.g. `0.8b,int4`): decode and TTFT against the vendor runner's
    /// published Pi 5 numbers.
    #[arg(long)]
    qwen35: bool,
    /// Measure KV slots instead (1 against 2): a chat's TTFT while a long
    /// generation runs, and a second turn after an unrelated prompt.
    #[arg(long)]
    slots: bool,
    /// Tokens of the long generation for --slots.
    #[arg(long, default_value_t = 1000)]
    long_tokens: usize,
}

/// Who runs the workloads.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Vendor,
    Ours(Schedule),
}

/// Our schedules measured when `--schedule` is not given.
const SCHEDULES: [Schedule; 3] =
    [Schedule::SAFE, Schedule::FEWEST_CALLS, Schedule { execution: Execution::Async, ..Schedule::FEWEST_CALLS }];

impl Kind {
    fn label(self) -> String {
        match self {
            Kind::Vendor => "vendor runner".into(),
            Kind::Ours(s) if s == Schedule::default() => format!("{s} (default)"),
            Kind::Ours(s) => format!("{s} (opt-in)"),
        }
    }
    fn arg(self) -> String {
        match self {
            Kind::Vendor => "vendor".into(),
            Kind::Ours(s) => s.to_string(),
        }
    }
    fn parse(arg: &str) -> Result<Kind> {
        Ok(if arg == "vendor" { Kind::Vendor } else { Kind::Ours(arg.parse()?) })
    }
    fn load(self, dir: &Path, lib: &Path, rt: &std::sync::Arc<Runtime>) -> Result<Box<dyn Runner>> {
        Ok(match self {
            Kind::Vendor => Box::new(Vendor::load(&rt.device(0)?, dir)?),
            Kind::Ours(s) => Box::new(Ours::load(dir, lib, s)?),
        })
    }
}

/// Everything measured for one runner on one model.
struct Results {
    decode: Decode,
    host: Host,
    ttft: Vec<f64>,
    second_turn: (f64, f64),
    load: LoadProbe,
}

/// The simulator library of this build profile (built when missing).
fn sim_library() -> Result<PathBuf> {
    Ok(axllm_testkit::sim_library())
}

fn hooks(rt: &Runtime) -> Result<&SimHooks> {
    rt.simulator().context("the runtime is not axcl-sim")
}

/// The child side of a load probe: load, report, exit.
fn probe_load(dir: &Path, kind: Kind, lib: &Path) -> Result<()> {
    let rt = Runtime::open(Some(lib))?;
    let start = Instant::now();
    let runner = kind.load(dir, lib, &rt)?;
    let load_s = start.elapsed().as_secs_f64();
    let device_kib = hooks(&rt)?.counters()?.live_bytes / 1024;
    println!("{}", LoadProbe { load_s, rss_kib: measure::rss_kib(), device_kib }.line());
    drop(runner);
    Ok(())
}

/// Runs a load probe in a fresh process with the Pi 5 latency model.
fn load_in_child(dir: &Path, kind: Kind, spec: &str) -> Result<LoadProbe> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--probe-load")
        .arg(dir)
        .arg(kind.arg())
        .env("AXCL_SIM_CONFIG", spec)
        .output()?;
    if !out.status.success() {
        bail!("load probe of {} failed: {}", kind.label(), String::from_utf8_lossy(&out.stderr));
    }
    LoadProbe::parse(String::from_utf8_lossy(&out.stdout).trim())
}

fn run_kind(kind: Kind, dir: &Path, lib: &Path, rt: &std::sync::Arc<Runtime>, spec: &str, args: &Args, logits: &[u16]) -> Result<(Results, Option<CallCosts>)> {
    let sim = hooks(rt)?;
    let load = load_in_child(dir, kind, spec)?;
    sim.configure(spec)?;
    let mut r = kind.load(dir, lib, rt)?;
    let decode = measure::decode(r.as_mut(), sim, logits, args.decode_tokens)?;
    let ttft = TTFT_PROMPTS.iter().map(|&n| measure::ttft(r.as_mut(), logits, &measure::ids(n, 2))).collect::<Result<_>>()?;
    let second_turn = measure::second_turn(r.as_mut(), logits, PREFIX, NEW)?;
    sim.configure("reset")?;
    let host = measure::host(r.as_mut(), sim, logits, args.host_tokens)?;
    drop(r);
    // The simulator's cost per call kind, measured once on the vendor runner's buffers.
    let costs = match kind {
        Kind::Vendor => Some(Vendor::load(&rt.device(0)?, dir)?.call_costs(2000)?),
        Kind::Ours(_) => None,
    };
    Ok((Results { decode, host, ttft, second_turn, load }, costs))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().ok();
    let date = date.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
    format!("{cores} cores ({cpu}), {date}")
}

fn print_calibration(cal: &Calibration) {
    println!(
        "calibration: call_us {:.1} (fitted), h2d/d2h {} MB/s, d2d {} MB/s; prefill_us = {:.0} + {:.3e}·layer_weights",
        cal.call_us,
        calibration::LINK_MBPS,
        calibration::D2D_MBPS,
        cal.prefill_fixed_us,
        cal.prefill_us_per_weight
    );
    println!(
        "  {:<11} {:>6} {:>5} {:>7} {:>9} {:>10} {:>8} {:>9} {:>9} {:>10}",
        "model", "layers", "H", "native", "Pi 5", "exec_us", "post_us", "prefill_us", "vendor", "(fit err)"
    );
    for (i, m) in MODELS.iter().enumerate() {
        let (s, n) = (&cal.shapes[i], &cal.npu[i]);
        let fit = cal.predicted_vendor_tok_s(i);
        println!(
            "  {:<11} {:>6} {:>5} {:>7.2} {:>9.2} {:>10.1} {:>8.1} {:>9.1} {:>9.2} {:>+9.1}%",
            m.name,
            s.layers,
            s.hidden,
            m.native_tok_s,
            m.pi5_tok_s,
            n.exec_us,
            n.post_us,
            n.prefill_us,
            fit,
            100.0 * (fit / m.pi5_tok_s - 1.0)
        );
    }
}

fn row(label: &str, cells: impl IntoIterator<Item = String>) {
    print!("  {label:<44}");
    for c in cells {
        print!(" {c:>26}");
    }
    println!();
}

/// The simulator's estimated CPU per token: its per-call cost times the calls made.
fn sim_share(c: &CallCosts, t: &measure::PerToken) -> f64 {
    (t.h2d_calls * c.h2d_mask + t.d2d_calls * c.d2d_row + t.d2h_calls * c.d2h_logits + t.executes * c.execute + t.binds * c.bind) / 1e3
}

fn print_model(i: usize, cal: &Calibration, results: &[(Kind, Results)], costs: &CallCosts) {
    let ideal = 1.0 / cal.ideal_decode_s(i);
    let r = |f: &dyn Fn(&Results) -> String| results.iter().map(|(_, x)| f(x)).collect::<Vec<_>>();
    let kb = |b: f64| format!("{:.1}", b / 1024.0);
    row("", results.iter().map(|(k, _)| k.label()));
    row(&format!("decode tok/s (ideal {ideal:.2})"), r(&|x| format!("{:.2}", x.decode.tok_s)));
    row("  ratio to ideal", r(&|x| format!("{:.3}", x.decode.tok_s / ideal)));
    row("runtime calls per token", r(&|x| format!("{:.0}", x.decode.per_token.calls)));
    row("  H2D / executes / D2D / D2H", r(&|x| {
        let t = &x.decode.per_token;
        format!("{:.0}/{:.0}/{:.0}/{:.0}", t.h2d_calls, t.executes, t.d2d_calls, t.d2h_calls)
    }));
    row("  host-local bindings", r(&|x| format!("{:.0}", x.decode.per_token.binds)));
    row("KiB per token H2D / D2D / D2H", r(&|x| {
        let t = &x.decode.per_token;
        format!("{}/{}/{}", kb(t.h2d_bytes), kb(t.d2d_bytes), kb(t.d2h_bytes))
    }));
    row("host CPU µs/token, zero latency", r(&|x| format!("{:.0}", x.host.cpu_us)));
    row("  of which simulator (estimate)", r(&|x| format!("{:.0}", sim_share(costs, &x.host.per_token))));
    row("  Rust allocations per token", r(&|x| format!("{:.2}", x.host.allocations)));
    println!(
        "  (simulator CPU per call, ns: H2D mask {:.0}, D2D row {:.0}, D2H logits {:.0}, execute {:.0}, bind {:.0})",
        costs.h2d_mask, costs.d2d_row, costs.d2h_logits, costs.execute, costs.bind
    );
    for (j, &n) in TTFT_PROMPTS.iter().enumerate() {
        let ideal = cal.ideal_ttft_s(i, n);
        row(&format!("TTFT {n} tokens, s (ideal {ideal:.3})"), r(&|x| format!("{:.3} ({:.3})", x.ttft[j], ideal / x.ttft[j])));
    }
    row(&format!("2nd turn: {PREFIX} reused + {NEW} new, s"), r(&|x| format!("{:.3}", x.second_turn.0)));
    row(&format!("  full re-prefill of {}, s", PREFIX + NEW), r(&|x| format!("{:.3}", x.second_turn.1)));
    row("  speed-up from reuse", r(&|x| format!("{:.1}x", x.second_turn.1 / x.second_turn.0)));
    row("load time, s (no weights to upload)", r(&|x| format!("{:.2}", x.load.load_s)));
    row("RSS after load, MiB", r(&|x| format!("{:.0}", x.load.rss_kib as f64 / 1024.0)));
    row("  minus simulated device memory, MiB", r(&|x| format!("{:.0}", (x.load.rss_kib as f64 - x.load.device_kib as f64) / 1024.0)));
}

/// `--library-generate`: one generation with Ollama's default sampling;
/// prints when each piece of text arrived (s), for the caller to compute the
/// rate exactly as it does for a streaming HTTP client.
fn library_generate(dir: &Path, lib: &Path, num_predict: usize) -> Result<()> {
    let opts = axllm_core::LoadOptions {
        runtime_library: Some(lib.to_path_buf()),
        schedule: env::schedule()?,
        ..Default::default()
    };
    let model = axllm_core::Model::load(dir, &opts)?;
    let gen_opts = axllm_core::GenerateOptions {
        sampling: axllm_core::SamplingOptions { seed: 7, ..Default::default() },
        num_predict: Some(num_predict),
        ..Default::default()
    };
    let start = Instant::now();
    let mut g = model.begin(ollama_prompt(), &gen_opts)?;
    let mut times = Vec::new();
    while let axllm_core::Step::Text(_) = g.next()? {
        times.push(start.elapsed().as_secs_f64());
    }
    let times: Vec<String> = times.iter().map(|t| format!("{t:.6}")).collect();
    let (n, schedule) = (g.stats().generated, model.info().schedule);
    println!("{{\"generated\": {n}, \"schedule\": \"{schedule}\", \"times\": [{}]}}", times.join(", "));
    Ok(())
}

/// The prompt both sides of the Ollama comparison generate from.
fn ollama_prompt() -> &'static str {
    "The quick brown fox jumps over the lazy dog."
}

fn main() -> Result<()> {
    let args = Args::parse();
    let lib = sim_library()?;
    if let [dir, kind] = args.probe_load.as_slice() {
        return probe_load(Path::new(dir), Kind::parse(kind)?, &lib);
    }
    if let Some(model) = &args.pi5_spec {
        let i = MODELS.iter().position(|m| m.name.trim_start_matches("Qwen3-").eq_ignore_ascii_case(model)).context("--pi5-spec: 0.6b, 1.7b or 4b")?;
        println!("{}", Calibration::fit().pi5_spec(i));
        return Ok(());
    }
    if let Some(dir) = &args.library_generate {
        return library_generate(dir, &lib, args.num_predict);
    }
    let started = Instant::now();
    let cal = Calibration::fit();
    println!("axllm bench on {}", machine());
    print_calibration(&cal);
    println!(
        "workload: decode {} tokens per runner (Pi 5 model), host CPU over {} tokens (zero latency), TTFT prompts {TTFT_PROMPTS:?}, second turn {PREFIX} + {NEW}",
        args.decode_tokens, args.host_tokens
    );
    let logits = measure::synthetic_logits(151_936);
    let defaults = axllm_core::SamplingOptions { seed: 7, ..Default::default() };
    let (mean, p99, max) = measure::sampling(&logits, defaults, 1000)?;
    println!(
        "sampling 151936 logits, Ollama defaults (T 0.8, top_k 40, top_p 0.9, repeat_last_n 64): mean {mean:.0} µs, p99 {p99:.0} µs, max {max:.0} µs"
    );
    let (mean, p99, max) = measure::sampling(&logits, axllm_core::SamplingOptions { repeat_penalty: 1.1, ..defaults }, 1000)?;
    println!("  with repeat_penalty 1.1 over the last 64 tokens: mean {mean:.0} µs, p99 {p99:.0} µs, max {max:.0} µs");

    let rt = Runtime::open(Some(&lib))?;
    if args.slots {
        slots::run(&lib, &cal, args.long_tokens)?;
        println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
        return Ok(());
    }
    if args.qwen35 {
        let ours = if args.schedules.is_empty() { SCHEDULES.to_vec() } else { args.schedules.clone() };
        hybrid::run(&lib, &rt, &cal, &ours, args.decode_tokens, &args.models)?;
        println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
        return Ok(());
    }
    for (i, m) in MODELS.iter().enumerate() {
        let short = m.name.trim_start_matches("Qwen3-").to_lowercase();
        if !args.models.is_empty() && !args.models.contains(&short) {
            continue;
        }
        let tmp = tempfile::tempdir()?;
        let dir = axsim_pack::write_timing_model(tmp.path(), &m.preset.options())?.model_dir;
        let s: &Shape = &cal.shapes[i];
        println!(
            "\n== {}: {} layers, H {}, D {}, C {}, T {}, V {}; Pi 5 model: {}",
            m.name,
            s.layers,
            s.hidden,
            s.kv_dim,
            s.context,
            s.chunk,
            s.vocab,
            cal.pi5_spec(i).trim_start_matches("reset;")
        );
        let spec = cal.pi5_spec(i);
        let mut results = Vec::new();
        let mut costs = CallCosts::default();
        let ours = if args.schedules.is_empty() { SCHEDULES.to_vec() } else { args.schedules.clone() };
        for kind in std::iter::once(Kind::Vendor).chain(ours.into_iter().map(Kind::Ours)) {
            let (res, c) = run_kind(kind, &dir, &lib, &rt, &spec, &args, &logits).with_context(|| format!("{}: {}", m.name, kind.label()))?;
            costs = c.unwrap_or(costs);
            results.push((kind, res));
        }
        print_model(i, &cal, &results, &costs);
    }
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
