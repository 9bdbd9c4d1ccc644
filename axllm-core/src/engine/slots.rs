//! KV slots: several sequences' K/V caches on the card at once.
//!
//! A compiled layer runs one sequence per call, but it reads whatever K/V
//! buffers are bound to it. So each slot owns one K and one V buffer per
//! full-attention layer, allocated at load; the slot in use has its buffers
//! in the layers (bound to every shape group), the others wait in
//! [`KvSlots`]. Switching slot moves buffer handles and rebinds the
//! `K_cache`/`V_cache` inputs: host-local work, no copy on the card. Under
//! [`super::KvWrite::BindOutputAtRow`] the cache outputs are bound at the
//! rows of the layer's buffers before every execution, so they follow the
//! slot with no extra step.
//!
//! On the host each slot remembers the tokens its cache holds
//! ([`SlotTable`]); a prompt goes to the free slot sharing the longest prefix
//! with it, else to the least recently used free slot.
//!
//! Hybrid models (Qwen3.5) keep one slot: their recurrent state and its
//! snapshots are not per slot (a load asking for more is clamped to 1 and
//! [`crate::ModelInfo::kv_slots`] says so).

use crate::npu::DeviceBuffer;

/// Device buffers of the slots not in use: per slot, per full-attention
/// layer (in layer order), its K and V cache. The entry of the slot in use
/// is `None` (its buffers are in the layers).
pub(super) struct KvSlots {
    pub(super) parked: Vec<Option<Vec<(DeviceBuffer, DeviceBuffer)>>>,
    /// The slot whose buffers the layers hold.
    pub(super) active: usize,
    /// A rebind failed halfway: rebind every layer at the next selection.
    pub(super) stale: bool,
}

/// The host side of one slot.
#[derive(Debug, Default)]
struct Parked {
    /// The tokens whose K/V the slot's cache holds (capacity: every position).
    tokens: Vec<u32>,
    /// The slot's cache must be zeroed before its next use (after a device failure).
    needs_reset: bool,
}

/// What the host knows of every slot. The slot in use lends its tokens and
/// reset flag to the engine (so the engine's code reads one sequence); the
/// others keep theirs here.
#[derive(Debug)]
pub(super) struct SlotTable {
    parked: Vec<Parked>,
    last_used: Vec<u64>,
    clock: u64,
    active: usize,
}

impl SlotTable {
    /// `count` slots, each with room for `positions` tokens; slot 0 in use.
    pub(super) fn new(count: usize, positions: usize) -> SlotTable {
        let parked = (0..count)
            .map(|i| Parked { tokens: if i == 0 { Vec::new() } else { Vec::with_capacity(positions) }, needs_reset: false })
            .collect();
        SlotTable { parked, last_used: vec![0; count], clock: 0, active: 0 }
    }

    /// Slots in all.
    pub(super) fn len(&self) -> usize {
        self.parked.len()
    }

    /// The tokens slot `slot` holds; `active` are those of the slot in use.
    pub(super) fn tokens<'a>(&'a self, slot: usize, active: &'a [u32]) -> &'a [u32] {
        if slot == self.active { active } else { &self.parked[slot].tokens }
    }

    /// Marks `slot` as used now.
    pub(super) fn touch(&mut self, slot: usize) {
        self.clock += 1;
        self.last_used[slot] = self.clock;
    }

    /// Makes `slot` the one in use: the engine's `tokens` and `needs_reset`
    /// go back to the slot in use and come out of `slot` (moves, no allocation).
    pub(super) fn switch(&mut self, slot: usize, tokens: &mut Vec<u32>, needs_reset: &mut bool) {
        if slot == self.active {
            return;
        }
        let old = self.active;
        std::mem::swap(tokens, &mut self.parked[old].tokens);
        self.parked[old].needs_reset = *needs_reset;
        std::mem::swap(tokens, &mut self.parked[slot].tokens);
        *needs_reset = self.parked[slot].needs_reset;
        self.active = slot;
    }

    /// The slot for `prompt` among those `busy` does not mark: the longest
    /// shared prefix (ties: the most recently used), else the least recently
    /// used. `None` when every slot is busy.
    pub(super) fn choose(&self, prompt: &[u32], active: &[u32], busy: &[bool]) -> Option<usize> {
        let free = || (0..self.len()).filter(|&s| !busy.get(s).copied().unwrap_or(false));
        let shared = |s: usize| self.tokens(s, active).iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let best = free().map(|s| (shared(s), self.last_used[s], s)).max_by_key(|&(n, used, _)| (n, used));
        match best {
            Some((n, _, s)) if n > 0 => Some(s),
            _ => free().min_by_key(|&s| (self.last_used[s], s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table whose slot `i` holds `held[i]`, used in that order.
    fn table(held: &[&[u32]]) -> (SlotTable, Vec<u32>, bool) {
        let mut t = SlotTable::new(held.len(), 16);
        let (mut tokens, mut reset) = (Vec::with_capacity(16), false);
        for (i, h) in held.iter().enumerate() {
            t.switch(i, &mut tokens, &mut reset);
            tokens.clear();
            tokens.extend_from_slice(h);
            t.touch(i);
        }
        (t, tokens, reset)
    }

    #[test]
    fn longest_prefix_wins_else_least_recently_used() {
        let (mut t, active, _) = table(&[&[1, 2, 3], &[1, 2], &[9]]);
        let free = [false; 3];
        assert_eq!(t.choose(&[1, 2, 3, 4], &active, &free), Some(0));
        assert_eq!(t.choose(&[1, 2, 7], &active, &free), Some(1), "equal prefixes: the most recent");
        assert_eq!(t.choose(&[9, 9], &active, &free), Some(2), "the active slot counts too");
        assert_eq!(t.choose(&[5], &active, &free), Some(0), "no prefix: the least recently used");
        t.touch(0);
        assert_eq!(t.choose(&[5], &active, &free), Some(1));
    }

    #[test]
    fn busy_slots_are_never_chosen() {
        let (t, active, _) = table(&[&[1, 2, 3], &[4]]);
        assert_eq!(t.choose(&[1, 2, 3], &active, &[true, false]), Some(1));
        assert_eq!(t.choose(&[1], &active, &[true, true]), None);
    }

    #[test]
    fn switching_keeps_every_slots_tokens_and_reset_flag() {
        let (mut t, mut tokens, mut reset) = table(&[&[1], &[2, 2]]);
        reset = !reset;
        t.switch(0, &mut tokens, &mut reset);
        assert_eq!((tokens.as_slice(), reset), (&[1u32][..], false));
        t.switch(1, &mut tokens, &mut reset);
        assert_eq!((tokens.as_slice(), reset), (&[2u32, 2][..], true));
        assert_eq!(t.tokens(0, &tokens), &[1]);
    }
}
