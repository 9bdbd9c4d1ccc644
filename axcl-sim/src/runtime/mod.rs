//! The exported C symbols of `axcl_rt.h` and `axcl_sim.h`: a CPU stand-in for
//! AXERA's AXCL runtime that behaves like the real one towards a runner (its
//! documented API, with what the documentation leaves open marked INFERRED).
//!
//! * `exports`: the `extern "C"` functions, checked against the ABI at compile time;
//!   `boundary`: panic catching and the last-error message.
//! * `state`: the one global state, the engine mutex, the thread's current context;
//!   `device`: devices and contexts; `memory` / `arena`: device memory;
//!   `objects`: the engine's registries (models, IO descriptions and objects) as plain data;
//!   `engine`, `model`, `io`, `execute`: models, IO descriptions and objects, execution;
//!   `stream`: streams and the device timeline of asynchronous work.
//! * `errors`: the table of failure situations and their vendor codes;
//!   `calls`: which calls reach the card, what they cost and which faults match them;
//!   `config`, `latency`, `faults`: the simulator configuration; `trace`: the
//!   `AXCL_SIM_TRACE_FILE` record of the calls that release the card.
//! * `reserve`: keeps device addresses undereferenceable on the host;
//!   `host`: pinned host memory (`axclrtMallocHost`), tracked and recognised in copies.
//!
//! Of the runtime, only `exports`, `reserve` and `host` use `unsafe`; every other file
//! denies it. (The math's one `unsafe` call lives in `math::gemm`.)
#![allow(unsafe_code)]

#[deny(unsafe_code)]
mod arena;
#[deny(unsafe_code)]
mod boundary;
#[deny(unsafe_code)]
mod calls;
#[deny(unsafe_code)]
mod config;
#[deny(unsafe_code)]
mod device;
#[deny(unsafe_code)]
mod engine;
#[deny(unsafe_code)]
mod errors;
#[deny(unsafe_code)]
mod execute;
mod exports;
mod host;
#[deny(unsafe_code)]
mod faults;
#[deny(unsafe_code)]
mod io;
#[deny(unsafe_code)]
mod latency;
#[deny(unsafe_code)]
mod memory;
#[deny(unsafe_code)]
mod model;
#[deny(unsafe_code)]
mod objects;
mod reserve;
#[deny(unsafe_code)]
mod state;
#[deny(unsafe_code)]
mod stream;
#[deny(unsafe_code)]
mod trace;
