//! The benchmark: our call schedules against the vendor runner's, on the
//! simulator's timing-only models at Qwen3-0.6B, 1.7B and 4B geometry in
//! w8a16 and w4a16 (AXERA's `C128-P1152-CTX2047` builds), with the Pi 5 +
//! LLM-8850 timing model of `axsim_pack::calibration` (see BENCHMARKS.md).
//! Not part of the test suite.
//!
//! `cargo run --release --example bench [-- --models 0.6b,4b] [--quants w8a16] [--json FILE]`
//!
//! It prints the published data points beside the model's predictions and,
//! per model, side by side for the vendor runner and our schedules: decode
//! tok/s and its ratio to ideal (the device time of one token); runtime calls
//! and bytes per token; host CPU per token with zero latency (with the
//! simulator's estimated share and the allocations per token); TTFT of 128,
//! 512, 1024 and 2000-token prompts and its ratio to ideal; second-turn TTFT
//! reusing a 1000-token prefix against a full re-prefill; load time and RSS.
//! With `--json FILE` it also writes one row per model, quantisation and runner.
//!
//! Decode and TTFT up to 1024 tokens run in real time. TTFT of 2000 tokens
//! (848 of them beyond the prefill groups, so decoded) and the second turn run
//! with the simulator's `time_scale` and are reported at real scale (the
//! measured time divided by the scale: the host's share is overstated by
//! 1/scale, never understated).

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
use axllm_core::Schedule;
use axllm_core::npu::{Runtime, SimHooks};
use axsim_pack::calibration::pi5_spec;
use axsim_pack::{Quant, TimingPreset};
use calibration::{Costs, Point};
use clap::Parser;
use measure::{Decode, Host, LoadProbe};
use runner::{Ours, Runner};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vendor::{CallCosts, Vendor};

#[global_allocator]
static ALLOC: sys::Counting = sys::Counting;

const TTFT_PROMPTS: [usize; 4] = [128, 512, 1024, 2000];
/// Runs per TTFT measured in real time (their median is reported).
const TTFT_REPS: usize = 3;
/// Prompts at least this long run with the time scale.
const SCALED_FROM: usize = 2000;
const PREFIX: usize = 1000;
const NEW: usize = 20;

const MODELS: [(TimingPreset, &str); 3] =
    [(TimingPreset::Qwen3_0_6B, "Qwen3-0.6B"), (TimingPreset::Qwen3_1_7B, "Qwen3-1.7B"), (TimingPreset::Qwen3_4B, "Qwen3-4B")];
const QUANTS: [Quant; 2] = [Quant::W8a16, Quant::Int4];

#[derive(Parser, Debug)]
#[command(about = "Call schedules against the vendor runner on the Pi 5 timing model")]
struct Args {
    /// Models to run: 0.6b, 1.7b, 4b (default: all).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Quantisations to run: w8a16, w4a16 (default: both).
    #[arg(long, value_delimiter = ',')]
    quants: Vec<String>,
    /// Decode tokens timed per runner with the Pi 5 latency model.
    #[arg(long, default_value_t = 32)]
    decode_tokens: usize,
    /// Tokens timed per runner with zero latency (host CPU).
    #[arg(long, default_value_t = 300)]
    host_tokens: usize,
    /// Our schedules to measure next to the vendor runner, one per flag
    /// (default: the default schedule and `safe`).
    #[arg(long = "schedule", value_name = "SCHEDULE")]
    schedules: Vec<Schedule>,
    /// Skip the vendor runner except on Qwen3-0.6B w8a16 (its published data point).
    #[arg(long)]
    vendor_once: bool,
    /// Simulated-time factor of the long workloads (TTFT 2000, second turn).
    #[arg(long, default_value_t = 0.1)]
    time_scale: f64,
    /// Also write the results as JSON rows to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Internal: load `RUNNER` from `DIR` in this process and report load time and RSS.
    #[arg(long, hide = true, num_args = 2, value_names = ["DIR", "RUNNER"])]
    probe_load: Vec<String>,
    /// Print the Pi 5 simulator configuration (the same for every model; the
    /// device costs travel in the timing models) and exit.
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

impl Kind {
    fn label(self) -> String {
        match self {
            Kind::Vendor => "vendor runner".into(),
            Kind::Ours(s) if s == Schedule::default() => format!("{s} (default)"),
            Kind::Ours(s) => format!("{s} (opt-in)"),
        }
    }
    /// The JSON `schedule`: "default" for the default, else the name.
    fn json_name(self) -> String {
        match self {
            Kind::Vendor => "vendor".into(),
            Kind::Ours(s) if s == Schedule::default() => "default".into(),
            Kind::Ours(s) => s.to_string(),
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
            Kind::Ours(s) => Box::new(Ours::load(dir, lib, s)?.with_generation()),
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

fn run_kind(kind: Kind, dir: &Path, lib: &Path, rt: &std::sync::Arc<Runtime>, args: &Args, logits: &[u16]) -> Result<(Results, Option<CallCosts>)> {
    let sim = hooks(rt)?;
    let spec = pi5_spec();
    let scaled = format!("{spec};time_scale={}", args.time_scale);
    let load = load_in_child(dir, kind, &spec)?;
    sim.configure(&spec)?;
    let mut r = kind.load(dir, lib, rt)?;
    let decode = measure::decode(r.as_mut(), sim, logits, args.decode_tokens)?;
    let mut ttft = Vec::new();
    for &n in &TTFT_PROMPTS {
        let scale = if n >= SCALED_FROM { args.time_scale } else { 1.0 };
        sim.configure(if scale == 1.0 { &spec } else { &scaled })?;
        // The median of three where a run is short (one TTFT is one sample of
        // the host's timing noise); the scaled 2000-token prompt runs once.
        let reps = if scale == 1.0 { TTFT_REPS } else { 1 };
        let mut runs = (0..reps).map(|_| measure::ttft(r.as_mut(), logits, &measure::ids(n, 2))).collect::<Result<Vec<f64>>>()?;
        runs.sort_by(f64::total_cmp);
        ttft.push(runs[runs.len() / 2] / scale);
    }
    sim.configure(&scaled)?;
    let (reuse, full) = measure::second_turn(r.as_mut(), logits, PREFIX, NEW)?;
    let second_turn = (reuse / args.time_scale, full / args.time_scale);
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

fn print_points(points: &[Point]) {
    println!("  {:<52} {:<24} {:>10} {:>10} {:>8}  {}", "data point", "source", "published", "model", "error", "");
    for p in points {
        println!(
            "  {:<52} {:<24} {:>10.2} {:>10.2} {:>+7.1}%  {} ({})",
            p.what,
            p.source,
            p.measured,
            p.predicted,
            p.error_pct(),
            p.unit,
            p.how
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

fn print_model(costs: &Costs, results: &[(Kind, Results)], call_costs: &CallCosts) {
    let ideal = 1.0 / costs.ideal_decode_s();
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
    row("  copies from pinned host memory", r(&|x| format!("{:.0}", x.decode.per_token.pinned)));
    row("KiB per token H2D / D2D / D2H", r(&|x| {
        let t = &x.decode.per_token;
        format!("{}/{}/{}", kb(t.h2d_bytes), kb(t.d2d_bytes), kb(t.d2h_bytes))
    }));
    row("host CPU µs/token, zero latency", r(&|x| format!("{:.0}", x.host.cpu_us)));
    row("  of which simulator (estimate)", r(&|x| format!("{:.0}", sim_share(call_costs, &x.host.per_token))));
    row("  Rust allocations per token", r(&|x| format!("{:.2}", x.host.allocations)));
    println!(
        "  (simulator CPU per call, ns: H2D mask {:.0}, D2D row {:.0}, D2H logits {:.0}, execute {:.0}, bind {:.0})",
        call_costs.h2d_mask, call_costs.d2d_row, call_costs.d2h_logits, call_costs.execute, call_costs.bind
    );
    for (j, &n) in TTFT_PROMPTS.iter().enumerate() {
        let ideal = costs.ideal_ttft_s(n);
        let scaled = if n >= SCALED_FROM { "*" } else { "" };
        row(&format!("TTFT {n} tokens{scaled}, s (ideal {ideal:.3})"), r(&|x| format!("{:.3} ({:.3})", x.ttft[j], ideal / x.ttft[j])));
    }
    row("prefill tok/s, 1024 tokens", r(&|x| format!("{:.0}", 1024.0 / x.ttft[2])));
    row(&format!("2nd turn*: {PREFIX} reused + {NEW} new, s"), r(&|x| format!("{:.3}", x.second_turn.0)));
    row(&format!("  full re-prefill* of {}, s", PREFIX + NEW), r(&|x| format!("{:.3}", x.second_turn.1)));
    row("  speed-up from reuse", r(&|x| format!("{:.1}x", x.second_turn.1 / x.second_turn.0)));
    row("load time, s (no weights to upload)", r(&|x| format!("{:.2}", x.load.load_s)));
    row("RSS after load, MiB", r(&|x| format!("{:.0}", x.load.rss_kib as f64 / 1024.0)));
    row("  minus simulated device memory, MiB", r(&|x| format!("{:.0}", (x.load.rss_kib as f64 - x.load.device_kib as f64) / 1024.0)));
}

/// One JSON row (the format).
fn json_row(model: &str, quant: Quant, kind: Kind, costs: &Costs, x: &Results) -> serde_json::Value {
    let map = |f: &dyn Fn(usize, usize) -> f64| {
        TTFT_PROMPTS.iter().enumerate().map(|(j, &n)| (n.to_string(), serde_json::json!(f(j, n)))).collect::<serde_json::Map<_, _>>()
    };
    serde_json::json!({
        "model": model,
        "quant": quant.label(),
        "schedule": kind.json_name(),
        "decode_tok_s": x.decode.tok_s,
        "ideal_decode_tok_s": 1.0 / costs.ideal_decode_s(),
        "ttft_s": map(&|j, _| x.ttft[j]),
        "ideal_ttft_s": map(&|_, n| costs.ideal_ttft_s(n)),
        "prefill_tok_s": 1024.0 / x.ttft[2],
        "calls_per_token": x.decode.per_token.calls,
        "host_cpu_us_per_token": x.host.cpu_us,
        "allocations_per_token": x.host.allocations,
    })
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
    let lib = axllm_testkit::sim_library();
    if let [dir, kind] = args.probe_load.as_slice() {
        return probe_load(Path::new(dir), Kind::parse(kind)?, &lib);
    }
    if args.pi5_spec.is_some() {
        println!("{}", pi5_spec());
        return Ok(());
    }
    if let Some(dir) = &args.library_generate {
        return library_generate(dir, &lib, args.num_predict);
    }
    anyhow::ensure!(args.time_scale > 0.0 && args.time_scale <= 1.0, "--time-scale must be in (0, 1]");
    let started = Instant::now();
    println!("axllm bench on {}", machine());
    println!("Pi 5 + LLM-8850 timing model (axsim-pack/src/calibration.rs): {}", pi5_spec().trim_start_matches("reset;"));
    println!("published data points and the model's predictions:");
    let mut points = calibration::analytic_points();
    print_points(&points);
    println!(
        "workload: decode {} tokens per runner, host CPU over {} tokens (zero latency), TTFT prompts {TTFT_PROMPTS:?}, second turn {PREFIX} + {NEW}; * = run at time_scale {} and reported at real scale",
        args.decode_tokens, args.host_tokens, args.time_scale
    );
    let logits = measure::synthetic_logits(151_936);
    let defaults = axllm_core::SamplingOptions { seed: 7, ..Default::default() };
    let (mean, p99, max) = measure::sampling(&logits, defaults, 1000)?;
    println!(
        "sampling 151936 logits, Ollama defaults (T 0.8, top_k 40, top_p 0.9, repeat_last_n 64): mean {mean:.0} µs, p99 {p99:.0} µs, max {max:.0} µs"
    );
    let (mean, p99, max) = measure::sampling(&vec![0; 151_936], defaults, 1000)?;
    println!(
        "  the same on all-zero logits (what a timing-only model returns to our generation loop): mean {mean:.0} µs, p99 {p99:.0} µs, max {max:.0} µs"
    );

    let rt = Runtime::open(Some(&lib))?;
    if args.slots {
        slots::run(&lib, args.long_tokens)?;
        println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
        return Ok(());
    }
    let ours = if args.schedules.is_empty() { vec![Schedule::default(), Schedule::SAFE] } else { args.schedules.clone() };
    if args.qwen35 {
        hybrid::run(&lib, &rt, &ours, args.decode_tokens, &args.models)?;
        println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut simulated = Vec::new();
    // The simulator's CPU per call kind, measured where the vendor runner
    // runs and carried to the models it skips (`--vendor-once`).
    let mut call_costs = CallCosts::default();
    for (preset, name) in MODELS {
        let short = name.trim_start_matches("Qwen3-").to_lowercase();
        if !args.models.is_empty() && !args.models.contains(&short) {
            continue;
        }
        for quant in QUANTS {
            if !args.quants.is_empty() && !args.quants.iter().any(|q| q == quant.label()) {
                continue;
            }
            let tmp = tempfile::tempdir()?;
            let opts = axsim_pack::TimingOptions { quant, ..preset.options() };
            let dir = axsim_pack::write_timing_model(tmp.path(), &opts)?.model_dir;
            let costs = Costs::of(preset, quant);
            println!(
                "\n== {name} {}: {} layers, H {}, D {}, C 2047, T {}, V {}; device µs: layer {:.0}, chunk {:.0} + {:.2}·history, post {:.0}",
                quant.label(),
                costs.layers,
                costs.hidden,
                costs.kv_dim,
                costs.chunk,
                costs.vocab,
                costs.decode_us,
                costs.chunk_us,
                costs.history_row_us,
                costs.post_us
            );
            let with_vendor = !args.vendor_once || (preset == TimingPreset::Qwen3_0_6B && quant == Quant::W8a16);
            let kinds = with_vendor.then_some(Kind::Vendor).into_iter().chain(ours.iter().copied().map(Kind::Ours));
            let mut results = Vec::new();
            for kind in kinds {
                let (res, c) = run_kind(kind, &dir, &lib, &rt, &args, &logits).with_context(|| format!("{name}: {}", kind.label()))?;
                call_costs = c.unwrap_or(call_costs);
                rows.push(json_row(name, quant, kind, &costs, &res));
                results.push((kind, res));
            }
            print_model(&costs, &results, &call_costs);
            if preset == TimingPreset::Qwen3_0_6B {
                let find = |f: &dyn Fn(Kind) -> bool| results.iter().find(|(k, _)| f(*k)).map(|(_, x)| x.decode.tok_s);
                let vendor = find(&|k| matches!(k, Kind::Vendor));
                let default = find(&|k| matches!(k, Kind::Ours(s) if s == Schedule::default()));
                let point = |what, source, measured, predicted| Point { what, source, measured, predicted, unit: "tok/s", how: "simulated" };
                match quant {
                    Quant::W8a16 => {
                        simulated.extend(vendor.map(|v| point("vendor runtime, its call pattern, 0.6B w8a16", "F36 (13.5 tok/s)", 13.5, v)));
                        simulated.extend(default.map(|v| point("our default (the open driver's pattern), 0.6B w8a16", "F22 (19.6 tok/s)", 19.6, v)));
                    }
                    Quant::Int4 => {
                        simulated.extend(default.map(|v| point("our default, 0.6B w4a16", "F36 (24.5 tok/s)", 24.5, v)));
                    }
                }
            }
        }
    }
    if !simulated.is_empty() {
        println!("\ndata points measured on the simulator (decode with Ollama's sampling on the host):");
        print_points(&simulated);
    }
    points.extend(simulated);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&serde_json::Value::Array(rows))?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
