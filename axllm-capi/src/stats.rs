//! `axllm_stats`: counts and durations of a generation.

use axllm_core::Stats;

/// Counts and durations of a generation.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct axllm_stats {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Prompt tokens whose cache was reused from the previous generation.
    pub prompt_reused: u32,
    /// Prefill time up to the first sampled token.
    pub prompt_duration_ns: u64,
    /// Tokens generated (the end token is not counted).
    pub generated_tokens: u32,
    /// Time spent generating after the first token.
    pub generate_duration_ns: u64,
}

pub(crate) fn c_stats(s: Stats) -> axllm_stats {
    axllm_stats {
        prompt_tokens: s.prompt_tokens as u32,
        prompt_reused: s.prompt_reused as u32,
        prompt_duration_ns: s.prompt_duration.as_nanos() as u64,
        generated_tokens: s.generated as u32,
        generate_duration_ns: s.generate_duration.as_nanos() as u64,
    }
}
