//! The state a model shares with its generations and sessions.

use crate::engine::Engine;
use crate::info::ModelInfo;
use crate::npu::Runtime;
use crate::package::{Embeddings, Tokenizer};
use crate::sampling::SamplingOptions;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Everything a model shares with its generations and sessions.
///
/// Lock order: `busy`, then `engine`. The engine is locked per step, so
/// generations on different KV slots interleave; `busy` marks the slots a
/// generation or session holds, so no two sequences share one.
pub(crate) struct Inner {
    pub(crate) engine: Arc<Mutex<Engine>>,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) embeddings: Embeddings,
    pub(crate) info: ModelInfo,
    pub(crate) defaults: SamplingOptions,
    /// Token bytes and the grammar vocabulary (built on first use).
    pub(crate) guide: crate::guide::GuideCells,
    /// The cancel flags of the running generations.
    pub(crate) cancels: Mutex<Vec<Arc<AtomicBool>>>,
    /// Per KV slot: held by a generation or a session.
    pub(crate) busy: Mutex<Vec<bool>>,
    /// Signalled when a slot is released.
    pub(crate) freed: Condvar,
}

impl Inner {
    /// Waits until a KV slot is free and returns the busy table, locked.
    pub(crate) fn wait_for_slot(&self) -> MutexGuard<'_, Vec<bool>> {
        let mut busy = self.busy.lock();
        while busy.iter().all(|&b| b) {
            self.freed.wait(&mut busy);
        }
        busy
    }

    /// Takes the free KV slot whose cache shares the longest prefix with
    /// `prompt` (else the least recently used one), waiting while every slot
    /// is held; `cancel` is registered for [`Inner::cancel_all`].
    pub(crate) fn lease(this: &Arc<Inner>, prompt: &[u32], cancel: Option<Arc<AtomicBool>>) -> SlotLease {
        let mut busy = this.wait_for_slot();
        let slot = this.engine.lock().choose_slot(prompt, &busy).expect("wait_for_slot returned with a free slot");
        busy[slot] = true;
        if let Some(flag) = &cancel {
            this.cancels.lock().push(Arc::clone(flag));
        }
        SlotLease { inner: Arc::clone(this), slot, cancel }
    }

    /// Cancels every running generation.
    pub(crate) fn cancel_all(&self) {
        for flag in self.cancels.lock().iter() {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// A KV slot held by a generation or a session: released (and its cancel
/// flag unregistered) when dropped.
pub(crate) struct SlotLease {
    pub(crate) inner: Arc<Inner>,
    pub(crate) slot: usize,
    pub(crate) cancel: Option<Arc<AtomicBool>>,
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        if let Some(flag) = &self.cancel {
            self.inner.cancels.lock().retain(|c| !Arc::ptr_eq(c, flag));
        }
        self.inner.busy.lock()[self.slot] = false;
        self.inner.freed.notify_all();
    }
}
