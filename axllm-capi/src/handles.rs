//! Opaque handles backed by a registry of live objects. The pointer a caller
//! holds is only a key: it is never dereferenced, so a freed or forged handle
//! is an error and a double free is a no-op. Calls in flight keep their object
//! alive (`Arc`) even if another thread frees the handle meanwhile.

use crate::boundary::{CError, CResult};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A table of live objects of one kind, keyed by the handle value.
#[derive(Debug)]
pub struct Registry<T> {
    live: Mutex<BTreeMap<usize, Arc<T>>>,
    what: &'static str,
}

/// Handle values: non-zero, never reused, aligned like pointers.
static NEXT: AtomicUsize = AtomicUsize::new(0x1000);

impl<T> Registry<T> {
    pub const fn new(what: &'static str) -> Self {
        Registry { live: parking_lot::const_mutex(BTreeMap::new()), what }
    }

    pub fn insert(&self, value: T) -> usize {
        let key = NEXT.fetch_add(16, Ordering::Relaxed);
        self.live.lock().insert(key, Arc::new(value));
        key
    }

    pub fn get(&self, key: usize) -> CResult<Arc<T>> {
        if key == 0 {
            return Err(CError::invalid(format!("{} handle is NULL", self.what)));
        }
        self.live
            .lock()
            .get(&key)
            .cloned()
            .ok_or_else(|| CError::invalid(format!("unknown or already freed {} handle", self.what)))
    }

    /// Removes the object; returns it so the caller decides when it drops.
    pub fn remove(&self, key: usize) -> Option<Arc<T>> {
        self.live.lock().remove(&key)
    }
}
