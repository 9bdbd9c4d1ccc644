//! Masks and position indices exactly as the vendor runners build them
//! (as the vendor's runners build them). Pure functions over caller-owned buffers, so the
//! per-token loop allocates nothing.

/// bf16 −65536.0 (0xC780): the "hidden" value of the additive masks; the
/// runners truncate the f32 bits, which gives exactly this pattern.
pub const MASKED: u16 = 0xC780;
/// bf16 +0.0: visible.
pub const VISIBLE: u16 = 0x0000;

/// Decode mask for a group of `capacity` history columns (`out.len() == capacity + 1`)
/// with the token at slot `slot`: cached positions `[0, slot)` visible, the empty
/// slots `[slot, capacity)` hidden, the last column (the current token) visible.
pub fn decode_mask(out: &mut [u16], slot: usize) {
    let cap = out.len() - 1;
    debug_assert!(slot <= cap);
    out[..slot].fill(VISIBLE);
    out[slot..cap].fill(MASKED);
    out[cap] = VISIBLE;
}

/// Prefill mask `[T, history_cap + T]` (`out.len() == t * (history_cap + t)`) for
/// a chunk of `n ≤ t` valid rows after `history` cached positions: each valid row
/// sees the filled history and the chunk's rows up to itself; padding rows stay
/// fully hidden (the newest vendor runner's choice).
pub fn prefill_mask(out: &mut [u16], t: usize, history_cap: usize, history: usize, n: usize) {
    let cols = history_cap + t;
    debug_assert_eq!(out.len(), t * cols);
    debug_assert!(history <= history_cap && n <= t);
    out.fill(MASKED);
    for r in 0..n {
        let row = &mut out[r * cols..(r + 1) * cols];
        row[..history].fill(VISIBLE);
        row[history_cap..=history_cap + r].fill(VISIBLE);
    }
}

/// Prefill positions: `history + i` for the `n` valid rows, 0 for padding
/// (the buffer is zeroed first by the vendor runners).
pub fn prefill_indices(out: &mut [u32], history: usize, n: usize) {
    for (i, v) in out.iter_mut().enumerate() {
        *v = if i < n { (history + i) as u32 } else { 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_mask_matches_contract() {
        let mut m = [1u16; 6]; // capacity 5
        decode_mask(&mut m, 2);
        assert_eq!(m, [VISIBLE, VISIBLE, MASKED, MASKED, MASKED, VISIBLE]);
        decode_mask(&mut m, 0);
        assert_eq!(m, [MASKED, MASKED, MASKED, MASKED, MASKED, VISIBLE]);
        decode_mask(&mut m, 5);
        assert_eq!(m, [VISIBLE; 6]);
    }

    #[test]
    fn prefill_mask_matches_contract() {
        // T = 3, history cap 2, one cached position, two valid rows.
        let mut m = [0u16; 15];
        prefill_mask(&mut m, 3, 2, 1, 2);
        let (v, x) = (VISIBLE, MASKED);
        #[rustfmt::skip]
        let want = [
            v, x,  v, x, x,
            v, x,  v, v, x,
            x, x,  x, x, x,
        ];
        assert_eq!(m, want);
    }

    #[test]
    fn first_chunk_group_has_no_history_columns() {
        let mut m = [0u16; 4];
        prefill_mask(&mut m, 2, 0, 0, 2);
        assert_eq!(m, [VISIBLE, MASKED, VISIBLE, VISIBLE]);
    }

    #[test]
    fn indices_pad_with_zero() {
        let mut i = [9u32; 4];
        prefill_indices(&mut i, 7, 2);
        assert_eq!(i, [7, 8, 0, 0]);
    }

    #[test]
    fn masked_is_truncated_minus_65536() {
        assert_eq!(((-65536.0f32).to_bits() >> 16) as u16, MASKED);
    }
}
