//! Facts about the card that docs/hardware-facts.md marks INFERRED (F34, F23), in
//! one place. Everything here is either a setting the loader takes (so a card
//! can settle it without a new build) or a constant that only this module
//! names, with what the rest of the engine does and does not depend on.
//! `examples/conform` measures each of them on a card (or the simulator).
//!
//! | fact | what the engine does |
//! |---|---|
//! | Layout and dtype of a linear layer's state | Nothing depends on it: the state is a byte blob sized by the runtime's `nSize` ([`super::hybrid`]), copied whole, never read on the host |
//! | Whether linear layers read `indices` | Nothing depends on it: every layer of a step is bound to the same `indices` buffer, filled as the vendor runner fills it (positions, 0 for padding) |
//! | Gate values of a linear layer's mask | [`GATE_ON`]/[`GATE_OFF`], and the vendor's fill ([`gate_mask`]) |
//! | Whether a gate-0 (padding) row leaves the state unchanged | [`Inferred::padded_rows_keep_state`] |
//! | Whether a chunk with few valid rows writes `output` | [`Inferred::min_chunk_rows`] |
//! | How a layer's kind shows in its IO when the config names none | [`super::hybrid::kind_from_io`] |

/// bf16 1.0: a linear layer's gate for a real token (hardware-facts: F30).
pub const GATE_ON: u16 = 0x3F80;
/// bf16 0: a padding row's gate.
pub const GATE_OFF: u16 = 0x0000;

/// Hybrid models (Qwen3.5): what the card is assumed to do where its
/// behaviour is inferred, not known (`examples/conform` measures it on a
/// card); [`Inferred::default`] is what the vendor runner assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inferred {
    /// A prefill chunk's padding rows (gate 0) leave a linear layer's state
    /// and convolution history as the real rows left them. The vendor runner
    /// relies on this (it copies the state after a padded chunk). When false,
    /// a prompt's last chunk is never padded in a model with linear layers:
    /// its tokens go through the decode group one by one.
    pub padded_rows_keep_state: bool,
    /// A prefill chunk with fewer real rows than this may leave `output`
    /// unwritten (an independent report says groups with fewer than 64 valid
    /// rows do not write it),
    /// so its tokens go through the decode group one by one instead. 1 (the
    /// vendor runner): every chunk is trusted.
    pub min_chunk_rows: usize,
}

impl Default for Inferred {
    fn default() -> Self {
        Self { padded_rows_keep_state: true, min_chunk_rows: 1 }
    }
}

impl Inferred {
    /// Whether a chunk of `n` real rows out of `t` may be prefilled in a model
    /// that has linear layers (`hybrid`), or must go through the decode group.
    pub(crate) fn chunk_ok(&self, n: usize, t: usize, hybrid: bool) -> bool {
        n >= self.min_chunk_rows && (n == t || !hybrid || self.padded_rows_keep_state)
    }
}

/// A linear layer's gate mask as the vendor runner fills it
/// (hardware-facts: F30): the first `n` elements 1.0, the rest 0; a decode group's mask is
/// all 1.0 (`n` = its length).
pub fn gate_mask(out: &mut [u16], n: usize) {
    let n = n.min(out.len());
    out[..n].fill(GATE_ON);
    out[n..].fill(GATE_OFF);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_and_chunks() {
        let mut m = [9u16; 4];
        gate_mask(&mut m, 3);
        assert_eq!(m, [GATE_ON, GATE_ON, GATE_ON, GATE_OFF]);
        assert_eq!(half::bf16::from_bits(GATE_ON).to_f32(), 1.0);
        let vendor = Inferred::default();
        assert!(vendor.chunk_ok(1, 128, true) && vendor.chunk_ok(128, 128, true));
        let distrust = Inferred { padded_rows_keep_state: false, min_chunk_rows: 64 };
        assert!(!distrust.chunk_ok(100, 128, true), "padding in a hybrid model");
        assert!(distrust.chunk_ok(100, 128, false), "padding is harmless without linear layers");
        assert!(!distrust.chunk_ok(63, 128, false) && distrust.chunk_ok(128, 128, true));
    }
}
