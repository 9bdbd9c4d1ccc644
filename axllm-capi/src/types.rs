//! The C-visible types: statuses, done reasons, parameter and info structs.
#![allow(non_camel_case_types)]

use std::ffi::c_char;

/// Result of every axllm function. Numbers are stable; groups are spaced by 100.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum axllm_status {
    /// Success.
    AXLLM_OK = 0,
    /// A NULL pointer, a string that is not UTF-8, an unknown or freed handle,
    /// or a value out of range. Nothing was changed.
    AXLLM_ERR_INVALID_ARGUMENT = 100,
    /// The caller's buffer is too small; the size needed was stored and the
    /// data is kept for the next call. Nothing was lost.
    AXLLM_ERR_BUFFER_TOO_SMALL = 101,
    /// The AXCL runtime library could not be loaded or lacks symbols.
    AXLLM_ERR_RUNTIME = 200,
    /// The model directory or one of its files does not exist.
    AXLLM_ERR_MODEL_NOT_FOUND = 201,
    /// A model file is malformed, truncated or inconsistent with the others.
    AXLLM_ERR_BAD_MODEL = 202,
    /// The prompt does not fit in the model's context. The model is unchanged.
    AXLLM_ERR_PROMPT_TOO_LONG = 300,
    /// The NPU has no memory for the model or a buffer (another model may need
    /// to be unloaded first). Nothing stays allocated.
    AXLLM_ERR_OUT_OF_MEMORY = 400,
    /// The NPU or its runtime failed. A model may need to be loaded again.
    AXLLM_ERR_DEVICE = 401,
    /// A bug inside axllm was caught at the boundary. Free the handle involved.
    AXLLM_ERR_PANIC = 900,
}

/// Why a generation ended (or `AXLLM_DONE_NONE` while it runs).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum axllm_done_reason {
    /// Not done: a piece of text was returned.
    AXLLM_DONE_NONE = 0,
    /// An end-of-generation token ("stop").
    AXLLM_DONE_EOS = 1,
    /// A stop string, which is not part of the text ("stop").
    AXLLM_DONE_STOP_STRING = 2,
    /// `num_predict` tokens were generated ("length").
    AXLLM_DONE_MAX_TOKENS = 3,
    /// The context is full ("length").
    AXLLM_DONE_CONTEXT_FULL = 4,
    /// Cancelled.
    AXLLM_DONE_CANCELLED = 5,
}

/// How to load a model; start from `axllm_load_default_params()`.
/// The call schedule comes from the environment variable `AXLLM_SCHEDULE`
/// (`safe`, the default, or the opt-in `fewest-calls`; see BENCHMARKS.md).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct axllm_load_params {
    /// Index into the runtime's device list (0 = first card).
    pub device_index: u32,
    /// Path of the AXCL runtime library, or NULL for the default search
    /// (`$AXLLM_AXCL_LIB`, `libaxcl_rt.so`, `/usr/lib/axcl/`). Borrowed for the call.
    pub runtime_library: *const c_char,
    /// Copy model files into device memory and load from there instead of
    /// loading them by path.
    pub load_from_device_memory: bool,
    /// Called after each model file is loaded, on the calling thread; may be NULL.
    pub progress: Option<extern "C" fn(user_data: *mut std::ffi::c_void, loaded: u32, total: u32)>,
    /// Passed to `progress`.
    pub progress_user_data: *mut std::ffi::c_void,
}

/// Sampling and stop options of one generation; start from
/// `axllm_generate_default_params()` (Ollama's defaults) or
/// `axllm_model_generate_params()` (the package's defaults).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct axllm_generate_params {
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
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// Negative = random.
    pub seed: i64,
    /// Most tokens to generate; negative = until an end token or the context limit.
    pub num_predict: i32,
    /// Stop strings (UTF-8), `n_stop` of them; borrowed for the `begin` call only.
    pub stop: *const *const c_char,
    pub n_stop: usize,
    /// Apply the tokenizer's post-processor (BOS) to a text prompt.
    pub add_special_tokens: bool,
}

/// What a loaded model is.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct axllm_model_info {
    /// Positions a conversation may occupy (prompt plus generated tokens).
    pub context_length: u32,
    /// The longest prompt prefilled in chunks; longer prompts up to
    /// `context_length` are accepted but fed token by token.
    pub max_prefill: u32,
    pub vocab_size: u32,
    pub layers: u32,
    pub hidden_size: u32,
    /// Prefill chunk length of the compiled model.
    pub chunk: u32,
    /// Device memory the model uses (buffers plus model files).
    pub device_memory_bytes: u64,
    /// The device id the runtime reports for the card in use.
    pub device_id: i32,
    /// True when the runtime is the simulator (no card).
    pub simulator: bool,
    /// On the simulator: the device allocations alive in this process when
    /// the info was read (every model's), and their bytes. 0 on a card.
    pub sim_live_allocations: u64,
    pub sim_live_bytes: u64,
    /// Hybrid models (Qwen3.5): decoder layers with linear attention; 0 otherwise.
    pub linear_layers: u32,
    /// Hybrid models: device slots for snapshots of the linear layers' state
    /// (part of `device_memory_bytes`), and the bytes of one snapshot.
    pub snapshot_slots: u32,
    pub snapshot_bytes: u64,
}

/// Counts and durations of a generation.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct axllm_stats {
    pub prompt_tokens: u32,
    /// Prompt tokens whose cache was reused from the previous generation.
    pub prompt_reused: u32,
    pub prompt_duration_ns: u64,
    pub generated_tokens: u32,
    pub generate_duration_ns: u64,
}
