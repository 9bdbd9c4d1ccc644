//! `axclrtEngineExecute`: check the request, read the inputs, run the math, write the outputs.
//!
//! Like the card, an execution sees only (address, size) bindings: it reads
//! exactly each input tensor's bytes from its bound address and writes exactly each
//! output tensor's bytes. The math runs without the state lock (other threads may
//! copy meanwhile) but under the engine mutex.

use super::calls::Call;
use super::engine::require_engine;
use super::errors::{ErrorKind, SimError, SimResult};
use super::latency::ExecKind;
use super::model::{Compute, Dir};
use super::objects::Binding;
use super::state::{Runtime, engine_lock, global, pay_async, pay_since};
use super::stream;
use crate::format::{GroupIo, TensorDesc};
use crate::format::ExecCost;
use crate::math::hybrid::Behaviour;
use std::sync::Arc;

/// A checked execution request.
struct Job {
    /// `None` for timing-only models.
    compute: Option<Arc<Compute>>,
    group: GroupIo,
    /// Each input tensor's bytes (empty for timing-only models).
    inputs: Vec<Vec<u8>>,
    /// Each output tensor's address.
    outputs: Vec<u64>,
    kind: ExecKind,
    /// The model's header cost and this group's history width (`costs=header`).
    cost: Option<(ExecCost, usize)>,
}

fn argument(message: String) -> SimError {
    SimError::new(ErrorKind::EngineArgument, message)
}

/// The binding of one tensor, checked: bound, large enough, inside one live allocation.
fn checked(rt: &Runtime, dir: Dir, group: u32, desc: &TensorDesc, binding: Option<Binding>) -> SimResult<Binding> {
    let what = format!("{} {} of group {group}", dir.name(), desc.name);
    let setter = if dir == Dir::Input { "SetInputBufferByIndex" } else { "SetOutputBufferByIndex" };
    let b = binding.ok_or_else(|| argument(format!("{what} is not bound (axclrtEngine{setter})")))?;
    if b.size < desc.nbytes() as u64 {
        return Err(argument(format!(
            "{what}: the bound buffer has {} bytes, the tensor needs {} bytes",
            b.size,
            desc.nbytes()
        )));
    }
    rt.device.memory.check(b.addr, b.size, &what).map_err(|e| argument(e.message))?;
    Ok(b)
}

fn plan(rt: &Runtime, model_id: u64, context: u64, group: u32, io: u64) -> SimResult<Job> {
    require_engine(rt)?;
    let engine = &rt.engine;
    let model = engine.model(model_id)?;
    match engine.contexts.get(&context) {
        Some(&owner) if owner == model_id => {}
        Some(&owner) => {
            return Err(argument(format!("engine context {context} belongs to model {owner}, not {model_id}")));
        }
        None => return Err(argument(format!("engine context {context} is unknown"))),
    }
    let object = engine.ios.get(&io).ok_or_else(|| argument(format!("IO object handle 0x{io:x} is unknown")))?;
    if object.model != model_id {
        return Err(argument(format!("the IO object was created for model {}, not model {model_id}", object.model)));
    }
    let group_io = model.io.group(group)?;
    let mut inputs = Vec::new();
    for (desc, &binding) in group_io.inputs.iter().zip(object.slots(Dir::Input)) {
        let b = checked(rt, Dir::Input, group, desc, binding)?;
        if model.compute.is_some() {
            inputs.push(rt.device.memory.read(b.addr, desc.nbytes() as u64, &desc.name)?.to_vec());
        }
    }
    let mut outputs = Vec::new();
    for (desc, &binding) in group_io.outputs.iter().zip(object.slots(Dir::Output)) {
        outputs.push(checked(rt, Dir::Output, group, desc, binding)?.addr);
    }
    // A layer group is a prefill group when its `indices` hold more than one
    // position (the layer IO contract names them), whatever the model's tensor order.
    let kind = match model.post {
        true => ExecKind::Post,
        false if group_io.inputs.iter().any(|t| t.name == "indices" && t.elements() > 1) => ExecKind::Prefill,
        false => ExecKind::Decode,
    };
    let cost = model.cost.map(|c| (c, model.history.get(group as usize).copied().unwrap_or(0)));
    Ok(Job { compute: model.compute.clone(), group: group_io.clone(), inputs, outputs, kind, cost })
}

/// The device time of one execute under `costs=header`: the header's cost
/// for this kind of group.
fn header_cost(job: &Job) -> Option<f64> {
    let (cost, history) = job.cost?;
    Some(match job.kind {
        ExecKind::Prefill => cost.prefill_us + cost.prefill_us_per_history_row * history as f64,
        ExecKind::Decode | ExecKind::Post => cost.decode_us,
    })
}

/// `axclrtEngineExecute`, or with `stream` `axclrtEngineExecuteAsync` (see `stream`).
pub(super) fn execute(model: u64, context: u64, group: u32, io: u64, stream: Option<u64>) -> SimResult<()> {
    let _engine = engine_lock();
    let start = std::time::Instant::now();
    let (job, latency) = {
        let mut g = global();
        let rt = g.with_context()?;
        if let Some(s) = stream {
            stream::require(rt, s)?;
        }
        g.enter(Call::Execute)?;
        let job = plan(g.runtime()?, model, context, group, io)?;
        g.counters.post_execute_calls += u64::from(job.kind == ExecKind::Post);
        (job, (g.config.latency, g.config.behaviour))
    };
    let (latency, behaviour): (_, Behaviour) = latency;
    let results = job.compute.as_ref().map(|c| c.run(&job.group, &job.inputs, &behaviour)).transpose()?;
    let run = match header_cost(&job).filter(|_| latency.header_costs) {
        Some(us) => latency.device(us),
        None => latency.run(job.kind),
    };
    match stream {
        None => pay_since(start, latency.call() + run),
        Some(_) => pay_async(start, latency.submit(), run),
    }
    if let Some(results) = results {
        let mut g = global();
        let memory = &mut g.runtime()?.device.memory;
        let written = || job.outputs.iter().zip(&results).zip(&job.group.outputs).filter_map(|((a, b), d)| Some((a, b.as_ref()?, d)));
        for (addr, bytes, desc) in written() {
            memory
                .check(*addr, bytes.len() as u64, &desc.name)
                .map_err(|e| argument(format!("output freed during execute: {}", e.message)))?;
        }
        for (addr, bytes, desc) in written() {
            memory.write(*addr, bytes.len() as u64, &desc.name)?.copy_from_slice(bytes);
        }
    }
    Ok(())
}
