//! A loaded model: its IO description, and the math its execution runs.

use super::errors::{ErrorKind, SimError, SimResult};
use crate::format::{DType, FormatError, GroupIo, ModelKind, SimModelFile, TensorDesc};
use crate::math::{DecoderLayer, LayerInputs, LayerOutputs, LayerSizes, MathError, PostHead};
use bytemuck::{Pod, Zeroable};
use half::bf16;
use std::ffi::{CStr, CString};
use std::sync::Arc;

/// Inputs or outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Input,
    Output,
}

impl Dir {
    pub(super) fn name(self) -> &'static str {
        match self {
            Dir::Input => "input",
            Dir::Output => "output",
        }
    }
}

/// The IO of every shape group, with the C names the info getters hand out.
#[derive(Debug)]
pub(super) struct IoTable {
    pub groups: Vec<GroupIo>,
    input_names: Vec<CString>,
    output_names: Vec<CString>,
}

impl IoTable {
    fn new(groups: Vec<GroupIo>) -> SimResult<Self> {
        let c_names = |tensors: &[TensorDesc]| {
            tensors.iter().map(|t| CString::new(t.name.as_str())).collect::<Result<Vec<_>, _>>().map_err(|_| {
                SimError::new(ErrorKind::EngineArgument, "corrupt simulated model: a tensor name contains NUL")
            })
        };
        let input_names = c_names(&groups[0].inputs)?;
        let output_names = c_names(&groups[0].outputs)?;
        Ok(Self { groups, input_names, output_names })
    }

    fn names(&self, dir: Dir) -> &[CString] {
        match dir {
            Dir::Input => &self.input_names,
            Dir::Output => &self.output_names,
        }
    }

    /// Number of inputs or outputs (the same in every group).
    pub(super) fn count(&self, dir: Dir) -> usize {
        self.names(dir).len()
    }

    pub(super) fn group(&self, group: u32) -> SimResult<&GroupIo> {
        self.groups.get(group as usize).ok_or_else(|| {
            SimError::new(
                ErrorKind::InvalidIndex,
                format!("shape group {group} is out of range (the model has {} groups)", self.groups.len()),
            )
        })
    }

    fn check_index(&self, dir: Dir, index: u32) -> SimResult<usize> {
        let count = self.count(dir);
        if (index as usize) < count {
            Ok(index as usize)
        } else {
            Err(SimError::new(
                ErrorKind::InvalidIndex,
                format!("{} index {index} is out of range (the model has {count} {}s)", dir.name(), dir.name()),
            ))
        }
    }

    /// The tensor `index` of `group`.
    pub(super) fn tensor(&self, dir: Dir, group: u32, index: u32) -> SimResult<&TensorDesc> {
        let group = self.group(group)?;
        let index = self.check_index(dir, index)?;
        Ok(match dir {
            Dir::Input => &group.inputs[index],
            Dir::Output => &group.outputs[index],
        })
    }

    /// The name of tensor `index`, NUL-terminated and owned by the table.
    pub(super) fn name(&self, dir: Dir, index: u32) -> SimResult<&CStr> {
        let index = self.check_index(dir, index)?;
        Ok(&self.names(dir)[index])
    }

    pub(super) fn index_of(&self, dir: Dir, name: &CStr) -> Option<usize> {
        self.names(dir).iter().position(|n| n.as_c_str() == name)
    }
}

/// What executing a model with weights computes.
#[derive(Debug)]
pub(super) enum Compute {
    Layer { layer: Box<DecoderLayer>, slots: LayerSlots },
    Post { head: PostHead, input: usize, output: usize },
}

/// Where each tensor of the layer contract sits in the model's IO order.
#[derive(Debug, Clone, Copy)]
pub(super) struct LayerSlots {
    k_cache: usize,
    v_cache: usize,
    indices: usize,
    input: usize,
    mask: usize,
    k_out: usize,
    v_out: usize,
    output: usize,
}

/// A loaded model.
#[derive(Debug)]
pub(super) struct Model {
    pub io: Arc<IoTable>,
    /// `None` for a timing-only model: executing it only takes time and leaves the
    /// outputs untouched. Shared so that an execution runs the math without holding
    /// the state lock.
    pub compute: Option<Arc<Compute>>,
    pub post: bool,
}

impl Model {
    /// Parses a model file's bytes and prepares its math; `source` names the bytes in messages.
    pub(super) fn parse(bytes: &[u8], source: &str) -> SimResult<Self> {
        let file = SimModelFile::parse(bytes).map_err(|e| {
            let kind = match e {
                FormatError::RealAxmodel | FormatError::BadMagic | FormatError::Version(_) => {
                    ErrorKind::ModelUnsupported
                }
                FormatError::Io(_) => ErrorKind::ModelOpen,
                FormatError::Truncated(_) | FormatError::Header(_) => ErrorKind::EngineArgument,
            };
            SimError::new(kind, format!("{source}: {e}"))
        })?;
        let invalid =
            |e: String| SimError::new(ErrorKind::EngineArgument, format!("{source}: unusable simulated model: {e}"));
        let post = file.header.kind == ModelKind::Post;
        let compute = match (file.header.timing_only, file.header.kind) {
            (true, _) => None,
            (false, ModelKind::Layer) => {
                let layer = DecoderLayer::from_file(&file).map_err(|e| invalid(e.to_string()))?;
                let slots = layer_slots(&file.header.groups[0]).map_err(invalid)?;
                for (g, group) in file.header.groups.iter().enumerate() {
                    layer.history_rows(&slots.sizes(group)).map_err(|e| invalid(format!("group {g}: {e}")))?;
                }
                Some(Arc::new(Compute::Layer { layer: Box::new(layer), slots }))
            }
            (false, ModelKind::Post) => {
                let head = PostHead::from_file(&file).map_err(|e| invalid(e.to_string()))?;
                let (input, output) = post_slots(&file.header.groups[0]).map_err(invalid)?;
                for (g, group) in file.header.groups.iter().enumerate() {
                    head.rows(group.inputs[input].elements(), group.outputs[output].elements())
                        .map_err(|e| invalid(format!("group {g}: {e}")))?;
                }
                Some(Arc::new(Compute::Post { head, input, output }))
            }
        };
        Ok(Self { io: Arc::new(IoTable::new(file.header.groups)?), compute, post })
    }
}

/// Index of the tensor `name` in `tensors`, which must have dtype `dtype`.
fn slot(tensors: &[TensorDesc], dir: Dir, name: &str, dtype: DType) -> Result<usize, String> {
    let i =
        tensors.iter().position(|t| t.name == name).ok_or_else(|| format!("no {} tensor named {name}", dir.name()))?;
    if tensors[i].dtype != dtype {
        return Err(format!("{} tensor {name} is {:?}, the math needs {dtype:?}", dir.name(), tensors[i].dtype));
    }
    Ok(i)
}

fn layer_slots(group: &GroupIo) -> Result<LayerSlots, String> {
    if group.inputs.len() != 5 || group.outputs.len() != 3 {
        return Err("a layer model has exactly the 5 inputs and 3 outputs of the layer contract".into());
    }
    let input = |name, dtype| slot(&group.inputs, Dir::Input, name, dtype);
    let output = |name| slot(&group.outputs, Dir::Output, name, DType::Bf16);
    Ok(LayerSlots {
        k_cache: input("K_cache", DType::Bf16)?,
        v_cache: input("V_cache", DType::Bf16)?,
        indices: input("indices", DType::U32)?,
        input: input("input", DType::Bf16)?,
        mask: input("mask", DType::Bf16)?,
        k_out: output("K_cache_out")?,
        v_out: output("V_cache_out")?,
        output: output("output")?,
    })
}

fn post_slots(group: &GroupIo) -> Result<(usize, usize), String> {
    if group.inputs.len() != 1 || group.outputs.len() != 1 {
        return Err("a post model has exactly one input and one output".into());
    }
    Ok((
        slot(&group.inputs, Dir::Input, "input", DType::Bf16)?,
        slot(&group.outputs, Dir::Output, "output", DType::Bf16)?,
    ))
}

impl LayerSlots {
    fn sizes(&self, group: &GroupIo) -> LayerSizes {
        let (i, o) = (&group.inputs, &group.outputs);
        LayerSizes {
            input: i[self.input].elements(),
            indices: i[self.indices].elements(),
            mask: i[self.mask].elements(),
            k_cache: i[self.k_cache].elements(),
            v_cache: i[self.v_cache].elements(),
            k_out: o[self.k_out].elements(),
            v_out: o[self.v_out].elements(),
            output: o[self.output].elements(),
        }
    }
}

/// Little-endian tensor bytes as typed elements (copied, so alignment does not matter).
fn elements<T: Pod + Zeroable>(bytes: &[u8]) -> Vec<T> {
    let count = bytes.len() / size_of::<T>();
    let mut out = vec![T::zeroed(); count];
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(&bytes[..count * size_of::<T>()]);
    out
}

fn bytes_of(values: &[bf16]) -> Vec<u8> {
    bytemuck::cast_slice::<bf16, u8>(values).to_vec()
}

impl Compute {
    /// Runs one shape group: `inputs` holds each input tensor's bytes (model
    /// order); returns each output tensor's bytes (model order).
    pub(super) fn run(&self, group: &GroupIo, inputs: &[Vec<u8>]) -> SimResult<Vec<Vec<u8>>> {
        let failed = |e: MathError| SimError::new(ErrorKind::ExecuteFailed, e.to_string());
        let zeros = |slot: usize| vec![bf16::ZERO; group.outputs[slot].elements()];
        let mut outputs = vec![Vec::new(); group.outputs.len()];
        match self {
            Compute::Post { head, input, output } => {
                let mut logits = zeros(*output);
                head.forward(&elements(&inputs[*input]), &mut logits).map_err(failed)?;
                outputs[*output] = bytes_of(&logits);
            }
            Compute::Layer { layer, slots: s } => {
                let (input, mask, k_cache, v_cache): (Vec<bf16>, Vec<bf16>, Vec<bf16>, Vec<bf16>) = (
                    elements(&inputs[s.input]),
                    elements(&inputs[s.mask]),
                    elements(&inputs[s.k_cache]),
                    elements(&inputs[s.v_cache]),
                );
                let indices: Vec<u32> = elements(&inputs[s.indices]);
                let (mut k_out, mut v_out, mut output) = (zeros(s.k_out), zeros(s.v_out), zeros(s.output));
                let io =
                    LayerInputs { input: &input, indices: &indices, mask: &mask, k_cache: &k_cache, v_cache: &v_cache };
                let mut out = LayerOutputs { k_out: &mut k_out, v_out: &mut v_out, output: &mut output };
                layer.forward(&io, &mut out).map_err(failed)?;
                outputs[s.k_out] = bytes_of(&k_out);
                outputs[s.v_out] = bytes_of(&v_out);
                outputs[s.output] = bytes_of(&output);
            }
        }
        Ok(outputs)
    }
}
