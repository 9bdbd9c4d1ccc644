//! axcl-sim: a faithful CPU stand-in for the AXCL runtime (`libaxcl_rt.so`).
//!
//! * [`format`]: our simulated axmodel file format.
//! * [`math`]: the transformer math a simulated layer or post model computes.
//! * [`hybrid`]: the Qwen3.5 layer kinds (Gated DeltaNet, gated full attention).
//! * `runtime`: the exported C symbols of `axcl-sys/include/axcl_rt.h` and `axcl_sim.h`.
//! * [`pack`]: turns Hugging Face checkpoints into vendor-layout model directories.
pub mod format;
pub mod hybrid;
pub mod math;
pub mod pack;
mod runtime;
