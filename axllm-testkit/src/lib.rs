//! axllm-testkit: what the workspace's tests share, in one place.
//!
//! * [`sim_library`]: the simulator library (`libaxcl_sim.so`) of the build
//!   profile the test runs in, built when it is missing (or the one
//!   `AXLLM_TEST_SIM_LIB` names);
//! * [`current_exe`], [`self_command`]: the test binary's path, and running it
//!   again, also when it runs under an emulator through the dynamic loader
//!   (scripts/qemu-aarch64-run);
//! * [`tempdir`], [`packed`], [`pack_random`], [`small_io`], [`packed_qwen35`]: temporary
//!   packages of random-weight models, packed by axsim-pack in the vendor's layouts;
//! * [`load_options`], [`qwen3`], [`greedy`], [`argmax_bf16`]: the library on the simulator;
//! * [`models`]: tiny simulated layer and post model files for the runtime's
//!   own conformance tests.
//!
//! Tests configure the library through parameters: nothing here sets the
//! process environment.

pub mod models;
mod packages;
mod sim;

pub use packages::{pack_random, packed, packed_qwen35, small_io, tempdir};
pub use sim::{current_exe, self_command, sim_library, sim_library_in, EXE_ENV, RUNNER_ENV, SIM_LIB_ENV};
pub use tempfile::TempDir;

use axllm_core::{GenerateOptions, LoadOptions, Model, SamplingOptions};
use std::path::Path;

/// Load options that run on the simulator.
pub fn load_options() -> LoadOptions {
    LoadOptions { runtime_library: Some(sim_library()), ..Default::default() }
}

/// A Qwen3 model in the default (`axllm`) layout, packed under `dir` and
/// loaded on the simulator.
pub fn qwen3(dir: &Path) -> Model {
    let m = packed(dir, axsim_pack::Family::Qwen3, axsim_pack::Layout::Axllm, 1);
    Model::load(&m, &load_options()).expect("load")
}

/// Greedy decoding of at most `n` tokens.
pub fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions { sampling: SamplingOptions::greedy(), num_predict: Some(n), ..Default::default() }
}

/// The index of the largest bf16 logit (given as bits); the first one on ties.
pub fn argmax_bf16(bits: &[u16]) -> u32 {
    let mut best = 0;
    let value = |i: usize| half::bf16::from_bits(bits[i]).to_f32();
    for i in 1..bits.len() {
        if value(i) > value(best) {
            best = i;
        }
    }
    best as u32
}
