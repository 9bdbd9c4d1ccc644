//! axcl-sim: a faithful CPU stand-in for the AXCL runtime (`libaxcl_rt.so`).
//!
//! * [`format`]: our simulated axmodel file format.
//! * [`math`]: the transformer math a simulated layer or post model computes.
//! * `runtime`: the exported C symbols of `axcl-sys/include/axcl_rt.h` and `axcl_sim.h`.
pub mod format;
pub mod math;
mod runtime;
