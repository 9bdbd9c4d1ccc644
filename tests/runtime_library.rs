//! The runtime library search, in its own process (the runtime is per process).
// `std::env::set_var` is unsafe in edition 2024; this single-test binary sets
// the variable before any other thread exists.
#![allow(unsafe_code)]

mod common;

use axllm_core::{Error, LoadOptions, Model};
use common::*;

#[test]
fn missing_runtime_library_is_a_clear_error_then_the_right_one_loads() {
    let dir = tempdir();
    let m = packed(dir.path(), axsim_pack::Family::Llama, axsim_pack::Layout::Axllm, 2);
    let opts = LoadOptions { runtime_library: Some("/nonexistent/libaxcl_rt.so".into()), ..Default::default() };
    let e = Model::load(&m, &opts).unwrap_err();
    assert!(matches!(e, Error::RuntimeNotFound { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("/nonexistent/libaxcl_rt.so") && msg.contains("AXLLM_AXCL_LIB"), "{msg}");

    // A library without the AXCL symbols is refused by name of the symbol.
    let not_axcl = LoadOptions { runtime_library: Some("libm.so.6".into()), ..Default::default() };
    let e = Model::load(&m, &not_axcl).unwrap_err();
    assert!(matches!(e, Error::RuntimeSymbols { .. }) && e.to_string().contains("axclInit"), "{e}");

    // The environment variable is honoured.
    // SAFETY: this single-test process has no other thread touching the environment.
    unsafe { std::env::set_var("AXLLM_AXCL_LIB", sim_library()) };
    let model = Model::load(&m, &LoadOptions::default()).unwrap();
    assert_eq!(model.info().runtime_path, sim_library());
}
