//! A running generation and the pull API over it: text comes out piece by
//! piece from [`Generation::next`], which is what the C ABI and Ollama's
//! runner loop over; [`crate::Model::generate`] is the callback convenience.
//!
//! A generation holds a KV slot for its life and the NPU only within a call:
//! each step selects its slot, so generations on other slots interleave.

use crate::error::Result;
use crate::guide::{Guide, TokenLogprob};
use crate::shared::{Inner, SlotLease};
use crate::options::GenerateOptions;
use crate::package::StreamDecoder;
use crate::sampling::Sampler;
use crate::stats::{Stats, StopReason};
use crate::stop::StopMatcher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Completion {
    /// All the text.
    pub text: String,
    /// Why it ended.
    pub reason: StopReason,
    /// Counts and durations.
    pub stats: Stats,
    /// The generated token ids (the end token excluded).
    pub tokens: Vec<u32>,
    /// Each generated token's log probability, when asked for.
    pub logprobs: Vec<TokenLogprob>,
}

/// One result of [`Generation::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The next piece of text: complete UTF-8 characters, never empty.
    Text(String),
    /// The generation is over; every later call returns the same.
    Done(StopReason),
}

/// Cancels one generation from any thread.
#[derive(Debug, Clone)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// Asks the generation to stop; it reports [`StopReason::Cancelled`] within one token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Where a generation starts once its prompt is fed.
pub(crate) struct Prefilled {
    /// The sampler, having seen the prompt.
    pub sampler: Sampler,
    /// The format constraint and logprobs, having chosen `first`.
    pub guide: Guide,
    /// The token sampled after the prompt (`None` when `done` says why it ended).
    pub first: Option<u32>,
    /// Set when the prompt feed was cancelled.
    pub done: Option<StopReason>,
    /// The generation's cancel flag.
    pub cancel: Arc<AtomicBool>,
    /// The prompt's counts.
    pub stats: Stats,
}

/// A running generation; holds a KV slot until dropped.
pub struct Generation {
    lease: SlotLease,
    inner: Arc<Inner>,
    sampler: Sampler,
    guide: Guide,
    decoder: StreamDecoder,
    stop: StopMatcher,
    /// Sampled, not yet emitted (nor fed through the layers).
    next_token: Option<u32>,
    num_predict: Option<usize>,
    finished: Option<StopReason>,
    /// Text released at the end (held-back stop-string prefixes, detokenizer tail).
    final_text: String,
    cancel: Arc<AtomicBool>,
    stats: Stats,
    tokens: Vec<u32>,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation").field("stats", &self.stats).field("finished", &self.finished).finish()
    }
}

impl Generation {
    /// A generation whose prompt is fed.
    pub(crate) fn new(lease: SlotLease, opts: &GenerateOptions, fed: Prefilled) -> Generation {
        Generation {
            inner: Arc::clone(&lease.inner),
            lease,
            sampler: fed.sampler,
            guide: fed.guide,
            decoder: StreamDecoder::new(),
            stop: StopMatcher::new(&opts.stop),
            next_token: fed.first,
            num_predict: opts.num_predict,
            finished: fed.done,
            final_text: String::new(),
            cancel: fed.cancel,
            stats: fed.stats,
            tokens: Vec::new(),
        }
    }

    /// A handle that cancels this generation from another thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(Arc::clone(&self.cancel))
    }

    /// Counts and durations so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The KV slot this generation holds.
    pub fn slot(&self) -> usize {
        self.lease.slot
    }

    /// Generated token ids so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The log probabilities of the tokens emitted since the last call (empty
    /// unless [`GenerateOptions::logprobs`] is set). A token's entry comes with
    /// or before the piece that holds its text.
    pub fn take_logprobs(&mut self) -> Vec<TokenLogprob> {
        self.guide.take_logprobs()
    }

    /// The next piece of text, or the end. (Not an `Iterator`: the end carries
    /// a reason, errors are distinct from the end, and it mirrors `axllm_generation_next`.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Step> {
        loop {
            if let Some(reason) = self.finished {
                if !self.final_text.is_empty() {
                    return Ok(Step::Text(std::mem::take(&mut self.final_text)));
                }
                return Ok(Step::Done(reason));
            }
            if self.cancel.load(Ordering::SeqCst) {
                self.finish(StopReason::Cancelled, true)?;
                continue;
            }
            let Some(token) = self.next_token.take() else {
                self.finish(StopReason::Cancelled, true)?;
                continue;
            };
            if self.inner.tokenizer.is_eos(token) {
                self.finish(StopReason::EndOfSequence, true)?;
                continue;
            }
            let started = Instant::now();
            self.tokens.push(token);
            self.stats.generated += 1;
            let piece = self.decoder.push(&self.inner.tokenizer, token)?;
            self.guide.emitted(token, &piece)?;
            let out = self.stop.push(&piece);
            if out.stopped {
                self.finish(StopReason::StopString, false)?;
                if !out.emit.is_empty() {
                    return Ok(Step::Text(out.emit));
                }
                continue;
            }
            if self.guide.format_complete() {
                // Only an end token could follow: save the step that samples it.
                self.finish(StopReason::EndOfSequence, true)?;
            } else if self.num_predict.is_some_and(|n| self.stats.generated >= n) {
                self.finish(StopReason::MaxTokens, true)?;
            } else {
                // The NPU for one step, on this generation's slot.
                let mut engine = self.inner.engine.lock();
                engine.select(self.lease.slot)?;
                if !engine.has_room() {
                    drop(engine);
                    self.finish(StopReason::ContextFull, true)?;
                } else {
                    // Feed the emitted token to get the logits of the next one.
                    self.sampler.accept(token);
                    let logits = engine.feed_token(&self.inner.embeddings, token)?;
                    self.next_token = Some(self.guide.choose(&mut self.sampler, logits, &self.inner.tokenizer)?);
                }
            }
            self.stats.generate_duration += started.elapsed();
            if !out.emit.is_empty() {
                return Ok(Step::Text(out.emit));
            }
        }
    }

    /// Ends the stream; `release` flushes held-back text into the final piece.
    /// A hybrid model keeps a snapshot of the state at the end of the turn.
    fn finish(&mut self, reason: StopReason, release: bool) -> Result<()> {
        self.finished = Some(reason);
        {
            let mut engine = self.inner.engine.lock();
            engine.select(self.lease.slot)?;
            engine.end_turn()?;
        }
        if release {
            let tail = self.decoder.finish(&self.inner.tokenizer)?;
            let mut text = self.stop.push(&tail);
            if !text.stopped {
                text.emit.push_str(&self.stop.flush());
            }
            self.final_text = text.emit;
        }
        Ok(())
    }
}
