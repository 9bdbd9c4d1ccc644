//! What the workloads drive: our library (one of its schedules) or the vendor baseline.

use anyhow::Result;
use axllm_core::{LoadOptions, Model, Schedule, Session};
use std::path::{Path, PathBuf};

/// A layer loop with a device-resident cache.
pub trait Runner {
    /// Makes the cache hold `prompt` (reusing the cached prefix) and computes its logits.
    fn feed_prompt(&mut self, prompt: &[u32]) -> Result<()>;
    /// Feeds one token at the next slot and computes its logits.
    fn feed_token(&mut self, token: u32) -> Result<()>;
    /// Empties the cache.
    fn reset(&mut self) -> Result<()>;
}

/// Our library with one schedule, through its session API.
pub struct Ours {
    session: Session,
}

impl Ours {
    pub fn load(dir: &Path, runtime: &Path, schedule: Schedule) -> Result<Ours> {
        let opts = LoadOptions { runtime_library: Some(PathBuf::from(runtime)), schedule, ..Default::default() };
        Ok(Ours { session: Model::load(dir, &opts)?.session() })
    }
}

impl Runner for Ours {
    fn feed_prompt(&mut self, prompt: &[u32]) -> Result<()> {
        self.session.feed_prompt(prompt)?;
        Ok(())
    }
    fn feed_token(&mut self, token: u32) -> Result<()> {
        self.session.feed_token(token)?;
        Ok(())
    }
    fn reset(&mut self) -> Result<()> {
        Ok(self.session.reset()?)
    }
}
