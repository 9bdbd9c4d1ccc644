//! Which recurrent-state snapshots a hybrid model keeps (hardware-facts: F32).
//!
//! A linear layer's state cannot be cut back to fewer tokens the way K/V rows
//! can, so reusing a prefix that is shorter than what the card holds needs a
//! copy of the state taken at that length. The engine takes one at the end of
//! every prefill chunk and at the end of every turn; they live in a fixed
//! number of device slots allocated at load (`LoadOptions::snapshot_slots`),
//! so the memory is bounded and known up front. This module is only the
//! bookkeeping: which slot holds the state after how many tokens.
//!
//! Every snapshot held describes a prefix of the tokens the engine has fed:
//! when the engine goes back to `keep` tokens it drops the snapshots past it.
//!
//! When every slot is taken, the least useful snapshot makes room: a chunk
//! snapshot before a turn's, and among chunk snapshots the one whose removal
//! leaves the smallest gap to the snapshot before it (so the ones kept stay
//! spread over the conversation); among turn snapshots the least recently used.

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// The end of a prefill chunk inside a prompt.
    Chunk,
    /// The end of a prompt or of a turn: where the next request most likely
    /// shares the prefix up to.
    Turn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    len: usize,
    kind: SnapshotKind,
    /// Logical time of the last capture or restore.
    used: u64,
}

/// The bookkeeping of the snapshot slots.
#[derive(Debug, Clone)]
pub struct SnapshotPool {
    slots: Vec<Option<Entry>>,
    clock: u64,
}

impl SnapshotPool {
    /// A pool of `slots` empty slots (0: no snapshots, prefix reuse only by continuing).
    pub fn new(slots: usize) -> Self {
        Self { slots: vec![None; slots], clock: 0 }
    }

    /// Snapshots held now.
    pub fn held(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// The token counts of the snapshots held, ascending.
    pub fn lengths(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.slots.iter().flatten().map(|e| e.len).collect();
        v.sort_unstable();
        v
    }

    /// The slot holding the longest snapshot of at most `target` tokens, and its length.
    pub fn best(&mut self, target: usize) -> Option<(usize, usize)> {
        let (slot, len) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.filter(|e| e.len <= target).map(|e| (i, e.len)))
            .max_by_key(|&(_, len)| len)?;
        self.clock += 1;
        if let Some(e) = self.slots[slot].as_mut() {
            e.used = self.clock;
        }
        Some((slot, len))
    }

    /// Forgets the snapshots of more than `keep` tokens.
    pub fn drop_after(&mut self, keep: usize) {
        for s in &mut self.slots {
            if s.is_some_and(|e| e.len > keep) {
                *s = None;
            }
        }
    }

    /// Forgets every snapshot.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }

    /// The slot to capture the state after `len` tokens into, or `None` when
    /// the pool has no slots or already holds that length (then only its kind
    /// is upgraded). The caller copies the state there, then calls [`Self::commit`].
    pub fn slot_for(&mut self, len: usize, kind: SnapshotKind) -> Option<usize> {
        self.clock += 1;
        if let Some(e) = self.slots.iter_mut().flatten().find(|e| e.len == len) {
            e.used = self.clock;
            if kind == SnapshotKind::Turn {
                e.kind = kind;
            }
            return None;
        }
        if let Some(free) = self.slots.iter().position(Option::is_none) {
            return Some(free);
        }
        self.least_useful()
    }

    /// Records that `slot` now holds the state after `len` tokens.
    pub fn commit(&mut self, slot: usize, len: usize, kind: SnapshotKind) {
        self.slots[slot] = Some(Entry { len, kind, used: self.clock });
    }

    fn least_useful(&self) -> Option<usize> {
        let held: Vec<(usize, Entry)> = self.slots.iter().enumerate().filter_map(|(i, e)| e.map(|e| (i, e))).collect();
        let before = |len: usize| held.iter().map(|(_, e)| e.len).filter(|&l| l < len).max().unwrap_or(0);
        let chunk = held
            .iter()
            .filter(|(_, e)| e.kind == SnapshotKind::Chunk)
            .min_by_key(|(_, e)| (e.len - before(e.len), e.used))
            .map(|(i, _)| *i);
        chunk.or_else(|| held.iter().min_by_key(|(_, e)| e.used).map(|(i, _)| *i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SnapshotKind::{Chunk, Turn};

    fn capture(p: &mut SnapshotPool, len: usize, kind: SnapshotKind) -> Option<usize> {
        let slot = p.slot_for(len, kind)?;
        p.commit(slot, len, kind);
        Some(slot)
    }

    #[test]
    fn best_is_the_longest_at_or_below_the_target() {
        let mut p = SnapshotPool::new(4);
        for len in [16, 32, 48] {
            capture(&mut p, len, Chunk);
        }
        assert_eq!(p.best(40).map(|b| b.1), Some(32));
        assert_eq!(p.best(48).map(|b| b.1), Some(48));
        assert_eq!(p.best(15), None);
        p.drop_after(32);
        assert_eq!(p.lengths(), vec![16, 32]);
        assert_eq!(capture(&mut p, 32, Turn), None, "the same length is not taken twice");
        p.clear();
        assert_eq!(p.held(), 0);
        assert_eq!(SnapshotPool::new(0).slot_for(5, Turn), None);
    }

    #[test]
    fn a_full_pool_drops_the_least_useful() {
        let mut p = SnapshotPool::new(4);
        capture(&mut p, 100, Turn); // the end of a first prompt
        for len in [116, 118, 150] {
            capture(&mut p, len, Chunk);
        }
        // 118 is 2 past 116: dropping it loses the least.
        capture(&mut p, 170, Chunk);
        assert_eq!(p.lengths(), vec![100, 116, 150, 170]);
        capture(&mut p, 190, Turn);
        assert_eq!(p.lengths(), vec![100, 150, 170, 190], "116 was 16 past 100, the smallest gap");
        // With only turn snapshots left, the least recently used goes.
        let mut q = SnapshotPool::new(2);
        capture(&mut q, 10, Turn);
        capture(&mut q, 20, Turn);
        q.best(10);
        capture(&mut q, 30, Turn);
        assert_eq!(q.lengths(), vec![10, 30]);
    }
}
