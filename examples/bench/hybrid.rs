//! `--qwen35`: Qwen3.5 decode and TTFT on timing-only models at the published
//! 0.8B / 2B / 4B geometry, next to the vendor runner's published Pi 5
//! speeds (hardware-facts: F33).
//!
//! The NPU side is the recalibrated timing model of hardware-facts F35, carried
//! per layer in the packed files (`axsim_pack::hybrid`, the simulator's
//! `costs=header`): a linear layer's execute reads its weights and its state,
//! a full layer's its weights and its K/V over the whole capacity, the post
//! model its 8-bit head; the calls and the link are the Pi 5 calibration's
//! (`axsim_pack::calibration::pi5_spec`). The "engine-only" rate is the sum of the
//! executes' costs per token: no copies, no host.

use crate::measure;
use crate::runner::Ours;
use anyhow::{Context, Result};
use axcl_sim::format::SimModelFile;
use axsim_pack::HybridPreset;
use axsim_pack::hybrid::{Quant, write_hybrid_timing_model};
use axllm_core::Schedule;
use axllm_core::npu::Runtime;
use std::path::Path;
use std::sync::Arc;

/// A published Qwen3.5 package and the vendor runner's numbers on a Pi 5 (hardware-facts: F33).
struct Published {
    preset: HybridPreset,
    quant: Quant,
    name: &'static str,
    tok_s: f64,
    /// TTFT in ms of a prompt of `ttft_tokens` tokens.
    ttft_ms: f64,
    ttft_tokens: usize,
}

const PACKAGES: [Published; 5] = [
    Published { preset: HybridPreset::Qwen35_0_8B, quant: Quant::W8a16, name: "Qwen3.5-0.8B w8a16", tok_s: 11.28, ttft_ms: 332.0, ttft_tokens: 20 },
    Published { preset: HybridPreset::Qwen35_0_8B, quant: Quant::Int4, name: "Qwen3.5-0.8B Int4", tok_s: 13.00, ttft_ms: 317.0, ttft_tokens: 20 },
    Published { preset: HybridPreset::Qwen35_2B, quant: Quant::W8a16, name: "Qwen3.5-2B w8a16", tok_s: 7.65, ttft_ms: 446.0, ttft_tokens: 20 },
    Published { preset: HybridPreset::Qwen35_2B, quant: Quant::Int4, name: "Qwen3.5-2B Int4", tok_s: 10.58, ttft_ms: 399.0, ttft_tokens: 20 },
    Published { preset: HybridPreset::Qwen35_4B, quant: Quant::Int4, name: "Qwen3.5-4B Int4", tok_s: 5.76, ttft_ms: 860.0, ttft_tokens: 20 },
];

/// Engine-only decode time per token (µs): every layer's decode cost plus the post model's.
fn engine_only_us(dir: &Path) -> Result<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "axmodel") {
            total += SimModelFile::read(&path)?.header.cost.context("a timing model carries costs")?.decode_us;
        }
    }
    Ok(total)
}

/// Runs every published Qwen3.5 package with `schedules`; `only` filters by name.
pub fn run(lib: &Path, rt: &Arc<Runtime>, schedules: &[Schedule], decode_tokens: usize, only: &[String]) -> Result<()> {
    let sim = rt.simulator().context("the runtime is not axcl-sim")?;
    let spec = axsim_pack::calibration::pi5_spec();
    println!("\n== Qwen3.5 (timing model of hardware-facts F35 per layer; {spec})");
    let logits = measure::synthetic_logits(248_320);
    for p in &PACKAGES {
        if !only.is_empty() && !only.iter().any(|o| p.name.to_lowercase().contains(&o.to_lowercase())) {
            continue;
        }
        let tmp = tempfile::tempdir()?;
        let mut opts = p.preset.options();
        opts.quant = p.quant;
        let dir = write_hybrid_timing_model(tmp.path(), &opts)?.model_dir;
        let ideal = 1e6 / engine_only_us(&dir)?;
        println!("{}: vendor runner {:.2} tok/s, TTFT {:.0} ms ({} tokens); engine-only {ideal:.2} tok/s", p.name, p.tok_s, p.ttft_ms, p.ttft_tokens);
        sim.configure(&spec)?;
        for &schedule in schedules {
            let mut r = Ours::load(&dir, lib, schedule)?;
            let d = measure::decode(&mut r, sim, &logits, decode_tokens)?;
            let ttft: Vec<f64> = [p.ttft_tokens, 128, 512]
                .iter()
                .map(|&n| measure::ttft(&mut r, &logits, &measure::ids(n, 3)))
                .collect::<Result<_>>()?;
            println!(
                "  {:<22} decode {:>6.2} tok/s ({:.2}x vendor, {:.2} of engine-only), {:>4.0} calls/token; TTFT {:.0} ms ({:.2}x vendor), 128: {:.0} ms, 512: {:.0} ms",
                schedule.to_string(),
                d.tok_s,
                d.tok_s / p.tok_s,
                d.tok_s / ideal,
                d.per_token.calls,
                ttft[0] * 1e3,
                p.ttft_ms / (ttft[0] * 1e3),
                ttft[1] * 1e3,
                ttft[2] * 1e3
            );
        }
        sim.configure("reset")?;
    }
    Ok(())
}
