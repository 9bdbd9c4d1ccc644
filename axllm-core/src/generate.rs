//! The public model handle and the pull-style generation API.
//!
//! A [`Model`] can be shared across threads; a [`Generation`] holds the NPU
//! while it lives, so requests are serialised. Text comes out piece by piece
//! from [`Generation::next`], which is what the C ABI and Ollama's runner loop
//! over; [`Model::generate`] is the callback convenience on top.

use crate::engine::hybrid::kinds_from_config;
use crate::engine::{Engine, Fed, Geometry, HybridLoad, Inferred, LoadMethod, LoadProgress, PromptFeed, Resident, Schedule};
use crate::error::{Error, Result};
use crate::model::config::{PostConfig, read_json};
use crate::model::{Embeddings, ModelFiles, StreamDecoder, Tokenizer};
use crate::npu::{Runtime, SimHooks};
use crate::sampling::{Sampler, SamplingOptions};
use crate::stop::StopMatcher;
use parking_lot::{ArcMutexGuard, Mutex, RawMutex};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Index into the runtime's device list (not the device id).
    pub device_index: usize,
    /// The AXCL runtime library; default: `$AXLLM_AXCL_LIB`, `libaxcl_rt.so`, `/usr/lib/axcl/`.
    pub runtime_library: Option<PathBuf>,
    pub load_method: LoadMethod,
    /// The call schedule; default: `$AXLLM_SCHEDULE` (`safe`, `fewest-calls`,
    /// `kv-bind`, `packed-inputs`), else [`Schedule::SAFE`].
    pub schedule: Option<Schedule>,
    /// Hybrid models: device slots for snapshots of the linear layers' state
    /// (each [`ModelInfo::snapshot_bytes`]); default [`DEFAULT_SNAPSHOT_SLOTS`].
    /// 0 keeps none: a prompt then reuses the cache only when it extends it.
    pub snapshot_slots: Option<usize>,
    /// What the card is assumed to do where the contract is open (default: what the vendor runner assumes).
    pub inferred: Inferred,
}

/// Snapshot slots of a hybrid model when [`LoadOptions::snapshot_slots`] is unset:
/// the ends of a few turns and chunks (about 10 MiB each for Qwen3.5-0.8B with bf16 state).
pub const DEFAULT_SNAPSHOT_SLOTS: usize = 8;

/// What a loaded model is.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    pub files: ModelFiles,
    pub geometry: Geometry,
    pub layers: usize,
    pub vocab: usize,
    /// Positions a conversation may occupy (prompt plus generated tokens).
    pub context_length: usize,
    /// The longest prompt prefilled in chunks from an empty cache; longer
    /// prompts (up to `context_length`) are fed token by token.
    pub max_prefill: usize,
    /// The call schedule in use.
    pub schedule: Schedule,
    /// Device memory used by this model (buffers, snapshot slots, model files).
    pub device_bytes: u64,
    /// Hybrid models: decoder layers with linear attention (0 otherwise).
    pub linear_layers: usize,
    /// Hybrid models: state snapshot slots on the device, and the bytes of each.
    pub snapshot_slots: usize,
    pub snapshot_bytes: u64,
    pub device_id: i32,
    pub runtime_path: PathBuf,
    pub simulator: bool,
    /// Load time.
    pub load_duration: Duration,
}

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

/// Options of one generation.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    pub sampling: SamplingOptions,
    /// Most tokens to generate; `None` means until an end token or the context limit.
    pub num_predict: Option<usize>,
    pub stop: Vec<String>,
    /// Apply the tokenizer's post-processor (BOS for Llama) to a text prompt.
    pub add_special_tokens: bool,
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
    /// Hybrid models: the reused tokens came from the state snapshot of this many tokens.
    pub prompt_restored: Option<usize>,
    /// Hybrid models: state snapshots held after the prompt (at most [`ModelInfo::snapshot_slots`]).
    pub snapshots_held: usize,
    /// Prefill time up to the first sampled token.
    pub prompt_duration: Duration,
    /// Tokens generated (the end token is not counted).
    pub generated: usize,
    /// Time spent generating after the first token.
    pub generate_duration: Duration,
}

struct Inner {
    engine: Arc<Mutex<Engine>>,
    tokenizer: Tokenizer,
    embeddings: Embeddings,
    info: ModelInfo,
    defaults: SamplingOptions,
    current_cancel: Mutex<Option<Arc<AtomicBool>>>,
}

/// A model loaded on the NPU. Cheap to clone; share it across threads.
#[derive(Clone)]
pub struct Model {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("name", &self.inner.info.name).finish()
    }
}

impl Model {
    /// Loads the model package at `dir`.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Model> {
        Self::load_with_progress(dir, opts, &mut |_| {})
    }

    /// Loads, reporting progress after each model file reaches the card.
    pub fn load_with_progress(dir: &Path, opts: &LoadOptions, progress: &mut dyn FnMut(LoadProgress)) -> Result<Model> {
        let started = Instant::now();
        let files = ModelFiles::discover(dir)?;
        let tokenizer = Tokenizer::load(&files.tokenizer, &files.hf_dirs)?;
        let post_config: Option<PostConfig> = files.post_config.as_deref().map(read_json).transpose()?;
        let runtime = Runtime::open(opts.runtime_library.as_deref())?;
        let device = runtime.device(opts.device_index)?;
        let schedule = opts.schedule.map_or_else(Schedule::from_env, Ok)?;
        let kinds = match &files.runtime_config {
            Some(cfg) => kinds_from_config(cfg, files.layers.len(), &files.root.join("config.json"))?,
            None => None,
        };
        let hybrid = HybridLoad { kinds, snapshot_slots: opts.snapshot_slots.unwrap_or(DEFAULT_SNAPSHOT_SLOTS) };
        let resident =
            Resident::load(&device, &files.layers, &files.post, opts.load_method, schedule, &hybrid, progress)?;
        let geometry = resident.geometry().clone();
        let vocab = resident.vocab();
        if let Some(cfg) = &files.runtime_config {
            let config = files.root.join("config.json");
            if cfg.tokens_embed_size != geometry.hidden || cfg.tokens_embed_num != vocab {
                return Err(Error::BadFile {
                    path: config,
                    reason: format!(
                        "tokens_embed_num/size are {}/{} but the models report vocabulary {vocab} and hidden size {}",
                        cfg.tokens_embed_num, cfg.tokens_embed_size, geometry.hidden
                    ),
                });
            }
        }
        let embeddings = Embeddings::open(&files.embedding, vocab, geometry.hidden)?;
        if tokenizer.vocab_size() > vocab {
            return Err(Error::Tokenizer {
                path: files.tokenizer.clone(),
                reason: format!("{} tokens but the model's vocabulary has {vocab}", tokenizer.vocab_size()),
            });
        }
        let info = ModelInfo {
            name: files.name.clone(),
            layers: resident.num_layers(),
            vocab,
            context_length: geometry.max_positions(),
            max_prefill: geometry.max_prefill(),
            schedule,
            device_bytes: resident.device_bytes(),
            linear_layers: resident.linear_layers(),
            snapshot_slots: resident.snapshot_slots(),
            snapshot_bytes: resident.snapshot_bytes() as u64,
            device_id: device.id(),
            runtime_path: runtime.path().to_path_buf(),
            simulator: runtime.simulator().is_some(),
            load_duration: started.elapsed(),
            geometry,
            files,
        };
        let defaults = post_config.as_ref().map(SamplingOptions::from_post_config).unwrap_or_default();
        Ok(Model {
            inner: Arc::new(Inner {
                engine: Arc::new(Mutex::new(Engine::new(resident, opts.inferred))),
                tokenizer,
                embeddings,
                info,
                defaults,
                current_cancel: Mutex::new(None),
            }),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }
    /// The package's sampling defaults (from `post_config.json`), or Ollama's.
    pub fn default_sampling(&self) -> SamplingOptions {
        self.inner.defaults
    }

    /// The simulator's controls when the runtime is axcl-sim.
    pub fn simulator(&self) -> Option<SimulatorHandle> {
        let engine = self.inner.engine.lock();
        engine.resident().device().runtime().simulator()?;
        Some(SimulatorHandle { runtime: Arc::clone(engine.resident().device().runtime()) })
    }

    /// The tokens whose K/V the device cache holds (waits for a running generation).
    pub fn cached_tokens(&self) -> Vec<u32> {
        self.inner.engine.lock().cached_tokens().to_vec()
    }

    /// Zeroes the device cache (waits for a running generation).
    pub fn reset_cache(&self) -> Result<()> {
        self.inner.engine.lock().reset()
    }

    /// Cancels the generation that holds the NPU now, if any; it ends within one token.
    pub fn cancel(&self) {
        if let Some(flag) = self.inner.current_cancel.lock().as_ref() {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Starts generating from a text prompt (special tokens in the text are recognised).
    pub fn begin(&self, prompt: &str, opts: &GenerateOptions) -> Result<Generation> {
        let tokens = self.inner.tokenizer.encode(prompt, opts.add_special_tokens)?;
        self.begin_tokens(&tokens, opts)
    }

    /// Starts generating from token ids: waits for the NPU, prefills the part
    /// of the prompt the device cache does not already hold, samples the first token.
    pub fn begin_tokens(&self, prompt: &[u32], opts: &GenerateOptions) -> Result<Generation> {
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= self.inner.info.vocab) {
            return Err(Error::InvalidArgument(format!("token id {bad} is outside the vocabulary of {}", self.inner.info.vocab)));
        }
        let mut engine = self.inner.engine.lock_arc();
        let cancel = Arc::new(AtomicBool::new(false));
        *self.inner.current_cancel.lock() = Some(Arc::clone(&cancel));
        let mut sampler = Sampler::new(opts.sampling, self.inner.info.vocab);
        prompt.iter().for_each(|&t| sampler.accept(t));
        let started = Instant::now();
        let fed = engine.feed_prompt(&self.inner.embeddings, prompt, &|| cancel.load(Ordering::SeqCst))?;
        let (feed, first, done) = match fed {
            Fed::Logits(feed, logits) => (feed, Some(sampler.sample(logits)), None),
            Fed::Cancelled(feed) => (feed, None, Some(StopReason::Cancelled)),
        };
        let stats = Stats {
            prompt_tokens: prompt.len(),
            prompt_reused: feed.reused,
            prompt_fed_by_decode: feed.fed_by_decode,
            prompt_restored: feed.restored,
            snapshots_held: engine.snapshots().held(),
            prompt_duration: started.elapsed(),
            ..Default::default()
        };
        Ok(Generation {
            engine,
            inner: Arc::clone(&self.inner),
            sampler,
            decoder: StreamDecoder::new(),
            stop: StopMatcher::new(&opts.stop),
            next_token: first,
            num_predict: opts.num_predict,
            finished: done,
            final_text: String::new(),
            cancel,
            stats,
            tokens: Vec::new(),
        })
    }

    /// Low-level access to the layer loop: feed tokens, read logits. Holds the
    /// NPU (like a generation) until dropped.
    pub fn session(&self) -> Session {
        Session { engine: self.inner.engine.lock_arc(), inner: Arc::clone(&self.inner) }
    }

    /// Generates to the end, calling `on_text` with each piece; returning
    /// `false` from it cancels. Returns the whole text, the reason and the stats.
    pub fn generate(
        &self,
        prompt: &str,
        opts: &GenerateOptions,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Completion> {
        let mut g = self.begin(prompt, opts)?;
        let mut text = String::new();
        loop {
            match g.next()? {
                Step::Text(t) => {
                    text.push_str(&t);
                    if !on_text(&t) {
                        g.cancel_handle().cancel();
                    }
                }
                Step::Done(reason) => {
                    return Ok(Completion { text, reason, stats: g.stats(), tokens: g.tokens().to_vec() });
                }
            }
        }
    }
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub reason: StopReason,
    pub stats: Stats,
    /// The generated token ids (the end token excluded).
    pub tokens: Vec<u32>,
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
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A running generation; holds the NPU until dropped.
pub struct Generation {
    engine: ArcMutexGuard<RawMutex, Engine>,
    inner: Arc<Inner>,
    sampler: Sampler,
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
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(Arc::clone(&self.cancel))
    }
    pub fn stats(&self) -> Stats {
        self.stats
    }
    /// Generated token ids so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
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
            let out = self.stop.push(&piece);
            if out.stopped {
                self.finish(StopReason::StopString, false)?;
                if !out.emit.is_empty() {
                    return Ok(Step::Text(out.emit));
                }
                continue;
            }
            if self.num_predict.is_some_and(|n| self.stats.generated >= n) {
                self.finish(StopReason::MaxTokens, true)?;
            } else if !self.engine.has_room() {
                self.finish(StopReason::ContextFull, true)?;
            } else {
                // Feed the emitted token to get the logits of the next one.
                self.sampler.accept(token);
                let logits = self.engine.feed_token(&self.inner.embeddings, token)?;
                self.next_token = Some(self.sampler.sample(logits));
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
        self.engine.end_turn()?;
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

impl Drop for Generation {
    fn drop(&mut self) {
        let mut current = self.inner.current_cancel.lock();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.cancel)) {
            *current = None;
        }
    }
}

/// Direct use of the layer loop (see [`Model::session`]).
pub struct Session {
    engine: ArcMutexGuard<RawMutex, Engine>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("cached", &self.engine.cached_tokens().len()).finish()
    }
}

impl Session {
    /// Makes the cache hold exactly `prompt` (reusing the cached prefix) and
    /// returns how it was fed and the logits (bf16 bits) after its last token.
    pub fn feed_prompt(&mut self, prompt: &[u32]) -> Result<(PromptFeed, &[u16])> {
        match self.engine.feed_prompt(&self.inner.embeddings, prompt, &|| false)? {
            Fed::Logits(feed, logits) => Ok((feed, logits)),
            Fed::Cancelled(_) => unreachable!("this session never cancels"),
        }
    }
    /// Feeds one token at the next slot; returns the logits after it.
    pub fn feed_token(&mut self, token: u32) -> Result<&[u16]> {
        if token as usize >= self.inner.info.vocab {
            return Err(Error::InvalidArgument(format!("token id {token} is outside the vocabulary")));
        }
        self.engine.feed_token(&self.inner.embeddings, token)
    }
    /// The tokens the device cache holds.
    pub fn cached_tokens(&self) -> &[u32] {
        self.engine.cached_tokens()
    }
    /// True when one more token fits.
    pub fn has_room(&self) -> bool {
        self.engine.has_room()
    }
    /// Zeroes the device cache.
    pub fn reset(&mut self) -> Result<()> {
        self.engine.reset()
    }
    /// Marks the end of a turn: a hybrid model keeps a snapshot of the state
    /// after every token fed so far (a generation does this when it ends).
    pub fn end_turn(&mut self) -> Result<()> {
        self.engine.end_turn()
    }
    /// The lengths of the state snapshots held (hybrid models), ascending.
    pub fn snapshot_lengths(&self) -> Vec<usize> {
        self.engine.snapshots().lengths()
    }
}

/// The simulator's controls, for tests and benchmarks.
#[derive(Debug, Clone)]
pub struct SimulatorHandle {
    runtime: Arc<Runtime>,
}

impl SimulatorHandle {
    fn hooks(&self) -> &SimHooks {
        self.runtime.simulator().expect("checked at creation")
    }
    /// Applies a configuration (latencies, faults; syntax in `axcl_sim.h`).
    pub fn configure(&self, spec: &str) -> Result<()> {
        self.hooks().configure(spec)
    }
    pub fn counters(&self) -> Result<crate::npu::SimCounters> {
        self.hooks().counters()
    }
    pub fn reset_counters(&self) -> Result<()> {
        self.hooks().reset_counters()
    }
}
