//! axllm-core: run AXERA AX650 NPU LLM packages.
//!
//! * [`model`]: a vendor package on disk (layout, configs, embeddings, tokenizer);
//! * [`npu`]: the AXCL runtime loaded at run time (the only `unsafe` module);
//! * [`engine`]: the prefill/decode layer loop with the KV cache on the device;
//! * [`sampling`], [`stop`]: choosing tokens and ending streams;
//! * [`generate`]: the public [`Model`] handle and [`Generation`] pull API;
//! * [`check`]: a package's static checks, without the NPU (`ollama create`).
#![deny(unsafe_code)]

pub mod check;
pub mod engine;
pub mod error;
pub mod generate;
pub mod model;
pub mod npu;
pub mod sampling;
pub mod stop;

pub use engine::{LoadMethod, LoadProgress, PromptFeed, Schedule};
pub use error::{Error, Result};
pub use generate::{
    CancelHandle, Completion, GenerateOptions, Generation, LoadOptions, Model, ModelInfo, Session, SimulatorHandle, Stats,
    Step, StopReason,
};
pub use sampling::SamplingOptions;
