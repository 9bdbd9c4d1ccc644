//! KV slots through the C ABI: `kv_slots` in the load params (and the
//! version-1 struct without it), the info's slot count and bytes, several
//! generations alive at once on one thread, stepped alternately, each
//! producing what it produces alone, and one ended early leaving the others
//! intact; prompts fed chunk by chunk (`axllm_generation_start_tokens`,
//! `axllm_generation_prefill_step`) between other generations' tokens, and
//! cancelled between chunks.
#![allow(unsafe_code)] // calling the exported C functions is the point

use axllm::*;
use axllm_testkit::{packed, sim_library, tempdir};
use axsim_pack::{Family, Layout};
use std::ffi::{CStr, CString, c_char};
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::ptr::null_mut;

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string it owns.
    unsafe { CStr::from_ptr(axllm_last_error()) }.to_string_lossy().into_owned()
}

/// Loads `dir` on the simulator with `kv_slots` (params of `struct_size` bytes).
fn load(dir: &Path, kv_slots: u32, struct_size: usize) -> *mut axllm_model {
    let lib = CString::new(sim_library().to_str().unwrap()).unwrap();
    let mut params = std::mem::MaybeUninit::<axllm_load_params>::uninit();
    // SAFETY: valid for writes of its size.
    assert_eq!(unsafe { axllm_load_default_params(params.as_mut_ptr(), size_of::<axllm_load_params>()) }, axllm_status::AXLLM_OK);
    // SAFETY: filled by the call above.
    let mut params = unsafe { params.assume_init() };
    params.runtime_library = lib.as_ptr();
    params.kv_slots = kv_slots;
    params.struct_size = struct_size;
    let dir = CString::new(dir.to_str().unwrap()).unwrap();
    let mut model = null_mut();
    // SAFETY: valid strings, params and out-pointer.
    let st = unsafe { axllm_model_load(dir.as_ptr(), &params, &mut model) };
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    model
}

fn info(model: *const axllm_model) -> axllm_model_info {
    let mut info = axllm_model_info::default();
    // SAFETY: valid for writes of its size.
    assert_eq!(unsafe { axllm_model_get_info(model, &mut info, size_of::<axllm_model_info>()) }, axllm_status::AXLLM_OK);
    info
}

fn begin(model: *mut axllm_model, prompt: &str, seed: i64) -> *mut axllm_generation {
    let mut params = std::mem::MaybeUninit::<axllm_generate_params>::uninit();
    // SAFETY: valid for writes of its size.
    let st = unsafe { axllm_generate_default_params(params.as_mut_ptr(), size_of::<axllm_generate_params>()) };
    assert_eq!(st, axllm_status::AXLLM_OK);
    // SAFETY: filled by the call above.
    let mut params = unsafe { params.assume_init() };
    params.num_predict = 14;
    params.seed = seed;
    if seed < 0 {
        params.temperature = 0.0;
    }
    let prompt = CString::new(prompt).unwrap();
    let mut g = null_mut();
    // SAFETY: valid arguments.
    let st = unsafe { axllm_generation_begin(model, prompt.as_ptr(), &params, &mut g) };
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    g
}

/// One piece, or `None` at the end.
fn next(g: *mut axllm_generation) -> Option<String> {
    let mut buf = vec![0 as c_char; 256];
    let (mut len, mut done) = (0usize, axllm_done_reason::AXLLM_DONE_NONE);
    // SAFETY: buf is valid for its length.
    let st = unsafe { axllm_generation_next(g, buf.as_mut_ptr(), buf.len(), &mut len, &mut done) };
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    if done != axllm_done_reason::AXLLM_DONE_NONE {
        return None;
    }
    // SAFETY: the library wrote len bytes.
    Some(String::from_utf8(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) }.to_vec()).unwrap())
}

const PROMPTS: [(&str, i64); 3] =
    [("tell me a long story about the sea", -1), ("what is two plus two", 5), ("<|im_start|>user\nhello<|im_end|>\n", 6)];

fn alone(model: *mut axllm_model, prompt: &str, seed: i64) -> String {
    let g = begin(model, prompt, seed);
    let mut text = String::new();
    while let Some(p) = next(g) {
        text.push_str(&p);
    }
    axllm_generation_end(g);
    text
}

#[test]
fn generations_on_one_thread_interleave_and_equal_each_alone() {
    let dir = tempdir();
    let pkg = packed(dir.path(), Family::Qwen3, Layout::Axllm, 9);
    let one = load(&pkg, 0, size_of::<axllm_load_params>());
    let want: Vec<String> = PROMPTS.iter().map(|(p, s)| alone(one, p, *s)).collect();
    assert!(want.iter().all(|t| !t.is_empty()));
    let i1 = info(one);
    assert_eq!(i1.kv_slots, 1);
    axllm_model_free(one);

    let model = load(&pkg, 3, size_of::<axllm_load_params>());
    let i3 = info(model);
    assert_eq!(i3.kv_slots, 3);
    assert_eq!(i3.kv_slot_bytes, i1.kv_slot_bytes);
    assert_eq!(i3.device_memory_bytes - i1.device_memory_bytes, 2 * i1.kv_slot_bytes);
    // Three generations alive at once on this thread, one piece each in turn.
    let gens: Vec<_> = PROMPTS.iter().map(|(p, s)| begin(model, p, *s)).collect();
    let mut texts = vec![String::new(); 3];
    let mut live = [true; 3];
    let mut round = 0;
    while live.iter().any(|&l| l) {
        round += 1;
        for i in 0..3 {
            if !live[i] {
                continue;
            }
            if i == 1 && round == 3 {
                // Ending one early frees its slot and leaves the others as they are.
                axllm_generation_end(gens[1]);
                live[1] = false;
                continue;
            }
            match next(gens[i]) {
                Some(p) => texts[i].push_str(&p),
                None => {
                    axllm_generation_end(gens[i]);
                    live[i] = false;
                }
            }
        }
    }
    assert_eq!(texts[0], want[0]);
    assert_eq!(texts[2], want[2]);
    assert!(want[1].starts_with(&texts[1]) && texts[1].len() < want[1].len(), "{:?} vs {:?}", texts[1], want[1]);
    // The freed slots serve again, and a conversation's slot still holds it.
    assert_eq!(alone(model, PROMPTS[1].0, PROMPTS[1].1), want[1]);
    axllm_model_free(model);
}

#[test]
fn version_1_load_params_and_info_still_work() {
    let dir = tempdir();
    let pkg = packed(dir.path(), Family::Qwen3, Layout::Axllm, 9);
    // A caller built against the header before kv_slots: one slot.
    let model = load(&pkg, 7, offset_of!(axllm_load_params, kv_slots));
    let mut v1 = axllm_model_info { kv_slots: 99, ..Default::default() };
    let size = offset_of!(axllm_model_info, kv_slots);
    // SAFETY: valid for writes of `size_of` >= size bytes.
    assert_eq!(unsafe { axllm_model_get_info(model, &mut v1, size) }, axllm_status::AXLLM_OK, "{}", last_error());
    assert_eq!(v1.struct_size, size);
    assert_eq!(v1.kv_slots, 99, "a version-1 info is not written past its end");
    assert_eq!(info(model).kv_slots, 1, "kv_slots of a version-1 struct is not read");
    axllm_model_free(model);
}

fn tokenize(model: *mut axllm_model, text: &str) -> Vec<i32> {
    let text = CString::new(text).unwrap();
    let mut ids = vec![0i32; 512];
    let mut n = 0usize;
    // SAFETY: valid string, buffer and out-pointer.
    let st = unsafe { axllm_tokenize(model, text.as_ptr(), false, ids.as_mut_ptr(), ids.len(), &mut n) };
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    ids.truncate(n);
    ids
}

/// Starts a greedy generation of `n` tokens from `ids` without feeding it.
fn start(model: *mut axllm_model, ids: &[i32], n: i32) -> *mut axllm_generation {
    let mut params = std::mem::MaybeUninit::<axllm_generate_params>::uninit();
    // SAFETY: valid for writes of its size.
    let st = unsafe { axllm_generate_default_params(params.as_mut_ptr(), size_of::<axllm_generate_params>()) };
    assert_eq!(st, axllm_status::AXLLM_OK);
    // SAFETY: filled by the call above.
    let mut params = unsafe { params.assume_init() };
    params.num_predict = n;
    params.temperature = 0.0;
    let mut g = null_mut();
    // SAFETY: valid arguments.
    let st = unsafe { axllm_generation_start_tokens(model, ids.as_ptr(), ids.len(), &params, &mut g) };
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    g
}

fn prefill_step(g: *mut axllm_generation) -> usize {
    let mut left = usize::MAX;
    // SAFETY: a valid out-pointer.
    let st = unsafe { axllm_generation_prefill_step(g, &mut left) };
    assert_eq!(st, axllm_status::AXLLM_OK, "{}", last_error());
    left
}

fn rest(g: *mut axllm_generation) -> String {
    let mut text = String::new();
    while let Some(p) = next(g) {
        text.push_str(&p);
    }
    text
}

#[test]
fn a_prompt_fed_chunk_by_chunk_between_another_generations_tokens_equals_it_alone() {
    let dir = tempdir();
    let pkg = packed(dir.path(), Family::Qwen3, Layout::Axllm, 9);
    let model = load(&pkg, 2, size_of::<axllm_load_params>());
    let long: Vec<i32> = tokenize(model, &"a story about the sea and the night, ".repeat(10))[..60].to_vec();
    let short = tokenize(model, PROMPTS[1].0);
    let (long_alone, short_alone) = {
        let g = start(model, &long, 10);
        let a = rest(g);
        axllm_generation_end(g);
        let g = start(model, &short, 12);
        let b = rest(g);
        axllm_generation_end(g);
        axllm_model_reset_cache(model);
        (a, b)
    };
    assert!(!long_alone.is_empty() && !short_alone.is_empty());

    let a = start(model, &short, 12);
    let mut short_text = next(a).unwrap();
    let b = start(model, &long, 10);
    // 60 tokens: chunks of 16, 16, 16 and 12, a token of the other between each.
    let mut left = Vec::new();
    loop {
        left.push(prefill_step(b));
        if let Some(p) = next(a) {
            short_text.push_str(&p);
        }
        if *left.last().unwrap() == 0 {
            break;
        }
    }
    assert_eq!(left, [44, 28, 12, 0]);
    assert_eq!(prefill_step(b), 0, "a fed prompt is not fed again");
    assert_eq!(rest(b), long_alone);
    short_text.push_str(&rest(a));
    assert_eq!(short_text, short_alone);
    axllm_generation_end(a);
    axllm_generation_end(b);

    // Cancelled between chunks: nothing more is fed, the next call reports it.
    axllm_model_reset_cache(model);
    let b = start(model, &long[..40], 10);
    assert_eq!(prefill_step(b), 24);
    axllm_generation_cancel(b);
    assert_eq!(prefill_step(b), 0);
    let mut buf = [0 as c_char; 16];
    let (mut len, mut done) = (0usize, axllm_done_reason::AXLLM_DONE_NONE);
    // SAFETY: buf is valid for its length.
    let st = unsafe { axllm_generation_next(b, buf.as_mut_ptr(), buf.len(), &mut len, &mut done) };
    assert_eq!((st, done, len), (axllm_status::AXLLM_OK, axllm_done_reason::AXLLM_DONE_CANCELLED, 0));
    axllm_generation_end(b);
    // Bad input to the new calls gets a status.
    let mut g = null_mut();
    // SAFETY: NULL tokens are the case under test.
    let st = unsafe { axllm_generation_start_tokens(model, std::ptr::null(), 3, std::ptr::null(), &mut g) };
    assert_eq!((st, g), (axllm_status::AXLLM_ERR_INVALID_ARGUMENT, null_mut()));
    // SAFETY: a NULL out-pointer is the case under test.
    assert_eq!(unsafe { axllm_generation_prefill_step(a, std::ptr::null_mut()) }, axllm_status::AXLLM_ERR_INVALID_ARGUMENT);
    let mut left = 0usize;
    // SAFETY: valid out-pointer; the handle was ended.
    assert_ne!(unsafe { axllm_generation_prefill_step(a, &mut left) }, axllm_status::AXLLM_OK);
    axllm_model_free(model);
}

#[test]
fn automatic_slots_are_chosen_at_load_reported_and_usable() {
    let dir = tempdir();
    let pkg = packed(dir.path(), Family::Qwen3, Layout::Axllm, 9);
    let one = load(&pkg, 0, size_of::<axllm_load_params>());
    let i1 = info(one);
    let want = alone(one, PROMPTS[1].0, PROMPTS[1].1);
    axllm_model_free(one);

    // A tiny model on the standard 8 GB simulated card: the most.
    let model = load(&pkg, AXLLM_KV_SLOTS_AUTO, size_of::<axllm_load_params>());
    let i = info(model);
    assert_eq!(i.kv_slots, AXLLM_KV_SLOTS_AUTO_MAX);
    assert_eq!(i.device_memory_bytes - i1.device_memory_bytes, u64::from(AXLLM_KV_SLOTS_AUTO_MAX - 1) * i1.kv_slot_bytes);
    // As many generations alive at once on one thread (a further begin
    // would wait for a slot), each producing what it produces alone.
    let gens: Vec<_> = (0..AXLLM_KV_SLOTS_AUTO_MAX).map(|_| begin(model, PROMPTS[1].0, PROMPTS[1].1)).collect();
    let mut texts = vec![String::new(); gens.len()];
    let mut live = vec![true; gens.len()];
    while live.iter().any(|l| *l) {
        for (k, g) in gens.iter().enumerate() {
            if live[k] {
                match next(*g) {
                    Some(p) => texts[k].push_str(&p),
                    None => live[k] = false,
                }
            }
        }
    }
    for g in gens {
        axllm_generation_end(g);
    }
    assert!(texts.iter().all(|t| *t == want), "{texts:?} vs {want:?}");
    axllm_model_free(model);
}
