//! Parameter structs that carry their own size, so they can grow without
//! breaking callers built against an older header.
//!
//! Every such struct starts with `size_t struct_size`. The library fills
//! structs for the caller (`axllm_*_default_params`, `axllm_model_get_info`...)
//! given the size the caller knows (`sizeof`), and reads the caller's structs
//! by the size in their first field: a caller compiled against an older,
//! smaller struct keeps working (the fields it does not know keep their
//! defaults), and a size this library does not know (larger, or none it ever
//! published) is refused with `AXLLM_ERR_INVALID_ARGUMENT`.
//!
//! Fields are only ever appended. When a field is added, keep the previous
//! layout as a private `*_v<N>` struct and add its size to the type's
//! [`SizedStruct::VERSIONS`], so that its callers are still recognised.

use crate::boundary::{CError, CResult};
use axllm_core::{GenerateOptions, KvSlots, LoadMethod, LoadOptions, SamplingOptions, Schedule};
use std::ffi::{c_char, c_void};
use std::mem::{offset_of, size_of};
use std::path::PathBuf;

/// Load the model files by path (`axllm_load_params.load_method`).
pub const AXLLM_LOAD_FROM_FILE: u32 = 0;
/// Copy each model file into device memory and load it from there.
pub const AXLLM_LOAD_FROM_DEVICE_MEMORY: u32 = 1;

/// `axllm_load_params.kv_slots`: choose the count at load from the card's
/// free CMM and the model's sizes (Rust `KvSlots::Auto`).
pub const AXLLM_KV_SLOTS_AUTO: u32 = u32::MAX;
/// The most KV slots `AXLLM_KV_SLOTS_AUTO` chooses (Rust `AUTO_KV_SLOTS_MAX`).
pub const AXLLM_KV_SLOTS_AUTO_MAX: u32 = 4;
const _: () = assert!(AXLLM_KV_SLOTS_AUTO_MAX as usize == axllm_core::AUTO_KV_SLOTS_MAX);

/// How to load a model. Fill it with `axllm_load_default_params()`, then set
/// what differs.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct axllm_load_params {
    /// `sizeof(axllm_load_params)` as the caller was compiled; set by
    /// `axllm_load_default_params()`.
    pub struct_size: usize,
    /// Index into the runtime's device list (0 = the first card).
    pub device_index: u32,
    /// `AXLLM_LOAD_FROM_FILE` (default) or `AXLLM_LOAD_FROM_DEVICE_MEMORY`.
    pub load_method: u32,
    /// Path of the AXCL runtime library, or NULL: `libaxcl_rt.so` through the
    /// dynamic loader, then `/usr/lib/axcl/libaxcl_rt.so`. Borrowed for the call.
    pub runtime_library: *const c_char,
    /// The call schedule: NULL or "default" (`decode-kv-bind,input-tables,async`),
    /// "safe", "fewest-calls", or a comma-separated list of "kv-bind",
    /// "decode-kv-bind", "packed-inputs", "input-tables", "async" (added to
    /// "safe"; a list starting with "default", e.g. "default,upload-inputs",
    /// adds to the default) (see BENCHMARKS.md).
    /// Borrowed for the call.
    pub schedule: *const c_char,
    /// Directories outside the package that its symlinks may point into
    /// (a package made of links into a content store); `n_link_roots` of
    /// them, may be NULL when 0. Names in the package's configuration must
    /// stay inside the package regardless. Borrowed for the call.
    pub link_roots: *const *const c_char,
    /// Number of `link_roots`.
    pub n_link_roots: usize,
    /// Called after each model file is loaded, on the calling thread; may be NULL.
    pub progress: Option<extern "C" fn(user_data: *mut c_void, loaded: u32, total: u32)>,
    /// Passed to `progress`.
    pub progress_user_data: *mut c_void,
    /// KV slots: sequences whose K/V caches the card holds at once, hence
    /// generations that may run at once (each holds one; a further
    /// `axllm_generation_begin` waits for one to end). 0 = the default, 1;
    /// `AXLLM_KV_SLOTS_AUTO` = as many as the card's free memory comfortably
    /// holds (up to `AXLLM_KV_SLOTS_AUTO_MAX`, chosen at load; the rule is
    /// the README's). A hybrid model (Qwen3.5) keeps 1;
    /// `axllm_model_info.kv_slots` says what was allocated. (Added in
    /// version 2 of this struct.)
    pub kv_slots: u32,
}

/// Sampling and stop options of one generation. Fill it with
/// `axllm_generate_default_params()` (Ollama's defaults) or
/// `axllm_model_generate_params()` (the package's), then set what differs.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct axllm_generate_params {
    /// `sizeof(axllm_generate_params)` as the caller was compiled; set by the
    /// functions that fill the struct.
    pub struct_size: usize,
    /// 0 = greedy.
    pub temperature: f32,
    /// <= 0 disables.
    pub top_k: i32,
    /// >= 1 disables.
    pub top_p: f32,
    /// <= 0 disables.
    pub min_p: f32,
    /// >= 1 disables.
    pub typical_p: f32,
    /// Tokens the penalties look back over; 0 disables, -1 = all.
    pub repeat_last_n: i32,
    /// 1 disables.
    pub repeat_penalty: f32,
    /// Subtracted from the logits of tokens in the window; 0 disables.
    pub presence_penalty: f32,
    /// Subtracted once per occurrence in the window; 0 disables.
    pub frequency_penalty: f32,
    /// Most tokens to generate; negative = until an end token or the context limit.
    pub num_predict: i32,
    /// Negative = random.
    pub seed: i64,
    /// Stop strings (UTF-8), `n_stop` of them; borrowed for the `begin` call only.
    pub stop: *const *const c_char,
    /// Number of `stop` strings.
    pub n_stop: usize,
    /// Apply the tokenizer's post-processor (BOS) to a text prompt.
    pub add_special_tokens: bool,
    // Version 2 (structured outputs and logprobs) starts here.
    /// NULL or "" = free text; "json" = any JSON object; otherwise a JSON
    /// schema (its text) the output must be valid for, enforced token by token.
    /// A schema that cannot be compiled fails `begin` with
    /// `AXLLM_ERR_INVALID_ARGUMENT`. Borrowed for the `begin` call only.
    pub format: *const c_char,
    /// Strings any of which closes a thinking block the output begins with
    /// (`"</think>"`): `format` applies only after it. `n_thinking_close` of
    /// them, may be NULL when 0. Borrowed for the `begin` call only.
    pub thinking_close: *const *const c_char,
    /// Number of `thinking_close` strings.
    pub n_thinking_close: usize,
    /// Record each generated token's log probability (`axllm_generation_logprobs`).
    pub logprobs: bool,
    /// With `logprobs`: the most likely tokens to record per position, 0..=20.
    pub top_logprobs: u32,
}

/// `axllm_generate_params` as published first (before `format`), kept for
/// its size: callers built against that header are still recognised.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)] // only its layout is used
struct axllm_generate_params_v1 {
    struct_size: usize,
    temperature: f32,
    top_k: i32,
    top_p: f32,
    min_p: f32,
    typical_p: f32,
    repeat_last_n: i32,
    repeat_penalty: f32,
    presence_penalty: f32,
    frequency_penalty: f32,
    num_predict: i32,
    seed: i64,
    stop: *const *const c_char,
    n_stop: usize,
    add_special_tokens: bool,
}

/// A struct whose first field is its size.
///
/// # Safety
/// `Self` is `repr(C)`, starts with a `usize` `struct_size`, and every version
/// in `VERSIONS` is a prefix of the current layout.
pub(crate) unsafe trait SizedStruct: Copy {
    /// What the struct is called in messages.
    const NAME: &'static str;
    /// Each published version: (its `sizeof`, how many leading bytes hold
    /// fields, the rest being tail padding). The last entry is the current one.
    const VERSIONS: &'static [(usize, usize)];
    /// The struct with its defaults, `struct_size` set to the current size.
    fn defaults() -> Self;
}

/// The bytes of `size` that hold fields, if `size` is a published version of `T`.
fn used_bytes<T: SizedStruct>(size: usize) -> CResult<usize> {
    let current = size_of::<T>();
    if let Some(&(_, used)) = T::VERSIONS.iter().find(|(s, _)| *s == size) {
        return Ok(used);
    }
    let why = if size == 0 {
        format!("is 0: fill the struct with its default-params function first (struct_size = sizeof({}))", T::NAME)
    } else if size > current {
        format!("is {size}, larger than this library's {current}: the caller was built against a newer axllm.h")
    } else {
        format!("is {size}, which no version of axllm.h had (this library's is {current})")
    };
    Err(CError::invalid(format!("{}.struct_size {why}", T::NAME)))
}

/// Reads a caller's struct by its `struct_size`: the fields of that version,
/// the current defaults for the rest. NULL gives the defaults.
///
/// # Safety
/// `p` is NULL or points to a struct whose first field is a `size_t` and that
/// is valid for reads of that many bytes.
pub(crate) unsafe fn read<T: SizedStruct>(p: *const T) -> CResult<T> {
    let mut out = T::defaults();
    if p.is_null() {
        return Ok(out);
    }
    // SAFETY: the caller's struct starts with a size_t (the caller's contract).
    let size = unsafe { p.cast::<usize>().read_unaligned() };
    let used = used_bytes::<T>(size)?;
    // SAFETY: `used <= size` bytes are readable at `p`; `out` has at least
    // `used` bytes (a version is a prefix of the current layout); the regions
    // are distinct.
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&raw mut out).cast::<u8>(), used) };
    Ok(out)
}

/// Writes `value` into a caller's struct of `size` bytes (a published version
/// of `T`): the fields of that version, `struct_size` set to `size`.
///
/// # Safety
/// `p` is NULL or valid for writes of `size` bytes.
pub(crate) unsafe fn write<T: SizedStruct>(p: *mut T, size: usize, value: T) -> CResult {
    if p.is_null() {
        return Err(CError::invalid(format!("the {} pointer is NULL", T::NAME)));
    }
    let used = used_bytes::<T>(size)?;
    // SAFETY: `p` is valid for `size >= used` bytes (the caller's contract);
    // `value` has at least `used` bytes; the regions are distinct.
    unsafe {
        std::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), p.cast::<u8>(), used);
        p.cast::<usize>().write_unaligned(size);
    }
    Ok(())
}

// SAFETY: repr(C), `struct_size` first; version 1 (up to
// `progress_user_data`, pointer-aligned, so no tail padding) is a prefix.
unsafe impl SizedStruct for axllm_load_params {
    const NAME: &'static str = "axllm_load_params";
    const VERSIONS: &'static [(usize, usize)] = &[
        (offset_of!(axllm_load_params, kv_slots), offset_of!(axllm_load_params, kv_slots)),
        (size_of::<axllm_load_params>(), offset_of!(axllm_load_params, kv_slots) + size_of::<u32>()),
    ];
    fn defaults() -> Self {
        axllm_load_params {
            struct_size: size_of::<Self>(),
            device_index: 0,
            load_method: AXLLM_LOAD_FROM_FILE,
            runtime_library: std::ptr::null(),
            schedule: std::ptr::null(),
            link_roots: std::ptr::null(),
            n_link_roots: 0,
            progress: None,
            progress_user_data: std::ptr::null_mut(),
            kv_slots: 0,
        }
    }
}

// SAFETY: repr(C), `struct_size` first; v1 is a prefix of the current layout.
unsafe impl SizedStruct for axllm_generate_params {
    const NAME: &'static str = "axllm_generate_params";
    const VERSIONS: &'static [(usize, usize)] = &[
        (
            size_of::<axllm_generate_params_v1>(),
            offset_of!(axllm_generate_params_v1, add_special_tokens) + size_of::<bool>(),
        ),
        (size_of::<axllm_generate_params>(), offset_of!(axllm_generate_params, top_logprobs) + size_of::<u32>()),
    ];
    fn defaults() -> Self {
        from_sampling(SamplingOptions::default())
    }
}

/// Generate params with `s`'s sampling, no limit, no stop strings.
pub(crate) fn from_sampling(s: SamplingOptions) -> axllm_generate_params {
    axllm_generate_params {
        struct_size: size_of::<axllm_generate_params>(),
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        min_p: s.min_p,
        typical_p: s.typical_p,
        repeat_last_n: s.repeat_last_n,
        repeat_penalty: s.repeat_penalty,
        presence_penalty: s.presence_penalty,
        frequency_penalty: s.frequency_penalty,
        num_predict: -1,
        seed: s.seed,
        stop: std::ptr::null(),
        n_stop: 0,
        add_special_tokens: false,
        format: std::ptr::null(),
        thinking_close: std::ptr::null(),
        n_thinking_close: 0,
        logprobs: false,
        top_logprobs: 0,
    }
}

/// `n` borrowed C strings.
///
/// # Safety
/// `list` is NULL (then `n` must be 0) or valid for `n` C-string pointers.
unsafe fn strings(list: *const *const c_char, n: usize, what: &str) -> CResult<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if list.is_null() {
        return Err(CError::invalid(format!("{what} is NULL but its count is {n}")));
    }
    (0..n)
        .map(|i| {
            // SAFETY: `list` holds n pointers (the caller's contract).
            let s = unsafe { *list.add(i) };
            // SAFETY: each is NULL or a C string (the caller's contract).
            unsafe { crate::boundary::c_str(s, what) }.map(str::to_owned)
        })
        .collect()
}

/// The Rust load options a C struct asks for.
///
/// # Safety
/// The struct's strings are NULL or valid C strings; `link_roots` is valid
/// for `n_link_roots` pointers.
pub(crate) unsafe fn load_options(p: &axllm_load_params) -> CResult<LoadOptions> {
    let runtime_library = if p.runtime_library.is_null() {
        None
    } else {
        // SAFETY: a C string by the caller's contract.
        Some(PathBuf::from(unsafe { crate::boundary::c_str(p.runtime_library, "params.runtime_library") }?))
    };
    let schedule = if p.schedule.is_null() {
        Schedule::default()
    } else {
        // SAFETY: a C string by the caller's contract.
        let s = unsafe { crate::boundary::c_str(p.schedule, "params.schedule") }?;
        s.parse().map_err(|e| CError::invalid(format!("params.schedule: {e}")))?
    };
    let load_method = match p.load_method {
        AXLLM_LOAD_FROM_FILE => LoadMethod::File,
        AXLLM_LOAD_FROM_DEVICE_MEMORY => LoadMethod::DeviceMemory,
        other => {
            return Err(CError::invalid(format!("params.load_method {other} is not an AXLLM_LOAD_* value")));
        }
    };
    // SAFETY: the caller's contract on link_roots.
    let link_roots = unsafe { strings(p.link_roots, p.n_link_roots, "params.link_roots") }?;
    Ok(LoadOptions {
        device_index: p.device_index as usize,
        runtime_library,
        load_method,
        schedule,
        link_roots: link_roots.into_iter().map(PathBuf::from).collect(),
        kv_slots: match p.kv_slots {
            0 => KvSlots::default(),
            AXLLM_KV_SLOTS_AUTO => KvSlots::Auto,
            n => KvSlots::Count(n as usize),
        },
        ..LoadOptions::default()
    })
}

/// The Rust generate options a C struct asks for.
///
/// # Safety
/// `p.stop` is NULL or valid for `p.n_stop` C strings.
pub(crate) unsafe fn generate_options(p: &axllm_generate_params) -> CResult<GenerateOptions> {
    let finite =
        [p.temperature, p.top_p, p.min_p, p.typical_p, p.repeat_penalty, p.presence_penalty, p.frequency_penalty];
    if finite.iter().any(|v| !v.is_finite()) || p.temperature < 0.0 || p.repeat_penalty <= 0.0 {
        return Err(CError::invalid("sampling parameters must be finite, temperature >= 0, repeat_penalty > 0"));
    }
    // SAFETY: the caller's contract on the stop strings.
    let stop = unsafe { strings(p.stop, p.n_stop, "stop") }?;
    // SAFETY: the caller's contract on the thinking-close strings.
    let thinking_close = unsafe { strings(p.thinking_close, p.n_thinking_close, "thinking_close") }?;
    let format = if p.format.is_null() {
        None
    } else {
        // SAFETY: a C string by the caller's contract.
        let raw = unsafe { crate::boundary::c_str(p.format, "params.format") }?;
        axllm_core::Format::from_ollama(raw)?
    };
    Ok(GenerateOptions {
        sampling: SamplingOptions {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            min_p: p.min_p,
            typical_p: p.typical_p,
            repeat_last_n: p.repeat_last_n,
            repeat_penalty: p.repeat_penalty,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            seed: p.seed,
        },
        num_predict: usize::try_from(p.num_predict).ok(),
        stop,
        add_special_tokens: p.add_special_tokens,
        format,
        thinking_close,
        logprobs: p.logprobs,
        top_logprobs: p.top_logprobs as usize,
    })
}

/// Fills `*params` with the default load parameters: device 0, the default
/// runtime search, load by path, the default schedule, no link roots, no
/// progress callback. Pass `sizeof(axllm_load_params)` as `struct_size`; it is
/// stored in `params->struct_size`.
///
/// # Safety
/// `params` is valid for writes of `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_load_default_params(
    params: *mut axllm_load_params,
    struct_size: usize,
) -> crate::axllm_status {
    // SAFETY: the caller's contract.
    crate::boundary::ffi(|| unsafe { write(params, struct_size, axllm_load_params::defaults()) })
}

/// Fills `*params` with Ollama's defaults: temperature 0.8, top_k 40, top_p
/// 0.9, repeat_last_n 64, random seed, no limit, no stop strings. Pass
/// `sizeof(axllm_generate_params)` as `struct_size`.
///
/// # Safety
/// `params` is valid for writes of `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn axllm_generate_default_params(
    params: *mut axllm_generate_params,
    struct_size: usize,
) -> crate::axllm_status {
    // SAFETY: the caller's contract.
    crate::boundary::ffi(|| unsafe { write(params, struct_size, axllm_generate_params::defaults()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A struct that grew: version 1 ended after `a`, version 2 added `b`.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Grown {
        struct_size: usize,
        a: u32,
        b: u64,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct GrownV1 {
        struct_size: usize,
        a: u32,
    }
    // SAFETY: repr(C), struct_size first, v1 is a prefix of the current layout.
    unsafe impl SizedStruct for Grown {
        const NAME: &'static str = "grown";
        const VERSIONS: &'static [(usize, usize)] =
            &[(size_of::<GrownV1>(), offset_of!(GrownV1, a) + 4), (size_of::<Grown>(), offset_of!(Grown, b) + 8)];
        fn defaults() -> Self {
            Grown { struct_size: size_of::<Self>(), a: 1, b: 2 }
        }
    }

    #[test]
    fn an_older_caller_keeps_working_and_unknown_sizes_are_refused() {
        // An old caller's struct: its tail padding holds garbage that must not leak into `b`.
        let mut old = [0xAAu8; size_of::<GrownV1>()];
        old[..8].copy_from_slice(&size_of::<GrownV1>().to_ne_bytes());
        old[8..12].copy_from_slice(&7u32.to_ne_bytes());
        // SAFETY: `old` is a v1 struct's bytes.
        let got = unsafe { read(old.as_ptr().cast::<Grown>()) }.unwrap();
        assert_eq!((got.a, got.b), (7, 2), "v1's field read, v2's default kept");

        // Filling an old caller's struct writes only its own bytes.
        let mut buf = [0x55u8; size_of::<GrownV1>() + 8];
        // SAFETY: `buf` has room for a v1 struct.
        unsafe { write(buf.as_mut_ptr().cast::<Grown>(), size_of::<GrownV1>(), Grown::defaults()) }.unwrap();
        assert_eq!(usize::from_ne_bytes(buf[..8].try_into().unwrap()), size_of::<GrownV1>());
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 1);
        assert!(buf[12..].iter().all(|&b| b == 0x55), "nothing past v1's fields is written");

        for (size, words) in [(0, "is 0"), (size_of::<Grown>() + 8, "newer axllm.h"), (10, "no version")] {
            let mut s = Grown::defaults();
            s.struct_size = size;
            // SAFETY: `s` is a valid struct; only `struct_size` is odd.
            let e = unsafe { read(&s) }.unwrap_err();
            assert!(e.message.contains(words), "{size}: {}", e.message);
        }
    }
}
