//! A running generation and the pull API over it: text comes out piece by
//! piece from [`Generation::next`], which is what the C ABI and Ollama's
//! runner loop over; [`crate::Model::generate`] is the callback convenience.
//!
//! A generation holds a KV slot for its life and the NPU only within a call:
//! each step selects its slot, so generations on other slots interleave.

use crate::engine::PromptCursor;
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
    /// Asks the generation to stop; it reports [`StopReason::Cancelled`]
    /// within one token or, while its prompt is fed, one prefill chunk.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A prompt not yet wholly fed: the tokens and how far they are.
struct PendingPrompt {
    tokens: Vec<u32>,
    /// `None` until the first chunk (the cache's reusable prefix is settled then).
    cursor: Option<PromptCursor>,
}

/// A running generation; holds a KV slot until dropped.
pub struct Generation {
    lease: SlotLease,
    /// The prompt while it is being fed.
    prompt: Option<PendingPrompt>,
    inner: Arc<Inner>,
    sampler: Sampler,
    /// The format constraint and logprobs.
    guide: Guide,
    decoder: StreamDecoder,
    stop: StopMatcher,
    /// Sampled, not yet emitted (nor fed through the layers).
    next_token: Option<u32>,
    /// The last emitted token's step is queued on the card (pipelined
    /// engines): the next call takes its logits and samples `next_token`.
    pending: bool,
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
    /// A generation on `lease` whose `prompt` (checked) is still to feed;
    /// `stats` holds its length.
    pub(crate) fn new(
        lease: SlotLease,
        opts: &GenerateOptions,
        prompt: Vec<u32>,
        guide: Guide,
        cancel: Arc<AtomicBool>,
        stats: Stats,
    ) -> Generation {
        let mut sampler = Sampler::new(opts.sampling, lease.inner.info.vocab);
        prompt.iter().for_each(|&t| sampler.accept(t));
        Generation {
            inner: Arc::clone(&lease.inner),
            lease,
            prompt: Some(PendingPrompt { tokens: prompt, cursor: None }),
            sampler,
            guide,
            decoder: StreamDecoder::new(),
            stop: StopMatcher::new(&opts.stop),
            next_token: None,
            pending: false,
            num_predict: opts.num_predict,
            finished: None,
            final_text: String::new(),
            cancel,
            stats,
            tokens: Vec::new(),
        }
    }

    /// Feeds the next chunk of the prompt (one layer pass on the NPU, which
    /// is locked for that pass only) and returns how many prompt tokens are
    /// still to feed. At 0 the prompt is in the KV slot and the first token
    /// sampled; later calls do nothing and return 0. Calling this in turns
    /// with other generations' steps interleaves their prefills and decodes
    /// chunk by chunk; the output is the same as without. A cancelled
    /// generation stops here, at a chunk boundary: its slot holds exactly the
    /// tokens fed so far, and [`Generation::next`] reports the cancel. An
    /// error ends the generation (then it reports [`StopReason::Cancelled`]).
    /// [`Generation::next`] feeds whatever is left first.
    pub fn prefill_step(&mut self) -> Result<usize> {
        let r = self.feed_prompt_chunk();
        if r.is_err() {
            self.prompt = None;
            self.finished = Some(StopReason::Cancelled);
        }
        r
    }

    fn feed_prompt_chunk(&mut self) -> Result<usize> {
        let Some(pending) = self.prompt.as_mut() else { return Ok(0) };
        if self.cancel.load(Ordering::SeqCst) {
            self.prompt = None;
            self.finish(StopReason::Cancelled, true)?;
            return Ok(0);
        }
        let mut engine = self.inner.engine.lock();
        // From the lock on: the time other generations' steps took is not this prompt's.
        let started = Instant::now();
        engine.select(self.lease.slot)?;
        let cursor = match &mut pending.cursor {
            Some(c) => c,
            None => pending.cursor.insert(engine.start_prompt(&pending.tokens)?),
        };
        let done = engine.feed_chunk(&self.inner.embeddings, &pending.tokens, cursor)?;
        let (feed, left) = (cursor.feed, pending.tokens.len() - cursor.position());
        self.stats.prompt_reused = feed.reused;
        self.stats.prompt_fed_by_decode = feed.fed_by_decode;
        self.stats.prompt_restored = feed.restored;
        if done {
            self.next_token = Some(self.guide.choose(&mut self.sampler, engine.logits(), &self.inner.tokenizer)?);
            self.stats.snapshots_held = engine.snapshots().held();
            self.prompt = None;
        }
        drop(engine);
        self.stats.prompt_duration += started.elapsed();
        Ok(left)
    }

    /// True while prompt tokens are still to feed ([`Generation::prefill_step`]).
    pub fn prefilling(&self) -> bool {
        self.prompt.is_some()
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

    /// The next piece of text, or the end. (Not an `Iterator`: the end carries
    /// a reason, errors are distinct from the end, and it mirrors `axllm_generation_next`.)
    ///
    /// With the default schedule (whose decode step is queued on the card)
    /// and a model without recurrent layers, generation is pipelined: a token
    /// that continues the generation (not the end token, within `num_predict`
    /// and the context) is fed to the card before its text is decoded and
    /// checked for stop strings, and the call returns with that step queued,
    /// so the rest of this token's host work and whatever the caller does with
    /// the text overlap the card's compute. The next call waits for the step,
    /// reads its logits and samples. A stop string found after the submit
    /// takes the token back, so the cache ends exactly where it does without
    /// pipelining; a cancel keeps it (the token was emitted), as without
    /// pipelining. A generation on another KV slot completes a queued step
    /// before it touches the card, saving its logits for this one.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Step> {
        while self.prompt.is_some() {
            self.prefill_step()?;
        }
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
            if self.pending {
                let started = Instant::now();
                let mut engine = self.inner.engine.lock();
                engine.select(self.lease.slot)?;
                self.pending = false;
                let logits = engine.take_logits()?;
                self.next_token = Some(self.guide.choose(&mut self.sampler, logits, &self.inner.tokenizer)?);
                drop(engine);
                self.stats.generate_duration += started.elapsed();
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
            // A format constraint takes the token's text before the step is
            // queued: a complete format ends here (only an end token could
            // follow), with nothing more fed.
            let early = if self.guide.constrained() { Some(self.emit_piece(token)?) } else { None };
            let complete = self.guide.format_complete();
            let budget_left = self.num_predict.is_none_or(|n| self.stats.generated < n);
            let mut room = true;
            if budget_left && !complete {
                let mut engine = self.inner.engine.lock();
                engine.select(self.lease.slot)?;
                room = engine.has_room();
                if room && engine.pipelined() {
                    // The token continues: its step goes to the card now.
                    self.sampler.accept(token);
                    engine.submit_token(&self.inner.embeddings, token)?;
                    self.pending = true;
                }
            }
            if self.pending {
                // While the card runs the step: the mask its logits will take.
                self.guide.prepare()?;
            }
            let piece = match early {
                Some(piece) => piece,
                None => self.emit_piece(token)?,
            };
            let out = self.stop.push(&piece);
            if out.stopped {
                self.finish(StopReason::StopString, false)?;
                if !out.emit.is_empty() {
                    return Ok(Step::Text(out.emit));
                }
                continue;
            }
            if complete {
                // Only an end token could follow: save the step that samples it.
                self.finish(StopReason::EndOfSequence, true)?;
            } else if !budget_left {
                self.finish(StopReason::MaxTokens, true)?;
            } else if !room {
                self.finish(StopReason::ContextFull, true)?;
            } else if !self.pending {
                // Not pipelined: the NPU for one step, on this generation's slot.
                let mut engine = self.inner.engine.lock();
                engine.select(self.lease.slot)?;
                // Feed the emitted token to get the logits of the next one.
                self.sampler.accept(token);
                let logits = engine.feed_token(&self.inner.embeddings, token)?;
                self.next_token = Some(self.guide.choose(&mut self.sampler, logits, &self.inner.tokenizer)?);
            }
            self.stats.generate_duration += started.elapsed();
            if !out.emit.is_empty() {
                return Ok(Step::Text(out.emit));
            }
        }
    }

    /// The emitted `token`'s text; the format constraint takes the token and
    /// its logprob joins those the caller takes.
    fn emit_piece(&mut self, token: u32) -> Result<String> {
        let piece = self.decoder.push(&self.inner.tokenizer, token)?;
        self.guide.emitted(token, &piece)?;
        Ok(piece)
    }

    /// The log probabilities of the tokens emitted since the last call (empty
    /// unless [`GenerateOptions::logprobs`] is set). A token's entry comes with
    /// or before the piece that holds its text.
    pub fn take_logprobs(&mut self) -> Vec<TokenLogprob> {
        self.guide.take_logprobs()
    }

    /// Ends the stream; `release` flushes held-back text into the final piece.
    /// A hybrid model keeps a snapshot of the state at the end of the turn.
    ///
    /// A step still queued for the last emitted token is waited for and its
    /// logits dropped; after a stop string its token is taken back too (the
    /// token that completed a stop string is never fed, pipelined or not).
    fn finish(&mut self, reason: StopReason, release: bool) -> Result<()> {
        self.finished = Some(reason);
        {
            let mut engine = self.inner.engine.lock();
            engine.select(self.lease.slot)?;
            if std::mem::take(&mut self.pending) {
                engine.discard_step(reason != StopReason::StopString)?;
            }
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
