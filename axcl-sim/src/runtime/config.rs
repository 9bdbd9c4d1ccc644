//! The simulator configuration and its text form (`axclSimConfigure`, the
//! `AXCL_SIM_CONFIG` environment variable); the syntax is documented in `axcl_sim.h`.

use super::faults::{Fault, Faults};
use super::latency::Latency;
use crate::math::hybrid::{Behaviour, Indices, Padding};

/// Device memory when `mem_mb` is not configured: the standard 8 GB card's CMM pool.
pub(super) const DEFAULT_MEM_MB: u64 = 7040;
/// Largest `mem_mb`: the size of the simulated device address window.
pub(super) const MAX_MEM_MB: u64 = 65536;

/// Everything `axclSimConfigure` can change. It outlives `axclInit`/`axclFinalize`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Config {
    pub latency: Latency,
    pub mem_mb: u64,
    pub faults: Faults,
    /// What the card does where that is not known (see [`crate::math::hybrid`]).
    pub behaviour: Behaviour,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            latency: Latency::default(),
            mem_mb: DEFAULT_MEM_MB,
            faults: Faults::default(),
            behaviour: Behaviour::default(),
        }
    }
}

impl Config {
    /// Device memory in bytes.
    pub(super) fn mem_bytes(&self) -> u64 {
        self.mem_mb << 20
    }

    /// Applies `key=value` entries separated by `;`, in order. When any entry
    /// does not parse nothing changes and the error names that entry.
    pub(super) fn apply(&mut self, spec: &str) -> Result<(), String> {
        let mut next = self.clone();
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            next.apply_entry(entry)?;
        }
        *self = next;
        Ok(())
    }

    fn apply_entry(&mut self, entry: &str) -> Result<(), String> {
        if entry == "reset" {
            self.latency = Latency::default();
            self.faults.clear();
            self.behaviour = Behaviour::default();
            return Ok(());
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!("entry {entry:?} is not key=value (or reset)"));
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some(applied) = self.behaviour_entry(key, value) {
            return applied;
        }
        let l = &mut self.latency;
        if key == "time_scale" {
            l.time_scale = match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => v,
                _ => return Err(format!("{key}={value}: expected a finite number > 0")),
            };
            return Ok(());
        }
        if key == "prefill_us" {
            l.prefill_us = Some(parse_us(key, value)?);
            return Ok(());
        }
        let target = match key {
            "exec_us" => &mut l.exec_us,
            "post_us" => &mut l.post_us,
            "call_us" => &mut l.call_us,
            "sync_us" => &mut l.sync_us,
            "h2d_mbps" => &mut l.h2d_mbps,
            "d2h_mbps" => &mut l.d2h_mbps,
            "d2d_mbps" => &mut l.d2d_mbps,
            "pageable_us" => &mut l.pageable_us,
            "mem_mb" => {
                self.mem_mb = match value.parse::<u64>() {
                    Ok(mb) if (1..=MAX_MEM_MB).contains(&mb) => mb,
                    _ => return Err(format!("mem_mb={value}: expected a whole number of MiB in 1..={MAX_MEM_MB}")),
                };
                return Ok(());
            }
            "fail" | "lose_device" | "abort" => {
                self.faults.arm(Fault::parse(key, value)?);
                return Ok(());
            }
            _ => return Err(format!("unknown key {key:?} in {entry:?}")),
        };
        *target = parse_us(key, value)?;
        Ok(())
    }
}

impl Config {
    /// The behaviour and cost-model keys; `None` when `key` is not one of them.
    fn behaviour_entry(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        let b = &mut self.behaviour;
        let choice = |options: &[&str]| match options.iter().position(|o| *o == value) {
            Some(i) => Ok(i),
            None => Err(format!("{key}={value}: expected {}", options.join(" or "))),
        };
        let applied = match key {
            "linear_padding" => choice(&["freeze", "decay"]).map(|i| b.padding = [Padding::Freeze, Padding::Decay][i]),
            "linear_indices" => choice(&["ignore", "check"]).map(|i| b.indices = [Indices::Ignore, Indices::Check][i]),
            "costs" => choice(&["config", "header"]).map(|i| self.latency.header_costs = i == 1),
            "min_output_rows" => value
                .parse::<usize>()
                .map(|n| b.min_output_rows = n)
                .map_err(|_| format!("{key}={value}: expected a whole number of rows")),
            _ => return None,
        };
        Some(applied)
    }
}

/// A latency or bandwidth value: a finite number >= 0.
fn parse_us(key: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{key}={value}: expected a finite number >= 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_all_entries_or_none() {
        let mut c = Config::default();
        c.apply(" call_us=12.5 ; h2d_mbps=400;mem_mb=64; fail=malloc:1; prefill_us=7 ").unwrap();
        assert_eq!((c.latency.call_us, c.latency.h2d_mbps, c.mem_mb), (12.5, 400.0, 64));
        assert_eq!(c.latency.prefill_us, Some(7.0));
        assert!(c.apply("prefill_us=-2").is_err());
        c.apply("sync_us=61;time_scale=0.25").unwrap();
        assert_eq!((c.latency.sync_us, c.latency.time_scale), (61.0, 0.25));
        assert!(c.apply("time_scale=0").is_err());
        let before = c.clone();
        assert!(c.apply("exec_us=3;bogus=1").unwrap_err().contains("bogus"));
        assert!(c.apply("exec_us=-1").is_err());
        assert!(c.apply("mem_mb=0").is_err());
        assert!(c.apply("call_us").is_err());
        assert_eq!(c, before);
        c.apply("linear_padding=decay;linear_indices=check;min_output_rows=64;costs=header").unwrap();
        assert_eq!(c.behaviour, Behaviour { padding: Padding::Decay, indices: Indices::Check, min_output_rows: 64 });
        assert!(c.latency.header_costs);
        for bad in ["linear_padding=thaw", "linear_indices=1", "min_output_rows=-1", "costs=npu"] {
            assert!(c.apply(bad).is_err(), "{bad}");
        }
        c.apply("reset").unwrap();
        assert_eq!(c.behaviour, Behaviour::default());
        assert_eq!(c.latency, Latency::default());
        assert_eq!(c.faults, Faults::default());
        assert_eq!(c.mem_mb, 64, "reset keeps the memory size");
    }
}
