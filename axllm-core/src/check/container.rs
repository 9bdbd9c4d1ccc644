//! A model file's container, read without the runtime: is the file whole,
//! and what does it say about its shape groups?
//!
//! * A real `.axmodel` is an ONNX `ModelProto` protobuf (as third-party
//!   inspection of the vendor's files shows). Its top-level fields are walked to the end of
//!   the file, skipping the contents of each length-delimited field, so a
//!   truncated or overwritten file is refused; the compiled program inside
//!   is not interpreted (which sub-graph is which shape group is INFERRED
//!   there), so the shape groups stay unknown until a card loads it.
//! * The simulator's files (`AXSIMMOD`, axcl-sim's `format.rs`) carry a JSON
//!   header with the shape groups and the weights' offsets; the groups are
//!   returned as the runtime would report them, the weights checked against
//!   the file's length.

use crate::error::{Error, Result};
use crate::npu::{GroupInfo, TensorInfo, dtype};
use crate::package::PackageDir;
use serde::Deserialize;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// What a model file says about itself.
#[derive(Debug)]
pub enum Container {
    /// Its shape groups, in the runtime's order.
    Groups(Vec<GroupInfo>),
    /// A whole ONNX container whose shape groups only the runtime reports.
    Opaque,
}

const SIM_MAGIC: &[u8; 8] = b"AXSIMMOD";
const SIM_VERSION: u32 = 1;
const SIM_ALIGN: u64 = 64;
const SIM_MAX_HEADER: u64 = 64 << 20;

/// `ModelProto.graph` (field 7 of ONNX's `ModelProto`): a model without one is not a model.
const ONNX_GRAPH_FIELD: u64 = 7;

/// Reads the container of `path`, a file of the package `pkg` (opened through
/// it, so it stays inside); errors name the file.
pub fn read(pkg: &PackageDir, path: &Path) -> Result<Container> {
    let bad = |reason: String| Error::bad_file(path, reason).in_package(pkg.root());
    let file = pkg.open(path)?;
    let len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    let mut r = BufReader::new(file);
    let mut magic = [0u8; 8];
    let head = read_up_to(&mut r, &mut magic).map_err(|e| bad(e.to_string()))?;
    r.seek(SeekFrom::Start(0)).map_err(|e| bad(e.to_string()))?;
    if head == 8 && &magic == SIM_MAGIC {
        return read_sim(&mut r, len).map(Container::Groups).map_err(bad);
    }
    walk_protobuf(&mut r, len).map_err(|e| bad(format!("not a whole .axmodel (ONNX) file: {e}")))?;
    Ok(Container::Opaque)
}

/// The shape groups a model file states in its own header (the simulator's
/// files), read without the runtime and without reading the weights; `None`
/// for a real `.axmodel` (only a card reports its groups) or a file this
/// cannot read (the runtime then judges it). The memory guard sizes the
/// load's buffers from these before the first file reaches the card.
pub(crate) fn stated_groups(pkg: &PackageDir, path: &Path) -> Option<Vec<GroupInfo>> {
    let file = pkg.open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut r = BufReader::new(file);
    let mut magic = [0u8; 8];
    if read_up_to(&mut r, &mut magic).ok()? != 8 || &magic != SIM_MAGIC {
        return None;
    }
    r.seek(SeekFrom::Start(0)).ok()?;
    read_sim(&mut r, len).ok()
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A protobuf varint, and how many bytes it took.
fn varint(r: &mut impl Read) -> std::result::Result<(u64, u64), String> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut b = [0u8];
        r.read_exact(&mut b).map_err(|_| "the file ends inside a field header".to_string())?;
        value |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err("a varint longer than 10 bytes".into())
}

/// Walks the top-level fields of a protobuf message that fills the file.
fn walk_protobuf<R: Read + Seek>(r: &mut R, len: u64) -> std::result::Result<(), String> {
    if len == 0 {
        return Err("the file is empty".into());
    }
    let (mut pos, mut graph) = (0u64, false);
    while pos < len {
        let (key, n) = varint(r)?;
        pos += n;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 {
            return Err(format!("field number 0 at byte {}", pos - n));
        }
        let skip = match wire {
            0 => varint(r)?.1,
            1 => 8,
            5 => 4,
            2 => {
                let (size, n) = varint(r)?;
                pos += n;
                graph |= field == ONNX_GRAPH_FIELD;
                size
            }
            other => return Err(format!("wire type {other} at byte {}", pos - n)),
        };
        if wire != 0 {
            if skip > len - pos {
                return Err(format!("field {field} at byte {pos} needs {skip} bytes; the file has {} left (truncated?)", len - pos));
            }
            r.seek(SeekFrom::Current(skip as i64)).map_err(|e| e.to_string())?;
        }
        pos += skip;
    }
    if !graph {
        return Err("no graph".into());
    }
    Ok(())
}

#[derive(Deserialize)]
struct SimHeader {
    groups: Vec<SimGroup>,
    #[serde(default)]
    tensors: Vec<SimWeight>,
}

#[derive(Deserialize)]
struct SimGroup {
    inputs: Vec<SimTensor>,
    outputs: Vec<SimTensor>,
}

#[derive(Deserialize)]
struct SimTensor {
    name: String,
    dtype: String,
    dims: Vec<i32>,
}

#[derive(Deserialize)]
struct SimWeight {
    name: String,
    offset: u64,
    nbytes: u64,
}

/// The simulator's container: magic, version, header length, JSON header,
/// padding to 64 bytes, data.
fn read_sim(r: &mut impl Read, len: u64) -> std::result::Result<Vec<GroupInfo>, String> {
    let mut fixed = [0u8; 16];
    r.read_exact(&mut fixed).map_err(|_| "truncated simulated axmodel: no header".to_string())?;
    let version = u32::from_le_bytes(fixed[8..12].try_into().expect("4 bytes"));
    if version != SIM_VERSION {
        return Err(format!("unsupported simulated axmodel version {version}"));
    }
    let hlen = u64::from(u32::from_le_bytes(fixed[12..16].try_into().expect("4 bytes")));
    if hlen > SIM_MAX_HEADER || 16 + hlen > len {
        return Err(format!("truncated simulated axmodel: a header of {hlen} bytes does not fit in {len} bytes"));
    }
    let mut json = vec![0u8; hlen as usize];
    r.read_exact(&mut json).map_err(|e| e.to_string())?;
    let header: SimHeader =
        serde_json::from_slice(&json).map_err(|e| format!("corrupt simulated axmodel header: {e}"))?;
    let data_start = (16 + hlen).div_ceil(SIM_ALIGN) * SIM_ALIGN;
    let data_len = len.saturating_sub(data_start);
    for w in &header.tensors {
        if w.offset.checked_add(w.nbytes).is_none_or(|end| end > data_len) {
            return Err(format!("truncated simulated axmodel: weight {} lies outside the data section", w.name));
        }
    }
    let tensor = |t: &SimTensor| -> std::result::Result<TensorInfo, String> {
        let (code, size) = match t.dtype.as_str() {
            "bf16" => (dtype::BF16, 2),
            "u32" => (dtype::UINT32, 4),
            "f32" => (axcl_sys::rt::AXCL_DATA_TYPE_FP32 as i32, 4),
            other => return Err(format!("tensor {} has an unknown dtype {other:?}", t.name)),
        };
        let elements: u64 = t.dims.iter().map(|&d| d.max(0) as u64).product();
        Ok(TensorInfo { name: t.name.clone(), dims: t.dims.clone(), dtype: code, size: elements * size })
    };
    let groups = header
        .groups
        .iter()
        .map(|g| {
            Ok(GroupInfo {
                inputs: g.inputs.iter().map(tensor).collect::<std::result::Result<_, String>>()?,
                outputs: g.outputs.iter().map(tensor).collect::<std::result::Result<_, String>>()?,
            })
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    if groups.is_empty() {
        return Err("simulated axmodel without shape groups".into());
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn key(field: u64, wire: u64) -> u8 {
        (field << 3 | wire) as u8
    }

    /// ir_version 8, a producer name, a graph of 300 bytes, an opset.
    fn model() -> Vec<u8> {
        let mut m = vec![key(1, 0), 8, key(2, 2), 5];
        m.extend_from_slice(b"pulsa");
        m.extend_from_slice(&[key(7, 2), 0xac, 0x02]);
        m.extend(std::iter::repeat_n(0x5a, 300));
        m.extend_from_slice(&[key(8, 2), 2, key(2, 0), 17]);
        m
    }

    fn walk(bytes: &[u8]) -> std::result::Result<(), String> {
        walk_protobuf(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn onnx_envelope_whole_and_damaged() {
        let m = model();
        assert_eq!(walk(&m), Ok(()));
        for cut in [1, 3, 10, 200, m.len() - 1] {
            assert!(walk(&m[..cut]).is_err(), "cut at {cut} accepted");
        }
        assert!(walk(&[]).unwrap_err().contains("empty"));
        let mut no_graph = vec![key(1, 0), 8];
        no_graph.extend_from_slice(&[key(8, 2), 2, key(2, 0), 17]);
        assert_eq!(walk(&no_graph).unwrap_err(), "no graph");
        assert!(walk(b"GGUF\x03\0\0\0").unwrap_err().contains("wire type"));
        let mut extra = m.clone();
        extra.push(0);
        assert!(walk(&extra).unwrap_err().contains("field number 0"));
    }
}
