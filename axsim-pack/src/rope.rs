//! RoPE inverse frequencies from a Hugging Face config, as the simulated
//! layers need them (`SimModelHeader::rope_inv_freq`).

use anyhow::{Result, bail};
use serde_json::Value;

/// The `rope_scaling` variants the packer supports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// No scaling (`rope_scaling` null or absent, or `rope_type` "default").
    Default,
    /// Llama 3.1+ frequency-dependent scaling (`rope_type` "llama3").
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: f64 },
}

impl RopeScaling {
    /// Parses a config's `rope_scaling` (or `rope_parameters`) object; any type
    /// other than default and llama3 is an error, since the layers would then
    /// compute something the upstream model does not.
    pub fn from_hf(v: Option<&Value>) -> Result<Self> {
        let Some(obj) = v.filter(|v| !v.is_null()) else { return Ok(Self::Default) };
        let Some(obj) = obj.as_object() else { bail!("rope_scaling must be an object or null, got {obj}") };
        let kind = obj.get("rope_type").or_else(|| obj.get("type")).and_then(Value::as_str).unwrap_or("default");
        match kind {
            "default" => Ok(Self::Default),
            "llama3" => {
                let num = |key: &str| -> Result<f64> {
                    match obj.get(key).and_then(Value::as_f64) {
                        Some(x) if x.is_finite() && x > 0.0 => Ok(x),
                        _ => bail!("llama3 rope_scaling needs a positive number `{key}`"),
                    }
                };
                let (low_freq_factor, high_freq_factor) = (num("low_freq_factor")?, num("high_freq_factor")?);
                if high_freq_factor <= low_freq_factor {
                    bail!("llama3 rope_scaling needs high_freq_factor > low_freq_factor");
                }
                Ok(Self::Llama3 {
                    factor: num("factor")?,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_position_embeddings: num("original_max_position_embeddings")?,
                })
            }
            other => bail!("unsupported rope_scaling type {other:?} (supported: default, llama3)"),
        }
    }
}

/// The `head_dim / 2` inverse frequencies, computed in f64:
/// `1 / theta^(2i / head_dim)`, then scaled as Hugging Face's
/// `_compute_llama3_parameters` does for [`RopeScaling::Llama3`]: long
/// wavelengths are divided by `factor`, short ones kept, and the band between
/// interpolated smoothly.
pub fn rope_inv_freq(head_dim: usize, theta: f64, scaling: &RopeScaling) -> Vec<f64> {
    let base = (0..head_dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64));
    match *scaling {
        RopeScaling::Default => base.collect(),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings: old } => {
            let low_freq_wavelen = old / low_freq_factor;
            let high_freq_wavelen = old / high_freq_factor;
            base.map(|f| {
                let wavelen = 2.0 * std::f64::consts::PI / f;
                if wavelen < high_freq_wavelen {
                    f
                } else if wavelen > low_freq_wavelen {
                    f / factor
                } else {
                    let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    (1.0 - smooth) * f / factor + smooth * f
                }
            })
            .collect()
        }
    }
}
