//! axllm-core: run AXERA AX650 NPU LLM packages.
//!
//! * [`model`]: a vendor package on disk (layout, configs, embeddings, tokenizer);
//! * [`npu`]: the AXCL runtime loaded at run time (the only `unsafe` module);
//! * [`engine`]: the prefill/decode layer loop with the KV cache on the device;
//! * [`sampling`], [`stop`]: choosing tokens and ending streams;
//! * [`generate`]: the public [`Model`] handle and [`Generation`] pull API.
#![deny(unsafe_code)]

pub mod engine;
pub mod error;
pub mod generate;
pub mod model;
pub mod npu;
pub mod sampling;
pub mod stop;

pub use engine::{Inferred, LayerKind, LoadMethod, LoadProgress, PromptFeed, Schedule};
pub use error::{Error, Result};
pub use generate::{
    CancelHandle, Completion, DEFAULT_SNAPSHOT_SLOTS, GenerateOptions, Generation, LoadOptions, Model, ModelInfo, Session,
    SimulatorHandle, Stats, Step, StopReason,
};
pub use sampling::SamplingOptions;
