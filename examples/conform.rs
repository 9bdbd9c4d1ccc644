//! The conformance kit for hybrid (Qwen3.5) packages: runs a package's first
//! linear-attention and first full-attention layer on the card (or the
//! simulator) with chosen inputs and reports what docs/hardware-facts.md marks INFERRED
//! (F34, F23), each as a measurement and a verdict:
//!
//! * the state tensors: dims, reported dtype and bytes;
//! * whether a linear layer reads `indices` (the same chunk with other positions);
//! * whether padding rows (gate 0) leave the state as the real rows left it
//!   (a chunk of 1 real row, then the 2nd token through decode, against a
//!   chunk of both);
//! * the fewest valid rows for which a prefill group writes `output`;
//! * whether every prefill group of a linear layer computes the same.
//!
//! Every tensor is bound to its own buffer of the exact size, one IO object
//! per group (the binding pattern known to work on the card, hardware-facts: F23).
//! The engine's settings for these facts live in `axllm_core::engine::inferred`.
//!
//! `cargo run --release --example conform -- <model dir> [--device N] [--json]`
//! (the runtime library is `$AXLLM_AXCL_LIB` when set). It reads the
//! library's internals (the `internals` feature).

#[path = "support/env.rs"]
mod env;

use anyhow::{Context, Result, bail};
use axllm_core::engine::hybrid::{LayerKind, kind_from_io, kinds_from_config};
use axllm_core::engine::inferred::gate_mask;
use axllm_core::engine::masks;
use axllm_core::package::ModelFiles;
use axllm_core::npu::{DeviceBuffer, EngineIo, EngineModel, Entered, GroupInfo, Runtime, dtype};
use serde_json::{Value, json};
use std::path::PathBuf;

/// One group of one layer with a dedicated buffer per tensor.
struct Bound<'m> {
    model: &'m EngineModel,
    group: u32,
    io: EngineIo,
    /// (name, is input, buffer), in the group's order.
    tensors: Vec<(String, bool, DeviceBuffer)>,
}

impl<'m> Bound<'m> {
    fn new(cx: &Entered<'_>, model: &'m EngineModel, group: u32) -> Result<Self> {
        let grp = &model.groups()[group as usize];
        let mut io = model.create_io(cx)?;
        let mut tensors = Vec::new();
        for (input, list) in [(true, &grp.inputs), (false, &grp.outputs)] {
            for (i, t) in list.iter().enumerate() {
                let buf = DeviceBuffer::zeroed(cx, t.size as usize)?;
                if input {
                    io.bind_input(cx, i, &buf, 0, t.size as usize)?;
                } else {
                    io.bind_output(cx, i, &buf, 0, t.size as usize)?;
                }
                tensors.push((t.name.clone(), input, buf));
            }
        }
        Ok(Self { model, group, io, tensors })
    }

    fn buf(&self, name: &str, input: bool) -> &DeviceBuffer {
        &self.tensors.iter().find(|(n, i, _)| n == name && *i == input).expect("the contract's tensor names").2
    }
    fn put(&self, cx: &Entered<'_>, name: &str, bytes: &[u8]) -> Result<()> {
        let b = self.buf(name, true);
        b.write(cx, 0, &bytes[..bytes.len().min(b.size())])?;
        Ok(())
    }
    fn get(&self, cx: &Entered<'_>, name: &str) -> Result<Vec<u8>> {
        let b = self.buf(name, false);
        let mut out = vec![0; b.size()];
        b.read(cx, 0, &mut out)?;
        Ok(out)
    }
    fn fill_out(&self, cx: &Entered<'_>, name: &str, byte: u8) -> Result<()> {
        Ok(self.buf(name, false).fill(cx, byte)?)
    }
    fn run(&self, cx: &Entered<'_>) -> Result<()> {
        Ok(self.model.execute(cx, self.group, &self.io)?)
    }
    fn rows(&self) -> usize {
        self.model.groups()[self.group as usize].input("indices").map_or(0, |(_, t)| t.elements())
    }
    fn hidden(&self) -> usize {
        self.model.groups()[self.group as usize].input("input").map_or(0, |(_, t)| t.elements()) / self.rows().max(1)
    }
}

/// Deterministic hidden rows in [-1, 1) as bf16 bytes.
fn hidden_rows(rows: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..rows * h)
        .flat_map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            half::bf16::from_f32(v).to_le_bytes()
        })
        .collect()
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn u16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// State bytes as f32 values, the element size taken from bytes per element.
fn as_f32(bytes: &[u8], elements: usize) -> Vec<f32> {
    match bytes.len() / elements.max(1) {
        4 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        _ => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
    }
}

/// `max |a − b| / max |b|`.
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) as f64 / scale as f64
}

fn describe(groups: &[GroupInfo]) -> Value {
    let t = |g: &GroupInfo, name: &str, input: bool| {
        let found = if input { g.input(name) } else { g.output(name) };
        found.map(|(_, t)| json!({"dims": t.dims, "dtype": dtype::name(t.dtype), "bytes": t.size}))
    };
    json!({
        "groups": groups.len(),
        "decode_groups": groups.iter().filter(|g| g.input("indices").is_some_and(|(_, t)| t.elements() == 1)).count(),
        "K_cache": t(&groups[0], "K_cache", true),
        "V_cache": t(&groups[0], "V_cache", true),
        "K_cache_out": t(&groups[0], "K_cache_out", false),
        "mask": groups.iter().map(|g| g.input("mask").map_or(0, |(_, t)| t.elements())).collect::<Vec<_>>(),
    })
}

fn prefill_groups(model: &EngineModel) -> Vec<u32> {
    let g = model.groups();
    (0..g.len() as u32).filter(|&i| g[i as usize].input("indices").is_some_and(|(_, t)| t.elements() > 1)).collect()
}

/// The indices the vendor runner writes for `n` real rows of `t` from position 0.
fn positions(t: usize, n: usize) -> Vec<u32> {
    let mut idx = vec![0u32; t];
    masks::prefill_indices(&mut idx, 0, n);
    idx
}

/// Runs a linear layer's prefill group from the zero state with `n` real rows and `indices`.
fn linear_chunk(cx: &Entered<'_>, b: &Bound<'_>, x: &[u8], n: usize, indices: &[u32]) -> Result<()> {
    b.put(cx, "input", x)?;
    b.put(cx, "indices", &u32s(indices))?;
    let mut gate = vec![0u16; b.buf("mask", true).size() / 2];
    gate_mask(&mut gate, n);
    b.put(cx, "mask", &u16s(&gate))?;
    for name in ["K_cache", "V_cache"] {
        b.buf(name, true).fill(cx, 0)?;
    }
    b.run(cx)
}

fn probe_linear(cx: &Entered<'_>, model: &EngineModel) -> Result<Value> {
    let pre = prefill_groups(model);
    let p = Bound::new(cx, model, pre[0])?;
    let (t, h) = (p.rows(), p.hidden());
    let x = hidden_rows(t, h, 1);
    let k_elems = model.groups()[0].input("K_cache").map_or(1, |(_, t)| t.elements());
    let v_elems = model.groups()[0].input("V_cache").map_or(1, |(_, t)| t.elements());

    // Indices: the same chunk with positions, then with unrelated numbers.
    linear_chunk(cx, &p, &x, t, &positions(t, t))?;
    let (o1, v1) = (p.get(cx, "output")?, p.get(cx, "V_cache_out")?);
    let garbage: Vec<u32> = (0..t as u32).map(|i| 7777 + 13 * (t as u32 - i)).collect();
    let indices = match linear_chunk(cx, &p, &x, t, &garbage) {
        Err(e) => json!({"verdict": "read", "detail": format!("an execute with other positions failed: {e}")}),
        Ok(()) => {
            let same = p.get(cx, "output")? == o1 && p.get(cx, "V_cache_out")? == v1;
            json!({"verdict": if same { "ignored" } else { "read" }, "identical_results": same})
        }
    };

    // Padding: chunk(1 real row) then token 2 by decode, against chunk(2 real rows).
    let d = Bound::new(cx, model, (0..model.groups().len() as u32).find(|g| !pre.contains(g)).context("no decode group")?)?;
    linear_chunk(cx, &p, &x, 2, &positions(t, 2))?;
    let (k2, v2) = (p.get(cx, "K_cache_out")?, p.get(cx, "V_cache_out")?);
    linear_chunk(cx, &p, &x, 1, &positions(t, 1))?;
    d.put(cx, "K_cache", &p.get(cx, "K_cache_out")?)?;
    d.put(cx, "V_cache", &p.get(cx, "V_cache_out")?)?;
    d.put(cx, "input", &x[h * 2..2 * h * 2])?;
    d.put(cx, "indices", &u32s(&[1]))?;
    let mut ones = vec![0u16; d.buf("mask", true).size() / 2];
    gate_mask(&mut ones, usize::MAX);
    d.put(cx, "mask", &u16s(&ones))?;
    d.run(cx)?;
    let (k12, v12) = (d.get(cx, "K_cache_out")?, d.get(cx, "V_cache_out")?);
    let (dk, dv) = (rel_diff(&as_f32(&k12, k_elems), &as_f32(&k2, k_elems)), rel_diff(&as_f32(&v12, v_elems), &as_f32(&v2, v_elems)));
    let padding = json!({
        "verdict": if dk.max(dv) < 0.02 { "keeps the state" } else { "changes the state" },
        "conv_state_rel_diff": dk, "recurrent_state_rel_diff": dv,
    });

    // Every prefill group computes the same.
    let mut outputs = Vec::new();
    for &g in &pre {
        let b = Bound::new(cx, model, g)?;
        linear_chunk(cx, &b, &x, t, &positions(t, t))?;
        outputs.push((b.get(cx, "output")?, b.get(cx, "V_cache_out")?));
    }
    let groups_agree = outputs.windows(2).all(|w| w[0] == w[1]);
    let min_rows = min_output_rows(cx, &p, |b, n| linear_chunk(cx, b, &x, n, &positions(t, n)))?;
    Ok(json!({"indices": indices, "padding": padding, "prefill_groups_agree": groups_agree, "output_rows": min_rows}))
}

/// For chunks of 1, 2, 4, … real rows (and `T`): whether `output` was written;
/// the fewest rows that wrote it.
fn min_output_rows(cx: &Entered<'_>, b: &Bound<'_>, run: impl Fn(&Bound<'_>, usize) -> Result<()>) -> Result<Value> {
    let (t, h) = (b.rows(), b.hidden());
    let mut tried = Vec::new();
    let mut n = 1;
    while n <= t {
        b.fill_out(cx, "output", 0xEE)?;
        run(b, n)?;
        let out = b.get(cx, "output")?;
        let written = out[..n * h * 2].iter().any(|&x| x != 0xEE);
        tried.push(json!({"rows": n, "written": written}));
        n = if n == t { t + 1 } else { (n * 2).min(t) };
    }
    let fewest = tried.iter().find(|r| r["written"] == true).map(|r| r["rows"].clone());
    Ok(json!({"fewest_rows_written": fewest, "tried": tried}))
}

fn probe_full(cx: &Entered<'_>, model: &EngineModel) -> Result<Value> {
    let pre = prefill_groups(model);
    let b = Bound::new(cx, model, pre[0])?;
    let (t, h) = (b.rows(), b.hidden());
    let cols = b.buf("mask", true).size() / 2 / t;
    let x = hidden_rows(t, h, 2);
    let run = |b: &Bound<'_>, n: usize| -> Result<()> {
        b.put(cx, "input", &x)?;
        b.put(cx, "indices", &u32s(&positions(t, n)))?;
        let mut mask = vec![0u16; t * cols];
        masks::prefill_mask(&mut mask, t, cols - t, 0, n);
        b.put(cx, "mask", &u16s(&mask))?;
        b.run(cx)
    };
    Ok(json!({"output_rows": min_output_rows(cx, &b, run)?}))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut device, mut json_only) = (None::<PathBuf>, 0usize, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => device = args.next().context("--device N")?.parse()?,
            "--json" => json_only = true,
            _ => dir = Some(a.into()),
        }
    }
    let dir = dir.context("usage: conform <model dir> [--device N] [--json]")?;
    let files = ModelFiles::discover(&dir, &[])?;
    let rt = Runtime::open(env::runtime_library().as_deref())?;
    let dev = rt.device(device)?;
    let cx = dev.enter()?;
    let configured = match &files.runtime_config {
        Some(cfg) => kinds_from_config(cfg, files.layers.len(), &dir.join("config.json"))?,
        None => None,
    };
    // Load layers until one of each kind is found.
    let (mut linear, mut full) = (None, None);
    for (i, path) in files.layers.iter().enumerate() {
        let model = EngineModel::load_file(&cx, &files.dir.confine(path)?, path)?;
        let io_kind = kind_from_io(model.groups());
        if let Some(named) = configured.as_ref().map(|k| k[i])
            && named != io_kind
        {
            bail!("config.json names layer {i} {named:?} but its IO is {io_kind:?}");
        }
        match io_kind {
            LayerKind::Linear if linear.is_none() => linear = Some((i, model)),
            LayerKind::Full if full.is_none() => full = Some((i, model)),
            _ => {}
        }
        if linear.is_some() && full.is_some() {
            break;
        }
    }
    let (li, lin) = linear.context("no linear-attention layer: not a hybrid package")?;
    let (fi, ful) = full.context("no full-attention layer")?;
    let report = json!({
        "package": files.name,
        "runtime": if rt.simulator().is_some() { "simulator" } else { "AXCL" },
        "layer_kinds_from": if configured.is_some() { "config.json" } else { "IO" },
        "linear_layer": {"index": li, "io": describe(lin.groups()), "probes": probe_linear(&cx, &lin)?},
        "full_layer": {"index": fi, "io": describe(ful.groups()), "probes": probe_full(&cx, &ful)?},
    });
    if !json_only {
        let p = &report["linear_layer"]["probes"];
        println!("package {} on the {}", report["package"], report["runtime"]);
        println!("linear layer {li}: state {} / {}", report["linear_layer"]["io"]["K_cache"], report["linear_layer"]["io"]["V_cache"]);
        println!("  indices:          {}", p["indices"]["verdict"]);
        println!("  padding rows:     {} (state differences {:.4} / {:.4})", p["padding"]["verdict"], p["padding"]["conv_state_rel_diff"], p["padding"]["recurrent_state_rel_diff"]);
        println!("  prefill groups:   {}", if p["prefill_groups_agree"] == true { "all compute the same" } else { "differ" });
        println!("  output written from {} valid rows", p["output_rows"]["fewest_rows_written"]);
        println!("full layer {fi}: output written from {} valid rows", report["full_layer"]["probes"]["output_rows"]["fewest_rows_written"]);
    }
    println!("{report}");
    Ok(())
}
