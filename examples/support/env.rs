//! The examples' edge: the environment variables they read and pass on as
//! load parameters. (The library itself reads none.)
#![allow(dead_code)] // each example uses part of it

use anyhow::{Context, Result};
use axllm_core::{LoadOptions, Schedule};
use std::path::PathBuf;

/// The AXCL runtime library to load (the simulator's, without a card).
pub const RUNTIME_ENV: &str = "AXLLM_AXCL_LIB";
/// The call schedule (`safe`, `fewest-calls`, ...).
pub const SCHEDULE_ENV: &str = "AXLLM_SCHEDULE";

/// `$AXLLM_AXCL_LIB`, when set and not empty.
pub fn runtime_library() -> Option<PathBuf> {
    std::env::var_os(RUNTIME_ENV).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `$AXLLM_SCHEDULE`, when set and not empty; else the default schedule.
pub fn schedule() -> Result<Schedule> {
    match std::env::var(SCHEDULE_ENV) {
        Ok(s) if !s.trim().is_empty() => s.parse().with_context(|| format!("{SCHEDULE_ENV}={s}")),
        _ => Ok(Schedule::default()),
    }
}

/// Load options from the environment.
pub fn load_options() -> Result<LoadOptions> {
    Ok(LoadOptions { runtime_library: runtime_library(), schedule: schedule()?, ..Default::default() })
}
