//! The runtime library is a load parameter, in its own process (the runtime
//! is per process): a missing or foreign library is a clear error, then the
//! one named loads. The library reads no environment variable.

use axllm_core::{Error, ErrorKind, LoadOptions, Model};
use axllm_testkit::*;

#[test]
fn missing_runtime_library_is_a_clear_error_then_the_right_one_loads() {
    let dir = tempdir();
    let m = packed(dir.path(), axsim_pack::Family::Llama, axsim_pack::Layout::Axllm, 2);
    let opts = LoadOptions { runtime_library: Some("/nonexistent/libaxcl_rt.so".into()), ..Default::default() };
    let e = Model::load(&m, &opts).unwrap_err();
    assert!(matches!(e, Error::RuntimeUnavailable { .. }) && e.kind() == ErrorKind::RuntimeUnavailable, "{e}");
    assert!(e.to_string().contains("/nonexistent/libaxcl_rt.so"), "{e}");
    assert!(std::error::Error::source(&e).is_some(), "the loader's error is kept: {e:?}");

    // A library without the AXCL symbols is refused by name of the symbol.
    let not_axcl = LoadOptions { runtime_library: Some("libm.so.6".into()), ..Default::default() };
    let e = Model::load(&m, &not_axcl).unwrap_err();
    let chain = format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default());
    assert!(matches!(e, Error::RuntimeUnavailable { .. }) && chain.contains("axclInit"), "{chain}");

    // Without a path the library searches the vendor's names only (on a
    // machine without the AXCL runtime, that fails naming both places).
    if !std::path::Path::new("/usr/lib/axcl/libaxcl_rt.so").exists() {
        let e = Model::load(&m, &LoadOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("libaxcl_rt.so") && msg.contains("/usr/lib/axcl"), "{msg}");
    }

    // The path given is the one loaded.
    let model = Model::load(&m, &load_options()).unwrap();
    assert_eq!(model.info().runtime_path, sim_library());
}
