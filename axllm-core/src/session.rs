//! Direct use of the layer loop: feed tokens, read logits.

use crate::engine::{Engine, Fed, PromptFeed};
use crate::error::{Error, Result};
use crate::shared::Inner;
use parking_lot::{ArcMutexGuard, RawMutex};
use std::sync::Arc;

/// Direct use of the layer loop (see [`crate::Model::session`]); holds the NPU until dropped.
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
    pub(crate) fn new(engine: ArcMutexGuard<RawMutex, Engine>, inner: Arc<Inner>) -> Session {
        Session { engine, inner }
    }

    /// Makes the cache hold exactly `prompt` (reusing the cached prefix) and
    /// returns how it was fed and the logits (bf16 bits) after its last token.
    pub fn feed_prompt(&mut self, prompt: &[u32]) -> Result<(PromptFeed, &[u16])> {
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= self.inner.info.vocab) {
            return Err(Error::invalid(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.inner.info.vocab
            )));
        }
        match self.engine.feed_prompt(&self.inner.embeddings, prompt, &|| false)? {
            Fed::Logits(feed, logits) => Ok((feed, logits)),
            Fed::Cancelled(_) => unreachable!("this session never cancels"),
        }
    }

    /// Feeds one token at the next slot; returns the logits (bf16 bits) after it.
    pub fn feed_token(&mut self, token: u32) -> Result<&[u16]> {
        if token as usize >= self.inner.info.vocab {
            return Err(Error::invalid(format!("token id {token} is outside the vocabulary")));
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
}
