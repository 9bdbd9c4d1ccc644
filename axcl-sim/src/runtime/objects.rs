//! The engine's objects, by handle: loaded models, engine contexts, IO
//! descriptions and IO objects. Plain data: the calls that create and use them
//! are in `engine`, `io` and `execute`, which reach them through `state`.
//!
//! An IO object holds one (address, size) binding per tensor, stored exactly as
//! given; `axclrtEngineExecute` checks them.

use super::errors::{ErrorKind, SimError, SimResult};
use super::model::{Dir, IoTable, Model};
use std::collections::HashMap;
use std::sync::Arc;

/// Loaded models and the objects that refer to them, by handle.
#[derive(Debug, Default)]
pub(super) struct Engine {
    pub models: HashMap<u64, Model>,
    /// Engine context → the model it was created for.
    pub contexts: HashMap<u64, u64>,
    pub infos: HashMap<u64, IoInfo>,
    pub ios: HashMap<u64, IoObject>,
}

impl Engine {
    pub(super) fn live_models(&self) -> u64 {
        self.models.len() as u64
    }

    /// The CMM the loaded models occupy.
    pub(super) fn cmm_bytes(&self) -> u64 {
        self.models.values().map(|m| m.cmm_bytes).sum()
    }

    pub(super) fn model(&self, id: u64) -> SimResult<&Model> {
        self.models
            .get(&id)
            .ok_or_else(|| SimError::new(ErrorKind::EngineArgument, format!("model id {id} is not loaded")))
    }

    /// Unloads every model with its engine contexts (device reset). IO infos and
    /// IO objects are host memory and stay, but can no longer execute.
    pub(super) fn unload_all(&mut self) {
        self.models.clear();
        self.contexts.clear();
    }
}

/// An IO description handed out by `axclrtEngineGetIOInfo`.
#[derive(Debug)]
pub(super) struct IoInfo {
    pub model: u64,
    /// Keeps the tensor names the getters return alive until the info is destroyed.
    pub table: Arc<IoTable>,
}

/// A device buffer bound to a tensor: address and byte size as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Binding {
    pub addr: u64,
    pub size: u64,
}

/// An IO object: the bindings of one execution's tensors.
#[derive(Debug)]
pub(super) struct IoObject {
    pub model: u64,
    inputs: Vec<Option<Binding>>,
    outputs: Vec<Option<Binding>>,
}

impl IoObject {
    /// An IO object of `model` with `inputs` and `outputs` unbound slots.
    pub(super) fn new(model: u64, inputs: usize, outputs: usize) -> Self {
        Self { model, inputs: vec![None; inputs], outputs: vec![None; outputs] }
    }

    /// The bindings of the inputs or outputs, in model order.
    pub(super) fn slots(&self, dir: Dir) -> &[Option<Binding>] {
        match dir {
            Dir::Input => &self.inputs,
            Dir::Output => &self.outputs,
        }
    }

    /// The binding of tensor `index`, if any.
    pub(super) fn binding(&self, dir: Dir, index: u32) -> SimResult<Option<Binding>> {
        self.slots(dir).get(index as usize).copied().ok_or_else(|| {
            SimError::new(
                ErrorKind::InvalidIndex,
                format!("{} index {index} is out of range (the model has {} {}s)", dir.name(), self.slots(dir).len(), dir.name()),
            )
        })
    }

    pub(super) fn slots_mut(&mut self, dir: Dir) -> &mut [Option<Binding>] {
        match dir {
            Dir::Input => &mut self.inputs,
            Dir::Output => &mut self.outputs,
        }
    }
}
