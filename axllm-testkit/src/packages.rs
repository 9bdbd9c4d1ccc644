//! Temporary model packages: random-weight checkpoints packed by axsim-pack.

use axsim_pack::{Family, IoOptions, Layout, PackOptions, RandomOptions};
use std::path::{Path, PathBuf};

/// A temporary directory, removed on drop.
///
/// # Panics
/// When the system has no usable temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Small IO geometry: prefill chunk 16, decode capacity 127, prefill history
/// capacities 16, 32 and 64 (so a fresh prompt of up to 80 tokens is prefilled).
pub fn small_io() -> IoOptions {
    IoOptions { chunk: 16, context: 127, prefill_history: vec![16, 32, 64] }
}

/// Writes a random checkpoint with `random` into `dir/ckpt` and packs it with
/// `pack` into `dir/model`; returns the package directory.
///
/// # Panics
/// When writing or packing fails.
pub fn pack_random(dir: &Path, random: &RandomOptions, pack: &PackOptions) -> PathBuf {
    let ckpt = dir.join("ckpt");
    axsim_pack::write_random_checkpoint(&ckpt, random).expect("random checkpoint");
    let out = dir.join("model");
    axsim_pack::pack_checkpoint(&ckpt, &out, pack).expect("pack");
    out
}

/// A random `family` model (default sizes, `seed`) packed under `dir` in
/// `layout` with [`small_io`]; returns the package directory.
///
/// # Panics
/// When writing or packing fails.
pub fn packed(dir: &Path, family: Family, layout: Layout, seed: u64) -> PathBuf {
    let random = RandomOptions { arch: family, seed, ..Default::default() };
    pack_random(dir, &random, &PackOptions { io: small_io(), layout, ..Default::default() })
}
