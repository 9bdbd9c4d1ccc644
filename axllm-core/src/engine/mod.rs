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
mod tables;

pub use inferred::Inferred;
pub use resident::{HybridLoad, LoadMethod, LoadProgress, Resident};
pub use schedule::{ChunkRun, Execution, InputUpload, KvWrite, LogitsRead, Schedule};
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

/// A prompt being fed chunk by chunk: how far, and how it was fed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptCursor {
    /// The counts so far.
    pub feed: PromptFeed,
    /// Prompt tokens in the cache (reused or fed).
    pos: usize,
    /// Run the post model after the last token (false: the last layer's
    /// output is all that is wanted, for an embedding).
    post: bool,
}

impl PromptCursor {
    /// Prompt tokens in the cache so far (reused or fed).
    pub fn position(&self) -> usize {
        self.pos
    }
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
    /// The KV slot (always the one in use) whose decode step
    /// [`Engine::submit_token`] queued and nobody has waited for yet.
    in_flight: Option<usize>,
    /// Per KV slot: the logits of its queued step, fetched when another slot
    /// needed the card first (see [`Engine::select`]); empty until first used.
    saved: Vec<Vec<u16>>,
    /// Per KV slot: `saved` holds logits its owner has not taken.
    saved_ready: Vec<bool>,
}

impl Engine {
    /// The layer loop over `resident`, with an empty cache, assuming
    /// `inferred` of the card.
    pub fn new(resident: Resident, inferred: Inferred) -> Engine {
        // Room for every position up front: feeding a token never allocates.
        let cached = Vec::with_capacity(resident.geometry().max_positions());
        let snapshots = SnapshotPool::new(resident.snapshot_slots());
        let slots = SlotTable::new(resident.kv_slots(), resident.geometry().max_positions());
        let n = slots.len();
        Engine {
            resident,
            cached,
            needs_reset: false,
            slots,
            snapshots,
            inferred,
            in_flight: None,
            saved: vec![Vec::new(); n],
            saved_ready: vec![false; n],
        }
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
    ///
    /// A step another slot queued ([`Engine::submit_token`]) is completed
    /// first: waited for, its logits fetched into that slot's own host
    /// buffer for [`Engine::take_logits`], so that the shared step buffers,
    /// the bindings and the logits are free for `slot`.
    pub fn select(&mut self, slot: usize) -> Result<()> {
        if slot >= self.slots.len() {
            return Err(Error::invalid(format!("KV slot {slot} of {}", self.slots.len())));
        }
        if self.in_flight.is_some_and(|s| s != slot) {
            self.settle()?;
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
        self.drain()?;
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
        self.drain()?;
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
    /// Returns how it was fed and the logits after its last token.
    pub fn feed_prompt(&mut self, emb: &Embeddings, prompt: &[u32]) -> Result<(PromptFeed, &[u16])> {
        let mut cursor = self.start_prompt(prompt)?;
        while !self.feed_chunk(emb, prompt, &mut cursor)? {}
        Ok((cursor.feed, self.resident_logits()))
    }

    /// Starts feeding `prompt` chunk by chunk ([`Engine::feed_chunk`]): checks
    /// it and keeps the longest usable prefix of the cache (see
    /// [`Engine::feed_prompt`]). Nothing is fed yet.
    pub fn start_prompt(&mut self, prompt: &[u32]) -> Result<PromptCursor> {
        let max = self.resident.geometry().max_positions();
        if prompt.is_empty() {
            return Err(Error::invalid("empty prompt"));
        }
        if prompt.len() > max {
            return Err(Error::PromptTooLong { tokens: prompt.len(), max });
        }
        self.drain()?;
        self.ensure_clean()?;
        let common = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let restored = self.guarded(|e| e.rewind(common.min(prompt.len() - 1)))?;
        let reused = self.cached.len();
        Ok(PromptCursor { feed: PromptFeed { reused, restored, ..Default::default() }, pos: reused, post: true })
    }

    /// Feeds the next chunk of `prompt` (the prompt `cursor` was started on,
    /// with this KV slot selected): one layer pass. Returns true once the
    /// whole prompt is in the cache, the logits after its last token ready
    /// ([`Engine::logits`]). Between calls other KV slots may be used.
    pub fn feed_chunk(&mut self, emb: &Embeddings, prompt: &[u32], cursor: &mut PromptCursor) -> Result<bool> {
        let last = prompt.len();
        let pos = cursor.pos;
        if pos >= last {
            return Ok(true);
        }
        if self.cached.len() != pos || self.cached[..] != prompt[..pos] {
            // A device failure zeroed the cache since the last chunk.
            return Err(Error::invalid(format!(
                "the KV slot no longer holds the prompt's first {pos} tokens (it was reset); begin again"
            )));
        }
        self.ensure_clean()?;
        let (hybrid, t) = (self.hybrid(), self.resident.geometry().chunk);
        let plan = self
            .resident
            .geometry()
            .prefill_plan(pos, (last - pos).min(t))
            .filter(|&(_, n)| self.inferred.chunk_ok(n, t, hybrid));
        let n = plan.map_or(1, |(_, n)| n);
        let is_last = pos + n == last;
        let want_logits = cursor.post && is_last;
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
        cursor.feed.fed += n;
        if plan.is_none() {
            cursor.feed.fed_by_decode += 1;
        }
        cursor.pos += n;
        Ok(is_last)
    }

    /// The logits after the last token fed.
    pub fn logits(&self) -> &[u16] {
        self.resident_logits()
    }

    /// Feeds one generated token at the next slot; returns the logits after it.
    pub fn feed_token(&mut self, emb: &Embeddings, token: u32) -> Result<&[u16]> {
        let slot = self.cached.len();
        if slot >= self.resident.geometry().max_positions() {
            return Err(Error::PromptTooLong { tokens: slot + 1, max: self.resident.geometry().max_positions() });
        }
        self.drain()?;
        self.ensure_clean()?;
        self.guarded(|e| {
            e.resident.decode(emb, token, slot, true)?;
            e.cached.push(token);
            Ok(())
        })?;
        Ok(self.resident_logits())
    }

    /// Whether [`Engine::submit_token`] overlaps the card with the caller:
    /// the schedule queues a decode step and no layer keeps a recurrent state
    /// (a token fed to one cannot be taken back, see [`Engine::discard_step`]).
    pub fn pipelined(&self) -> bool {
        self.resident.decode_queued() && !self.hybrid()
    }

    /// Feeds one generated token at the next slot without waiting for it: the
    /// step is queued on the card and the token counted as cached (its row is
    /// being written). [`Engine::take_logits`] waits and returns its logits;
    /// [`Engine::discard_step`] waits and drops them. Meant for
    /// [`Engine::pipelined`] engines (elsewhere the step runs to its end here).
    pub fn submit_token(&mut self, emb: &Embeddings, token: u32) -> Result<()> {
        let slot = self.cached.len();
        if slot >= self.resident.geometry().max_positions() {
            return Err(Error::PromptTooLong { tokens: slot + 1, max: self.resident.geometry().max_positions() });
        }
        self.drain()?;
        self.ensure_clean()?;
        let active = self.slots.active();
        self.guarded(|e| {
            e.resident.decode_submit(emb, token, slot)?;
            e.cached.push(token);
            e.in_flight = Some(active);
            Ok(())
        })
    }

    /// The logits of the step [`Engine::submit_token`] queued on the slot in
    /// use: waits for it, or returns what [`Engine::select`] fetched when
    /// another slot needed the card.
    pub fn take_logits(&mut self) -> Result<&[u16]> {
        let active = self.slots.active();
        if self.in_flight == Some(active) {
            self.in_flight = None;
            self.guarded(|e| e.resident.decode_complete().map(|_| ()))?;
            return Ok(self.resident_logits());
        }
        if std::mem::take(&mut self.saved_ready[active]) {
            return Ok(&self.saved[active]);
        }
        Err(Error::invalid("no decode step was submitted on this KV slot"))
    }

    /// Ends a step [`Engine::submit_token`] queued on the slot in use without
    /// its logits: waits for it, and unless `keep` forgets its token (the
    /// token list then ends where it did before the step; its row on the card
    /// lies past the cached length, hidden by the masks like any stale row,
    /// until overwritten). A no-op when no step is pending.
    pub fn discard_step(&mut self, keep: bool) -> Result<()> {
        let active = self.slots.active();
        let pending = self.in_flight == Some(active) || self.saved_ready[active];
        self.saved_ready[active] = false;
        self.drain()?;
        if pending && !keep {
            self.cached.pop();
        }
        Ok(())
    }

    /// Completes the queued step into its slot's own logits buffer (the
    /// queued slot is the one in use: [`Engine::select`] settles before it switches).
    fn settle(&mut self) -> Result<()> {
        let Some(slot) = self.in_flight.take() else { return Ok(()) };
        debug_assert_eq!(slot, self.slots.active());
        self.guarded(|e| e.resident.decode_complete().map(|_| ()))?;
        let logits = self.resident.last_logits();
        let saved = &mut self.saved[slot];
        saved.clear();
        saved.extend_from_slice(logits);
        self.saved_ready[slot] = true;
        Ok(())
    }

    /// Waits for a queued step of the slot in use and drops its logits (the
    /// token stays cached: its row is on the card).
    fn drain(&mut self) -> Result<()> {
        let active = self.slots.active();
        self.saved_ready[active] = false;
        if self.in_flight.take().is_some() {
            self.guarded(|e| e.resident.drain())?;
        }
        Ok(())
    }

    /// True when one more token can be fed.
    pub fn has_room(&self) -> bool {
        self.cached.len() < self.resident.geometry().max_positions()
    }

    fn resident_logits(&self) -> &[u16] {
        self.resident.last_logits()
    }
}
