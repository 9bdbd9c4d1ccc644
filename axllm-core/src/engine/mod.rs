//! The prefill/decode loop over a model resident on the NPU, and the record of
//! which tokens the device cache holds.
//!
//! In a hybrid model (Qwen3.5) the linear layers' state holds exactly the
//! tokens fed, so a prompt that shares only part of them restarts from a
//! snapshot of the state taken at a chunk or turn end ([`snapshots`]), or
//! from the empty state.

mod embed;
pub mod geometry;
pub mod guard;
pub mod hybrid;
pub mod inferred;
pub mod masks;
pub mod resident;
pub mod schedule;
pub mod slots;
pub mod snapshots;
mod step;

pub use inferred::Inferred;
pub use resident::{HybridLoad, LoadMethod, LoadProgress, Resident};
pub use schedule::{Execution, InputUpload, KvWrite, Schedule};
pub use snapshots::{SnapshotKind, SnapshotPool};

use crate::error::{Error, Result};
use crate::package::Embeddings;
use slots::SlotTable;

/// How a prompt was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PromptFeed {
    /// Tokens whose K/V were already on the device and were reused.
    pub reused: usize,
    /// Tokens fed through the layers now.
    pub fed: usize,
    /// Of those, tokens fed one by one through a decode group because no
    /// prefill group holds their history (or, per [`Inferred`], a padded
    /// chunk could not be trusted).
    pub fed_by_decode: usize,
    /// Hybrid models: the reused tokens came from the state snapshot of this
    /// many tokens (restored onto the card), not from the state left on it.
    pub restored: Option<usize>,
}

/// Outcome of feeding a prompt.
#[derive(Debug)]
pub enum Fed<'a> {
    /// The logits after the prompt's last token.
    Logits(PromptFeed, &'a [u16]),
    /// The caller cancelled between chunks; the cache holds what was fed.
    Cancelled(PromptFeed),
}

/// A resident model plus the tokens its K/V caches hold, KV slot by KV slot
/// (see [`slots`]). Every method but [`Engine::select`] and
/// [`Engine::choose_slot`] works on the KV slot in use.
#[derive(Debug)]
pub struct Engine {
    resident: Resident,
    /// The tokens of the KV slot in use (see [`SlotTable::switch`]).
    cached: Vec<u32>,
    needs_reset: bool,
    slots: SlotTable,
    /// Which snapshot slot holds the state after how many tokens (hybrid models).
    snapshots: SnapshotPool,
    inferred: Inferred,
}

impl Engine {
    /// The layer loop over `resident`, with an empty cache, assuming
    /// `inferred` of the card.
    pub fn new(resident: Resident, inferred: Inferred) -> Engine {
        // Room for every position up front: feeding a token never allocates.
        let cached = Vec::with_capacity(resident.geometry().max_positions());
        let snapshots = SnapshotPool::new(resident.snapshot_slots());
        let slots = SlotTable::new(resident.kv_slots(), resident.geometry().max_positions());
        Engine { resident, cached, needs_reset: false, slots, snapshots, inferred }
    }

    /// KV slots in all.
    pub fn kv_slots(&self) -> usize {
        self.slots.len()
    }

    /// The tokens KV slot `slot` holds.
    pub fn slot_tokens(&self, slot: usize) -> &[u32] {
        self.slots.tokens(slot, &self.cached)
    }

    /// The KV slot for `prompt` among those `busy` does not mark: the longest
    /// shared prefix, else the least recently used; `None` when all are busy.
    pub fn choose_slot(&self, prompt: &[u32], busy: &[bool]) -> Option<usize> {
        self.slots.choose(prompt, &self.cached, busy)
    }

    /// Makes KV slot `slot` the one every other method works on (host-local:
    /// buffer handles move and are rebound), and marks it used now.
    pub fn select(&mut self, slot: usize) -> Result<()> {
        if slot >= self.slots.len() {
            return Err(Error::invalid(format!("KV slot {slot} of {}", self.slots.len())));
        }
        self.slots.switch(slot, &mut self.cached, &mut self.needs_reset);
        self.slots.touch(slot);
        self.resident.select_kv(slot)
    }

    /// The snapshots held now (hybrid models).
    pub fn snapshots(&self) -> &SnapshotPool {
        &self.snapshots
    }

    /// True when the model has linear-attention layers.
    fn hybrid(&self) -> bool {
        self.resident.linear_layers() > 0
    }

    /// Takes a snapshot of the state after every cached token, if there is
    /// none of that length yet and the model has linear layers.
    fn capture(&mut self, kind: SnapshotKind) -> Result<()> {
        let len = self.cached.len();
        if !self.hybrid() || len == 0 {
            return Ok(());
        }
        if let Some(slot) = self.snapshots.slot_for(len, kind) {
            self.resident.capture(slot)?;
            self.snapshots.commit(slot, len, kind);
        }
        Ok(())
    }

    /// Marks the end of a turn: the state after every token fed so far is
    /// worth keeping for the next request (a no-op without linear layers).
    pub fn end_turn(&mut self) -> Result<()> {
        self.ensure_clean()?;
        self.guarded(|e| e.capture(SnapshotKind::Turn))
    }

    /// Makes the device hold the state after the first `keep` of the cached
    /// tokens, where `keep` is the longest usable length up to `target`: all
    /// of them if `target` covers the cache, else the longest snapshot, else
    /// none (the empty state). Returns the snapshot length restored, if any.
    fn rewind(&mut self, target: usize) -> Result<Option<usize>> {
        if target >= self.cached.len() {
            return Ok(None);
        }
        if !self.hybrid() {
            self.cached.truncate(target);
            return Ok(None);
        }
        let best = self.snapshots.best(target);
        let keep = best.map_or(0, |(_, len)| len);
        self.snapshots.drop_after(keep);
        self.cached.truncate(keep);
        match best {
            Some((slot, len)) => self.resident.restore(slot).map(|()| Some(len)),
            None => self.resident.zero_linear_state().map(|()| None),
        }
    }

    /// The tokens whose K/V rows the device holds at slots `0..len` (exactly the
    /// tokens fed through the layers; the last sampled token is not among them).
    pub fn cached_tokens(&self) -> &[u32] {
        &self.cached
    }

    /// Zeroes the device cache and forgets its tokens.
    pub fn reset(&mut self) -> Result<()> {
        self.cached.clear();
        self.snapshots.clear();
        self.needs_reset = true;
        self.ensure_clean()
    }

    fn ensure_clean(&mut self) -> Result<()> {
        if self.needs_reset {
            self.resident.clear_cache().map_err(|e| Error::Poisoned { source: Box::new(e) })?;
            self.needs_reset = false;
        }
        Ok(())
    }

    /// Runs `f`; a device failure makes the next call start from a zeroed cache.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let r = f(self);
        if let Err(e) = &r
            && e.is_device_failure()
        {
            self.cached.clear();
            self.snapshots.clear();
            self.needs_reset = true;
        }
        r
    }

    /// Makes the cache hold exactly `prompt`, reusing the longest common prefix
    /// already on the device (at least one token is always fed, for its logits).
    /// Rows past the reused prefix keep stale values, which the masks hide until
    /// they are overwritten. In a hybrid model the reusable prefix is the whole
    /// cache, or the longest snapshot within the common prefix; a snapshot is
    /// taken at the end of every prefill chunk and of the prompt.
    pub fn feed_prompt(&mut self, emb: &Embeddings, prompt: &[u32], cancelled: &dyn Fn() -> bool) -> Result<Fed<'_>> {
        match self.feed(emb, prompt, cancelled, true)? {
            (feed, false) => Ok(Fed::Logits(feed, self.resident_logits())),
            (feed, true) => Ok(Fed::Cancelled(feed)),
        }
    }

    /// [`Engine::feed_prompt`]'s loop; `post`: run the post model after the
    /// last token. Returns how the prompt was fed and whether it was cancelled.
    fn feed(&mut self, emb: &Embeddings, prompt: &[u32], cancelled: &dyn Fn() -> bool, post: bool) -> Result<(PromptFeed, bool)> {
        let max = self.resident.geometry().max_positions();
        if prompt.is_empty() {
            return Err(Error::invalid("empty prompt"));
        }
        if prompt.len() > max {
            return Err(Error::PromptTooLong { tokens: prompt.len(), max });
        }
        self.ensure_clean()?;
        let common = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let restored = self.guarded(|e| e.rewind(common.min(prompt.len() - 1)))?;
        let reused = self.cached.len();
        let mut feed = PromptFeed { reused, restored, ..Default::default() };
        let last = prompt.len();
        let (hybrid, t) = (self.hybrid(), self.resident.geometry().chunk);
        let mut pos = reused;
        while pos < last {
            if pos > reused && cancelled() {
                return Ok((feed, true));
            }
            let plan = self
                .resident
                .geometry()
                .prefill_plan(pos, (last - pos).min(t))
                .filter(|&(_, n)| self.inferred.chunk_ok(n, t, hybrid));
            let n = plan.map_or(1, |(_, n)| n);
            let is_last = pos + n == last;
            let want_logits = post && is_last;
            let chunk = &prompt[pos..pos + n];
            self.guarded(|e| {
                if plan.is_some() {
                    e.resident.prefill_chunk(emb, chunk, pos, want_logits)?;
                } else {
                    e.resident.decode(emb, chunk[0], pos, want_logits)?;
                }
                e.cached.extend_from_slice(chunk);
                if plan.is_some() || is_last {
                    e.capture(if is_last { SnapshotKind::Turn } else { SnapshotKind::Chunk })?;
                }
                Ok(())
            })?;
            feed.fed += n;
            if plan.is_none() {
                feed.fed_by_decode += 1;
            }
            pos += n;
        }
        Ok((feed, false))
    }

    /// Feeds one generated token at the next slot; returns the logits after it.
    pub fn feed_token(&mut self, emb: &Embeddings, token: u32) -> Result<&[u16]> {
        let slot = self.cached.len();
        if slot >= self.resident.geometry().max_positions() {
            return Err(Error::PromptTooLong { tokens: slot + 1, max: self.resident.geometry().max_positions() });
        }
        self.ensure_clean()?;
        self.guarded(|e| {
            e.resident.decode(emb, token, slot, true)?;
            e.cached.push(token);
            Ok(())
        })?;
        Ok(self.resident_logits())
    }

    /// True when one more token can be fed.
    pub fn has_room(&self) -> bool {
        self.cached.len() < self.resident.geometry().max_positions()
    }

    fn resident_logits(&self) -> &[u16] {
        self.resident.last_logits()
    }
}
