//! The memory guard: before any model file reaches the card, the CMM the load
//! will need is compared with the free CMM the card reports, so a model that
//! cannot fit fails at once with [`Error::OutOfMemory`] (which Ollama's
//! scheduler treats as "does not fit") instead of halfway through a load
//! (hardware-facts: F10, F11, F12).
//!
//! Needed: the sum of `axclrtEngineGetUsage` of every layer file and the post
//! model, plus the buffers the load allocates when known in advance
//! ([`Extra`]), plus a floor kept free for the runtime itself.
//!
//! `Resident::load` asks before the first file reaches the card: the usage
//! of every model file plus every buffer the load will allocate (the K/V
//! caches or linear states, the step buffers, the logits, the gates and the
//! snapshot slots), sized from the shape groups the files state. The
//! simulator's files state them in their header; a real `.axmodel` does not
//! (only a loaded model reports its groups, hardware-facts: F11), so for
//! those the buffers are checked once the files are loaded and before any
//! buffer is allocated. Both failures are [`Error::OutOfMemory`].
//!
//! A runtime without `axclrtGetDeviceProperties` or `axclrtEngineGetUsage`
//! (older stacks) skips the guard: the load then fails, if it must, at the
//! call that runs out, with the same error kind.

use crate::error::{Error, Result};

/// CMM kept free by default (MiB): the vendor runner's `mem_guard_floor_mb` default.
pub const DEFAULT_FLOOR_MB: u64 = 128;

/// Device bytes the load allocates besides the models, known before loading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extra {
    /// Our own buffers (step buffers, logits, K/V when known).
    pub buffers: u64,
    /// The K/V caches of the KV slots beyond the first (the first is in `buffers`).
    pub kv_slots: u64,
}

/// The guard's verdict on numbers already gathered: `usages` are the CMM bytes
/// of each model file (by name), `free` the free CMM in bytes.
pub fn check(free: u64, usages: &[(String, u64)], extra: Extra, floor_mb: u64) -> Result<()> {
    let models: u64 = usages.iter().map(|(_, b)| b).sum();
    let floor = floor_mb << 20;
    let need = models.saturating_add(extra.buffers).saturating_add(extra.kv_slots).saturating_add(floor);
    if need <= free {
        return Ok(());
    }
    let largest = usages.iter().max_by_key(|(_, b)| *b).map(|(n, b)| format!("; largest file {n}: {} MiB", mib(*b)));
    Err(Error::OutOfMemory {
        call: "axclrtGetDeviceProperties",
        status: 0,
        bytes: Some(need),
        detail: format!(
            "the model does not fit in the card's free CMM: it needs {} MiB ({} model files: {} MiB, buffers: {} MiB, \
             per-slot K/V: {} MiB, reserve: {floor_mb} MiB) but {} MiB are free{}",
            mib(need),
            usages.len(),
            mib(models),
            mib(extra.buffers),
            mib(extra.kv_slots),
            mib(free),
            largest.unwrap_or_default()
        ),
    })
}

/// The KV slot count of [`crate::KvSlots::Auto`]: `free` is the free CMM once
/// the model's files are on the card, `buffers` our buffers with one slot,
/// `per_slot` the K/V caches of one more slot. The slots beyond the first
/// may take a quarter of what is left after the buffers and the floor, up to
/// [`crate::AUTO_KV_SLOTS_MAX`] slots in all; at least 1 (whether one fits is
/// [`check`]'s verdict). A quarter, so that the slots never crowd out what a
/// second model or the runtime's own growth may need.
pub fn auto_slots(free: u64, buffers: u64, per_slot: u64, floor_mb: u64) -> usize {
    let rest = free.saturating_sub(buffers).saturating_sub(floor_mb << 20);
    let most = crate::AUTO_KV_SLOTS_MAX as u64 - 1;
    let extra = if per_slot == 0 { most } else { (rest / 4 / per_slot).min(most) };
    1 + extra as usize
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn fits_or_fails_with_out_of_memory_naming_the_numbers() {
        let files = vec![("l0.axmodel".to_string(), 30 << 20), ("post.axmodel".to_string(), 50 << 20)];
        check(300 << 20, &files, Extra { buffers: 10 << 20, kv_slots: 0 }, 128).unwrap();
        let e = check(200 << 20, &files, Extra { buffers: 10 << 20, kv_slots: 0 }, 128).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfMemory);
        let text = e.to_string();
        for needle in ["needs 218.0 MiB", "2 model files: 80.0 MiB", "reserve: 128 MiB", "200.0 MiB are free", "post.axmodel"] {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
        assert!(check(218 << 20, &files, Extra { buffers: 10 << 20, kv_slots: 0 }, 128).is_ok(), "exactly full fits");
        assert!(check(218 << 20, &files, Extra { buffers: 10 << 20, kv_slots: 1 }, 128).is_err(), "the K/V hook counts");
    }

    #[test]
    fn auto_slots_take_a_quarter_of_what_is_left() {
        const MIB: u64 = 1 << 20;
        // 1000 MiB free, 72 MiB of buffers, 128 MiB floor: 800 left, 200 for slots.
        assert_eq!(auto_slots(1000 * MIB, 72 * MIB, 100 * MIB, 128), 3);
        assert_eq!(auto_slots(1000 * MIB, 72 * MIB, 66 * MIB, 128), 4);
        assert_eq!(auto_slots(1000 * MIB, 72 * MIB, 67 * MIB, 128), 3);
        assert_eq!(auto_slots(1000 * MIB, 72 * MIB, 10 * MIB, 128), crate::AUTO_KV_SLOTS_MAX, "capped");
        assert_eq!(auto_slots(1000 * MIB, 72 * MIB, 201 * MIB, 128), 1);
        assert_eq!(auto_slots(100 * MIB, 72 * MIB, MIB, 128), 1, "nothing left: one slot, the guard decides");
    }
}
