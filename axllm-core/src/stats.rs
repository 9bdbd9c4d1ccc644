//! How a generation went: why it ended and what it counted.

use std::time::Duration;

/// Why a generation ended; maps 1:1 onto API done reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfSequence,
    /// A stop string appeared (it is not part of the text).
    StopString,
    /// `num_predict` tokens were generated.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// Cancelled by the caller.
    Cancelled,
}

impl StopReason {
    /// Ollama's `done_reason`.
    pub fn as_api_str(self) -> &'static str {
        match self {
            StopReason::EndOfSequence | StopReason::StopString => "stop",
            StopReason::MaxTokens | StopReason::ContextFull => "length",
            StopReason::Cancelled => "cancel",
        }
    }
}

/// Counts and durations of a generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Of those, tokens whose K/V were reused from the previous request.
    pub prompt_reused: usize,
    /// Of those, tokens fed one by one (no prefill group held their history).
    pub prompt_fed_by_decode: usize,
    /// Prefill time up to the first sampled token.
    pub prompt_duration: Duration,
    /// Tokens generated (the end token is not counted).
    pub generated: usize,
    /// Time spent generating after the first token.
    pub generate_duration: Duration,
}
