//! Prints what the runtime reports about a model package, before any
//! interpretation: for every shape group of a decoder layer and of the post
//! model, each tensor's index, name, dims, dtype and size; then the files found
//! and the geometry derived from that IO info. On a real card this is the first
//! thing to run, and how the facts marked INFERRED in the code get settled.
//!
//! `cargo run --release --example inspect -- <model dir> [--layer N] [--device N]`
//! (the runtime library is `$AXLLM_AXCL_LIB` when set). It reads the
//! library's internals (the `internals` feature).

#[path = "support/env.rs"]
mod env;

use anyhow::{Context, Result};
use axllm_core::engine::geometry::Geometry;
use axllm_core::npu::{EngineModel, GroupInfo, Runtime, dtype};
use axllm_core::package::ModelFiles;
use std::path::{Path, PathBuf};

fn print_groups(title: &str, path: &Path, groups: &[GroupInfo]) {
    println!("{title}: {} ({} shape groups)", path.display(), groups.len());
    for (g, grp) in groups.iter().enumerate() {
        println!("  group {g}");
        for (dir, list) in [("in ", &grp.inputs), ("out", &grp.outputs)] {
            for (i, t) in list.iter().enumerate() {
                println!(
                    "    {dir} #{i} {:<12} dims {:<18} {:<7} {:>10} bytes",
                    t.name,
                    format!("{:?}", t.dims),
                    dtype::name(t.dtype),
                    t.size
                );
            }
        }
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut layer, mut device) = (None::<PathBuf>, 0usize, 0usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--layer" => layer = args.next().context("--layer N")?.parse()?,
            "--device" => device = args.next().context("--device N")?.parse()?,
            _ => dir = Some(a.into()),
        }
    }
    let dir = dir.context("usage: inspect <model dir> [--layer N] [--device N]")?;
    let files = ModelFiles::discover(&dir, &[])?;
    println!("package {}  (compiled files in {})", files.name, files.compiled_dir.display());
    println!("  layers    {} x {}_p*_l*_together.axmodel", files.layers.len(), files.prefix);
    println!("  post      {}", files.post.display());
    println!("  embedding {}", files.embedding.display());
    println!("  tokenizer {}", files.tokenizer.display());
    if let Some(p) = &files.post_config {
        println!("  sampling  {}", p.display());
    }
    let rt = Runtime::open(env::runtime_library().as_deref())?;
    let ids = rt.device_ids()?;
    println!(
        "runtime {} ({}), devices {:?}",
        rt.path().display(),
        if rt.simulator().is_some() { "simulator" } else { "AXCL" },
        ids
    );
    let dev = rt.device(device)?;
    let cx = dev.enter()?;
    let layer_path =
        files.layers.get(layer).with_context(|| format!("the package has {} layers", files.layers.len()))?;
    let lm = EngineModel::load_file(&cx, &files.dir.confine(layer_path)?, layer_path)?;
    print_groups(&format!("layer {layer}"), layer_path, lm.groups());
    let post = EngineModel::load_file(&cx, &files.dir.confine(&files.post)?, &files.post)?;
    print_groups("post", &files.post, post.groups());
    match Geometry::derive(layer_path, lm.groups()) {
        Ok(g) => {
            println!("geometry: hidden {} kv row {} chunk {} kv rows {}", g.hidden, g.kv_dim, g.chunk, g.kv_rows);
            for d in &g.decode {
                println!("  decode group {}: capacity {}", d.index, d.capacity);
            }
            for p in &g.prefill {
                println!(
                    "  prefill group {}: history <= {}, history + chunk <= {}",
                    p.index, p.history_cap, p.total_cap
                );
            }
            println!(
                "  context {} positions, prompts up to {} prefilled in chunks",
                g.max_positions(),
                g.max_prefill()
            );
        }
        Err(e) => println!("geometry: cannot be derived: {e}"),
    }
    let emb = std::fs::metadata(&files.embedding)?.len();
    println!("embedding file: {emb} bytes");
    Ok(())
}
