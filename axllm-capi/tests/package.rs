//! `axllm_package_check` as a C caller sees it: the info and defaults a
//! loaded model reports, the chat template through a caller's buffer, link
//! roots through the load params, and statuses naming the file for a broken
//! package. It never loads the runtime.
#![allow(unsafe_code)] // calling the exported C functions is the point

use axllm::*;
use axllm_testkit::{packed, sim_library, tempdir};
use axsim_pack::{Family, Layout};
use std::ffi::{CStr, CString, c_char};
use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string it owns.
    unsafe { CStr::from_ptr(axllm_last_error()) }.to_string_lossy().into_owned()
}

fn model_dir(dir: &Path) -> PathBuf {
    packed(dir, Family::Qwen3, Layout::HfPackage, 4)
}

fn load_params() -> axllm_load_params {
    let mut p = std::mem::MaybeUninit::<axllm_load_params>::uninit();
    // SAFETY: valid for writes of its size.
    assert_eq!(unsafe { axllm_load_default_params(p.as_mut_ptr(), size_of::<axllm_load_params>()) }, axllm_status::AXLLM_OK);
    // SAFETY: filled by the call above.
    unsafe { p.assume_init() }
}

struct Checked {
    status: axllm_status,
    info: axllm_package_info,
    defaults: axllm_generate_params,
    template_len: usize,
}

fn check_with(dir: &Path, params: *const axllm_load_params, buf: &mut [c_char]) -> Checked {
    let dir = CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: all-zero is a valid value of these plain C structs (NULL pointers).
    let (mut info, mut defaults): (axllm_package_info, axllm_generate_params) = unsafe { std::mem::zeroed() };
    let mut len = 0usize;
    let ptr = if buf.is_empty() { null_mut() } else { buf.as_mut_ptr() };
    // SAFETY: valid string, params, out-pointers and buffer.
    let status = unsafe {
        axllm_package_check(
            dir.as_ptr(),
            params,
            &mut info,
            size_of::<axllm_package_info>(),
            &mut defaults,
            size_of::<axllm_generate_params>(),
            ptr,
            buf.len(),
            &mut len,
        )
    };
    Checked { status, info, defaults, template_len: len }
}

fn check(dir: &Path, buf: &mut [c_char]) -> Checked {
    check_with(dir, null(), buf)
}

#[test]
fn reports_what_the_loaded_model_reports() {
    let dir = tempdir();
    let m = model_dir(dir.path());

    let first = check(&m, &mut []);
    assert_eq!(first.status, axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL, "{}", last_error());
    assert!(first.template_len > 0);
    assert_eq!(first.info.struct_size, size_of::<axllm_package_info>(), "info filled even so");
    let mut buf = vec![0 as c_char; first.template_len + 1];
    let c = check(&m, &mut buf);
    assert_eq!(c.status, axllm_status::AXLLM_OK, "{}", last_error());
    assert_eq!((c.template_len, c.info.context_length), (first.template_len, first.info.context_length));
    // SAFETY: NUL-terminated by the call.
    let template = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().to_owned();
    assert!(template.contains("<|im_start|>"), "{template}");

    let lib = CString::new(sim_library().to_str().unwrap()).unwrap();
    let mut params = load_params();
    params.runtime_library = lib.as_ptr();
    let dir_c = CString::new(m.to_str().unwrap()).unwrap();
    let mut model = null_mut();
    // SAFETY: valid strings, params and out-pointer.
    assert_eq!(unsafe { axllm_model_load(dir_c.as_ptr(), &params, &mut model) }, axllm_status::AXLLM_OK, "{}", last_error());
    // SAFETY: all-zero is valid for these plain C structs.
    let (mut mi, mut defaults): (axllm_model_info, axllm_generate_params) = unsafe { std::mem::zeroed() };
    // SAFETY: a live handle and out-pointers valid for their sizes.
    unsafe {
        assert_eq!(axllm_model_get_info(model, &mut mi, size_of::<axllm_model_info>()), axllm_status::AXLLM_OK);
        assert_eq!(
            axllm_model_generate_params(model, &mut defaults, size_of::<axllm_generate_params>()),
            axllm_status::AXLLM_OK
        );
        axllm_model_free(model);
    }
    let i = c.info;
    assert_eq!(
        (i.context_length, i.max_prefill, i.layers, i.hidden_size, i.vocab_size),
        (mi.context_length, mi.max_prefill, mi.layers, mi.hidden_size, mi.vocab_size)
    );
    assert!(i.has_sampling_defaults);
    let d = c.defaults;
    assert_eq!(d.struct_size, size_of::<axllm_generate_params>());
    assert_eq!(
        (d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_last_n, d.repeat_penalty, d.seed),
        (
            defaults.temperature,
            defaults.top_k,
            defaults.top_p,
            defaults.min_p,
            defaults.repeat_last_n,
            defaults.repeat_penalty,
            defaults.seed
        )
    );
    assert!(d.stop.is_null() && d.n_stop == 0);
}

#[test]
fn link_roots_come_from_the_load_params() {
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 4);
    let store = tempdir();
    let emb = m.join("model.embed_tokens.weight.bfloat16.bin");
    let stored = store.path().join("blob");
    std::fs::rename(&emb, &stored).unwrap();
    std::os::unix::fs::symlink(&stored, &emb).unwrap();
    let mut buf = vec![0 as c_char; 1 << 16];
    let c = check(&m, &mut buf);
    assert_eq!(c.status, axllm_status::AXLLM_ERR_BAD_PACKAGE);
    assert!(last_error().contains("outside the package"), "{}", last_error());

    let root = CString::new(store.path().canonicalize().unwrap().to_str().unwrap()).unwrap();
    let roots = [root.as_ptr()];
    let mut params = load_params();
    params.link_roots = roots.as_ptr();
    params.n_link_roots = 1;
    let c = check_with(&m, &params, &mut buf);
    assert_eq!(c.status, axllm_status::AXLLM_OK, "{}", last_error());
}

#[test]
fn broken_packages_and_bad_arguments() {
    let dir = tempdir();
    let m = model_dir(dir.path());
    let mut buf = vec![0 as c_char; 1 << 16];
    let compiled = std::fs::read_dir(&m)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("qwen3_post.axmodel").exists())
        .expect("the compiled subdirectory");
    let sub = compiled.file_name().unwrap().to_str().unwrap().to_owned();
    let layer = compiled.join("qwen3_p16_l1_together.axmodel");
    let bytes = std::fs::read(&layer).unwrap();
    std::fs::write(&layer, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(check(&m, &mut buf).status, axllm_status::AXLLM_ERR_BAD_PACKAGE);
    assert!(last_error().contains(&format!("{sub}/qwen3_p16_l1_together.axmodel")), "{}", last_error());
    std::fs::write(&layer, &bytes).unwrap();
    let l0 = compiled.join("qwen3_p16_l0_together.axmodel");
    let l0_bytes = std::fs::read(&l0).unwrap();
    std::fs::remove_file(&l0).unwrap();
    assert_eq!(check(&m, &mut buf).status, axllm_status::AXLLM_ERR_BAD_PACKAGE, "{}", last_error());
    assert!(last_error().contains("qwen3_p16_l0_together.axmodel"), "{}", last_error());

    // SAFETY: all-zero is a valid value of this plain C struct.
    let (mut info, mut len): (axllm_package_info, usize) = (unsafe { std::mem::zeroed() }, 0);
    let info_size = size_of::<axllm_package_info>();
    // SAFETY: NULL dir is the point; the other pointers are valid.
    let st = unsafe { axllm_package_check(null(), null(), &mut info, info_size, null_mut(), 0, null_mut(), 0, &mut len) };
    assert_eq!(st, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    let bad = [0xffu8 as c_char, 0];
    // SAFETY: a NUL-terminated (invalid UTF-8) string.
    let st = unsafe { axllm_package_check(bad.as_ptr(), null(), &mut info, info_size, null_mut(), 0, null_mut(), 0, &mut len) };
    assert_eq!(st, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    // An info struct of a size no header had is refused, like every sized struct.
    std::fs::write(&l0, &l0_bytes).unwrap();
    let good = CString::new(m.to_str().unwrap()).unwrap();
    // SAFETY: valid pointers; the size is the point.
    let st = unsafe { axllm_package_check(good.as_ptr(), null(), &mut info, 3, null_mut(), 0, null_mut(), 0, &mut len) };
    assert_eq!(st, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("axllm_package_info.struct_size"), "{}", last_error());
}
