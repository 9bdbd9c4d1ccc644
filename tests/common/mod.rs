//! Helpers shared by the end-to-end tests: the simulator library built by
//! cargo, and small random models packed into vendor layouts.
#![allow(dead_code)]

use axcl_sim::pack::{self, Family, IoOptions, Layout, PackOptions, RandomOptions};
use axllm_core::{GenerateOptions, LoadOptions, Model, SamplingOptions};
use std::path::{Path, PathBuf};

/// `target/<profile>/libaxcl_sim.so`, next to the test binary's `deps/`.
pub fn sim_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let lib = dir.join("libaxcl_sim.so");
    assert!(lib.exists(), "{} is missing: build axcl-sim first", lib.display());
    lib
}

pub fn load_options() -> LoadOptions {
    LoadOptions { runtime_library: Some(sim_library()), ..Default::default() }
}

/// Chunk 16, decode capacity 127, prefill history caps 16/32/64.
pub fn io() -> IoOptions {
    IoOptions { chunk: 16, context: 127, prefill_history: vec![16, 32, 64] }
}

/// Packs a random checkpoint of `family` into `dir/model` with `layout`; returns the model dir.
pub fn packed(dir: &Path, family: Family, layout: Layout, seed: u64) -> PathBuf {
    let ckpt = dir.join("ckpt");
    let opts = RandomOptions { arch: family, seed, ..Default::default() };
    pack::write_random_checkpoint(&ckpt, &opts).expect("random checkpoint");
    let out = dir.join("model");
    let popts = PackOptions { io: io(), layout, ..Default::default() };
    pack::pack_checkpoint(&ckpt, &out, &popts).expect("pack");
    out
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A qwen3 model in the default layout, loaded on the simulator.
pub fn qwen3(dir: &Path) -> Model {
    let m = packed(dir, Family::Qwen3, Layout::Axllm, 1);
    Model::load(&m, &load_options()).expect("load")
}

pub fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions { sampling: SamplingOptions::greedy(), num_predict: Some(n), ..Default::default() }
}

/// Packs a random Qwen3.5 checkpoint (6 layers: l3 full, the others linear)
/// into `dir/<name>` with the IO of [`io`] and `hybrid`; returns the model dir.
pub fn packed_qwen35(dir: &Path, name: &str, hybrid: pack::HybridOptions, seed: u64) -> PathBuf {
    let ckpt = dir.join(format!("ckpt-qwen35-{seed}"));
    if !ckpt.exists() {
        let opts = RandomOptions { arch: Family::Qwen35, layers: 6, seed, init_std: 0.05, ..Default::default() };
        pack::write_random_checkpoint(&ckpt, &opts).expect("random checkpoint");
    }
    let out = dir.join(name);
    let popts = PackOptions { io: io(), hybrid, ..Default::default() };
    pack::pack_checkpoint(&ckpt, &out, &popts).expect("pack");
    out
}
