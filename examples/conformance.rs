//! The conformance kit: checks what the code relies on about AXERA's AXCL
//! runtime against whichever `libaxcl_rt.so` is selected (`$AXLLM_AXCL_LIB`,
//! else the vendor's install), runs a short timing probe, and writes one
//! markdown report to attach to a bug report.
//!
//! Every check is tagged DOCUMENTED (AXERA states it) or INFERRED (observed by
//! others or our reading), with the ids of docs/hardware-facts.md it settles,
//! and ends PASS, FAIL or SKIP with the reason; a failing call is a FAIL line,
//! never a crash. The timing probe measures (it assumes no constants): a
//! call's fixed cost, an execute's fixed cost, host copies from pinned and
//! from ordinary memory, and a short greedy decode per call schedule.
//!
//! `cargo run --release --example conformance -- [<model dir>] --out report.md`
//! (`scripts/conformance.sh` runs it with `inspect` and, for hybrid packages,
//! `conform`, into one report). It reads the library's internals (the
//! `internals` feature). Exit status 1 when a check failed.

#[path = "support/env.rs"]
mod env;

use anyhow::{Context, Result, bail};
use axllm_core::npu::{Device, DeviceBuffer, EngineIo, EngineModel, Entered, HostBuffer, Runtime, dtype};
use axllm_core::package::ModelFiles;
use axllm_core::{GenerateOptions, LoadOptions, Model, Schedule, SamplingOptions};
use clap::Parser;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "AXCL runtime conformance checks and timing probe, as one markdown report")]
struct Args {
    /// A model package: enables the engine checks and the decode timing.
    package: Option<PathBuf>,
    /// Where to write the report.
    #[arg(long, default_value = "axllm-conformance.md")]
    out: PathBuf,
    /// Index of the card in the runtime's device list.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Repetitions of each timed call (the median is reported).
    #[arg(long, default_value_t = 30)]
    repeat: usize,
    /// Tokens generated per schedule in the decode timing.
    #[arg(long, default_value_t = 16)]
    tokens: usize,
    /// Schedules timed (default: safe, default (its decode input tables:
    /// hardware-facts F37; its staged prefill chunks: F38),
    /// default,upload-inputs, default,waited-chunks, fewest-calls,
    /// fewest-calls,async).
    #[arg(long = "schedule", value_name = "SCHEDULE")]
    schedules: Vec<Schedule>,
    /// Skip `axclrtEngineLoadFromMem` (it hung on one V3.6.5 stack, hardware-facts: F18).
    #[arg(long)]
    no_load_from_mem: bool,
}

#[derive(Clone, Copy)]
enum Tag {
    Documented,
    Inferred,
}

enum Outcome {
    Pass(String),
    Fail(String),
    Skip(String),
}

struct Check {
    name: &'static str,
    tag: Tag,
    facts: &'static str,
    outcome: Outcome,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
    environment: Vec<(String, String)>,
    timing: Vec<(String, String, String)>,
    decode: Vec<(String, String)>,
}

impl Report {
    /// Runs one check; an error or a panic is its FAIL.
    fn check(&mut self, name: &'static str, tag: Tag, facts: &'static str, f: impl FnOnce() -> Result<Outcome>) {
        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => Outcome::Fail(format!("{e:#}")),
            Err(p) => Outcome::Fail(format!(
                "panicked: {}",
                p.downcast_ref::<String>().map(String::as_str).or(p.downcast_ref::<&str>().copied()).unwrap_or("?")
            )),
        };
        self.checks.push(Check { name, tag, facts, outcome });
    }

    fn skip(&mut self, name: &'static str, tag: Tag, facts: &'static str, why: &str) {
        self.checks.push(Check { name, tag, facts, outcome: Outcome::Skip(why.to_owned()) });
    }

    fn failed(&self) -> usize {
        self.checks.iter().filter(|c| matches!(c.outcome, Outcome::Fail(_))).count()
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let count = |f: fn(&Outcome) -> bool| self.checks.iter().filter(|c| f(&c.outcome)).count();
        let (pass, skip) = (count(|o| matches!(o, Outcome::Pass(_))), count(|o| matches!(o, Outcome::Skip(_))));
        let _ = writeln!(s, "# axllm conformance report\n");
        let _ = writeln!(s, "Checks: {pass} PASS, {} FAIL, {skip} SKIP (facts: docs/hardware-facts.md).\n", self.failed());
        let _ = writeln!(s, "## Environment\n\n| item | value |\n|---|---|");
        for (k, v) in &self.environment {
            let _ = writeln!(s, "| {k} | {} |", cell(v));
        }
        let _ = writeln!(s, "\n## Checks\n\n| check | tag | facts | result | detail |\n|---|---|---|---|---|");
        for c in &self.checks {
            let tag = match c.tag {
                Tag::Documented => "DOCUMENTED",
                Tag::Inferred => "INFERRED",
            };
            let (result, detail) = match &c.outcome {
                Outcome::Pass(d) => ("PASS", d),
                Outcome::Fail(d) => ("FAIL", d),
                Outcome::Skip(d) => ("SKIP", d),
            };
            let _ = writeln!(s, "| {} | {tag} | {} | {result} | {} |", c.name, c.facts, cell(detail));
        }
        let _ = writeln!(s, "\n## Timing\n\nMedians of repeated calls, measured here (hardware-facts: F15, F21, F22).\n");
        let _ = writeln!(s, "| probe | median | detail |\n|---|---|---|");
        for (k, v, d) in &self.timing {
            let _ = writeln!(s, "| {k} | {v} | {} |", cell(d));
        }
        let _ = writeln!(s, "\n## Decode per schedule\n");
        if self.decode.is_empty() {
            let _ = writeln!(s, "No package given, or it did not load: no decode run.");
        } else {
            let _ = writeln!(s, "| schedule | result |\n|---|---|");
            for (k, v) in &self.decode {
                let _ = writeln!(s, "| {k} | {} |", cell(v));
            }
        }
        s
    }
}

/// A table cell: one line, no column separators.
fn cell(s: &str) -> String {
    s.replace('|', "/").replace('\n', " ")
}

fn pass(s: impl Into<String>) -> Result<Outcome> {
    Ok(Outcome::Pass(s.into()))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_n(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    f()?; // warm-up
    let mut v = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed());
    }
    Ok(median(v))
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Every function of the optional surface the code resolves one by one
/// (hardware-facts: F2, F20).
const OPTIONAL: &[&str] = &[
    "axclrtGetSocName",
    "axclrtGetVersion",
    "axclrtEngineGetVNpuKind",
    "axclrtEngineGetModelCompilerVersion",
    "axclrtEngineGetInputBufferByIndex",
    "axclrtEngineGetOutputBufferByIndex",
    "axclrtEngineGetInputDataLayout",
    "axclrtEngineGetOutputDataLayout",
    "axclrtGetDefaultContext",
    "axclrtMallocHost",
    "axclrtFreeHost",
    "axclrtMallocCached",
    "axclrtMemFlush",
    "axclrtMemInvalidate",
    "axclrtGetDeviceProperties",
    "axclrtEngineGetUsage",
];

fn main() -> Result<()> {
    let args = Args::parse();
    let mut r = Report::default();
    let lib = env::runtime_library();
    r.environment.push((
        "runtime library".into(),
        lib.as_ref().map_or("(default search: /usr/lib/axcl/libaxcl_rt.so, libaxcl_rt.so)".into(), |p| p.display().to_string()),
    ));
    r.environment.push(("package".into(), args.package.as_ref().map_or("(none)".into(), |p| p.display().to_string())));
    let rt = match Runtime::open(lib.as_deref()) {
        Ok(rt) => {
            r.check("runtime opens, axclInit with the default config", Tag::Documented, "F4, F19", || {
                pass(format!("{}", rt.path().display()))
            });
            rt
        }
        Err(e) => {
            r.checks.push(Check {
                name: "runtime opens, axclInit with the default config",
                tag: Tag::Documented,
                facts: "F4, F19",
                outcome: Outcome::Fail(format!("{e:#}")),
            });
            return finish(&args, &r);
        }
    };
    r.environment.push(("runtime kind".into(), if rt.simulator().is_some() { "simulator" } else { "AXCL" }.into()));
    runtime_checks(&mut r, &rt, &args);
    finish(&args, &r)
}

fn finish(args: &Args, r: &Report) -> Result<()> {
    std::fs::write(&args.out, r.markdown()).with_context(|| format!("writing {}", args.out.display()))?;
    println!("report: {}", args.out.display());
    if r.failed() > 0 {
        eprintln!("{} check(s) failed", r.failed());
        std::process::exit(1);
    }
    Ok(())
}

fn runtime_checks(r: &mut Report, rt: &Arc<Runtime>, args: &Args) {
    r.check("axclrtGetVersion", Tag::Documented, "F2", || match rt.version() {
        Some((a, b, c)) => pass(format!("{a}.{b}.{c}")),
        None => Ok(Outcome::Skip("the runtime lacks axclrtGetVersion (an older stack, F20)".into())),
    });
    r.check("axclrtGetSocName names an AX650", Tag::Documented, "F1", || match rt.soc_name() {
        Some(n) if n.starts_with("AX650") => pass(n),
        Some(n) => bail!("SoC {n:?}"),
        None => Ok(Outcome::Skip("the runtime lacks axclrtGetSocName (F20)".into())),
    });
    r.check("optional functions resolved", Tag::Documented, "F2, F5, F20", || {
        let missing: Vec<&str> = OPTIONAL.iter().copied().filter(|f| !rt.has(f)).collect();
        if missing.is_empty() {
            pass(format!("all {} present", OPTIONAL.len()))
        } else {
            Ok(Outcome::Skip(format!("missing (older stack, fallbacks used): {}", missing.join(", "))))
        }
    });
    let ids = rt.device_ids();
    r.check("device ids derived from the PCIe bus, not 0..n-1", Tag::Inferred, "F3", || {
        let ids = ids.as_ref().map_err(|e| anyhow::anyhow!("axclrtGetDeviceList: {e}"))?;
        if ids.is_empty() {
            bail!("no device listed");
        }
        if ids.iter().enumerate().all(|(i, &id)| id as usize == i) {
            bail!("ids {ids:?} are the list's indices");
        }
        pass(format!("ids {ids:?}"))
    });
    let dev = match rt.device(args.device) {
        Ok(d) => d,
        Err(e) => {
            r.check("device opens (axclrtSetDevice, default context)", Tag::Documented, "F5, F6", || Err(e.into()));
            return;
        }
    };
    r.environment.push(("device".into(), format!("index {} id {}", args.device, dev.id())));
    let cx = match dev.enter() {
        Ok(cx) => cx,
        Err(e) => {
            r.check("device opens (axclrtSetDevice, default context)", Tag::Documented, "F5, F6", || Err(e.into()));
            return;
        }
    };
    r.check("device opens (axclrtSetDevice, default context)", Tag::Documented, "F5, F6", || pass(format!("id {}", dev.id())));
    memory_checks(r, &dev, &cx);
    copy_timing(r, &cx, args.repeat);
    let Some(dir) = &args.package else {
        for (name, tag, facts) in PACKAGE_CHECKS {
            r.skip(name, tag, facts, "no package given");
        }
        return;
    };
    package_checks(r, &dev, &cx, dir, args);
    drop(cx);
    decode_timing(r, dir, args);
}

fn memory_checks(r: &mut Report, dev: &Arc<Device>, cx: &Entered<'_>) {
    r.check("axclrtGetDeviceProperties reports total and free CMM", Tag::Documented, "F10", || match dev.cmm()? {
        Some((total, free)) if total > 0 && free <= total => pass(format!("total {} MiB, free {} MiB", total >> 20, free >> 20)),
        Some((total, free)) => bail!("total {total} B, free {free} B"),
        None => Ok(Outcome::Skip("the runtime lacks axclrtGetDeviceProperties (F20): the memory guard is off".into())),
    });
    r.check("free CMM accounts for a 16 MiB allocation", Tag::Inferred, "F10, F16", || {
        let Some((_, before)) = dev.cmm()? else { return Ok(Outcome::Skip("no CMM query".into())) };
        let buf = DeviceBuffer::alloc(cx, 16 << 20)?;
        let (_, during) = dev.cmm()?.context("CMM query")?;
        drop(buf);
        let (_, after) = dev.cmm()?.context("CMM query")?;
        let took = before.saturating_sub(during);
        if took < 16 << 20 || after + (1 << 20) < before {
            bail!("free {before} B, with the buffer {during} B, after freeing {after} B");
        }
        pass(format!("took {} KiB, all returned", took >> 10))
    });
    r.check("device buffers: 128-byte aligned, memset, copies both ways", Tag::Documented, "F16", || {
        let buf = DeviceBuffer::zeroed(cx, 1 << 16)?;
        if buf.addr() % 128 != 0 {
            bail!("address {:#x} is not 128-byte aligned", buf.addr());
        }
        let pattern: Vec<u8> = (0..1 << 16).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        buf.write(cx, 0, &pattern)?;
        let mut back = vec![0u8; pattern.len()];
        buf.read(cx, 0, &mut back)?;
        if back != pattern {
            bail!("device-to-host read differs from what was written");
        }
        buf.fill(cx, 0x5a)?;
        buf.read(cx, 100, &mut back[..10])?;
        if back[..10].iter().any(|b| *b != 0x5a) {
            bail!("axclrtMemset did not fill");
        }
        pass("64 KiB round trip")
    });
    r.check("device-to-device copy at byte offsets (address arithmetic)", Tag::Inferred, "F16, F23", || {
        let (a, b) = (DeviceBuffer::zeroed(cx, 4096)?, DeviceBuffer::zeroed(cx, 4096)?);
        let data: Vec<u8> = (0..256u32).map(|i| i as u8).collect();
        a.write(cx, 1024, &data)?;
        b.copy_from(cx, 2048 + 128, &a, 1024, 256)?;
        let mut back = vec![0u8; 256];
        b.read(cx, 2048 + 128, &mut back)?;
        if back != data {
            bail!("the copied bytes differ");
        }
        pass("256 bytes at offset 1024 to offset 2176")
    });
    r.check("pinned host memory (axclrtMallocHost) copies both ways", Tag::Documented, "F14", || {
        let mut h = HostBuffer::new(cx, 1 << 16)?;
        if !h.is_pinned() {
            return Ok(Outcome::Skip("no pinned memory (the runtime lacks axclrtMallocHost, F20): heap staging".into()));
        }
        for (i, b) in h.as_mut_slice().iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let buf = DeviceBuffer::zeroed(cx, 1 << 16)?;
        buf.write(cx, 0, h.as_slice())?;
        let mut back = HostBuffer::new(cx, 1 << 16)?;
        buf.read(cx, 0, back.as_mut_slice())?;
        if back.as_slice() != h.as_slice() {
            bail!("the round trip through pinned memory differs");
        }
        pass("64 KiB round trip")
    });
}

/// Call and copy costs: a 4-byte copy (a call's fixed cost), then host to
/// device and back from pinned and from ordinary memory.
fn copy_timing(r: &mut Report, cx: &Entered<'_>, n: usize) {
    let mut probe = || -> Result<()> {
        let dev = DeviceBuffer::zeroed(cx, 4 << 20)?;
        let tiny = [0u8; 4];
        let t = time_n(n, || Ok(dev.write(cx, 0, &tiny)?))?;
        r.timing.push(("4-byte host-to-device copy (a call's fixed cost)".into(), us(t), String::new()));
        for size in [64usize << 10, 4 << 20] {
            let mut pinned = HostBuffer::new(cx, size)?;
            let mut heap = vec![0u8; size];
            let label = if size >= 1 << 20 { format!("{} MiB", size >> 20) } else { format!("{} KiB", size >> 10) };
            let rate = |d: Duration| format!("{:.0} MB/s", size as f64 / d.as_secs_f64() / 1e6);
            let h2d_heap = time_n(n, || Ok(dev.write(cx, 0, &heap)?))?;
            let d2h_heap = time_n(n, || Ok(dev.read(cx, 0, &mut heap)?))?;
            r.timing.push((format!("{label} host-to-device, ordinary memory"), us(h2d_heap), rate(h2d_heap)));
            r.timing.push((format!("{label} device-to-host, ordinary memory"), us(d2h_heap), rate(d2h_heap)));
            if pinned.is_pinned() {
                let h2d = time_n(n, || Ok(dev.write(cx, 0, pinned.as_slice())?))?;
                let d2h = time_n(n, || Ok(dev.read(cx, 0, pinned.as_mut_slice())?))?;
                let ratio = |p: Duration, o: Duration| format!("{}, {:.2}x the ordinary copy's time", rate(p), p.as_secs_f64() / o.as_secs_f64());
                r.timing.push((format!("{label} host-to-device, pinned"), us(h2d), ratio(h2d, h2d_heap)));
                r.timing.push((format!("{label} device-to-host, pinned"), us(d2h), ratio(d2h, d2h_heap)));
            }
        }
        Ok(())
    };
    if let Err(e) = probe() {
        r.timing.push(("copy probe".into(), "failed".into(), format!("{e:#}")));
    }
}

const PACKAGE_CHECKS: [(&str, Tag, &str); 7] = [
    ("axclrtEngineGetUsage of every model file", Tag::Documented, "F11"),
    ("load from file; IO info of layer 0 and the post model", Tag::Documented, "F8, F9"),
    ("16-bit tensors report BF16", Tag::Inferred, "F9"),
    ("free CMM drops by about the usage when a model loads", Tag::Inferred, "F11, F12"),
    ("load from device memory (axclrtEngineLoadFromMem)", Tag::Documented, "F18"),
    ("input buffers bound larger than the group's tensor", Tag::Inferred, "F8"),
    ("execute: the same inputs give the same outputs", Tag::Inferred, "F21"),
];

fn package_checks(r: &mut Report, dev: &Arc<Device>, cx: &Entered<'_>, dir: &Path, args: &Args) {
    let files = match ModelFiles::discover(dir, &[]) {
        Ok(f) => f,
        Err(e) => {
            for (name, tag, facts) in PACKAGE_CHECKS {
                r.skip(name, tag, facts, &format!("the package does not open: {e}"));
            }
            return;
        }
    };
    let [usage, load, bf16, drop_check, from_mem, larger, same] = PACKAGE_CHECKS;
    let mut usage_of_layer0 = None;
    r.check(usage.0, usage.1, usage.2, || {
        let mut total = 0u64;
        for p in files.layers.iter().chain(std::iter::once(&files.post)) {
            let Some(b) = EngineModel::cmm_usage(cx, &files.dir.confine(p)?, p)? else {
                return Ok(Outcome::Skip("the runtime lacks axclrtEngineGetUsage (F20): the memory guard is off".into()));
            };
            if b == 0 {
                bail!("{} reports 0 bytes", p.display());
            }
            usage_of_layer0.get_or_insert(b);
            total += b;
        }
        pass(format!("{} files, {} KiB in all", files.layers.len() + 1, total >> 10))
    });
    let before = dev.cmm().ok().flatten();
    let layer0 = &files.layers[0];
    let loaded = files.dir.confine(layer0).map_err(anyhow::Error::from).and_then(|p| Ok(EngineModel::load_file(cx, &p, layer0)?));
    let post = files.dir.confine(&files.post).map_err(anyhow::Error::from).and_then(|p| Ok(EngineModel::load_file(cx, &p, &files.post)?));
    let (model, post) = match (loaded, post) {
        (Ok(m), Ok(p)) => (m, p),
        (Err(e), _) | (_, Err(e)) => {
            let msg = format!("{e:#}");
            r.check(load.0, load.1, load.2, || Err(anyhow::anyhow!("{msg}")));
            for (name, tag, facts) in [bf16, drop_check, from_mem, larger, same] {
                r.skip(name, tag, facts, "the model files did not load");
            }
            return;
        }
    };
    r.check(load.0, load.1, load.2, || {
        if model.groups().is_empty() || post.groups().is_empty() {
            bail!("a model without shape groups");
        }
        pass(format!("layer 0: {} shape groups; post: {}", model.groups().len(), post.groups().len()))
    });
    r.check(bf16.0, bf16.1, bf16.2, || {
        let mut seen = Vec::new();
        for g in model.groups().iter().chain(post.groups()) {
            for t in g.inputs.iter().chain(&g.outputs) {
                let elems = t.elements() as u64;
                if elems > 0 && t.size == elems * 2 && t.dtype != dtype::BF16 {
                    seen.push(format!("{} {}", t.name, dtype::name(t.dtype)));
                }
            }
        }
        if seen.is_empty() { pass("every 2-byte tensor is BF16") } else { bail!("2-byte tensors not BF16: {}", seen.join(", ")) }
    });
    r.check(drop_check.0, drop_check.1, drop_check.2, || {
        let (Some((_, before)), Some(usage)) = (before, usage_of_layer0) else {
            return Ok(Outcome::Skip("no CMM or usage query".into()));
        };
        let (_, after) = dev.cmm()?.context("CMM query")?;
        let post_usage = EngineModel::cmm_usage(cx, &files.dir.confine(&files.post)?, &files.post)?.unwrap_or(0);
        let took = before.saturating_sub(after);
        let announced = usage + post_usage;
        if took < announced / 2 || took > announced * 2 + (64 << 20) {
            bail!("loading took {} KiB; the files announced {} KiB", took >> 10, announced >> 10);
        }
        pass(format!("took {} KiB for {} KiB announced", took >> 10, announced >> 10))
    });
    if args.no_load_from_mem {
        r.skip(from_mem.0, from_mem.1, from_mem.2, "--no-load-from-mem");
    } else {
        r.check(from_mem.0, from_mem.1, from_mem.2, || {
            let bytes = files.dir.read(&files.post)?;
            let m = EngineModel::load_via_device_memory(cx, &files.post, &bytes)?;
            if m.groups().len() != post.groups().len() {
                bail!("{} shape groups from memory, {} from the file", m.groups().len(), post.groups().len());
            }
            pass(format!("{} ({} KiB)", files.post.display(), bytes.len() >> 10))
        });
    }
    r.check(larger.0, larger.1, larger.2, || {
        let (io, _bufs) = bind_group(cx, &model, 0, 2)?;
        model.execute(cx, 0, &io)?;
        pass("every input of group 0 bound to a buffer twice its size; execute succeeded")
    });
    r.check(same.0, same.1, same.2, || {
        let (io, bufs) = bind_group(cx, &model, 0, 1)?;
        let out_index = bufs.iter().position(|(name, input, _)| !input && name == "output").context("no output tensor")?;
        let mut first = vec![0u8; bufs[out_index].2.size()];
        let mut second = first.clone();
        model.execute(cx, 0, &io)?;
        bufs[out_index].2.read(cx, 0, &mut first)?;
        bufs[out_index].2.fill(cx, 0)?;
        model.execute(cx, 0, &io)?;
        bufs[out_index].2.read(cx, 0, &mut second)?;
        if first != second {
            bail!("two executions of the same inputs differ");
        }
        if first.iter().all(|b| *b == 0) {
            bail!("the output is all zeros");
        }
        let t = time_n(args.repeat, || Ok(model.execute(cx, 0, &io)?))?;
        let tp = {
            let (pio, _pb) = bind_group(cx, &post, 0, 1)?;
            time_n(args.repeat, || Ok(post.execute(cx, 0, &pio)?))?
        };
        TIMING.with(|v| v.borrow_mut().extend([
            ("execute, layer 0 group 0 (decode)".to_string(), us(t), "fixed cost plus this layer's weights".to_string()),
            ("execute, post model".to_string(), us(tp), String::new()),
        ]));
        pass("layer 0, group 0: identical outputs, not all zero")
    });
    TIMING.with(|v| r.timing.append(&mut v.borrow_mut()));
}

thread_local! {
    /// Timings measured inside a check, moved to the report after it.
    static TIMING: std::cell::RefCell<Vec<(String, String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One IO for `group` of `model`, every tensor in its own buffer (`scale`
/// times the tensor's size for inputs), inputs filled with a fixed pattern
/// (small bf16 hidden values, zero indices, a mask of 1.0).
#[allow(clippy::type_complexity)]
fn bind_group(cx: &Entered<'_>, model: &EngineModel, group: u32, scale: usize) -> Result<(EngineIo, Vec<(String, bool, DeviceBuffer)>)> {
    let grp = &model.groups()[group as usize];
    let mut io = model.create_io(cx)?;
    let mut bufs = Vec::new();
    for (input, list) in [(true, &grp.inputs), (false, &grp.outputs)] {
        for (i, t) in list.iter().enumerate() {
            let size = t.size as usize * if input { scale } else { 1 };
            let buf = DeviceBuffer::zeroed(cx, size)?;
            if input && t.name == "input" {
                let vals: Vec<u16> =
                    (0..t.size as usize / 2).map(|k| half::bf16::from_f32(((k * 37 % 101) as f32 - 50.0) / 100.0).to_bits()).collect();
                buf.write(cx, 0, bytemuck::cast_slice(&vals))?;
            }
            if input && t.name == "mask" {
                // bf16 1.0 everywhere: every row real for a linear layer's gate
                // (hardware-facts: F30); a uniform shift of a full layer's scores.
                let ones = vec![half::bf16::ONE.to_bits(); t.size as usize / 2];
                buf.write(cx, 0, bytemuck::cast_slice(&ones))?;
            }
            if input {
                io.bind_input(cx, i, &buf, 0, size)?;
            } else {
                io.bind_output(cx, i, &buf, 0, size)?;
            }
            bufs.push((t.name.clone(), input, buf));
        }
    }
    Ok((io, bufs))
}

/// The decode timing's prompt: up to about 300 tokens, so its prefill runs
/// several chunks of AXERA's 128-row groups, but no longer than the model
/// prefills in chunks with room left for `tokens` more (a small package's
/// context is shorter).
fn prompt_for(model: &Model, tokens: usize) -> Result<String> {
    const LINE: &str = "The conformance probe counts one more line of text. ";
    let info = model.info();
    let fits = 300.min(info.max_prefill).min(info.context_length.saturating_sub(tokens + 1));
    for lines in (1..=30).rev() {
        let text = LINE.repeat(lines);
        if model.tokenizer().encode(&text, true)?.len() <= fits {
            return Ok(text);
        }
    }
    bail!("the model's context ({} positions) leaves no room for a prompt", info.context_length)
}

/// A short greedy decode per schedule: tokens per second, and whether every
/// schedule generates the same tokens (hardware-facts: F22, F23, F37, F38).
fn decode_timing(r: &mut Report, dir: &Path, args: &Args) {
    let schedules = if args.schedules.is_empty() {
        ["safe", "default", "default,upload-inputs", "default,waited-chunks", "fewest-calls", "fewest-calls,async"].iter().filter_map(|s| s.parse().ok()).collect()
    } else {
        args.schedules.clone()
    };
    let mut runs: Vec<(Schedule, Vec<u32>)> = Vec::new();
    for schedule in schedules {
        let opts = LoadOptions { runtime_library: env::runtime_library(), schedule, device_index: args.device, ..Default::default() };
        let greedy = GenerateOptions { sampling: SamplingOptions::greedy(), num_predict: Some(args.tokens), ..Default::default() };
        let run = || -> Result<(String, Vec<u32>)> {
            let t = Instant::now();
            let model = Model::load(dir, &opts)?;
            let load = t.elapsed();
            // Several prefill chunks with history (a staged chunk reads the rows
            // the previous chunk's copies wrote: hardware-facts F38).
            let c = model.generate(&prompt_for(&model, args.tokens)?, &greedy, |_| true)?;
            let s = &c.stats;
            let tps = s.generated as f64 / s.generate_duration.as_secs_f64().max(1e-9);
            Ok((
                format!(
                    "{} tokens at {tps:.1} tok/s ({:.2} ms/token); prompt {} tokens in {:.1} ms; load {:.0} ms",
                    s.generated,
                    1e3 / tps.max(1e-9),
                    s.prompt_tokens,
                    s.prompt_duration.as_secs_f64() * 1e3,
                    load.as_secs_f64() * 1e3
                ),
                c.tokens,
            ))
        };
        match run() {
            Ok((line, tokens)) => {
                r.decode.push((schedule.to_string(), line));
                runs.push((schedule, tokens));
            }
            Err(e) => r.decode.push((schedule.to_string(), format!("failed: {e:#}"))),
        }
    }
    r.check("every call schedule generates the same tokens", Tag::Inferred, "F22, F23, F38", || {
        let Some((first, reference)) = runs.first() else { bail!("no schedule ran") };
        if reference.is_empty() {
            bail!("{first} generated no token");
        }
        for (s, t) in &runs[1..] {
            if t != reference {
                bail!("{s} generated {t:?}, {first} {reference:?}");
            }
        }
        pass(format!("{} schedules, {} tokens each", runs.len(), reference.len()))
    });
}
