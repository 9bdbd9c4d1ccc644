//! Sizes and shape groups of a decoder layer, derived from the IO info the
//! runtime reports (the newest vendor runner's mask-based derivation). Nothing
//! here trusts file names or configs: they are cross-checked against this.

use crate::error::{Error, Result};
use crate::npu::{GroupInfo, TensorInfo, dtype};
use std::path::Path;

/// A decode group: one query token attending to `capacity` cached positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeGroup {
    pub index: u32,
    /// History columns of the mask (mask elements − 1): slots `0..capacity`.
    pub capacity: usize,
}

/// A prefill group: `T` query rows after up to `history_cap` cached positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefillGroup {
    pub index: u32,
    /// History columns of the mask (mask columns − T).
    pub history_cap: usize,
    /// All mask columns: history plus the chunk.
    pub total_cap: usize,
}

/// The geometry shared by every decoder layer of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// `H`: hidden size.
    pub hidden: usize,
    /// `D`: elements of one cached K (or V) row.
    pub kv_dim: usize,
    /// `T`: prefill chunk length.
    pub chunk: usize,
    /// Rows of the per-layer K and V device buffers (enough for every group).
    pub kv_rows: usize,
    /// Decode groups, by ascending capacity.
    pub decode: Vec<DecodeGroup>,
    /// Prefill groups, by ascending history capacity.
    pub prefill: Vec<PrefillGroup>,
    /// Bytes of each group's tensors, by group index then name (for binding).
    pub groups: Vec<GroupInfo>,
}

/// The tensor names of the vendor's per-layer IO contract.
pub mod names {
    pub const K_CACHE: &str = "K_cache";
    pub const V_CACHE: &str = "V_cache";
    pub const INDICES: &str = "indices";
    pub const INPUT: &str = "input";
    pub const MASK: &str = "mask";
    pub const K_OUT: &str = "K_cache_out";
    pub const V_OUT: &str = "V_cache_out";
    pub const OUTPUT: &str = "output";
}

fn bad(path: &Path, reason: String) -> Error {
    Error::bad_file(path, reason)
}

/// Looks a tensor up by name and checks its dtype family.
fn tensor<'a>(path: &Path, g: usize, grp: &'a GroupInfo, name: &str, input: bool) -> Result<&'a TensorInfo> {
    let t = if input { grp.input(name) } else { grp.output(name) }
        .map(|(_, t)| t)
        .ok_or_else(|| bad(path, format!("shape group {g} has no {} named {name:?}", if input { "input" } else { "output" })))?;
    let ok = if name == names::INDICES { t.dtype == dtype::UINT32 } else { matches!(t.dtype, dtype::BF16 | dtype::UINT16) };
    if !ok {
        return Err(bad(path, format!("shape group {g}: tensor {name} has unexpected type {}", dtype::name(t.dtype))));
    }
    if t.size != (t.elements() * if name == names::INDICES { 4 } else { 2 }) as u64 {
        return Err(bad(path, format!("shape group {g}: tensor {name} is {} bytes for dims {:?}", t.size, t.dims)));
    }
    Ok(t)
}

impl Geometry {
    /// Derives the geometry of one layer from its groups. `path` names the file in errors.
    pub fn derive(path: &Path, groups: &[GroupInfo]) -> Result<Geometry> {
        let (mut hidden, mut kv_dim, mut chunk) = (None::<usize>, None::<usize>, None::<usize>);
        let agree = |slot: &mut Option<usize>, v: usize, what: &str, g: usize| -> Result<()> {
            match *slot {
                Some(old) if old != v => Err(bad(path, format!("shape group {g} has {what} {v}, other groups {old}"))),
                _ => {
                    *slot = Some(v);
                    Ok(())
                }
            }
        };
        let (mut decode, mut prefill) = (Vec::new(), Vec::new());
        let mut kv_bytes = 0u64;
        for (g, grp) in groups.iter().enumerate() {
            let t = |name: &str, input: bool| tensor(path, g, grp, name, input);
            let (idx, input, mask) = (t(names::INDICES, true)?, t(names::INPUT, true)?, t(names::MASK, true)?);
            let (k_out, v_out, output) = (t(names::K_OUT, false)?, t(names::V_OUT, false)?, t(names::OUTPUT, false)?);
            let (k_in, v_in) = (t(names::K_CACHE, true)?, t(names::V_CACHE, true)?);
            kv_bytes = kv_bytes.max(k_in.size).max(v_in.size);
            let rows = idx.elements();
            if rows == 0 || input.elements() == 0 || k_out.elements() == 0 {
                return Err(bad(path, format!("shape group {g} has an empty indices, input or K_cache_out tensor")));
            }
            if rows == 1 {
                agree(&mut hidden, input.elements(), "hidden size", g)?;
                agree(&mut kv_dim, k_out.elements(), "K row size", g)?;
                let capacity = mask.elements().checked_sub(1).filter(|&c| c > 0).ok_or_else(|| {
                    bad(path, format!("decode group {g} has a mask of {} elements", mask.elements()))
                })?;
                let cache_rows = k_in.elements() / k_out.elements().max(1);
                if capacity > cache_rows {
                    return Err(bad(path, format!(
                        "decode group {g}: mask covers {capacity} positions but K_cache holds {cache_rows} rows"
                    )));
                }
                decode.push(DecodeGroup { index: g as u32, capacity });
            } else {
                let t_len = idx.dims.last().copied().unwrap_or(0).max(0) as usize;
                if t_len != rows {
                    return Err(bad(path, format!(
                        "prefill group {g}: indices dims {:?} are not [1, T] (multi-row M-RoPE indices are not supported)",
                        idx.dims
                    )));
                }
                agree(&mut chunk, t_len, "chunk length", g)?;
                if mask.elements() % t_len != 0 || mask.elements() / t_len < t_len {
                    return Err(bad(path, format!("prefill group {g}: mask of {} elements for T = {t_len}", mask.elements())));
                }
                let total_cap = mask.elements() / t_len;
                prefill.push(PrefillGroup { index: g as u32, history_cap: total_cap - t_len, total_cap });
                if input.elements() % t_len != 0 {
                    return Err(bad(path, format!("prefill group {g}: input of {} elements for T = {t_len}", input.elements())));
                }
                agree(&mut hidden, input.elements() / t_len, "hidden size", g)?;
                agree(&mut kv_dim, k_out.elements() / t_len, "K row size", g)?;
            }
            let h = hidden.unwrap_or(0);
            let rows_h = if rows == 1 { h } else { rows * h };
            if output.elements() != rows_h || v_out.elements() != k_out.elements() {
                return Err(bad(path, format!("shape group {g}: output/V_cache_out sizes do not match input/K_cache_out")));
            }
        }
        if decode.is_empty() || prefill.is_empty() {
            return Err(bad(path, format!(
                "unknown shape-group layout: {} decode and {} prefill groups (need at least one of each)",
                decode.len(),
                prefill.len()
            )));
        }
        decode.sort_by_key(|d| d.capacity);
        prefill.sort_by_key(|p| (p.history_cap, p.index));
        let (hidden, kv_dim, chunk) = (hidden.unwrap_or(0), kv_dim.unwrap_or(0), chunk.unwrap_or(0));
        let kv_rows = (kv_bytes as usize).div_ceil(kv_dim * 2).max(decode.last().map_or(0, |d| d.capacity));
        Ok(Geometry { hidden, kv_dim, chunk, kv_rows, decode, prefill, groups: groups.to_vec() })
    }

    /// True when two layers can share one schedule (same sizes and groups).
    pub fn same_shape(&self, other: &Geometry) -> bool {
        self.hidden == other.hidden
            && self.kv_dim == other.kv_dim
            && self.chunk == other.chunk
            && self.decode == other.decode
            && self.prefill == other.prefill
            && self.kv_rows == other.kv_rows
    }

    /// Positions a sequence may occupy: a token at slot `s` needs a decode
    /// group with capacity > `s` and a K/V row `s`.
    pub fn max_positions(&self) -> usize {
        self.decode.last().map_or(0, |d| d.capacity).min(self.kv_rows)
    }

    /// The longest prompt prefill groups take in one go from an empty cache.
    pub fn max_prefill(&self) -> usize {
        self.prefill.iter().map(|p| p.total_cap).max().unwrap_or(0).min(self.kv_rows)
    }

    /// The first prefill group that holds `history` cached positions plus a chunk of `n` (the vendor runners' rule).
    pub fn prefill_group(&self, history: usize, n: usize) -> Option<PrefillGroup> {
        self.prefill
            .iter()
            .copied()
            .find(|p| history <= p.history_cap && history + n <= p.total_cap && history + n <= self.kv_rows)
    }

    /// The prefill group and chunk length for up to `want` tokens after
    /// `history` cached positions: a group that takes all `want` if one does,
    /// else the one that takes the most. `None` when no prefill group can take
    /// even one token (the history is longer than every group's).
    pub fn prefill_plan(&self, history: usize, want: usize) -> Option<(PrefillGroup, usize)> {
        if let Some(g) = self.prefill_group(history, want) {
            return Some((g, want));
        }
        self.prefill
            .iter()
            .filter(|p| history <= p.history_cap)
            .map(|p| (*p, want.min(p.total_cap.min(self.kv_rows).saturating_sub(history))))
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(p, n)| (*n, std::cmp::Reverse(p.history_cap)))
    }

    /// The smallest decode group whose capacity covers slot `slot` (the vendor runners' rule).
    pub fn decode_group(&self, slot: usize) -> Option<DecodeGroup> {
        if slot >= self.kv_rows {
            return None;
        }
        self.decode.iter().copied().find(|d| d.capacity > slot)
    }

    /// Byte size of tensor `name` in group `g` (inputs first, then outputs).
    pub fn tensor_size(&self, g: u32, name: &str) -> usize {
        let grp = &self.groups[g as usize];
        grp.input(name).or_else(|| grp.output(name)).map_or(0, |(_, t)| t.size as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npu::TensorInfo;

    fn t(name: &str, dims: &[i32], dtype: i32) -> TensorInfo {
        let n: usize = dims.iter().map(|&d| d.max(0) as usize).product();
        TensorInfo { name: name.into(), dims: dims.to_vec(), dtype, size: (n * if dtype == dtype::UINT32 { 4 } else { 2 }) as u64 }
    }

    /// The vendor packages' layout: decode capacity `c`, chunk `tl`, history caps `ps`.
    fn groups(h: i32, d: i32, tl: i32, c: i32, ps: &[i32]) -> Vec<GroupInfo> {
        let b = dtype::BF16;
        let grp = |kv: [i32; 3], rows: i32, cols: i32| GroupInfo {
            inputs: vec![
                t("K_cache", &kv, b),
                t("V_cache", &kv, b),
                t("indices", &[1, rows], dtype::UINT32),
                t("input", &[1, rows, h], b),
                t("mask", &[1, rows, cols], b),
            ],
            outputs: vec![t("K_cache_out", &[1, rows, d], b), t("V_cache_out", &[1, rows, d], b), t("output", &[1, rows, h], b)],
        };
        let mut v = vec![grp([1, c, d], 1, c + 1), grp([1, 1, h], tl, tl)];
        v.extend(ps.iter().map(|&p| grp([1, p, d], tl, p + tl)));
        v
    }

    #[test]
    fn derives_the_qwen3_4b_layout() {
        let g = Geometry::derive(Path::new("l0"), &groups(2560, 1024, 128, 2559, &[256, 512, 1024, 1536, 2048])).unwrap();
        assert_eq!((g.hidden, g.kv_dim, g.chunk, g.kv_rows), (2560, 1024, 128, 2559));
        assert_eq!(g.max_positions(), 2559);
        assert_eq!(g.max_prefill(), 2176);
        assert_eq!(g.prefill_group(0, 128).unwrap().index, 1);
        assert_eq!(g.prefill_group(128, 128).unwrap().history_cap, 256);
        assert_eq!(g.prefill_group(200, 100).unwrap().history_cap, 256);
        assert!(g.prefill_group(2049, 1).is_none());
        assert_eq!(g.prefill_plan(2000, 128).unwrap().1, 128);
        assert_eq!(g.prefill_plan(2100, 128), None);
        assert_eq!(g.decode_group(2558).unwrap().index, 0);
        assert!(g.decode_group(2559).is_none());
    }

    #[test]
    fn several_decode_groups_pick_the_smallest_that_fits() {
        let mut gs = groups(64, 32, 16, 63, &[32]);
        let mut big = gs[0].clone();
        big.inputs[0] = t("K_cache", &[1, 127, 32], dtype::BF16);
        big.inputs[1] = t("V_cache", &[1, 127, 32], dtype::BF16);
        big.inputs[4] = t("mask", &[1, 1, 128], dtype::BF16);
        gs.push(big);
        let g = Geometry::derive(Path::new("l0"), &gs).unwrap();
        assert_eq!(g.decode_group(10).unwrap().capacity, 63);
        assert_eq!(g.decode_group(63).unwrap().capacity, 127);
        assert_eq!(g.kv_rows, 127);
    }

    #[test]
    fn malformed_reports_are_errors_not_panics() {
        let base = groups(64, 32, 16, 63, &[32]);
        let mut cases = Vec::new();
        let mut zero_idx = base.clone();
        zero_idx[1].inputs[2] = t("indices", &[1, 0], dtype::UINT32);
        cases.push(zero_idx);
        let mut zero_kv = base.clone();
        zero_kv[0].outputs[0] = t("K_cache_out", &[1, 1, 0], dtype::BF16);
        cases.push(zero_kv);
        let mut no_mask = base.clone();
        no_mask[2].inputs.remove(4);
        cases.push(no_mask);
        let mut mrope = base.clone();
        mrope[1].inputs[2] = t("indices", &[1, 48], dtype::UINT32);
        cases.push(mrope);
        let mut bad_type = base.clone();
        bad_type[0].inputs[2] = t("indices", &[1, 1], dtype::BF16);
        cases.push(bad_type);
        cases.push(vec![base[0].clone()]);
        for (i, c) in cases.iter().enumerate() {
            assert!(Geometry::derive(Path::new("l0"), c).is_err(), "case {i}");
        }
    }
}
