//! The public model handle: loading a package onto the NPU, what it is, and
//! starting generations and sessions on it.
//!
//! A [`Model`] can be shared across threads; a [`Generation`] or a [`Session`]
//! holds the NPU while it lives, so requests are serialised.

use crate::diagnostics::Simulator;
use crate::engine::hybrid::kinds_from_config;
use crate::engine::{Engine, Fed, HybridLoad, LoadProgress, Resident};
use crate::error::{Error, Result};
use crate::generation::{Completion, Generation, Prefilled, Step};
use crate::embedding::{EmbedOptions, Embedding};
use crate::guide::Guide;
use crate::info::ModelInfo;
use crate::npu::Runtime;
use crate::options::{DEFAULT_SNAPSHOT_SLOTS, GenerateOptions, LoadOptions};
use crate::package::config::{PostConfig, read_json};
use crate::package::{Embeddings, ModelFiles, Tokenizer};
use crate::sampling::{Sampler, SamplingOptions};
use crate::session::Session;
use crate::shared::Inner;
use crate::stats::{Stats, StopReason};
use parking_lot::Mutex;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
        let files = ModelFiles::discover(dir, &opts.link_roots)?;
        let pkg = &files.dir;
        let tokenizer = Tokenizer::load(pkg, &files.tokenizer, &files.hf_dirs)?;
        let post_config: Option<PostConfig> = files.post_config.as_deref().map(|p| read_json(pkg, p)).transpose()?;
        let runtime = Runtime::open(opts.runtime_library.as_deref())?;
        let device = runtime.device(opts.device_index)?;
        let kinds = match &files.runtime_config {
            Some(cfg) => kinds_from_config(cfg, files.layers.len(), &dir.join("config.json")).map_err(|e| e.in_package(dir))?,
            None => None,
        };
        let hybrid = HybridLoad { kinds, snapshot_slots: opts.snapshot_slots.unwrap_or(DEFAULT_SNAPSHOT_SLOTS) };
        let resident =
            Resident::load(
                &device,
                pkg,
                &files.layers,
                &files.post,
                opts.load_method,
                opts.schedule,
                &hybrid,
                progress,
                opts.mem_guard_floor_mb.unwrap_or(crate::engine::guard::DEFAULT_FLOOR_MB),
            )
                .map_err(|e| e.in_package(dir))?;
        let geometry = resident.geometry().clone();
        let vocab = resident.vocab();
        if let Some(cfg) = &files.runtime_config
            && (cfg.tokens_embed_size != geometry.hidden || cfg.tokens_embed_num != vocab)
        {
            return Err(Error::bad_file(
                dir.join("config.json"),
                format!(
                    "tokens_embed_num/size are {}/{} but the models report vocabulary {vocab} and hidden size {}",
                    cfg.tokens_embed_num, cfg.tokens_embed_size, geometry.hidden
                ),
            )
            .in_package(dir));
        }
        let embeddings = Embeddings::open(&pkg.open(&files.embedding)?, &files.embedding, vocab, geometry.hidden)
            .map_err(|e| e.in_package(dir))?;
        if tokenizer.vocab_size() > vocab {
            return Err(Error::bad_file(
                files.tokenizer.clone(),
                format!("{} tokens but the model's vocabulary has {vocab}", tokenizer.vocab_size()),
            )
            .in_package(dir));
        }
        let info = ModelInfo {
            name: files.name.clone(),
            package: dir.to_path_buf(),
            layers: resident.num_layers(),
            vocab,
            hidden_size: geometry.hidden,
            chunk: geometry.chunk,
            context_length: geometry.max_positions(),
            max_prefill: geometry.max_prefill(),
            schedule: opts.schedule,
            device_bytes: resident.device_bytes(),
            linear_layers: resident.linear_layers(),
            snapshot_slots: resident.snapshot_slots(),
            snapshot_bytes: resident.snapshot_bytes() as u64,
            device_id: device.id(),
            runtime_path: runtime.path().to_path_buf(),
            load_duration: started.elapsed(),
        };
        let defaults = post_config.as_ref().map(SamplingOptions::from_post_config).unwrap_or_default();
        Ok(Model {
            inner: Arc::new(Inner {
                engine: Arc::new(Mutex::new(Engine::new(resident, opts.inferred))),
                runtime: Arc::clone(&runtime),
                tokenizer,
                embeddings,
                info,
                defaults,
                current_cancel: Mutex::new(None),
                vocabulary: Default::default(),
            }),
        })
    }

    /// What the model is.
    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// Renders a chat with the package's own chat template, as Hugging Face
    /// transformers' `apply_chat_template` does (default system prompt,
    /// `bos_token`/`eos_token`, `raise_exception` and `tojson` included): the
    /// prompt to pass to [`Model::begin`].
    ///
    /// `request_json` is a JSON object: `messages` (a list of `{"role": ...,
    /// "content": ...}`), optionally `tools`, `add_generation_prompt` (default
    /// true) and any other variable the template reads (`enable_thinking`).
    /// Fails with [`ErrorKind::ChatTemplate`](crate::ErrorKind::ChatTemplate)
    /// when the package has no template, the request is malformed, or the
    /// template refuses the conversation.
    pub fn render_chat(&self, request_json: &str) -> Result<String> {
        self.inner.tokenizer.compile_chat_template()?.render_json(request_json)
    }

    /// The package's sampling defaults (from `post_config.json`), or Ollama's.
    pub fn default_sampling(&self) -> SamplingOptions {
        self.inner.defaults
    }

    /// The simulator's diagnostics and controls, when the runtime is axcl-sim
    /// (`None` on a card).
    pub fn simulator(&self) -> Option<Simulator> {
        Simulator::of(&self.inner.runtime)
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
            return Err(Error::invalid(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.inner.info.vocab
            )));
        }
        let mut guide = Guide::new(opts, &self.inner.vocabulary, &self.inner.tokenizer, self.inner.info.vocab)?;
        let mut engine = self.inner.engine.lock_arc();
        let cancel = Arc::new(AtomicBool::new(false));
        *self.inner.current_cancel.lock() = Some(Arc::clone(&cancel));
        let mut sampler = Sampler::new(opts.sampling, self.inner.info.vocab);
        prompt.iter().for_each(|&t| sampler.accept(t));
        let started = Instant::now();
        let fed = engine.feed_prompt(&self.inner.embeddings, prompt, &|| cancel.load(Ordering::SeqCst))?;
        let (feed, first, done) = match fed {
            Fed::Logits(feed, logits) => (feed, Some(guide.choose(&mut sampler, logits, &self.inner.tokenizer)?), None),
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
        Ok(Generation::new(engine, Arc::clone(&self.inner), opts, Prefilled { sampler, guide, first, done, cancel, stats }))
    }

    /// The embedding of `text`: the last token's final hidden state,
    /// L2-normalised (see [`EmbedOptions`] and the module notes in
    /// `embedding.rs`). Waits for a running generation; the device cache then
    /// holds the text's tokens.
    pub fn embed(&self, text: &str, opts: &EmbedOptions) -> Result<Embedding> {
        crate::embedding::embed(&self.inner, text, opts)
    }

    /// Low-level access to the layer loop: feed tokens, read logits. Holds the
    /// NPU (like a generation) until dropped.
    pub fn session(&self) -> Session {
        Session::new(self.inner.engine.lock_arc(), Arc::clone(&self.inner))
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
                    let logprobs = g.take_logprobs();
                    return Ok(Completion { text, reason, stats: g.stats(), tokens: g.tokens().to_vec(), logprobs });
                }
            }
        }
    }
}
