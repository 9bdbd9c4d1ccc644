//! A loaded model: its IO description, and the math its execution runs.

use super::errors::{ErrorKind, SimError, SimResult};
use crate::format::{DType, FormatError, GroupIo, ModelKind, SimModelFile, TensorDesc};
use crate::format::{ExecCost, HybridSpec};
use crate::math::hybrid::{Behaviour, HybridInputs, HybridLayer, HybridSizes, valid_rows_additive};
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
    /// Tensors whose dtype is reported as NONE (0): the state of linear layers
    /// packed with `report_state_dtype_none`, as older AXCL builds report it.
    dtype_none: Vec<String>,
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
        Ok(Self { groups, input_names, output_names, dtype_none: Vec::new() })
    }

    /// The `axclrtEngineDataType` reported for tensor `index`.
    pub(super) fn reported_dtype(&self, dir: Dir, index: u32) -> SimResult<i32> {
        let t = self.tensor(dir, 0, index)?;
        Ok(if self.dtype_none.contains(&t.name) { axcl_sys::rt::AXCL_DATA_TYPE_NONE as i32 } else { t.dtype.axcl_code() })
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
    /// A Qwen3.5 layer of either kind.
    Hybrid { layer: Box<HybridLayer>, slots: LayerSlots },
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
    /// The header's execute cost (`costs=header`), and each group's history width.
    pub cost: Option<ExecCost>,
    pub history: Vec<usize>,
    /// The CMM the loaded model occupies (see [`usage`]).
    pub cmm_bytes: u64,
}

/// `axclrtEngineGetUsage` of a simulated model file of `len` bytes: (system,
/// CMM) bytes. The card keeps the weights the file carries in CMM, rounded to
/// the runtime's 128-byte allocation unit (hardware-facts: F11); the simulated
/// card has no separate system memory to report.
pub(super) fn usage(len: u64) -> (i64, i64) {
    (0, i64::try_from(len.div_ceil(128) * 128).unwrap_or(i64::MAX))
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
            (false, ModelKind::Layer) if file.header.hybrid.is_some() => {
                let layer = HybridLayer::from_file(&file).map_err(|e| invalid(e.to_string()))?;
                let slots = layer_slots(&file.header.groups[0]).map_err(invalid)?;
                for (g, group) in file.header.groups.iter().enumerate() {
                    layer.check(&slots.hybrid_sizes(group)).map_err(|e| invalid(format!("group {g}: {e}")))?;
                }
                Some(Arc::new(Compute::Hybrid { layer: Box::new(layer), slots }))
            }
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
        let history = file.header.groups.iter().map(history_width).collect();
        let mut io = IoTable::new(file.header.groups)?;
        if let Some(HybridSpec::Linear(spec)) = &file.header.hybrid
            && spec.report_state_dtype_none
        {
            io.dtype_none = ["K_cache", "V_cache", "K_cache_out", "V_cache_out"].map(str::to_owned).to_vec();
        }
        let cmm_bytes = usage(bytes.len() as u64).1 as u64;
        Ok(Self { io: Arc::new(io), compute, post, cost: file.header.cost, history, cmm_bytes })
    }
}

/// History columns a layer group's mask has beyond its rows (0 for other models).
fn history_width(group: &GroupIo) -> usize {
    let elements = |name: &str| group.inputs.iter().find(|t| t.name == name).map(TensorDesc::elements);
    match (elements("indices"), elements("mask")) {
        (Some(rows), Some(mask)) if rows > 0 => (mask / rows).saturating_sub(rows),
        _ => 0,
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
    let output = |name, dtype| slot(&group.outputs, Dir::Output, name, dtype);
    // The K/V tensors of a linear-attention layer hold its state, bf16 or f32.
    let state = |tensors: &[TensorDesc], name: &str| tensors.iter().find(|t| t.name == name).map_or(DType::Bf16, |t| t.dtype);
    let (k_in, v_in) = (state(&group.inputs, "K_cache"), state(&group.inputs, "V_cache"));
    let (k_out, v_out) = (state(&group.outputs, "K_cache_out"), state(&group.outputs, "V_cache_out"));
    for (name, dtype) in [("K_cache", k_in), ("V_cache", v_in), ("K_cache_out", k_out), ("V_cache_out", v_out)] {
        if !matches!(dtype, DType::Bf16 | DType::F32) {
            return Err(format!("tensor {name} is {dtype:?}; K/V tensors are bf16 (or f32 state)"));
        }
    }
    Ok(LayerSlots {
        k_cache: input("K_cache", k_in)?,
        v_cache: input("V_cache", v_in)?,
        indices: input("indices", DType::U32)?,
        input: input("input", DType::Bf16)?,
        mask: input("mask", DType::Bf16)?,
        k_out: output("K_cache_out", k_out)?,
        v_out: output("V_cache_out", v_out)?,
        output: output("output", DType::Bf16)?,
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
    fn hybrid_sizes(&self, group: &GroupIo) -> HybridSizes {
        let (i, o) = (&group.inputs, &group.outputs);
        HybridSizes {
            input: i[self.input].elements(),
            indices: i[self.indices].elements(),
            mask: i[self.mask].elements(),
            k_cache: i[self.k_cache].nbytes(),
            v_cache: i[self.v_cache].nbytes(),
            k_out: o[self.k_out].nbytes(),
            v_out: o[self.v_out].nbytes(),
            output: o[self.output].elements(),
        }
    }

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
    /// order); returns each output tensor's bytes (model order), `None` for an
    /// output the execution leaves unwritten (`behaviour.min_output_rows`).
    pub(super) fn run(&self, group: &GroupIo, inputs: &[Vec<u8>], behaviour: &Behaviour) -> SimResult<Vec<Option<Vec<u8>>>> {
        let failed = |e: MathError| SimError::new(ErrorKind::ExecuteFailed, e.to_string());
        let zeros = |slot: usize| vec![bf16::ZERO; group.outputs[slot].elements()];
        let mut outputs = vec![Vec::new(); group.outputs.len()];
        // Rows a prefill execute really computes; below `min_output_rows` its `output` stays unwritten.
        let mut valid_rows = None;
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
                if indices.len() > 1 {
                    valid_rows = Some(valid_rows_additive(&mask, indices.len()));
                }
            }
            Compute::Hybrid { layer, slots: s } => {
                let (input, mask): (Vec<bf16>, Vec<bf16>) = (elements(&inputs[s.input]), elements(&inputs[s.mask]));
                let indices: Vec<u32> = elements(&inputs[s.indices]);
                let io = HybridInputs {
                    input: &input,
                    indices: &indices,
                    mask: &mask,
                    k_cache: &inputs[s.k_cache],
                    v_cache: &inputs[s.v_cache],
                };
                let out = layer.forward(&io, behaviour).map_err(failed)?;
                outputs[s.k_out] = out.k_out;
                outputs[s.v_out] = out.v_out;
                outputs[s.output] = out.output.as_deref().map(bytes_of).unwrap_or_default();
                if indices.len() > 1 {
                    valid_rows = Some(match layer.as_ref() {
                        HybridLayer::Linear(_) => mask[..indices.len()].iter().filter(|v| v.to_f32() != 0.0).count(),
                        HybridLayer::Full(_) => valid_rows_additive(&mask, indices.len()),
                    });
                }
            }
        }
        let skip_output = valid_rows.is_some_and(|n| n < behaviour.min_output_rows);
        let output_slot = match self {
            Compute::Layer { slots, .. } | Compute::Hybrid { slots, .. } => Some(slots.output),
            Compute::Post { .. } => None,
        };
        Ok(outputs
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| (!(skip_output && Some(i) == output_slot)).then_some(bytes))
            .collect())
    }
}
