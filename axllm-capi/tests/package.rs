//! `axllm_package_check` as a C caller sees it: the info and defaults a
//! loaded model reports, the chat template through a caller's buffer, and
//! statuses naming the file for a broken package. It never loads the runtime.
#![allow(unsafe_code)] // calling the exported C functions is the point

use axcl_sim::pack::{self, Family, IoOptions, Layout, PackOptions, RandomOptions};
use axllm::*;
use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

fn sim_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("libaxcl_sim.so")
}

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string it owns.
    unsafe { CStr::from_ptr(axllm_last_error()) }.to_string_lossy().into_owned()
}

fn packed(dir: &Path) -> PathBuf {
    let ckpt = dir.join("ckpt");
    pack::write_random_checkpoint(&ckpt, &RandomOptions { arch: Family::Qwen3, seed: 4, ..Default::default() }).unwrap();
    let out = dir.join("m");
    let io = IoOptions { chunk: 16, context: 127, prefill_history: vec![16, 32, 64] };
    pack::pack_checkpoint(&ckpt, &out, &PackOptions { io, layout: Layout::HfPackage, ..Default::default() }).unwrap();
    out
}

fn check(dir: &Path, buf: &mut [c_char]) -> (axllm_status, axllm_package_info, usize) {
    let dir = CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: all-zero is a valid value of this plain C struct (NULL stop pointer).
    let mut info: axllm_package_info = unsafe { std::mem::zeroed() };
    let mut len = 0usize;
    let ptr = if buf.is_empty() { null_mut() } else { buf.as_mut_ptr() };
    // SAFETY: valid string, out-pointers and buffer.
    let st = unsafe { axllm_package_check(dir.as_ptr(), &mut info, ptr, buf.len(), &mut len) };
    (st, info, len)
}

#[test]
fn reports_what_the_loaded_model_reports() {
    let dir = tempfile::tempdir().unwrap();
    let m = packed(dir.path());

    let (st, info, len) = check(&m, &mut []);
    assert_eq!(st, axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL, "{}", last_error());
    assert!(len > 0);
    let mut buf = vec![0 as c_char; len + 1];
    let (st, again, len2) = check(&m, &mut buf);
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    assert_eq!((len2, again.context_length), (len, info.context_length));
    // SAFETY: NUL-terminated by the call.
    let template = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().to_owned();
    assert!(template.contains("<|im_start|>"), "{template}");

    let lib = CString::new(sim_library().to_str().unwrap()).unwrap();
    let mut params = axllm_load_default_params();
    params.runtime_library = lib.as_ptr();
    let dir_c = CString::new(m.to_str().unwrap()).unwrap();
    let mut model = null_mut();
    // SAFETY: valid strings, params and out-pointer.
    assert_eq!(unsafe { axllm_model_load(dir_c.as_ptr(), &params, &mut model) }, axllm_status::AXLLM_OK, "{}", last_error());
    // SAFETY: all-zero is valid for these plain C structs.
    let (mut mi, mut defaults): (axllm_model_info, axllm_generate_params) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: a live handle and valid out-pointers.
    unsafe {
        assert_eq!(axllm_model_get_info(model, &mut mi), axllm_status::AXLLM_OK);
        assert_eq!(axllm_model_generate_params(model, &mut defaults), axllm_status::AXLLM_OK);
        axllm_model_free(model);
    }
    assert_eq!(
        (info.context_length, info.max_prefill, info.layers, info.hidden_size, info.vocab_size),
        (mi.context_length, mi.max_prefill, mi.layers, mi.hidden_size, mi.vocab_size)
    );
    assert!(info.has_sampling_defaults);
    let d = info.sampling_defaults;
    assert_eq!(
        (d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_last_n, d.repeat_penalty, d.seed),
        (defaults.temperature, defaults.top_k, defaults.top_p, defaults.min_p, defaults.repeat_last_n, defaults.repeat_penalty, defaults.seed)
    );
    assert!(d.stop.is_null() && d.n_stop == 0);
}

#[test]
fn broken_packages_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let m = packed(dir.path());
    let mut buf = vec![0 as c_char; 1 << 16];
    let compiled = std::fs::read_dir(&m)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("qwen3_post.axmodel").exists())
        .expect("the compiled subdirectory");
    let layer = compiled.join("qwen3_p16_l1_together.axmodel");
    let bytes = std::fs::read(&layer).unwrap();
    std::fs::write(&layer, &bytes[..bytes.len() / 2]).unwrap();
    let (st, _, _) = check(&m, &mut buf);
    assert_eq!(st, axllm_status::AXLLM_ERR_BAD_MODEL);
    assert!(last_error().contains(&layer.display().to_string()), "{}", last_error());
    std::fs::write(&layer, &bytes).unwrap();
    let first = compiled.join("qwen3_p16_l0_together.axmodel");
    std::fs::remove_file(&first).unwrap();
    let (st, _, _) = check(&m, &mut buf);
    assert_eq!(st, axllm_status::AXLLM_ERR_MODEL_NOT_FOUND, "{}", last_error());
    assert!(last_error().contains(&first.display().to_string()), "{}", last_error());

    // SAFETY: all-zero is a valid value of this plain C struct.
    let (mut info, mut len): (axllm_package_info, usize) = (unsafe { std::mem::zeroed() }, 0);
    // SAFETY: NULL dir is the point; the other pointers are valid.
    let st = unsafe { axllm_package_check(null(), &mut info, null_mut(), 0, &mut len) };
    assert_eq!(st, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    let bad = [0xffu8 as c_char, 0];
    // SAFETY: a NUL-terminated (invalid UTF-8) string.
    let st = unsafe { axllm_package_check(bad.as_ptr(), &mut info, null_mut(), 0, &mut len) };
    assert_eq!(st, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
}
