//! The simulated axmodel file format (ours; real `.axmodel` files are ONNX
//! protobufs with compiled NPU programs and are refused by the simulator).
//!
//! ```text
//! offset 0   magic  b"AXSIMMOD"
//! offset 8   u32 LE format version (FORMAT_VERSION)
//! offset 12  u32 LE header length N
//! offset 16  header: N bytes of UTF-8 JSON (`SimModelHeader`)
//! then zero padding up to a multiple of DATA_ALIGN, then the tensor data;
//! `TensorEntry::offset` is relative to the start of the data.
//! ```
//!
//! The header carries the complete IO description of every shape group, in the
//! order the runtime reports it, so a file can describe any layout (including
//! deliberately odd ones in tests). Weights use Hugging Face names relative to
//! the layer (`self_attn.q_proj.weight`, ...) or, for a post model,
//! `norm.weight` and `lm_head.weight`.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"AXSIMMOD";
pub const FORMAT_VERSION: u32 = 1;
pub const DATA_ALIGN: usize = 64;
/// Upper bound on the JSON header, so a corrupt length cannot make us allocate gigabytes.
pub const MAX_HEADER_LEN: usize = 64 << 20;

/// What a model file computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// One decoder layer with the K_cache/V_cache/indices/input/mask contract.
    Layer,
    /// Final norm and lm_head: hidden `[1,1,H]` to bf16 logits `[1,1,V]`.
    Post,
}

/// The upstream architecture a layer was packed from (informational: the
/// math follows from which weights are present).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Qwen3,
    Qwen2,
    Llama,
}

/// Element type of an IO tensor or a weight, as named in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Bf16,
    F32,
    U32,
}

impl DType {
    pub const fn size(self) -> usize {
        match self {
            DType::Bf16 => 2,
            DType::F32 | DType::U32 => 4,
        }
    }
    /// The `axclrtEngineDataType` value the runtime reports.
    pub const fn axcl_code(self) -> i32 {
        match self {
            DType::Bf16 => axcl_sys::rt::AXCL_DATA_TYPE_BF16 as i32,
            DType::F32 => axcl_sys::rt::AXCL_DATA_TYPE_FP32 as i32,
            DType::U32 => axcl_sys::rt::AXCL_DATA_TYPE_UINT32 as i32,
        }
    }
}

/// One input or output tensor of a shape group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorDesc {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<i32>,
}

impl TensorDesc {
    pub fn new(name: &str, dtype: DType, dims: &[i32]) -> Self {
        Self { name: name.to_owned(), dtype, dims: dims.to_vec() }
    }
    pub fn elements(&self) -> usize {
        self.dims.iter().map(|&d| d.max(0) as usize).product()
    }
    pub fn nbytes(&self) -> usize {
        self.elements() * self.dtype.size()
    }
}

/// The IO of one shape group. Names, order and dtypes must agree across groups
/// (the runtime reports them group-independently); dims may differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupIo {
    pub inputs: Vec<TensorDesc>,
    pub outputs: Vec<TensorDesc>,
}

/// Architecture numbers a layer or post model needs for its math.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub rms_norm_eps: f64,
    /// Post models only.
    #[serde(default)]
    pub vocab_size: usize,
}

/// A weight stored in the data section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub offset: u64,
    pub nbytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimModelHeader {
    pub kind: ModelKind,
    pub arch: Arch,
    /// Full-size IO and no weights: execute does no math (benchmarks).
    #[serde(default)]
    pub timing_only: bool,
    #[serde(default)]
    pub layer_index: Option<u32>,
    pub geometry: Geometry,
    /// RoPE inverse frequencies, `head_dim / 2` entries (layers only); the
    /// packer computes them from the checkpoint's rope settings.
    #[serde(default)]
    pub rope_inv_freq: Vec<f64>,
    pub groups: Vec<GroupIo>,
    #[serde(default)]
    pub tensors: Vec<TensorEntry>,
}

/// Why a file is not a usable simulated model.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "not a simulated axmodel: this looks like a real .axmodel compiled for the NPU; \
         it needs the AXCL runtime and an AX650 card (the simulator only runs files made by axsim-pack)"
    )]
    RealAxmodel,
    #[error("not a simulated axmodel (bad magic)")]
    BadMagic,
    #[error("unsupported simulated axmodel version {0} (this simulator reads {FORMAT_VERSION})")]
    Version(u32),
    #[error("truncated simulated axmodel: {0}")]
    Truncated(String),
    #[error("corrupt simulated axmodel header: {0}")]
    Header(String),
}

/// A parsed model file: header plus the raw data section.
#[derive(Debug)]
pub struct SimModelFile {
    pub header: SimModelHeader,
    pub data: Vec<u8>,
}

fn pad_len(n: usize) -> usize {
    (DATA_ALIGN - n % DATA_ALIGN) % DATA_ALIGN
}

impl SimModelFile {
    /// Parses a file's bytes, validating the header against the data.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            // Real axmodels are ONNX ModelProto protobufs: field 1 (ir_version,
            // varint) gives a leading 0x08 byte.
            return Err(if bytes.first() == Some(&0x08) { FormatError::RealAxmodel } else { FormatError::BadMagic });
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(FormatError::Version(version));
        }
        let hlen = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
        if hlen > MAX_HEADER_LEN || 16 + hlen > bytes.len() {
            return Err(FormatError::Truncated(format!("header of {hlen} bytes does not fit in {} bytes", bytes.len())));
        }
        let header: SimModelHeader =
            serde_json::from_slice(&bytes[16..16 + hlen]).map_err(|e| FormatError::Header(e.to_string()))?;
        let start = 16 + hlen + pad_len(16 + hlen);
        let data = bytes.get(start..).unwrap_or_default().to_vec();
        header.validate(data.len())?;
        Ok(Self { header, data })
    }

    pub fn read(path: &Path) -> Result<Self, FormatError> {
        Self::parse(&std::fs::read(path)?)
    }

    /// Bytes of a stored weight.
    pub fn tensor_bytes(&self, name: &str) -> Option<(&TensorEntry, &[u8])> {
        let e = self.header.tensors.iter().find(|t| t.name == name)?;
        Some((e, &self.data[e.offset as usize..(e.offset + e.nbytes) as usize]))
    }
}

impl SimModelHeader {
    /// Checks internal consistency: groups agree on names/dtypes, tensors lie inside the data.
    pub fn validate(&self, data_len: usize) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::Header(m));
        let Some(first) = self.groups.first() else { return bad("no shape groups".into()) };
        for (g, grp) in self.groups.iter().enumerate() {
            let same = |a: &[TensorDesc], b: &[TensorDesc]| {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.name == y.name && x.dtype == y.dtype)
            };
            if !same(&grp.inputs, &first.inputs) || !same(&grp.outputs, &first.outputs) {
                return bad(format!("group {g} does not have the same tensor names and dtypes as group 0"));
            }
            for t in grp.inputs.iter().chain(&grp.outputs) {
                if t.dims.is_empty() || t.dims.len() > 32 || t.dims.iter().any(|&d| d <= 0) {
                    return bad(format!("group {g} tensor {} has invalid dims {:?}", t.name, t.dims));
                }
            }
        }
        for t in &self.tensors {
            let want = t.shape.iter().product::<usize>() * t.dtype.size();
            if want as u64 != t.nbytes {
                return bad(format!("weight {} has {} bytes for shape {:?}", t.name, t.nbytes, t.shape));
            }
            if t.offset.checked_add(t.nbytes).is_none_or(|end| end > data_len as u64) {
                return Err(FormatError::Truncated(format!("weight {} lies outside the data section", t.name)));
            }
        }
        Ok(())
    }
}

/// Writes a model file from a header and named weights; fills in offsets.
#[derive(Debug)]
pub struct SimModelWriter {
    header: SimModelHeader,
    data: Vec<u8>,
}

impl SimModelWriter {
    pub fn new(mut header: SimModelHeader) -> Self {
        header.tensors.clear();
        Self { header, data: Vec::new() }
    }

    /// Appends a weight given as raw little-endian bytes of `dtype`.
    pub fn add_tensor(&mut self, name: &str, dtype: DType, shape: &[usize], bytes: &[u8]) {
        assert_eq!(shape.iter().product::<usize>() * dtype.size(), bytes.len(), "weight {name}: size/shape mismatch");
        self.data.resize(self.data.len() + pad_len(self.data.len()), 0);
        self.header.tensors.push(TensorEntry {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
            offset: self.data.len() as u64,
            nbytes: bytes.len() as u64,
        });
        self.data.extend_from_slice(bytes);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(&self.header).expect("header serialises");
        let mut out = Vec::with_capacity(16 + json.len() + DATA_ALIGN + self.data.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out.resize(out.len() + pad_len(out.len()), 0);
        out.extend_from_slice(&self.data);
        out
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(&self.to_bytes())?;
        f.sync_all()
    }
}

/// The per-group IO of a decoder layer exactly as the vendor contract describes
/// it: group 0 decode with capacity `c`, group 1 the first
/// prefill chunk of `t` tokens with dummy `[1,1,H]` K/V, then one group per
/// history capacity in `prefill_history` (ascending).
pub fn layer_groups(h: usize, d: usize, t: usize, c: usize, prefill_history: &[usize]) -> Vec<GroupIo> {
    let (h, d, t, c) = (h as i32, d as i32, t as i32, c as i32);
    let outs = |rows: i32| {
        vec![
            TensorDesc::new("K_cache_out", DType::Bf16, &[1, rows, d]),
            TensorDesc::new("V_cache_out", DType::Bf16, &[1, rows, d]),
            TensorDesc::new("output", DType::Bf16, &[1, rows, h]),
        ]
    };
    let ins = |kv: [i32; 3], rows: i32, mask_cols: i32| {
        vec![
            TensorDesc::new("K_cache", DType::Bf16, &kv),
            TensorDesc::new("V_cache", DType::Bf16, &kv),
            TensorDesc::new("indices", DType::U32, &[1, rows]),
            TensorDesc::new("input", DType::Bf16, &[1, rows, h]),
            TensorDesc::new("mask", DType::Bf16, &[1, rows, mask_cols]),
        ]
    };
    let mut groups = vec![
        GroupIo { inputs: ins([1, c, d], 1, c + 1), outputs: outs(1) },
        GroupIo { inputs: ins([1, 1, h], t, t), outputs: outs(t) },
    ];
    for &p in prefill_history {
        let p = p as i32;
        groups.push(GroupIo { inputs: ins([1, p, d], t, p + t), outputs: outs(t) });
    }
    groups
}

/// The single group of a post model: `input [1,1,H]` to `output [1,1,V]`.
pub fn post_groups(h: usize, v: usize) -> Vec<GroupIo> {
    vec![GroupIo {
        inputs: vec![TensorDesc::new("input", DType::Bf16, &[1, 1, h as i32])],
        outputs: vec![TensorDesc::new("output", DType::Bf16, &[1, 1, v as i32])],
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SimModelHeader {
        SimModelHeader {
            kind: ModelKind::Post,
            arch: Arch::Qwen3,
            timing_only: false,
            layer_index: None,
            geometry: Geometry {
                hidden_size: 4,
                num_attention_heads: 1,
                num_key_value_heads: 1,
                head_dim: 4,
                intermediate_size: 8,
                rms_norm_eps: 1e-6,
                vocab_size: 3,
            },
            rope_inv_freq: vec![],
            groups: post_groups(4, 3),
            tensors: vec![],
        }
    }

    #[test]
    fn round_trip() {
        let mut w = SimModelWriter::new(header());
        w.add_tensor("norm.weight", DType::F32, &[4], &[0u8; 16]);
        w.add_tensor("lm_head.weight", DType::Bf16, &[3, 4], &[1u8; 24]);
        let f = SimModelFile::parse(&w.to_bytes()).unwrap();
        assert_eq!(f.header.tensors.len(), 2);
        assert_eq!(f.tensor_bytes("lm_head.weight").unwrap().1, &[1u8; 24]);
    }

    #[test]
    fn refuses_real_and_truncated_files() {
        assert!(matches!(SimModelFile::parse(&[0x08, 0x07, 0x12, 0, 0]), Err(FormatError::RealAxmodel)));
        assert!(matches!(SimModelFile::parse(b"hello world, not a model"), Err(FormatError::BadMagic)));
        let mut w = SimModelWriter::new(header());
        w.add_tensor("lm_head.weight", DType::Bf16, &[3, 4], &[1u8; 24]);
        let bytes = w.to_bytes();
        assert!(matches!(SimModelFile::parse(&bytes[..bytes.len() - 4]), Err(FormatError::Truncated(_))));
    }

    #[test]
    fn layer_groups_follow_the_contract() {
        let g = layer_groups(64, 32, 16, 127, &[32, 64]);
        assert_eq!(g.len(), 4);
        assert_eq!(g[0].inputs[4].dims, vec![1, 1, 128]);
        assert_eq!(g[1].inputs[0].dims, vec![1, 1, 64]);
        assert_eq!(g[3].inputs[4].dims, vec![1, 16, 80]);
        assert_eq!(g[3].outputs[0].dims, vec![1, 16, 32]);
    }
}
