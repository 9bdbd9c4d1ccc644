//! The public model handle: loading a package onto the NPU, what it is, and
//! starting generations and sessions on it.
//!
//! A [`Model`] can be shared across threads. It holds the K/V caches of
//! [`ModelInfo::kv_slots`] sequences on the card; a [`Generation`] or a
//! [`Session`] holds one of these KV slots while it lives. Generations lock
//! the NPU per step, so as many as there are slots run at once, taking turns
//! token by token; a further one waits for a slot.

use crate::diagnostics::Simulator;
use crate::engine::hybrid::kinds_from_config;
use crate::engine::{Engine, HybridLoad, LoadProgress, Resident};
use crate::error::{Error, Result};
use crate::generation::{Completion, Generation, Step};
use crate::embedding::{EmbedOptions, Embedding};
use crate::guide::Guide;
use crate::info::ModelInfo;
use crate::npu::Runtime;
use crate::options::{DEFAULT_SNAPSHOT_SLOTS, GenerateOptions, KvSlots, LoadOptions, MAX_KV_SLOTS};
use crate::package::config::{PostConfig, read_json};
use crate::package::{Embeddings, ModelFiles, Tokenizer};
use crate::sampling::SamplingOptions;
use crate::session::Session;
use crate::shared::{Inner, SlotLease};
use crate::stats::Stats;
use parking_lot::{Condvar, Mutex};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
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
                opts.input_table_budget.unwrap_or(crate::options::DEFAULT_INPUT_TABLE_BUDGET),
                match opts.kv_slots {
                    KvSlots::Count(0) => return Err(Error::invalid("kv_slots is 0: a model needs at least one KV slot")),
                    KvSlots::Count(n) if n > MAX_KV_SLOTS => {
                        return Err(Error::invalid(format!("kv_slots is {n}: at most {MAX_KV_SLOTS}")));
                    }
                    k => k,
                },
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
            schedule: resident.schedule(),
            device_bytes: resident.device_bytes(),
            linear_layers: resident.linear_layers(),
            snapshot_slots: resident.snapshot_slots(),
            snapshot_bytes: resident.snapshot_bytes() as u64,
            kv_slots: resident.kv_slots(),
            kv_slot_bytes: resident.kv_slot_bytes(),
            input_table_positions: resident.input_table_positions(),
            input_table_bytes: resident.input_table_bytes(),
            device_id: device.id(),
            runtime_path: runtime.path().to_path_buf(),
            load_duration: started.elapsed(),
        };
        let defaults = post_config.as_ref().map(SamplingOptions::from_post_config).unwrap_or_default();
        let slots = resident.kv_slots();
        Ok(Model {
            inner: Arc::new(Inner {
                busy: Mutex::new(vec![false; slots]),
                freed: Condvar::new(),
                cancels: Mutex::new(Vec::with_capacity(slots)),
                engine: Arc::new(Mutex::new(Engine::new(resident, opts.inferred))),
                runtime: Arc::clone(&runtime),
                tokenizer,
                embeddings,
                info,
                defaults,
                guide: Default::default(),
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

    /// The tokens whose K/V the device cache of the KV slot used last holds
    /// (waits for a running step).
    pub fn cached_tokens(&self) -> Vec<u32> {
        self.inner.engine.lock().cached_tokens().to_vec()
    }

    /// The tokens whose K/V the device cache of KV slot `slot` holds (empty
    /// for a slot that does not exist).
    pub fn slot_tokens(&self, slot: usize) -> Vec<u32> {
        let engine = self.inner.engine.lock();
        if slot < engine.kv_slots() { engine.slot_tokens(slot).to_vec() } else { Vec::new() }
    }

    /// Zeroes the device cache of every KV slot no generation or session
    /// holds (waits for a running step).
    pub fn reset_cache(&self) -> Result<()> {
        let busy = self.inner.busy.lock();
        let mut engine = self.inner.engine.lock();
        for slot in (0..busy.len()).filter(|&s| !busy[s]) {
            engine.select(slot)?;
            engine.reset()?;
        }
        Ok(())
    }

    /// Cancels every running generation; each ends within one token.
    pub fn cancel(&self) {
        self.inner.cancel_all();
    }

    /// Reserves a KV slot (waiting while every slot is held): the one
    /// `choose` picks among the free ones.
    fn lease(&self, prompt: &[u32], cancel: Option<Arc<AtomicBool>>) -> SlotLease {
        Inner::lease(&self.inner, prompt, cancel)
    }

    /// Starts generating from a text prompt (special tokens in the text are recognised).
    pub fn begin(&self, prompt: &str, opts: &GenerateOptions) -> Result<Generation> {
        let tokens = self.inner.tokenizer.encode(prompt, opts.add_special_tokens)?;
        self.begin_tokens(&tokens, opts)
    }

    /// Starts generating from token ids: takes the free KV slot whose cache
    /// shares the longest prefix with `prompt` (else the least recently used
    /// one; waits while every slot is held), prefills the part of the prompt
    /// that cache does not already hold, samples the first token.
    pub fn begin_tokens(&self, prompt: &[u32], opts: &GenerateOptions) -> Result<Generation> {
        let mut g = self.start_tokens(prompt, opts)?;
        while g.prefill_step()? > 0 {}
        Ok(g)
    }

    /// Like [`Model::begin_tokens`] but feeds nothing yet: the prompt is fed
    /// chunk by chunk by [`Generation::prefill_step`] (or at the first
    /// [`Generation::next`]), so a caller can interleave one generation's
    /// prefill with other generations' steps.
    pub fn start_tokens(&self, prompt: &[u32], opts: &GenerateOptions) -> Result<Generation> {
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= self.inner.info.vocab) {
            return Err(Error::invalid(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.inner.info.vocab
            )));
        }
        if prompt.is_empty() {
            return Err(Error::invalid("empty prompt"));
        }
        let max = self.inner.info.context_length;
        if prompt.len() > max {
            return Err(Error::PromptTooLong { tokens: prompt.len(), max });
        }
        // Before the lease: a format that does not compile takes no slot.
        let guide = Guide::new(opts, &self.inner.guide, &self.inner.tokenizer, self.inner.info.vocab)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let lease = self.lease(prompt, Some(Arc::clone(&cancel)));
        let stats = Stats { prompt_tokens: prompt.len(), ..Default::default() };
        Ok(Generation::new(lease, opts, prompt.to_vec(), guide, cancel, stats))
    }

    /// [`Model::start_tokens`] from a text prompt.
    pub fn start(&self, prompt: &str, opts: &GenerateOptions) -> Result<Generation> {
        let tokens = self.inner.tokenizer.encode(prompt, opts.add_special_tokens)?;
        self.start_tokens(&tokens, opts)
    }

    /// The embedding of `text`: the last token's final hidden state,
    /// L2-normalised (see [`EmbedOptions`] and the module notes in
    /// `embedding.rs`). Takes a KV slot as a generation does (waits while
    /// every slot is held); that slot's cache then holds the text's tokens.
    pub fn embed(&self, text: &str, opts: &EmbedOptions) -> Result<Embedding> {
        crate::embedding::embed(&self.inner, text, opts)
    }

    /// Low-level access to the layer loop: feed tokens, read logits. Holds the
    /// least recently used free KV slot and the NPU until dropped (waits
    /// while every slot is held).
    pub fn session(&self) -> Session {
        let lease = self.lease(&[], None);
        Session::new(self.inner.engine.lock_arc(), lease)
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
