//! Direct use of the layer loop: feed tokens, read logits.

use crate::engine::{Engine, Fed, PromptFeed};
use crate::error::{Error, Result};
use crate::shared::SlotLease;
use parking_lot::{ArcMutexGuard, RawMutex};

/// Direct use of the layer loop (see [`crate::Model::session`]); holds a KV
/// slot and the NPU until dropped.
pub struct Session {
    // Field order is drop order: the NPU is unlocked before the slot is released.
    engine: ArcMutexGuard<RawMutex, Engine>,
    lease: SlotLease,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("slot", &self.lease.slot).finish()
    }
}

impl Session {
    pub(crate) fn new(engine: ArcMutexGuard<RawMutex, Engine>, lease: SlotLease) -> Session {
        Session { engine, lease }
    }

    /// The engine on this session's KV slot.
    fn engine(&mut self) -> Result<&mut Engine> {
        self.engine.select(self.lease.slot)?;
        Ok(&mut self.engine)
    }

    /// Makes the cache hold exactly `prompt` (reusing the cached prefix) and
    /// returns how it was fed and the logits (bf16 bits) after its last token.
    pub fn feed_prompt(&mut self, prompt: &[u32]) -> Result<(PromptFeed, &[u16])> {
        let vocab = self.lease.inner.info.vocab;
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::invalid(format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let inner = std::sync::Arc::clone(&self.lease.inner);
        match self.engine()?.feed_prompt(&inner.embeddings, prompt, &|| false)? {
            Fed::Logits(feed, logits) => Ok((feed, logits)),
            Fed::Cancelled(_) => unreachable!("this session never cancels"),
        }
    }

    /// Feeds one token at the next slot; returns the logits (bf16 bits) after it.
    pub fn feed_token(&mut self, token: u32) -> Result<&[u16]> {
        if token as usize >= self.lease.inner.info.vocab {
            return Err(Error::invalid(format!("token id {token} is outside the vocabulary")));
        }
        let inner = std::sync::Arc::clone(&self.lease.inner);
        self.engine()?.feed_token(&inner.embeddings, token)
    }

    /// The tokens the device cache of this session's KV slot holds.
    pub fn cached_tokens(&self) -> &[u32] {
        self.engine.slot_tokens(self.lease.slot)
    }

    /// The KV slot this session holds.
    pub fn slot(&self) -> usize {
        self.lease.slot
    }

    /// True when one more token fits.
    pub fn has_room(&self) -> bool {
        self.engine.slot_tokens(self.lease.slot).len() < self.lease.inner.info.context_length
    }

    /// Zeroes the device cache of this session's KV slot.
    pub fn reset(&mut self) -> Result<()> {
        self.engine()?.reset()
    }

    /// Marks the end of a turn: a hybrid model keeps a snapshot of the state
    /// after every token fed so far (a generation does this when it ends).
    pub fn end_turn(&mut self) -> Result<()> {
        self.engine()?.end_turn()
    }

    /// The lengths of the state snapshots held (hybrid models), ascending.
    pub fn snapshot_lengths(&self) -> Vec<usize> {
        self.engine.snapshots().lengths()
    }
}
