//! The C ABI as a C caller sees it: statuses and messages for NULL, invalid
//! UTF-8, small buffers, freed handles, params structs of other sizes and
//! panics; settings as load parameters; generation output equal to the Rust
//! library's for the same prompt and greedy options; the simulator's
//! diagnostics apart from the model's info.
#![allow(unsafe_code)] // calling the exported C functions is the point

use axllm::*;
use axllm_testkit::{packed, sim_library, tempdir};
use axsim_pack::{Family, Layout};
use std::ffi::{CStr, CString, c_char};
use std::mem::size_of;
use std::path::PathBuf;
use std::ptr::{null, null_mut};

/// The simulator's device is process-wide: the tests of this file take turns,
/// so that one's allocations never show up in another's counts.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string it owns.
    unsafe { CStr::from_ptr(axllm_last_error()) }.to_string_lossy().into_owned()
}

struct Fixture {
    _dir: axllm_testkit::TempDir,
    model_dir: PathBuf,
    model: *mut axllm_model,
}

/// Default load params that name the simulator (kept alive with them).
fn sim_params() -> (axllm_load_params, CString) {
    let lib = CString::new(sim_library().to_str().unwrap()).unwrap();
    let mut params = std::mem::MaybeUninit::<axllm_load_params>::uninit();
    // SAFETY: valid for writes of its size.
    let st = unsafe { axllm_load_default_params(params.as_mut_ptr(), size_of::<axllm_load_params>()) };
    assert_eq!(st, axllm_status::AXLLM_OK);
    // SAFETY: filled by the call above.
    let mut params = unsafe { params.assume_init() };
    params.runtime_library = lib.as_ptr();
    (params, lib)
}

fn generate_params() -> axllm_generate_params {
    let mut p = std::mem::MaybeUninit::<axllm_generate_params>::uninit();
    // SAFETY: valid for writes of its size.
    let st = unsafe { axllm_generate_default_params(p.as_mut_ptr(), size_of::<axllm_generate_params>()) };
    assert_eq!(st, axllm_status::AXLLM_OK);
    // SAFETY: filled by the call above.
    unsafe { p.assume_init() }
}

fn info_of(model: *const axllm_model) -> (axllm_status, axllm_model_info) {
    let mut info = axllm_model_info::default();
    // SAFETY: valid for writes of its size.
    let st = unsafe { axllm_model_get_info(model, &mut info, size_of::<axllm_model_info>()) };
    (st, info)
}

fn load() -> Fixture {
    let dir = tempdir();
    let out = packed(dir.path(), Family::Qwen3, Layout::Axllm, 9);
    let (params, _lib) = sim_params();
    let dir_c = CString::new(out.to_str().unwrap()).unwrap();
    let mut model = null_mut();
    // SAFETY: valid strings, params and out-pointer.
    let st = unsafe { axllm_model_load(dir_c.as_ptr(), &params, &mut model) };
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    Fixture { _dir: dir, model_dir: out, model }
}

/// Streams a greedy completion through the C ABI with a deliberately tiny buffer.
fn complete(model: *mut axllm_model, prompt: &str, n: i32) -> (String, axllm_done_reason) {
    let mut params = generate_params();
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
    let _turn = serial();
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
        assert_eq!(info_of(null()).0, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        let size = size_of::<axllm_model_info>();
        assert_eq!(axllm_model_get_info(f.model, null_mut(), size), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        let (st, info) = info_of(f.model);
        assert_eq!(st, axllm_status::AXLLM_OK);
        assert_eq!((info.context_length, info.max_prefill, info.chunk, info.layers), (127, 80, 16, 2));
        assert!(info.device_memory_bytes > 0 && info.struct_size == size);
        let mut params = generate_params();
        params.temperature = f32::NAN;
        assert_eq!(axllm_generation_begin(f.model, c"hi".as_ptr(), &params, &mut g), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        params = generate_params();
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
    let _turn = serial();
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
    let _turn = serial();
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
        assert_eq!(info_of(f.model).0, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("freed model"), "{}", last_error());
        // A pointer that was never a handle is refused the same way.
        assert_eq!(info_of(0xdead_beef as *const axllm_model).0, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    }
}

#[test]
fn a_panic_inside_the_library_becomes_a_status() {
    let _turn = serial();
    assert_eq!(axllm_debug_panic(), axllm_status::AXLLM_ERR_PANIC);
    assert!(last_error().contains("axllm_debug_panic was called"), "{}", last_error());
    // The library keeps working after it.
    // SAFETY: version returns a static string.
    assert!(!unsafe { CStr::from_ptr(axllm_version()) }.to_bytes().is_empty());
    let mut model = null_mut();
    // SAFETY: valid arguments.
    let st = unsafe { axllm_model_load(c"/definitely/not/here".as_ptr(), null(), &mut model) };
    assert_eq!(st, axllm_status::AXLLM_ERR_BAD_PACKAGE);
    assert!(last_error().contains("no such directory"));
}

#[test]
fn chat_renders_with_the_package_template() {
    let _turn = serial();
    let f = load();
    let request = cr#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "enable_thinking": false}"#;
    let want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
    let mut len = 0usize;
    // SAFETY: valid strings and buffers with their true capacities.
    unsafe {
        assert_eq!(axllm_model_render_chat(f.model, request.as_ptr(), null_mut(), 0, &mut len), axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL);
        assert_eq!(len, want.len());
        let mut buf = vec![0 as c_char; len + 1];
        assert_eq!(axllm_model_render_chat(f.model, request.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut len), axllm_status::AXLLM_OK);
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap(), want);
        for bad in [c"not json", c"[]", cr#"{"messages": "Hi"}"#] {
            assert_eq!(axllm_model_render_chat(f.model, bad.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut len), axllm_status::AXLLM_ERR_CHAT_TEMPLATE);
            assert!(!last_error().is_empty());
        }
        // The cause (here the JSON parser's) reaches C in the message.
        assert_eq!(axllm_model_render_chat(f.model, c"not json".as_ptr(), buf.as_mut_ptr(), buf.len(), &mut len), axllm_status::AXLLM_ERR_CHAT_TEMPLATE);
        assert!(last_error().starts_with("the chat request is not valid JSON: ") && last_error().contains("line 1"), "{}", last_error());
        assert_eq!(axllm_model_render_chat(f.model, null(), buf.as_mut_ptr(), buf.len(), &mut len), axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    }
    // A package without a template says so.
    let config = f.model_dir.join("qwen3_tokenizer/tokenizer_config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("chat_template");
    std::fs::write(&config, cfg.to_string()).unwrap();
    let (params, _lib) = sim_params();
    let dir_c = CString::new(f.model_dir.to_str().unwrap()).unwrap();
    let mut bare = null_mut();
    // SAFETY: valid strings, params and out-pointers; the buffer has its true capacity.
    unsafe {
        axllm_model_free(f.model);
        assert_eq!(axllm_model_load(dir_c.as_ptr(), &params, &mut bare), axllm_status::AXLLM_OK, "{}", last_error());
        let mut buf = vec![0 as c_char; 64];
        assert_eq!(axllm_model_render_chat(bare, request.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut len), axllm_status::AXLLM_ERR_CHAT_TEMPLATE);
    }
    assert!(last_error().contains("no chat template"), "{}", last_error());
    axllm_model_free(bare);
}

#[test]
fn settings_are_load_parameters() {
    let _turn = serial();
    let dir = tempdir();
    let m = CString::new(packed(dir.path(), Family::Qwen3, Layout::Axllm, 9).to_str().unwrap()).unwrap();
    let load = |params: &axllm_load_params| {
        let mut model = null_mut();
        // SAFETY: valid strings, params and out-pointer.
        let st = unsafe { axllm_model_load(m.as_ptr(), params, &mut model) };
        (st, model)
    };
    let (mut params, _lib) = sim_params();
    let (st, keep) = load(&params); // keeps the runtime loaded throughout
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    // A schedule by name, and an unknown one refused.
    params.schedule = c"fewest-calls,async".as_ptr();
    let (st, model) = load(&params);
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    let (a, _) = complete(model, "one two three", 8);
    axllm_model_free(model);
    params.schedule = c"fastest".as_ptr();
    assert_eq!(load(&params).0, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("params.schedule") && last_error().contains("fastest"), "{}", last_error());
    // Load from device memory gives the same output as by path.
    params.schedule = null();
    params.load_method = AXLLM_LOAD_FROM_DEVICE_MEMORY;
    let (st, model) = load(&params);
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    assert_eq!(complete(model, "one two three", 8).0, a);
    axllm_model_free(model);
    params.load_method = 7;
    assert_eq!(load(&params).0, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    // The runtime path and the device index are parameters too.
    params.load_method = AXLLM_LOAD_FROM_FILE;
    params.device_index = 3;
    assert_eq!(load(&params).0, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("device index 3"), "{}", last_error());
    params.device_index = 0;
    params.runtime_library = c"/nonexistent/libaxcl_rt.so".as_ptr();
    assert_eq!(load(&params).0, axllm_status::AXLLM_ERR_INVALID_ARGUMENT, "another runtime than the loaded one");
    assert!(last_error().contains("already loaded"), "{}", last_error());
    axllm_model_free(keep);
}

#[test]
fn params_structs_of_other_sizes() {
    let _turn = serial();
    let f = load();
    // A struct that was never initialised (size 0), one from a newer header
    // (larger) and one of a size no header had: clear refusals.
    for (size, words) in [(0, "is 0"), (size_of::<axllm_generate_params>() + 8, "newer axllm.h"), (12, "no version")] {
        let mut p = generate_params();
        p.struct_size = size;
        let mut g = null_mut();
        // SAFETY: valid arguments; only struct_size is odd.
        let st = unsafe { axllm_generation_begin(f.model, c"hi".as_ptr(), &p, &mut g) };
        assert_eq!(st, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("axllm_generate_params.struct_size") && last_error().contains(words), "{}", last_error());
        let mut q = std::mem::MaybeUninit::<axllm_generate_params>::uninit();
        // SAFETY: valid for writes of the real size, which is at least `size` when the call accepts it.
        let st = unsafe { axllm_generate_default_params(q.as_mut_ptr(), size) };
        assert_eq!(st, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    }
    // The package's defaults fill the struct and record its size.
    let mut p = generate_params();
    p.struct_size = 0;
    // SAFETY: valid for writes of its size.
    let st = unsafe { axllm_model_generate_params(f.model, &mut p, size_of::<axllm_generate_params>()) };
    assert_eq!(st, axllm_status::AXLLM_OK);
    assert_eq!(p.struct_size, size_of::<axllm_generate_params>());
    axllm_model_free(f.model);
}

#[test]
fn simulator_diagnostics_are_apart_from_the_info() {
    let _turn = serial();
    let f = load();
    let read = |cap: usize| {
        let mut buf = vec![0 as c_char; cap];
        let mut len = 0usize;
        // SAFETY: `buf` is valid for `cap` bytes.
        let st = unsafe { axllm_model_diagnostics(f.model, buf.as_mut_ptr(), cap, &mut len) };
        (st, len, buf)
    };
    let (st, len, _) = read(4);
    assert_eq!(st, axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL);
    let (st, _, buf) = read(len + 1);
    assert_eq!(st, axllm_status::AXLLM_OK);
    // SAFETY: NUL-terminated by the library.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["simulator"], true, "{text}");
    assert!(v["version"].as_str().unwrap().starts_with("axcl-sim"), "{text}");
    let live = v["counters"]["live_allocations"].as_u64().unwrap();
    assert!(live > 0 && v["counters"]["live_bytes"].as_u64().unwrap() > 0, "{text}");
    // Freeing the model returns its allocations (a second model keeps the runtime up to read them).
    let g = load();
    axllm_model_free(f.model);
    let mut len = 0usize;
    let mut buf = vec![0 as c_char; 4096];
    // SAFETY: `buf` is valid for its length.
    assert_eq!(unsafe { axllm_model_diagnostics(g.model, buf.as_mut_ptr(), buf.len(), &mut len) }, axllm_status::AXLLM_OK);
    // SAFETY: NUL-terminated by the library.
    let after: serde_json::Value = serde_json::from_str(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap()).unwrap();
    assert_eq!(after["counters"]["live_allocations"].as_u64().unwrap(), live, "one model's allocations, as before");
    axllm_model_free(g.model);
}

/// Pulls a generation to its end, collecting the text and the logprobs JSON entries.
fn drain(g: *mut axllm_generation) -> (String, axllm_done_reason, Vec<serde_json::Value>) {
    let (mut text, mut lps) = (Vec::new(), Vec::new());
    let mut buf = vec![0 as c_char; 4096];
    let mut small = vec![0 as c_char; 4];
    loop {
        let (mut len, mut done) = (0usize, axllm_done_reason::AXLLM_DONE_NONE);
        // SAFETY: buf is valid for buf.len() bytes.
        let st = unsafe { axllm_generation_next(g, buf.as_mut_ptr(), buf.len(), &mut len, &mut done) };
        assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
        // SAFETY: the library wrote len bytes.
        text.extend_from_slice(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) });
        // A tiny buffer first: the entries are kept for the next call.
        let mut need = 0usize;
        // SAFETY: small is valid for small.len() bytes.
        let st = unsafe { axllm_generation_logprobs(g, small.as_mut_ptr(), small.len(), &mut need) };
        if st == axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL {
            small.resize(need + 1, 0);
        }
        let mut n = 0usize;
        // SAFETY: as above.
        let st = unsafe { axllm_generation_logprobs(g, small.as_mut_ptr(), small.len(), &mut n) };
        assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
        // SAFETY: the library wrote n bytes.
        let json: serde_json::Value = serde_json::from_slice(unsafe { std::slice::from_raw_parts(small.as_ptr().cast::<u8>(), n) }).unwrap();
        lps.extend(json.as_array().unwrap().iter().cloned());
        if done != axllm_done_reason::AXLLM_DONE_NONE {
            axllm_generation_end(g);
            return (String::from_utf8(text).unwrap(), done, lps);
        }
    }
}

#[test]
fn format_logprobs_and_embeddings_through_the_c_abi() {
    let _turn = serial();
    let f = load();
    let prompt = CString::new("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n").unwrap();
    let schema = CString::new(r#"{"type":"object","properties":{"k":{"enum":["a","b"]},"n":{"type":"integer","minimum":0,"maximum":9}},"required":["k","n"],"additionalProperties":false}"#).unwrap();
    let mut p = generate_params();
    p.temperature = 0.0;
    p.num_predict = 100;
    p.format = schema.as_ptr();
    p.logprobs = true;
    p.top_logprobs = 2;
    let mut g = null_mut();
    // SAFETY: valid arguments.
    assert_eq!(unsafe { axllm_generation_begin(f.model, prompt.as_ptr(), &p, &mut g) }, axllm_status::AXLLM_OK, "{}", last_error());
    let (text, done, lps) = drain(g);
    assert_eq!(done, axllm_done_reason::AXLLM_DONE_EOS, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(["a", "b"].contains(&v["k"].as_str().unwrap()) && v["n"].as_i64().unwrap() < 10, "{v}");
    // Where the grammar allows one token only, it is the only alternative (with all the probability).
    assert!(!lps.is_empty() && lps.iter().all(|e| (1..=2).contains(&e["top"].as_array().unwrap().len()) && e["logprob"].as_f64().unwrap() <= 0.0));
    // One entry per generated token: the answer's tokens re-encode to as many.
    assert!(lps.iter().all(|e| e["token"].as_u64().is_some()));

    // An uncompilable schema fails begin with a status and a message.
    let bad = CString::new(r#"{"type":"frobnicate"}"#).unwrap();
    p.format = bad.as_ptr();
    let mut g = null_mut();
    // SAFETY: valid arguments.
    let st = unsafe { axllm_generation_begin(f.model, prompt.as_ptr(), &p, &mut g) };
    assert_eq!(st, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("schema"), "{}", last_error());
    assert!(g.is_null());

    // A caller built against the first header (no format fields) still works.
    let mut old = generate_params();
    old.struct_size = std::mem::offset_of!(axllm_generate_params, format).next_multiple_of(8);
    old.temperature = 0.0;
    old.num_predict = 3;
    let mut g = null_mut();
    // SAFETY: valid arguments; only the v1 prefix is read.
    assert_eq!(unsafe { axllm_generation_begin(f.model, prompt.as_ptr(), &old, &mut g) }, axllm_status::AXLLM_OK, "{}", last_error());
    axllm_generation_end(g);

    let text_c = CString::new("the quick brown fox").unwrap();
    let (mut n, mut toks) = (0usize, 0usize);
    // SAFETY: NULL buffer: the size is reported.
    let st = unsafe { axllm_model_embed(f.model, text_c.as_ptr(), null(), null_mut(), 0, &mut n, &mut toks) };
    assert_eq!(st, axllm_status::AXLLM_ERR_BUFFER_TOO_SMALL);
    let mut out = vec![0f32; n];
    // SAFETY: out holds n floats.
    let st = unsafe { axllm_model_embed(f.model, text_c.as_ptr(), null(), out.as_mut_ptr(), n, &mut n, &mut toks) };
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    assert!(toks > 0);
    let norm: f32 = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    axllm_model_free(f.model);
}
