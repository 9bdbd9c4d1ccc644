//! What the workloads drive: our library (one of its schedules) or the vendor baseline.

use anyhow::{Result, bail};
use axllm_core::npu::SimHooks;
use axllm_core::{GenerateOptions, LoadOptions, Model, SamplingOptions, Schedule, Session, Step};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A layer loop with a device-resident cache.
pub trait Runner {
    /// Makes the cache hold `prompt` (reusing the cached prefix) and computes its logits.
    fn feed_prompt(&mut self, prompt: &[u32]) -> Result<()>;
    /// Feeds one token at the next slot and computes its logits.
    fn feed_token(&mut self, token: u32) -> Result<()>;
    /// Empties the cache.
    fn reset(&mut self) -> Result<()>;
    /// Generates through the runner's own generation loop, as a real caller
    /// does, after `warmup` tokens: the time of each of the next `n` tokens
    /// (s) and the tokens the simulator's counters (reset after the warm-up)
    /// cover. `None`: the runner has no generation loop (the vendor baseline
    /// is timed by the bench's own loop).
    fn generate_times(&mut self, _sim: &SimHooks, _prompt: &[u32], _warmup: usize, _n: usize) -> Result<Option<(Vec<f64>, usize)>> {
        Ok(None)
    }
}

/// Our library with one schedule, through its session API (and its
/// generation API for decode, when `generation` is set).
pub struct Ours {
    model: Model,
    /// Dropped while a generation runs (it holds a KV slot and the NPU).
    session: Option<Session>,
    generation: bool,
}

impl Ours {
    pub fn load(dir: &Path, runtime: &Path, schedule: Schedule) -> Result<Ours> {
        let opts = LoadOptions { runtime_library: Some(PathBuf::from(runtime)), schedule, ..Default::default() };
        let model = Model::load(dir, &opts)?;
        let session = Some(model.session());
        Ok(Ours { model, session, generation: false })
    }

    /// Decode is timed through `Generation::next` (text decoding and stop
    /// strings included) rather than the session API.
    pub fn with_generation(mut self) -> Ours {
        self.generation = true;
        self
    }

    fn session(&mut self) -> &mut Session {
        self.session.get_or_insert_with(|| self.model.session())
    }
}

impl Runner for Ours {
    fn feed_prompt(&mut self, prompt: &[u32]) -> Result<()> {
        self.session().feed_prompt(prompt)?;
        Ok(())
    }
    fn feed_token(&mut self, token: u32) -> Result<()> {
        self.session().feed_token(token)?;
        Ok(())
    }
    fn reset(&mut self) -> Result<()> {
        Ok(self.session().reset()?)
    }
    fn generate_times(&mut self, sim: &SimHooks, prompt: &[u32], warmup: usize, n: usize) -> Result<Option<(Vec<f64>, usize)>> {
        if !self.generation {
            return Ok(None);
        }
        self.session = None;
        self.model.reset_cache()?;
        // Ollama's default sampling and the stop strings of its Qwen3 template.
        let opts = GenerateOptions {
            sampling: SamplingOptions { seed: 7, ..Default::default() },
            num_predict: Some(warmup + n + 8),
            stop: vec!["<|im_start|>".into(), "<|im_end|>".into()],
            ..Default::default()
        };
        let mut g = self.model.begin_tokens(prompt, &opts)?;
        let mut times = Vec::with_capacity(n);
        let mut last = None;
        let mut counted = 0;
        loop {
            let step = g.next()?;
            let (now, generated) = (Instant::now(), g.stats().generated);
            let Step::Text(_) = step else { bail!("the generation ended after {generated} tokens: {step:?}") };
            match last {
                None if generated >= warmup => {
                    sim.reset_counters()?;
                    counted = generated;
                    last = Some((now, generated));
                }
                None => {}
                Some((t, k)) => {
                    // A call may cover more than one token (text held back).
                    let dt = (now - t).as_secs_f64() / (generated - k) as f64;
                    times.extend(std::iter::repeat_n(dt, generated - k));
                    last = Some((now, generated));
                    if times.len() >= n {
                        break;
                    }
                }
            }
        }
        drop(g);
        times.truncate(n);
        Ok(Some((times, last.map_or(0, |(_, k)| k) - counted)))
    }
}
