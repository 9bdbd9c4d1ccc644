//! Hybrid models (Qwen3.5, hardware-facts: F27–F34): which decoder layers are linear
//! attention, and the geometry of a linear-attention layer, derived from the
//! IO info the runtime reports.
//!
//! A linear layer's `K_cache`/`V_cache` hold an opaque state (its layout is
//! the card's business, see [`super::inferred`]) that comes back whole in
//! `K_cache_out`/`V_cache_out`. Everything about it is sized by the bytes the
//! runtime reports, never by a dtype: the same package may report bf16, f32 or
//! nothing at all (hardware-facts: F29).

use super::geometry::names;
use crate::error::{Error, Result};
use crate::package::config::RuntimeConfig;
use crate::npu::{GroupInfo, TensorInfo, dtype};
use std::path::Path;

/// What a decoder layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Softmax attention over a K/V cache (every Qwen3/Qwen2/Llama layer).
    Full,
    /// Gated DeltaNet linear attention with a recurrent state.
    Linear,
}

/// The layer kinds a runtime `config.json` names, the way the vendor runner
/// reads them (hardware-facts: F28): `layer_types` wins (`linear_attention` →
/// linear, anything else → full); else layer `i` (0-based) is full iff
/// `(i + 1) % full_attention_interval == 0`; an interval of 0 means all full.
/// `None` when the config names neither.
pub fn kinds_from_config(cfg: &RuntimeConfig, layers: usize, config_path: &Path) -> Result<Option<Vec<LayerKind>>> {
    if let Some(types) = &cfg.layer_types {
        if types.len() != layers {
            return Err(Error::bad_file(
                config_path,
                format!("layer_types names {} layers, the package has {layers}", types.len()),
            ));
        }
        let kind = |t: &String| if t == "linear_attention" { LayerKind::Linear } else { LayerKind::Full };
        return Ok(Some(types.iter().map(kind).collect()));
    }
    Ok(cfg.full_attention_interval.map(|interval| {
        (0..layers)
            .map(|i| if interval == 0 || (i + 1) % interval == 0 { LayerKind::Full } else { LayerKind::Linear })
            .collect()
    }))
}

/// The kind a layer's IO shows: in its decode group (one position in
/// `indices`), a linear layer's `K_cache` and `K_cache_out` have the same
/// bytes (the whole state in and out), a full layer's `K_cache` holds `C`
/// rows and `K_cache_out` one (hardware-facts: F28, the fallback when the config
/// names no kinds).
pub fn kind_from_io(groups: &[GroupInfo]) -> LayerKind {
    let decode = groups.iter().find(|g| g.input(names::INDICES).is_some_and(|(_, t)| t.elements() == 1));
    let sizes = decode.and_then(|g| Some((g.input(names::K_CACHE)?.1.size, g.output(names::K_OUT)?.1.size)));
    match sizes {
        Some((k_in, k_out)) if k_in == k_out && k_in > 0 => LayerKind::Linear,
        _ => LayerKind::Full,
    }
}

/// One shape group of a linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearGroup {
    pub index: u32,
    /// Rows of `input`/`output` (1 for decode, `T` for prefill).
    pub rows: usize,
    /// Elements of the gate mask.
    pub mask: usize,
}

/// The geometry of one linear-attention layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearGeometry {
    /// Bytes of the convolution state (`K_cache`, `K_cache_out`) and the
    /// recurrent state (`V_cache`, `V_cache_out`), as the runtime reports them.
    pub k_state: usize,
    pub v_state: usize,
    /// Decode groups and prefill groups, each in the runtime's group order.
    pub decode: Vec<LinearGroup>,
    pub prefill: Vec<LinearGroup>,
}

fn bad(path: &Path, reason: String) -> Error {
    Error::bad_file(path, reason)
}

fn tensor<'a>(path: &Path, g: usize, grp: &'a GroupInfo, name: &str, input: bool) -> Result<&'a TensorInfo> {
    let found = if input { grp.input(name) } else { grp.output(name) };
    found.map(|(_, t)| t).ok_or_else(|| {
        bad(path, format!("shape group {g} has no {} named {name:?}", if input { "input" } else { "output" }))
    })
}

impl LinearGeometry {
    /// Derives and checks a linear layer's geometry: every group has the state
    /// in and out with equal bytes (the same in every group), `hidden`-wide
    /// `input`/`output` rows, a gate of at least one element per row, and
    /// prefill groups of `chunk` rows.
    pub fn derive(path: &Path, groups: &[GroupInfo], hidden: usize, chunk: usize) -> Result<LinearGeometry> {
        let (mut decode, mut prefill) = (Vec::new(), Vec::new());
        let mut state: Option<(usize, usize)> = None;
        for (g, grp) in groups.iter().enumerate() {
            let t = |name: &str, input: bool| tensor(path, g, grp, name, input);
            let (k_in, v_in, k_out, v_out) = (t(names::K_CACHE, true)?, t(names::V_CACHE, true)?, t(names::K_OUT, false)?, t(names::V_OUT, false)?);
            let (idx, input, mask, output) = (t(names::INDICES, true)?, t(names::INPUT, true)?, t(names::MASK, true)?, t(names::OUTPUT, false)?);
            // The vendor runner accepts equal dtypes, or NONE (0) on either side (hardware-facts: F29).
            for (a, b) in [(k_in, k_out), (v_in, v_out)] {
                if a.size != b.size || a.size == 0 {
                    return Err(bad(path, format!(
                        "shape group {g}: linear-attention state {} is {} bytes in and {} bytes out; they must be equal",
                        a.name, a.size, b.size
                    )));
                }
                if a.dtype != b.dtype && a.dtype != dtype::NONE && b.dtype != dtype::NONE {
                    return Err(bad(path, format!(
                        "shape group {g}: state {} is {} in and {} out",
                        a.name,
                        dtype::name(a.dtype),
                        dtype::name(b.dtype)
                    )));
                }
            }
            let sizes = (k_in.size as usize, v_in.size as usize);
            match state {
                Some(s) if s != sizes => {
                    return Err(bad(path, format!(
                        "shape group {g}: state of {}/{} bytes, other groups {}/{}",
                        sizes.0, sizes.1, s.0, s.1
                    )));
                }
                _ => state = Some(sizes),
            }
            if idx.dtype != dtype::UINT32 {
                return Err(bad(path, format!("shape group {g}: indices is {}, not uint32", dtype::name(idx.dtype))));
            }
            let rows = idx.elements();
            if rows == 0 || input.elements() != rows * hidden || output.elements() != rows * hidden {
                return Err(bad(path, format!(
                    "shape group {g}: input/output of {}/{} elements for {rows} rows of the full layers' hidden size {hidden}",
                    input.elements(),
                    output.elements()
                )));
            }
            let mask_len = mask.size as usize / 2;
            if mask_len < rows {
                return Err(bad(path, format!("shape group {g}: a gate mask of {mask_len} elements for {rows} rows")));
            }
            let group = LinearGroup { index: g as u32, rows, mask: mask_len };
            if rows == 1 {
                decode.push(group);
            } else if rows == chunk {
                prefill.push(group);
            } else {
                return Err(bad(path, format!("shape group {g}: {rows} rows; the full layers' chunk is {chunk}")));
            }
        }
        if decode.is_empty() || prefill.is_empty() {
            return Err(bad(path, format!(
                "a linear-attention layer needs a decode and a prefill group ({} and {} found)",
                decode.len(),
                prefill.len()
            )));
        }
        let (k_state, v_state) = state.unwrap_or_default();
        Ok(LinearGeometry { k_state, v_state, decode, prefill })
    }

    /// This layer's group for the `ordinal`-th decode (or prefill) group of
    /// the reference layer, clamped to its last one: a pruned layer reuses its
    /// last group for later chunks (the vendor's `prefill_gid_for_layer`, hardware-facts: F29).
    pub fn group_for(&self, prefill: bool, ordinal: usize) -> LinearGroup {
        let list = if prefill { &self.prefill } else { &self.decode };
        list[ordinal.min(list.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, dims: &[i32], dtype: i32, size: usize) -> TensorInfo {
        TensorInfo { name: name.into(), dims: dims.to_vec(), dtype, size: size as u64 }
    }

    /// A linear layer's group: `rows` rows of `h`, a state of `k`/`v` bytes of `dt`.
    fn group(rows: usize, h: usize, k: usize, v: usize, dt: i32) -> GroupInfo {
        let b = dtype::BF16;
        GroupInfo {
            inputs: vec![
                t("K_cache", &[1, 3, 64], dt, k),
                t("V_cache", &[1, 4, 16, 16], dt, v),
                t("indices", &[1, rows as i32], dtype::UINT32, rows * 4),
                t("input", &[1, rows as i32, h as i32], b, rows * h * 2),
                t("mask", &[1, 1, rows as i32], b, rows * 2),
            ],
            outputs: vec![
                t("K_cache_out", &[1, 3, 64], dt, k),
                t("V_cache_out", &[1, 4, 16, 16], dt, v),
                t("output", &[1, rows as i32, h as i32], b, rows * h * 2),
            ],
        }
    }

    #[test]
    fn kinds_from_config_follow_the_vendor_rules() {
        let mut cfg: RuntimeConfig = serde_json::from_value(serde_json::json!({
            "template_filename_axmodel": "x_l%d.axmodel", "axmodel_num": 6, "filename_post_axmodel": "p",
            "filename_tokens_embed": "e", "tokens_embed_num": 10, "tokens_embed_size": 4,
            "full_attention_interval": 3,
        }))
        .unwrap();
        let (l, f) = (LayerKind::Linear, LayerKind::Full);
        let p = Path::new("config.json");
        assert_eq!(kinds_from_config(&cfg, 6, p).unwrap(), Some(vec![l, l, f, l, l, f]));
        cfg.layer_types = Some(["linear_attention", "full_attention", "sliding_attention"].map(String::from).to_vec());
        assert!(kinds_from_config(&cfg, 6, p).is_err(), "three types for six layers");
        assert_eq!(kinds_from_config(&cfg, 3, p).unwrap(), Some(vec![l, f, f]), "layer_types wins");
        cfg.layer_types = None;
        cfg.full_attention_interval = Some(0);
        assert_eq!(kinds_from_config(&cfg, 2, p).unwrap(), Some(vec![f, f]));
        cfg.full_attention_interval = None;
        assert_eq!(kinds_from_config(&cfg, 2, p).unwrap(), None);
    }

    #[test]
    fn linear_geometry_is_sized_by_bytes_whatever_the_dtype() {
        for dt in [dtype::BF16, dtype::FP32, dtype::NONE] {
            let gs = vec![group(1, 8, 384, 2048, dt), group(4, 8, 384, 2048, dt), group(4, 8, 384, 2048, dt)];
            assert_eq!(kind_from_io(&gs), LayerKind::Linear);
            let g = LinearGeometry::derive(Path::new("l0"), &gs, 8, 4).unwrap();
            assert_eq!((g.k_state, g.v_state, g.decode.len(), g.prefill.len()), (384, 2048, 1, 2));
            assert_eq!(g.group_for(true, 5).index, 2, "later chunks reuse the last prefill group");
            assert_eq!(g.group_for(false, 3).index, 0);
        }
        let ok = || vec![group(1, 8, 384, 2048, dtype::BF16), group(4, 8, 384, 2048, dtype::BF16)];
        let mut cases = Vec::new();
        let mut c = ok();
        c[1].outputs[1].size = 1024;
        cases.push(c); // state out smaller than in
        let mut c = ok();
        c[1] = group(4, 8, 384, 1024, dtype::BF16);
        cases.push(c); // groups disagree on the state
        let mut c = ok();
        c[1].inputs[4].size = 6;
        cases.push(c); // gate shorter than the rows
        cases.push(vec![ok()[0].clone()]); // no prefill group
        cases.push(vec![ok()[0].clone(), group(3, 8, 384, 2048, dtype::BF16)]); // not the chunk
        let mut c = ok();
        c[0].outputs[0].dtype = dtype::FP32;
        cases.push(c); // bf16 in, f32 out
        for (i, c) in cases.iter().enumerate() {
            assert!(LinearGeometry::derive(Path::new("l0"), c, 8, 4).is_err(), "case {i}");
        }
    }
}
