//! The C ABI as a C caller sees it: statuses and messages for NULL, invalid
//! UTF-8, small buffers, freed handles and panics; generation output equal to
//! the Rust library's for the same prompt and greedy options.
#![allow(unsafe_code)] // calling the exported C functions is the point

use axsim_pack::{self as pack, Family, IoOptions, Layout, PackOptions, RandomOptions};
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

struct Fixture {
    _dir: tempfile::TempDir,
    model_dir: PathBuf,
    model: *mut axllm_model,
}

fn load() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    pack::write_random_checkpoint(&ckpt, &RandomOptions { arch: Family::Qwen3, seed: 9, ..Default::default() }).unwrap();
    let out = dir.path().join("m");
    let io = IoOptions { chunk: 16, context: 127, prefill_history: vec![16, 32, 64] };
    pack::pack_checkpoint(&ckpt, &out, &PackOptions { io, layout: Layout::Axllm, ..Default::default() }).unwrap();
    let lib = CString::new(sim_library().to_str().unwrap()).unwrap();
    let mut params = axllm_load_default_params();
    params.runtime_library = lib.as_ptr();
    let dir_c = CString::new(out.to_str().unwrap()).unwrap();
    let mut model = null_mut();
    // SAFETY: valid strings, params and out-pointer.
    let st = unsafe { axllm_model_load(dir_c.as_ptr(), &params, &mut model) };
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    Fixture { _dir: dir, model_dir: out, model }
}

/// Streams a greedy completion through the C ABI with a deliberately tiny buffer.
fn complete(model: *mut axllm_model, prompt: &str, n: i32) -> (String, axllm_done_reason) {
    let mut params = axllm_generate_default_params();
    params.temperature = 0.0;
    params.num_predict = n;
    let prompt = CString::new(prompt).unwrap();
    let mut g = null_mut();
    // SAFETY: valid arguments.
    assert_eq!(unsafe { axllm_generation_begin(model, prompt.as_ptr(), &params, &mut g) }, axllm_status::AXLLM_OK);
    let mut buf = vec![0 as c_char; 2];
    let mut text = Vec::new();
    loop {
        let (mut len, mut done) = (0usize, axllm_done_reason::AXLLM_DONE_NONE);
        // SAFETY: buf is valid for buf.len() bytes.
        let st = unsafe { axllm_generation_next(g, buf.as_mut_ptr(), buf.len(), &mut len, &mut done) };
        if st == axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL {
            assert!(len + 1 > buf.len());
            buf.resize(len + 1, 0);
            continue;
        }
        assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
        if done != axllm_done_reason::AXLLM_DONE_NONE {
            axllm_generation_end(g);
            return (String::from_utf8(text).unwrap(), done);
        }
        assert!(len > 0, "pieces are never empty");
        // SAFETY: the library wrote len bytes plus a NUL.
        text.extend_from_slice(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) });
        assert_eq!(buf[len], 0);
    }
}

#[test]
fn output_equals_the_rust_library() {
    let f = load();
    let prompt = "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n";
    let (c_text, done) = complete(f.model, prompt, 24);
    let rust = axllm_core::Model::load(
        &f.model_dir,
        &axllm_core::LoadOptions { runtime_library: Some(sim_library()), ..Default::default() },
    )
    .unwrap();
    let opts = axllm_core::GenerateOptions {
        sampling: axllm_core::SamplingOptions::greedy(),
        num_predict: Some(24),
        ..Default::default()
    };
    let want = rust.generate(prompt, &opts, |_| true).unwrap();
    assert_eq!(c_text, want.text);
    assert!(!c_text.is_empty());
    let expect = match want.reason {
        axllm_core::StopReason::MaxTokens => axllm_done_reason::AXLLM_DONE_MAX_TOKENS,
        axllm_core::StopReason::EndOfSequence => axllm_done_reason::AXLLM_DONE_EOS,
        other => panic!("{other:?}"),
    };
    assert_eq!(done, expect);
    axllm_model_free(f.model);
}

#[test]
fn null_pointers_and_invalid_utf8_get_statuses() {
    let f = load();
    let mut g = null_mut();
    // SAFETY: valid pointers or NULL throughout; the library must cope with NULL and bad bytes.
    unsafe {
        assert_eq!(axllm_generation_begin(f.model, null(), null(), &mut g), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("prompt is NULL"), "{}", last_error());
        assert!(g.is_null());
        let bad = [0xC3u8, 0x28, 0];
        assert_eq!(
            axllm_generation_begin(f.model, bad.as_ptr().cast(), null(), &mut g),
            axllm_status::AXLLM_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("not valid UTF-8"), "{}", last_error());
        assert_eq!(axllm_model_load(null(), null(), &mut null_mut()), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert_eq!(axllm_model_load(c"/x".as_ptr(), null(), null_mut()), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("out_model is NULL"));
        let mut info = axllm_model_info::default();
        assert_eq!(axllm_model_get_info(null(), &mut info), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert_eq!(axllm_model_get_info(f.model, null_mut()), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert_eq!(axllm_model_get_info(f.model, &mut info), axllm_status::AXLLM_OK);
        assert_eq!((info.context_length, info.max_prefill, info.chunk, info.layers), (127, 80, 16, 2));
        assert!(info.simulator && info.device_memory_bytes > 0);
        assert!(info.sim_live_allocations > 0 && info.sim_live_bytes > 0, "{info:?}");
        let mut params = axllm_generate_default_params();
        params.temperature = f32::NAN;
        assert_eq!(axllm_generation_begin(f.model, c"hi".as_ptr(), &params, &mut g), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        params = axllm_generate_default_params();
        params.n_stop = 2;
        assert_eq!(axllm_generation_begin(f.model, c"hi".as_ptr(), &params, &mut g), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        let toks = [-5i32];
        assert_eq!(
            axllm_generation_begin_tokens(f.model, toks.as_ptr(), 1, null(), &mut g),
            axllm_status::AXLLM_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("negative token id"));
    }
    axllm_model_free(f.model);
}

#[test]
fn small_buffers_report_the_size_and_lose_nothing() {
    let f = load();
    let mut n = 0usize;
    let mut toks = [0i32; 2];
    // SAFETY: valid buffers with their true capacities.
    unsafe {
        let text = c"<|im_start|>user\nsome words to encode<|im_end|>";
        assert_eq!(axllm_tokenize(f.model, text.as_ptr(), false, toks.as_mut_ptr(), 2, &mut n), axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL);
        assert!(n > 2);
        let mut all = vec![0i32; n];
        assert_eq!(axllm_tokenize(f.model, text.as_ptr(), false, all.as_mut_ptr(), n, &mut n), axllm_status::AXLLM_OK);
        let mut len = 0usize;
        let mut small = [0 as c_char; 3];
        assert_eq!(axllm_detokenize(f.model, all.as_ptr(), n, small.as_mut_ptr(), 3, &mut len), axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL);
        let mut big = vec![0 as c_char; len + 1];
        assert_eq!(axllm_detokenize(f.model, all.as_ptr(), n, big.as_mut_ptr(), big.len(), &mut len), axllm_status::AXLLM_OK);
        assert_eq!(CStr::from_ptr(big.as_ptr()).to_str().unwrap(), text.to_str().unwrap());
        let out_of_vocab = [1_000_000i32];
        assert_eq!(axllm_detokenize(f.model, out_of_vocab.as_ptr(), 1, big.as_mut_ptr(), big.len(), &mut len), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    }
    // A 2-byte buffer forces a resize on nearly every piece; the text is whole.
    let (a, _) = complete(f.model, "count with me", 20);
    let (b, _) = complete(f.model, "count with me", 20);
    assert_eq!(a, b);
    axllm_model_free(f.model);
}

#[test]
fn freed_handles_are_errors_and_double_free_is_a_no_op() {
    let f = load();
    let mut g = null_mut();
    // SAFETY: valid arguments, then deliberately stale handles.
    unsafe {
        assert_eq!(axllm_generation_begin(f.model, c"hi".as_ptr(), null(), &mut g), axllm_status::AXLLM_OK);
        axllm_generation_cancel(g);
        let (mut len, mut done) = (0usize, axllm_done_reason::AXLLM_DONE_NONE);
        let mut buf = [0 as c_char; 64];
        assert_eq!(axllm_generation_next(g, buf.as_mut_ptr(), 64, &mut len, &mut done), axllm_status::AXLLM_OK);
        assert_eq!(done, axllm_done_reason::AXLLM_DONE_CANCELLED);
        axllm_generation_end(g);
        axllm_generation_end(g);
        assert_eq!(axllm_generation_next(g, buf.as_mut_ptr(), 64, &mut len, &mut done), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("freed generation"), "{}", last_error());
        axllm_generation_cancel(g);
        axllm_model_free(f.model);
        axllm_model_free(f.model);
        axllm_model_free(null_mut());
        let mut info = axllm_model_info::default();
        assert_eq!(axllm_model_get_info(f.model, &mut info), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("freed model"), "{}", last_error());
        // A pointer that was never a handle is refused the same way.
        assert_eq!(axllm_model_get_info(0xdead_beef as *const axllm_model, &mut info), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    }
}

#[test]
fn a_panic_inside_the_library_becomes_a_status() {
    assert_eq!(axllm_debug_panic(), axllm_status::AXLLM_ERR_PANIC);
    assert!(last_error().contains("axllm_debug_panic was called"), "{}", last_error());
    // The library keeps working after it.
    // SAFETY: version returns a static string.
    assert!(!unsafe { CStr::from_ptr(axllm_version()) }.to_bytes().is_empty());
    let mut model = null_mut();
    // SAFETY: valid arguments.
    let st = unsafe { axllm_model_load(c"/definitely/not/here".as_ptr(), null(), &mut model) };
    assert_eq!(st, axllm_status::AXLLM_ERR_MODEL_NOT_FOUND);
    assert!(last_error().contains("no such directory"));
}
