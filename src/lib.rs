//! Facade over [`axllm_core`] so that the workspace root can host the
//! `examples/` and `tests/` directories of the design card.
pub use axllm_core::*;
