//! Everything a model keeps on the device, and the layer loop of one step.
//!
//! Buffers (all allocated and bound once, at load):
//! * per layer: one K and one V buffer of `kv_rows · D` bf16, shared by every
//!   shape group and zeroed (uninitialised rows poison masked attention);
//! * per step kind (decode, prefill), shared by all layers because they are
//!   the same for every layer of a step: `indices`, `mask`, the scratch
//!   `K_cache_out`/`V_cache_out` rows, and two hidden-state buffers used
//!   alternately, so each layer's output is bound as the next layer's input,
//!   the hidden state never leaves the card and no execution reads and writes
//!   the same buffer (see [`super::step`]);
//! * with a schedule that stages prefill chunks ([`Schedule::stages_chunks`],
//!   the default), every full layer's own `K_cache_out`/`V_cache_out` chunk
//!   buffers, bound to its prefill groups in place of the shared scratch;
//! * the post model reads the decode hidden buffer the last layer wrote; its
//!   logits are the one device-to-host copy per token.
//! * with [`InputUpload::Tables`] (the default), every decode position's
//!   `indices` and `mask` in buffers of their own ([`super::tables`]), which
//!   a decode step binds in place of the step buffers' pair.
//!
//! Hybrid models (Qwen3.5) add, per linear-attention layer, its state: one
//! buffer for each of `K_cache`/`V_cache` and one for each of their outputs,
//! sized by the bytes the runtime reports ([`super::hybrid`]). With the `safe`
//! schedule the outputs land in their own buffers and are copied back whole
//! after every execute (the vendor runner); with `kv-bind` the two buffers
//! swap roles each step (ping-pong: rebind, no copy). Their masks are gates
//! ([`super::inferred`]): a constant all-1.0 buffer for decode, one per
//! prefill chunk. The state can be copied to and from snapshot slots
//! allocated at load ([`super::snapshots`]).
//!
//! Which calls a step makes (copies or bindings for the K/V rows, one or three
//! input uploads, waiting for each call or queuing them) is the [`Schedule`];
//! its module lists the counts per token. A step always ends with nothing
//! queued, so the next one may rewrite the inputs and rebind the outputs.

use super::geometry::{Geometry, names};
use super::hybrid::{LayerKind, LinearGeometry, kind_from_io};
use super::inferred::gate_mask;
use super::masks;
use super::schedule::{Execution, InputUpload, KvWrite, LogitsRead, Schedule};
use super::slots::KvSlots;
use super::step::{StepBuffers, StepSizes};
use super::tables::{self, InputTables};
use crate::error::{Error, Result};
use crate::options::KvSlots as SlotCount;
use crate::npu::{Device, DeviceBuffer, EngineIo, EngineModel, Entered, GroupInfo, HostBuffer, Stream};
use crate::package::{Embeddings, PackageDir};
use std::path::Path;
use std::sync::Arc;

/// How model files get onto the card.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoadMethod {
    /// `axclrtEngineLoadFromFile` (the vendor's current runners).
    #[default]
    File,
    /// Copy into device memory, then `axclrtEngineLoadFromMem`.
    DeviceMemory,
}

struct Layer {
    // Field order is drop order: IO objects before the buffers they bind,
    // everything before the model.
    ios: Vec<EngineIo>,
    /// Output indices of `K_cache_out` and `V_cache_out`, per shape group.
    kv_out: Vec<[usize; 2]>,
    /// Input indices of `indices` and `mask`, per shape group (rebound per
    /// decode step under [`InputUpload::Tables`]).
    step_in: Vec<[usize; 2]>,
    /// Full layers: the K and V caches. Linear layers: the state (`K_cache`, `V_cache`).
    k: DeviceBuffer,
    v: DeviceBuffer,
    /// Full layers under a schedule that stages prefill chunks
    /// ([`Schedule::stages_chunks`]): the layer's own `K_cache_out` and
    /// `V_cache_out` of every prefill group, bound there at load, so a chunk's
    /// executes can all be queued before any row is copied out.
    chunk_out: Option<[DeviceBuffer; 2]>,
    /// Linear layers only.
    linear: Option<Linear>,
    model: EngineModel,
}

/// What a linear-attention layer has beyond a full one.
struct Linear {
    geo: LinearGeometry,
    /// The state outputs (`K_cache_out`, `V_cache_out`).
    k_out: DeviceBuffer,
    v_out: DeviceBuffer,
    /// Input indices of `K_cache`, `V_cache` and output indices of
    /// `K_cache_out`, `V_cache_out`, per shape group (for ping-pong rebinding).
    state_io: Vec<[usize; 4]>,
    /// Ping-pong only: the state is in the output buffers now.
    swapped: bool,
}

impl Linear {
    /// The buffers holding the state now: (K, V).
    fn current<'a>(&'a self, layer_k: &'a DeviceBuffer, layer_v: &'a DeviceBuffer) -> (&'a DeviceBuffer, &'a DeviceBuffer) {
        if self.swapped { (&self.k_out, &self.v_out) } else { (layer_k, layer_v) }
    }
}

/// The gate masks of the linear layers (hardware-facts: F30).
struct Gates {
    /// All 1.0, written once at load: every decode group's gate.
    decode: DeviceBuffer,
    /// The first `n` rows 1.0: written per prefill chunk.
    prefill: DeviceBuffer,
    /// Host staging of the prefill gate (sized once, pinned where the runtime can).
    host: HostBuffer,
    /// The `n` the prefill gate on the card holds, to skip rewriting it.
    prefill_n: Option<usize>,
}

/// Device slots for snapshots of every linear layer's state: one allocation
/// per slot, each layer's K and V state at fixed offsets.
struct SnapshotSlots {
    slots: Vec<DeviceBuffer>,
    /// Per linear layer (in layer order): byte offsets of its K and V state in a slot.
    offsets: Vec<(usize, usize)>,
    bytes: usize,
}

/// How a step gets its new K/V rows into every layer's cache.
#[derive(Debug, Clone, Copy)]
enum RowWrite {
    /// Copy from the scratch outputs (bound there since load).
    Copy,
    /// Bind the outputs (`size` bytes each) at the rows: the NPU writes the cache.
    Bind { size: usize },
    /// Bind the outputs (`size` bytes each) back to the scratch, then copy.
    RebindThenCopy { size: usize },
}

/// A step's new K/V rows: `bytes` of them at byte `offset` of each cache.
#[derive(Debug, Clone, Copy)]
struct KvRows {
    offset: usize,
    bytes: usize,
    how: RowWrite,
    /// The rows are copied from the layer's own chunk outputs
    /// (`Layer::chunk_out`) rather than the step buffers' shared scratch.
    own: bool,
}

/// Where a decode step's `indices` and `mask` are bound: a position's
/// table entries, or the step buffers past the tables.
#[derive(Debug, Clone, Copy)]
struct StepInputs<'a> {
    indices: &'a DeviceBuffer,
    mask: &'a DeviceBuffer,
    /// The decode group's mask bytes.
    mask_size: usize,
}

/// Runs `group` of `model` with `io`, queued on `queue` when there is one.
fn execute(cx: &Entered<'_>, model: &EngineModel, group: usize, io: &EngineIo, queue: Option<&Stream>) -> Result<()> {
    match queue {
        Some(q) => model.execute_async(cx, group as u32, io, q),
        None => model.execute(cx, group as u32, io),
    }
}

/// A device-to-device copy, queued on `queue` when there is one.
fn copy(cx: &Entered<'_>, dst: (&DeviceBuffer, usize), src: (&DeviceBuffer, usize), len: usize, queue: Option<&Stream>) -> Result<()> {
    match queue {
        Some(q) => dst.0.copy_from_async(cx, dst.1, src.0, src.1, len, q),
        None => dst.0.copy_from(cx, dst.1, src.0, src.1, len),
    }
}

impl Layer {
    /// Runs a linear layer's group `g` and carries its state to the next
    /// execution: a copy of both outputs back into the inputs, or (ping-pong)
    /// the next execution reads the outputs and writes the inputs.
    /// With `inputs`, its `indices` is bound there first (its mask is the gate).
    /// With `defer`, the copies are left to [`Layer::linear_copy`].
    fn linear_step(
        &mut self,
        cx: &Entered<'_>,
        g: usize,
        ping_pong: bool,
        inputs: Option<StepInputs<'_>>,
        queue: Option<&Stream>,
        defer: bool,
    ) -> Result<()> {
        if let Some(inp) = inputs {
            self.ios[g].bind_input(cx, self.step_in[g][0], inp.indices, 0, inp.indices.size())?;
        }
        let lin = self.linear.as_mut().expect("a linear layer");
        if ping_pong {
            let [ki, vi, ko, vo] = lin.state_io[g];
            let (k_size, v_size) = (lin.geo.k_state, lin.geo.v_state);
            let (k_in, v_in, k_out, v_out) =
                if lin.swapped { (&lin.k_out, &lin.v_out, &self.k, &self.v) } else { (&self.k, &self.v, &lin.k_out, &lin.v_out) };
            let io = &mut self.ios[g];
            io.bind_input(cx, ki, k_in, 0, k_size)?;
            io.bind_input(cx, vi, v_in, 0, v_size)?;
            io.bind_output(cx, ko, k_out, 0, k_size)?;
            io.bind_output(cx, vo, v_out, 0, v_size)?;
            execute(cx, &self.model, g, &self.ios[g], queue)?;
            lin.swapped = !lin.swapped;
        } else {
            execute(cx, &self.model, g, &self.ios[g], queue)?;
            if !defer {
                self.linear_copy(cx, queue)?;
            }
        }
        Ok(())
    }

    /// Copies a linear layer's state outputs back into its inputs.
    fn linear_copy(&self, cx: &Entered<'_>, queue: Option<&Stream>) -> Result<()> {
        let lin = self.linear.as_ref().expect("a linear layer");
        copy(cx, (&self.k, 0), (&lin.k_out, 0), lin.geo.k_state, queue)?;
        copy(cx, (&self.v, 0), (&lin.v_out, 0), lin.geo.v_state, queue)
    }

    /// Binds every shape group's `K_cache`/`V_cache` inputs to the layer's
    /// K and V buffers (after a slot switch moved other buffers in).
    fn rebind_cache(&mut self, cx: &Entered<'_>) -> Result<()> {
        for (g, grp) in self.model.groups().iter().enumerate() {
            let (ki, kt) = grp.input(names::K_CACHE).expect("geometry checked every name");
            let (vi, vt) = grp.input(names::V_CACHE).expect("geometry checked every name");
            self.ios[g].bind_input(cx, ki, &self.k, 0, kt.size as usize)?;
            self.ios[g].bind_input(cx, vi, &self.v, 0, vt.size as usize)?;
        }
        Ok(())
    }

    /// The buffers holding a linear layer's state now: (K, V, K bytes, V bytes).
    fn state(&self) -> Option<(&DeviceBuffer, &DeviceBuffer, usize, usize)> {
        let lin = self.linear.as_ref()?;
        let (k, v) = lin.current(&self.k, &self.v);
        Some((k, v, lin.geo.k_state, lin.geo.v_state))
    }

    /// Runs shape group `g` and writes its K/V rows as `rows` says; with
    /// `inputs`, binds its `indices` and `mask` there first.
    fn step(
        &mut self,
        cx: &Entered<'_>,
        st: &StepBuffers,
        g: usize,
        rows: KvRows,
        inputs: Option<StepInputs<'_>>,
        queue: Option<&Stream>,
    ) -> Result<()> {
        self.launch(cx, st, g, rows, inputs, queue)?;
        self.scatter(cx, st, rows, queue)
    }

    /// Where the K and V outputs land when rows are copied.
    fn scratch<'a>(&'a self, st: &'a StepBuffers, rows: KvRows) -> [(&'a DeviceBuffer, usize); 2] {
        match (&self.chunk_out, rows.own) {
            (Some([k, v]), true) => [(k, 0), (v, 0)],
            _ => [st.at(st.k_out), st.at(st.v_out)],
        }
    }

    /// [`Layer::step`] without the row copies: binds and runs (or queues) the group.
    fn launch(
        &mut self,
        cx: &Entered<'_>,
        st: &StepBuffers,
        g: usize,
        rows: KvRows,
        inputs: Option<StepInputs<'_>>,
        queue: Option<&Stream>,
    ) -> Result<()> {
        if let Some(inp) = inputs {
            let [ii, mi] = self.step_in[g];
            self.ios[g].bind_input(cx, ii, inp.indices, 0, inp.indices.size())?;
            self.ios[g].bind_input(cx, mi, inp.mask, 0, inp.mask_size)?;
        }
        let [ki, vi] = self.kv_out[g];
        // Only `kv-bind`'s partial chunks rebind, and never into a layer's own outputs.
        let ((k_scratch, k_off), (v_scratch, v_off)) = (st.at(st.k_out), st.at(st.v_out));
        match rows.how {
            RowWrite::Copy => {}
            RowWrite::Bind { size } => {
                self.ios[g].bind_output(cx, ki, &self.k, rows.offset, size)?;
                self.ios[g].bind_output(cx, vi, &self.v, rows.offset, size)?;
            }
            RowWrite::RebindThenCopy { size } => {
                self.ios[g].bind_output(cx, ki, k_scratch, k_off, size)?;
                self.ios[g].bind_output(cx, vi, v_scratch, v_off, size)?;
            }
        }
        execute(cx, &self.model, g, &self.ios[g], queue)
    }

    /// [`Layer::step`]'s row copies (none when the outputs were bound in place).
    fn scatter(&self, cx: &Entered<'_>, st: &StepBuffers, rows: KvRows, queue: Option<&Stream>) -> Result<()> {
        if matches!(rows.how, RowWrite::Bind { .. }) {
            return Ok(());
        }
        let [(k_scratch, k_off), (v_scratch, v_off)] = self.scratch(st, rows);
        copy(cx, (&self.k, rows.offset), (k_scratch, k_off), rows.bytes, queue)?;
        copy(cx, (&self.v, rows.offset), (v_scratch, v_off), rows.bytes, queue)
    }
}

struct Post {
    io: EngineIo,
    model: EngineModel,
    logits: DeviceBuffer,
    /// Host copy of the last logits, sized once so the token loop allocates
    /// nothing; pinned where the runtime can (hardware-facts: F14, F15).
    host: HostBuffer,
    /// [`LogitsRead::Queued`]: the buffer a queued logits copy writes,
    /// swapped with `host` once the step is synchronised (the caller may
    /// still read `host` while the copy is queued).
    pending: Option<HostBuffer>,
    /// A logits copy into `pending` is queued.
    pending_queued: bool,
}

impl Post {
    /// Runs the post model on the decode hidden buffer the last layer wrote.
    fn run(&self, cx: &Entered<'_>, queue: Option<&Stream>) -> Result<()> {
        execute(cx, &self.model, 0, &self.io, queue)
    }

    /// Queues the logits copy behind the post model ([`LogitsRead::Queued`]).
    fn queue_logits(&mut self, cx: &Entered<'_>, queue: &Stream) -> Result<()> {
        let pending = self.pending.as_mut().expect("queued logits have their buffer");
        // Set first: a failure halfway still never exposes the buffer.
        self.pending_queued = true;
        self.logits.read_async(cx, 0, pending, queue)
    }

    /// Ends a step: waits for the queue; with `want_logits`, fetches the
    /// logits (or takes those a queued copy brought).
    fn finish(&mut self, cx: &Entered<'_>, want_logits: bool, queue: Option<&Stream>) -> Result<Option<&[u16]>> {
        if let Some(q) = queue {
            q.synchronize(cx)?;
        }
        if std::mem::take(&mut self.pending_queued) {
            // Synchronised above: the queued copy has landed.
            std::mem::swap(&mut self.host, self.pending.as_mut().expect("queued logits have their buffer"));
            return Ok(want_logits.then(|| bytemuck::cast_slice(self.host.as_slice())));
        }
        if !want_logits {
            return Ok(None);
        }
        self.logits.read(cx, 0, self.host.as_mut_slice())?;
        Ok(Some(bytemuck::cast_slice(self.host.as_slice())))
    }
}

/// A model resident on the NPU.
pub struct Resident {
    layers: Vec<Layer>,
    /// The K/V buffers of the KV slots not in use (after `layers`: dropped
    /// after the IO objects that may have bound them).
    kv_slots: KvSlots,
    /// Linear layers only: their gate masks and state snapshot slots.
    gates: Option<Gates>,
    snapshots: Option<SnapshotSlots>,
    post: Post,
    decode: StepBuffers,
    prefill: StepBuffers,
    /// [`InputUpload::Tables`]: each decode position's `indices` and `mask`
    /// (`None` when the runtime refused them: the schedule says `Separate` then).
    tables: Option<InputTables>,
    schedule: Schedule,
    /// The queue of [`Execution::Async`] and [`Execution::AsyncCopies`].
    queue: Option<Stream>,
    /// A decode step was queued by [`Resident::decode_submit`] and not yet
    /// waited for: nothing may touch the step buffers or the bindings.
    in_flight: bool,
    /// [`InputUpload::Ahead`]: the decode position (and group) whose indices
    /// and mask are on the card (queued behind the last decode step).
    prepared: Option<(usize, u32)>,
    geometry: Geometry,
    device_bytes: u64,
    device: Arc<Device>,
    /// Where the last step left the last layer's output of its last token:
    /// the prefill buffers' row, or `None` for the decode buffer.
    last_hidden: Option<usize>,
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resident")
            .field("layers", &self.layers.len())
            .field("linear_layers", &self.linear_layers())
            .field("schedule", &self.schedule)
            .field("geometry", &self.geometry)
            .finish()
    }
}

impl Drop for Resident {
    /// Waits for a queued step before its buffers and IO objects are freed.
    fn drop(&mut self) {
        let _ = self.drain();
    }
}

/// Progress of a load, reported after each model file reaches the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// Model files loaded so far.
    pub loaded: usize,
    /// Model files in all (the layers and the post model).
    pub total: usize,
}

/// Loads one model file of the package: by its resolved path (checked to lie
/// inside the package), or from its bytes read through the package.
fn load_model(cx: &Entered<'_>, pkg: &PackageDir, path: &Path, method: LoadMethod) -> Result<EngineModel> {
    match method {
        LoadMethod::File => EngineModel::load_file(cx, &pkg.confine(path)?, path),
        LoadMethod::DeviceMemory => EngineModel::load_via_device_memory(cx, path, &pkg.read(path)?),
    }
}

/// The shapes a load gives its buffers, derived from the model files' shape
/// groups: as the runtime reports them once loaded, or as the files state
/// them before (the simulator's headers).
struct Plan {
    geo: Geometry,
    /// Per layer: a linear layer's geometry, `None` for a full layer.
    linear: Vec<Option<LinearGeometry>>,
    vocab: usize,
}

impl Plan {
    /// Checks that the layers agree with each other and with the post model.
    /// In a hybrid model the first full-attention layer is the reference for
    /// the context and prefill geometry (hardware-facts: F28); every other full
    /// layer must match it and every linear layer must fit it.
    fn derive(
        pkg: &PackageDir,
        layer_files: &[std::path::PathBuf],
        layer_groups: &[&[GroupInfo]],
        post_file: &Path,
        post_groups: &[GroupInfo],
        config_kinds: Option<&[LayerKind]>,
    ) -> Result<Plan> {
        let kinds = layer_kinds(layer_files, layer_groups, config_kinds)?;
        let reference = kinds
            .iter()
            .position(|k| *k == LayerKind::Full)
            .ok_or_else(|| Error::bad_file(pkg.root(), "no full-attention layer: the context geometry comes from one"))?;
        let geo = Geometry::derive(&layer_files[reference], layer_groups[reference])?;
        let mut linear = Vec::with_capacity(layer_groups.len());
        for (i, (path, groups)) in layer_files.iter().zip(layer_groups).enumerate() {
            linear.push(match kinds[i] {
                LayerKind::Full => {
                    let g = Geometry::derive(path, groups)?;
                    if !geo.same_shape(&g) {
                        return Err(Error::bad_file(
                            path.clone(),
                            format!("layer {i} has different shapes than layer {reference} ({g:?} vs {geo:?})"),
                        ));
                    }
                    None
                }
                LayerKind::Linear => Some(LinearGeometry::derive(path, groups, geo.hidden, geo.chunk)?),
            });
        }
        let vocab = post_vocab(post_file, post_groups, geo.hidden)?;
        Ok(Plan { geo, linear, vocab })
    }

    /// The step buffers' sizes: (decode, prefill).
    fn step_sizes(&self) -> (StepSizes, StepSizes) {
        let geo = &self.geo;
        let (h, d, t) = (geo.hidden, geo.kv_dim, geo.chunk);
        let max = |groups: &mut dyn Iterator<Item = u32>| groups.map(|g| geo.tensor_size(g, names::MASK)).max().unwrap_or(0);
        let dec_mask = max(&mut geo.decode.iter().map(|g| g.index));
        let pre_mask = max(&mut geo.prefill.iter().map(|g| g.index));
        (
            StepSizes { hidden: h * 2, indices: 4, mask: dec_mask, kv_out: d * 2 },
            StepSizes { hidden: t * h * 2, indices: t * 4, mask: pre_mask, kv_out: t * d * 2 },
        )
    }

    /// The widest gate mask of the linear layers: (decode, prefill) elements;
    /// `None` without linear layers.
    fn gate_widths(&self) -> Option<(usize, usize)> {
        let geos: Vec<&LinearGeometry> = self.linear.iter().flatten().collect();
        let widest = |prefill: bool| {
            geos.iter().flat_map(|g| if prefill { &g.prefill } else { &g.decode }).map(|x| x.mask).max().unwrap_or(1)
        };
        (!geos.is_empty()).then(|| (widest(false), widest(true)))
    }

    /// Device bytes of the decode input tables `schedule` asks for.
    fn table_bytes(&self, schedule: Schedule, budget: u64) -> u64 {
        if schedule.inputs == InputUpload::Tables { tables::plan(&self.geo, budget).1 } else { 0 }
    }

    /// Every device byte the load allocates besides the models, before
    /// allocating any: the K/V caches or states of every layer, their own
    /// chunk outputs when the schedule stages chunks, the step buffers, the decode input tables, the logits, the gates and the
    /// snapshot slots.
    fn buffer_bytes(&self, schedule: Schedule, snapshot_slots: usize, table_budget: u64) -> u64 {
        let kv = (self.geo.kv_rows * self.geo.kv_dim * 2) as u64;
        let layers: u64 = self.linear.iter().map(|l| l.as_ref().map_or(2 * kv, |g| 2 * (g.k_state + g.v_state) as u64)).sum();
        let state: u64 = self.linear.iter().flatten().map(|g| (g.k_state + g.v_state) as u64).sum();
        let snapshots = if snapshot_slots == 0 { 0 } else { snapshot_slots as u64 * state };
        let gates = self.gate_widths().map_or(0, |(d, p)| (d * 2 + p * 2) as u64);
        let (dec, pre) = self.step_sizes();
        let chunk_out = if schedule.stages_chunks() { self.linear.iter().filter(|l| l.is_none()).count() as u64 * 2 * pre.kv_out as u64 } else { 0 };
        layers
            + chunk_out
            + snapshots
            + gates
            + dec.device_bytes(schedule.inputs)
            + pre.device_bytes(schedule.inputs)
            + self.table_bytes(schedule, table_budget)
            + (self.vocab * 2) as u64
    }

    /// The KV slots a load asking for `wanted` gets: a hybrid model keeps one
    /// (its recurrent state is not per slot).
    fn slots(&self, wanted: usize) -> usize {
        if self.linear.iter().any(Option::is_some) { 1 } else { wanted.max(1) }
    }

    /// The K/V buffers of the slots beyond the first (`slots` as `slots` returns).
    fn extra_slot_bytes(&self, slots: usize) -> u64 {
        let kv = (self.geo.kv_rows * self.geo.kv_dim * 2) as u64;
        let full = self.linear.iter().filter(|l| l.is_none()).count() as u64;
        (slots as u64).saturating_sub(1) * full * 2 * kv
    }
}

/// The memory guard (`guard`) before the first model file reaches the card:
/// the usage of every model file plus our buffers, sized from the shape
/// groups the files state (`plan`, when they state them), against the
/// card's free CMM. Skipped when the runtime lacks either query.
fn guard_before_load(
    cx: &Entered<'_>,
    device: &Arc<Device>,
    pkg: &PackageDir,
    layer_files: &[std::path::PathBuf],
    post_file: &Path,
    buffers: Option<u64>,
    floor_mb: u64,
) -> Result<()> {
    let Some((_, free)) = device.cmm()? else { return Ok(()) };
    let mut usages = Vec::with_capacity(layer_files.len() + 1);
    for path in layer_files.iter().map(|p| p.as_path()).chain(std::iter::once(post_file)) {
        let Some(bytes) = EngineModel::cmm_usage(cx, &pkg.confine(path)?, path)? else { return Ok(()) };
        usages.push((path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()), bytes));
    }
    super::guard::check(free, &usages, super::guard::Extra { buffers: buffers.unwrap_or(0), kv_slots: 0 }, floor_mb)
}

/// Runs a memory guard `check` for `schedule`; when the model does not fit
/// with the decode input tables, checks again without them (they only save
/// uploads) and, if it fits then, turns them off in `schedule`.
fn without_tables_if_short(schedule: &mut Schedule, check: impl Fn(Schedule) -> Result<()>) -> Result<()> {
    match check(*schedule) {
        Err(e) if e.is_out_of_memory() && schedule.inputs == InputUpload::Tables => {
            let without = Schedule { inputs: InputUpload::Separate, ..*schedule };
            check(without).map_err(|_| e)?;
            *schedule = without;
            Ok(())
        }
        r => r,
    }
}

/// The plan from the shape groups the files state in their headers, before
/// any is loaded; `None` when a file does not state them (a real `.axmodel`:
/// only the card reports its groups) or they do not agree (the load then
/// fails on the runtime's report, with the reason).
fn stated_plan(
    pkg: &PackageDir,
    layer_files: &[std::path::PathBuf],
    post_file: &Path,
    config_kinds: Option<&[LayerKind]>,
) -> Option<Plan> {
    let stated = |p: &Path| crate::check::container::stated_groups(pkg, p);
    let layers: Vec<Vec<GroupInfo>> = layer_files.iter().map(|p| stated(p)).collect::<Option<_>>()?;
    let post = stated(post_file)?;
    let refs: Vec<&[GroupInfo]> = layers.iter().map(Vec::as_slice).collect();
    Plan::derive(pkg, layer_files, &refs, post_file, &post, config_kinds).ok()
}

/// What a hybrid model's load needs beyond the files.
#[derive(Debug, Clone, Default)]
pub struct HybridLoad {
    /// The layer kinds the package's config names, if it names them; else
    /// each layer's IO tells (hardware-facts: F28).
    pub kinds: Option<Vec<LayerKind>>,
    /// Snapshot slots to allocate when the model has linear layers.
    pub snapshot_slots: usize,
}

/// A tensor binding: its name and where it lives (allocation, byte offset).
type Binding<'a> = (&'a str, (&'a DeviceBuffer, usize));

fn bind_all(cx: &Entered<'_>, io: &mut EngineIo, grp: &GroupInfo, inputs: &[Binding<'_>], outputs: &[Binding<'_>]) -> Result<()> {
    for (name, (buf, offset)) in inputs {
        let (i, t) = grp.input(name).expect("geometry checked every name");
        io.bind_input(cx, i, buf, *offset, t.size as usize)?;
    }
    for (name, (buf, offset)) in outputs {
        let (i, t) = grp.output(name).expect("geometry checked every name");
        io.bind_output(cx, i, buf, *offset, t.size as usize)?;
    }
    Ok(())
}

impl Resident {
    /// Loads every layer and the post model, checks that they agree with each
    /// other, allocates and zeroes the buffers and binds every IO once.
    ///
    /// In a hybrid model the first full-attention layer is the reference for
    /// the context and prefill geometry (hardware-facts: F28); every other full
    /// layer must match it and every linear layer must fit it.
    #[allow(clippy::too_many_arguments)] // the load's parts, each from a different source
    pub fn load(
        device: &Arc<Device>,
        pkg: &PackageDir,
        layer_files: &[std::path::PathBuf],
        post_file: &Path,
        method: LoadMethod,
        schedule: Schedule,
        hybrid: &HybridLoad,
        progress: &mut dyn FnMut(LoadProgress),
        floor_mb: u64,
        table_budget: u64,
        kv_slots: SlotCount,
    ) -> Result<Resident> {
        let cx = device.enter()?;
        let mut schedule = schedule;
        // Our buffers from the shapes the files state, so the guard counts
        // them before the first file is loaded (hardware-facts: F11, F12).
        // An automatic count is at least 1: that much must fit.
        let stated_count = match kv_slots {
            SlotCount::Count(n) => n,
            SlotCount::Auto => 1,
        };
        let stated = stated_plan(pkg, layer_files, post_file, hybrid.kinds.as_deref());
        let first_guard = |schedule: Schedule| {
            let stated_bytes = stated.as_ref().map(|p| {
                p.buffer_bytes(schedule, hybrid.snapshot_slots, table_budget) + p.extra_slot_bytes(p.slots(stated_count))
            });
            guard_before_load(&cx, device, pkg, layer_files, post_file, stated_bytes, floor_mb)
        };
        without_tables_if_short(&mut schedule, first_guard)?;
        let total = layer_files.len() + 1;
        let mut models = Vec::with_capacity(layer_files.len());
        for (i, path) in layer_files.iter().enumerate() {
            models.push(load_model(&cx, pkg, path, method)?);
            progress(LoadProgress { loaded: i + 1, total });
        }
        let post_model = load_model(&cx, pkg, post_file, method)?;
        progress(LoadProgress { loaded: total, total });
        // The runtime's report is the truth the buffers follow.
        let groups: Vec<&[GroupInfo]> = models.iter().map(EngineModel::groups).collect();
        let plan = Plan::derive(pkg, layer_files, &groups, post_file, post_model.groups(), hybrid.kinds.as_deref())?;
        // The free CMM now, with the model's files on the card: what an
        // automatic slot count is chosen from, then what the guard checks.
        let free = device.cmm()?.map(|(_, free)| free);
        let wanted = match (kv_slots, free) {
            (SlotCount::Count(n), _) => n,
            (SlotCount::Auto, Some(free)) => {
                let buffers = plan.buffer_bytes(schedule, hybrid.snapshot_slots, table_budget);
                super::guard::auto_slots(free, buffers, plan.extra_slot_bytes(2), floor_mb)
            }
            (SlotCount::Auto, None) => 1,
        };
        // Hybrid models keep one slot (their recurrent state is not per slot).
        let kv_slots = plan.slots(wanted);
        // The guard again before any of our buffers is allocated: the only
        // check of them when the files do not state their shapes (a real
        // `.axmodel`), else a check that the card took what it announced.
        let slot_bytes = plan.extra_slot_bytes(kv_slots);
        let second_guard = |schedule: Schedule| match free {
            Some(free) => {
                let extra = super::guard::Extra { buffers: plan.buffer_bytes(schedule, hybrid.snapshot_slots, table_budget), kv_slots: slot_bytes };
                super::guard::check(free, &[], extra, floor_mb)
            }
            None => Ok(()),
        };
        without_tables_if_short(&mut schedule, second_guard)?;
        let buffers = plan.buffer_bytes(schedule, hybrid.snapshot_slots, table_budget);
        let planned_tables = plan.table_bytes(schedule, table_budget);
        let (dec_sizes, pre_sizes) = plan.step_sizes();
        let Plan { geo, linear: linear_geos, vocab, .. } = plan;
        let decode = StepBuffers::new(&cx, dec_sizes, schedule.inputs)?;
        let prefill = StepBuffers::new(&cx, pre_sizes, schedule.inputs)?;
        let gates = Gates::new(&cx, &linear_geos)?;
        let kv_bytes = geo.kv_rows * geo.kv_dim * 2;
        let mut layers = Vec::with_capacity(models.len());
        let mut device_bytes = 0u64;
        for (m, (model, lin_geo)) in models.into_iter().zip(linear_geos).enumerate() {
            let layer = match lin_geo {
                None => {
                    let chunk_out = schedule.stages_chunks().then_some(pre_sizes.kv_out);
                    full_layer(&cx, model, m, &geo, kv_bytes, &decode, &prefill, chunk_out)?
                }
                Some(lg) => linear_layer(&cx, model, m, lg, &decode, &prefill, gates.as_ref().expect("linear layers have gates"))?,
            };
            device_bytes += (layer.k.size() + layer.v.size()) as u64
                + layer.chunk_out.as_ref().map_or(0, |[k, v]| (k.size() + v.size()) as u64)
                + layer.linear.as_ref().map_or(0, |l| (l.k_out.size() + l.v_out.size()) as u64);
            layers.push(layer);
        }
        let mut post_io = post_model.create_io(&cx)?;
        let logits = DeviceBuffer::zeroed(&cx, vocab * 2)?;
        let last = decode.at(decode.hidden[layers.len() % 2]);
        bind_all(&cx, &mut post_io, &post_model.groups()[0], &[(names::INPUT, last)], &[(names::OUTPUT, (&logits, 0))])?;
        let snapshots = SnapshotSlots::new(&cx, &layers, hybrid.snapshot_slots)?;
        let full = layers.iter().filter(|l| l.linear.is_none()).count();
        let mut parked = Vec::with_capacity(kv_slots);
        parked.push(None);
        for _ in 1..kv_slots {
            let bufs = (0..full)
                .map(|_| Ok((DeviceBuffer::zeroed(&cx, kv_bytes)?, DeviceBuffer::zeroed(&cx, kv_bytes)?)))
                .collect::<Result<Vec<_>>>()?;
            parked.push(Some(bufs));
        }
        device_bytes += (kv_slots as u64 - 1) * (full * 2 * kv_bytes) as u64;
        // The tables last: a runtime that refuses them (or a write to them)
        // leaves the per-token uploads, which need nothing more.
        let tables = match schedule.inputs {
            InputUpload::Tables => match InputTables::new(&cx, &geo, tables::plan(&geo, table_budget).0) {
                Ok(t) if t.positions() > 0 => Some(t),
                _ => None,
            },
            _ => None,
        };
        if schedule.inputs == InputUpload::Tables && tables.is_none() {
            schedule.inputs = InputUpload::Separate;
        }
        let table_bytes = tables.as_ref().map_or(0, InputTables::device_bytes);
        debug_assert!(tables.is_none() || table_bytes == planned_tables, "the tables take what the guard counted");
        device_bytes += table_bytes;

        device_bytes += decode.device_bytes()
            + prefill.device_bytes()
            + logits.size() as u64
            + gates.as_ref().map_or(0, |g| (g.decode.size() + g.prefill.size()) as u64)
            + snapshots.as_ref().map_or(0, |s| (s.bytes * s.slots.len()) as u64);
        debug_assert_eq!(
            device_bytes + (planned_tables - table_bytes),
            buffers + slot_bytes,
            "the guard counts every buffer the load allocates"
        );
        device_bytes += layer_files.iter().chain(std::iter::once(&post_file.to_path_buf())).map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum::<u64>();
        let queue = match schedule.execution {
            Execution::Async | Execution::AsyncCopies => Some(Stream::new(&cx)?),
            Execution::Sync => None,
        };
        Ok(Resident {
            layers,
            kv_slots: KvSlots { parked, active: 0, stale: false },
            gates,
            snapshots,
            post: Post {
                io: post_io,
                model: post_model,
                logits,
                host: HostBuffer::new(&cx, vocab * 2)?,
                pending: match schedule.logits {
                    LogitsRead::Queued => Some(HostBuffer::new(&cx, vocab * 2)?),
                    LogitsRead::Sync => None,
                },
                pending_queued: false,
            },
            decode,
            prefill,
            tables,
            schedule,
            queue,
            in_flight: false,
            prepared: None,
            geometry: geo,
            device_bytes,
            device: Arc::clone(device),
            last_hidden: None,
        })
    }

    /// Decoder layers with linear attention (0 for a model without).
    pub fn linear_layers(&self) -> usize {
        self.layers.iter().filter(|l| l.linear.is_some()).count()
    }

    /// KV slots: sequences whose K/V caches the card holds (1 for a hybrid model).
    pub fn kv_slots(&self) -> usize {
        self.kv_slots.parked.len()
    }

    /// Device bytes of one KV slot: a K and a V cache per full-attention layer.
    pub fn kv_slot_bytes(&self) -> u64 {
        self.layers.iter().filter(|l| l.linear.is_none()).map(|l| (l.k.size() + l.v.size()) as u64).sum()
    }

    /// Makes KV slot `slot` the one the layers read and write: its buffers
    /// move into the layers and are bound (host-local; nothing is copied).
    pub fn select_kv(&mut self, slot: usize) -> Result<()> {
        let s = &mut self.kv_slots;
        if slot >= s.parked.len() {
            return Err(Error::invalid(format!("KV slot {slot} of {}", s.parked.len())));
        }
        if slot == s.active && !s.stale {
            return Ok(());
        }
        // Never rebind under a queued step (the caller waits for it first).
        self.drain()?;
        let s = &mut self.kv_slots;
        if slot != s.active {
            let mut bufs = s.parked[slot].take().expect("only the active slot is not parked");
            for (l, (k, v)) in self.layers.iter_mut().filter(|l| l.linear.is_none()).zip(bufs.iter_mut()) {
                std::mem::swap(&mut l.k, k);
                std::mem::swap(&mut l.v, v);
            }
            s.parked[s.active] = Some(bufs);
            s.active = slot;
        }
        s.stale = true;
        let cx = self.device.enter()?;
        for l in self.layers.iter_mut().filter(|l| l.linear.is_none()) {
            l.rebind_cache(&cx)?;
        }
        self.kv_slots.stale = false;
        Ok(())
    }

    /// The call schedule in use: the one asked for, with
    /// [`InputUpload::Separate`] when the input tables were asked for but not
    /// allocated (the card's free memory or the runtime refused them).
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Decode positions covered by the input tables (0 without them).
    pub fn input_table_positions(&self) -> usize {
        self.tables.as_ref().map_or(0, InputTables::positions)
    }

    /// Device bytes of the input tables.
    pub fn input_table_bytes(&self) -> u64 {
        self.tables.as_ref().map_or(0, InputTables::device_bytes)
    }

    /// Snapshot slots allocated (0 without linear layers).
    pub fn snapshot_slots(&self) -> usize {
        self.snapshots.as_ref().map_or(0, |s| s.slots.len())
    }

    /// Bytes of one snapshot: every linear layer's state.
    pub fn snapshot_bytes(&self) -> usize {
        self.layers.iter().filter_map(Layer::state).map(|(_, _, k, v)| k + v).sum()
    }

    /// Copies every linear layer's state into snapshot slot `slot`.
    pub fn capture(&self, slot: usize) -> Result<()> {
        let s = self.snapshots.as_ref().ok_or_else(|| Error::invalid("no snapshot slots"))?;
        let cx = self.device.enter()?;
        for ((k, v, ks, vs), &(ko, vo)) in self.layers.iter().filter_map(Layer::state).zip(&s.offsets) {
            s.slots[slot].copy_from(&cx, ko, k, 0, ks)?;
            s.slots[slot].copy_from(&cx, vo, v, 0, vs)?;
        }
        Ok(())
    }

    /// Makes every linear layer's state the one in snapshot slot `slot`.
    pub fn restore(&self, slot: usize) -> Result<()> {
        let s = self.snapshots.as_ref().ok_or_else(|| Error::invalid("no snapshot slots"))?;
        let cx = self.device.enter()?;
        for ((k, v, ks, vs), &(ko, vo)) in self.layers.iter().filter_map(Layer::state).zip(&s.offsets) {
            k.copy_from(&cx, 0, &s.slots[slot], ko, ks)?;
            v.copy_from(&cx, 0, &s.slots[slot], vo, vs)?;
        }
        Ok(())
    }

    /// Zeroes every linear layer's state: the state before any token (hardware-facts: F31).
    pub fn zero_linear_state(&self) -> Result<()> {
        let cx = self.device.enter()?;
        for (k, v, _, _) in self.layers.iter().filter_map(Layer::state) {
            k.fill(&cx, 0)?;
            v.fill(&cx, 0)?;
        }
        Ok(())
    }

    /// The geometry shared by the layers.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// Decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
    /// The vocabulary (the post model's logits).
    pub fn vocab(&self) -> usize {
        self.post.host.as_slice().len() / 2
    }

    /// Device memory used: buffers plus the model files' sizes (an estimate of the weights' share).
    pub fn device_bytes(&self) -> u64 {
        self.device_bytes
    }
    /// Copies the last layer's output for the last token of the last step
    /// into `out` (`hidden` bf16 values): the hidden state the post model
    /// reads, before its final norm. One device-to-host copy, no execution.
    pub fn read_last_hidden(&self, out: &mut [u16]) -> Result<()> {
        let h2 = self.geometry.hidden * 2;
        if out.len() * 2 != h2 {
            return Err(Error::invalid(format!("hidden buffer of {} values for a hidden size of {}", out.len(), h2 / 2)));
        }
        let last = self.layers.len() % 2;
        let cx = self.device.enter()?;
        let ((buf, off), row) = match self.last_hidden {
            None => (self.decode.at(self.decode.hidden[last]), 0),
            Some(row) => (self.prefill.at(self.prefill.hidden[last]), row),
        };
        buf.read(&cx, off + row * h2, bytemuck::cast_slice_mut(out))
    }

    /// The logits (bf16 bits) of the last step that ran the post model.
    pub fn last_logits(&self) -> &[u16] {
        bytemuck::cast_slice(self.post.host.as_slice())
    }

    /// Zeroes every K/V buffer and every linear layer's state (a full cache reset).
    pub fn clear_cache(&self) -> Result<()> {
        let cx = self.device.enter()?;
        for l in &self.layers {
            l.k.fill(&cx, 0)?;
            l.v.fill(&cx, 0)?;
            if let Some(lin) = &l.linear {
                lin.k_out.fill(&cx, 0)?;
                lin.v_out.fill(&cx, 0)?;
            }
        }
        Ok(())
    }

    /// The stream a step queues on: `None` when it runs synchronously (no
    /// queue, or a step with device-to-device `copies` under [`Execution::Async`]).
    fn step_queue(&self, copies: bool) -> Option<&Stream> {
        self.queue.as_ref().filter(|_| self.schedule.execution.queues(copies))
    }

    /// Whether linear-attention layers copy their state after each execute.
    fn linear_copies(&self) -> bool {
        self.linear_layers() > 0 && self.schedule.kv_write != KvWrite::BindOutputAtRow
    }

    /// Whether a decode step is queued (and so can overlap the host's work):
    /// the schedule chains the step's executes and the step makes no copy.
    pub fn decode_queued(&self) -> bool {
        self.step_queue(self.schedule.kv_write == KvWrite::Copy || self.linear_copies()).is_some()
    }

    /// Feeds one token at slot `slot` through every layer (decode group).
    /// With `want_logits`, runs the post model and returns the logits' bf16 bits.
    pub fn decode(&mut self, emb: &Embeddings, token: u32, slot: usize, want_logits: bool) -> Result<Option<&[u16]>> {
        self.drain()?;
        let device = Arc::clone(&self.device);
        let cx = device.enter()?;
        let queued = self.decode_start(&cx, emb, token, slot, want_logits)?;
        let queue = if queued { self.queue.as_ref() } else { None };
        self.post.finish(&cx, want_logits, queue)
    }

    /// Queues one token's decode step at slot `slot` with the post model and
    /// returns without waiting for it; [`Resident::decode_complete`] waits
    /// and fetches the logits. Until then nothing else may run: every other
    /// method waits for the step first ([`Resident::drain`]). Under a schedule
    /// whose decode step is not queued this runs the step to its end.
    pub fn decode_submit(&mut self, emb: &Embeddings, token: u32, slot: usize) -> Result<()> {
        self.drain()?;
        let device = Arc::clone(&self.device);
        let cx = device.enter()?;
        // Set before the first call: a failure halfway still waits for what was queued.
        self.in_flight = true;
        self.decode_start(&cx, emb, token, slot, true)?;
        Ok(())
    }

    /// Waits for the step [`Resident::decode_submit`] queued and returns its
    /// logits (bf16 bits).
    pub fn decode_complete(&mut self) -> Result<&[u16]> {
        if !self.in_flight {
            return Err(Error::invalid("no decode step is in flight"));
        }
        self.in_flight = false;
        let cx = self.device.enter()?;
        let queue = self.queue.as_ref().filter(|_| self.decode_queued());
        self.post.finish(&cx, true, queue)?;
        Ok(self.last_logits())
    }

    /// Waits for a step queued by [`Resident::decode_submit`], if any, and
    /// drops its logits (the host copy keeps the previous ones).
    pub fn drain(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(());
        }
        let waited = match &self.queue {
            Some(q) => q.synchronize(&self.device.enter()?),
            None => Ok(()),
        };
        // A queued logits copy is dropped with the step's logits.
        self.post.pending_queued = false;
        waited
    }

    /// Uploads one decode step's inputs and runs (or queues) its layers and,
    /// with `want_logits`, the post model. Returns whether the work was queued.
    fn decode_start(&mut self, cx: &Entered<'_>, emb: &Embeddings, token: u32, slot: usize, want_logits: bool) -> Result<bool> {
        let geo = &self.geometry;
        let group = geo.decode_group(slot).ok_or(Error::PromptTooLong { tokens: slot + 1, max: geo.max_positions() })?;
        let (h2, d2, g) = (geo.hidden * 2, geo.kv_dim * 2, group.index as usize);
        let how = match self.schedule.kv_write {
            KvWrite::Copy => RowWrite::Copy,
            // A decode row always fits: the group covers `slot` and `slot < kv_rows`.
            // Seen working on a card for m = 1 (hardware-facts: F23).
            KvWrite::BindOutputAtRow | KvWrite::BindDecodeRow => RowWrite::Bind { size: geo.tensor_size(group.index, names::K_OUT) },
        };
        let queued = self.decode_queued();
        let ahead = queued && self.schedule.inputs == InputUpload::Ahead;
        let prepared = std::mem::take(&mut self.prepared) == Some((slot, group.index));
        let tabled = self.tables.as_ref().and_then(|t| t.get(slot));
        self.last_hidden = None;
        let st = &mut self.decode;
        st.hidden_in(h2).copy_from_slice(emb.row(token)?);
        if prepared || tabled.is_some() {
            st.upload_hidden(cx, h2)?;
        } else {
            st.indices_in(1)[0] = slot as u32;
            masks::decode_mask(st.mask_in(group.capacity + 1), slot);
            st.upload(cx, h2, 4, (group.capacity + 1) * 2)?;
        }
        let st = &*st;
        let mask_size = geo.tensor_size(group.index, names::MASK);
        let inputs = match tabled {
            // Every layer reads this position's entries (hardware-facts: F37).
            Some((indices, mask)) => Some(StepInputs { indices, mask, mask_size }),
            // Past the tables: back to the step buffers just written.
            None if self.tables.is_some() => Some(StepInputs { indices: st.at(st.indices).0, mask: st.at(st.mask).0, mask_size }),
            // Without tables nothing moved: the bindings of the load hold.
            None => None,
        };
        let rows = KvRows { offset: slot * d2, bytes: d2, how, own: false };
        let queue = if queued { self.queue.as_ref() } else { None };
        let ordinal = geo.decode.iter().position(|x| x.index == group.index).unwrap_or(0);
        let ping_pong = self.schedule.kv_write == KvWrite::BindOutputAtRow;
        for l in &mut self.layers {
            match l.linear.as_ref().map(|lin| lin.geo.group_for(false, ordinal).index) {
                Some(lg) => l.linear_step(cx, lg as usize, ping_pong, inputs, queue, false)?,
                None => l.step(cx, st, g, rows, inputs, queue)?,
            }
        }
        if want_logits {
            self.post.run(cx, queue)?;
            if let (Some(q), LogitsRead::Queued) = (queue, self.schedule.logits) {
                self.post.queue_logits(cx, q)?;
            }
        }
        // The next position's indices and mask, queued behind this step.
        if let (true, Some(q), Some(next)) = (ahead, queue, geo.decode_group(slot + 1)) {
            let st = &mut self.decode;
            st.indices_in(1)[0] = (slot + 1) as u32;
            masks::decode_mask(st.mask_in(next.capacity + 1), slot + 1);
            st.upload_inputs_async(cx, 4, (next.capacity + 1) * 2, q)?;
            self.prepared = Some((slot + 1, next.index));
        }
        Ok(queued)
    }

    /// Feeds `tokens` (at most one chunk) after `history` cached positions
    /// through every layer with the prefill group that fits. With
    /// `want_logits`, runs the post model on the last token.
    pub fn prefill_chunk(&mut self, emb: &Embeddings, tokens: &[u32], history: usize, want_logits: bool) -> Result<Option<&[u16]>> {
        self.drain()?;
        let geo = &self.geometry;
        let (t, h2, d2, n) = (geo.chunk, geo.hidden * 2, geo.kv_dim * 2, tokens.len());
        debug_assert!(n >= 1 && n <= t);
        let group = geo.prefill_group(history, n).ok_or(Error::PromptTooLong { tokens: history + n, max: geo.max_prefill() })?;
        let size = geo.tensor_size(group.index, names::K_OUT);
        let how = match self.schedule.kv_write {
            // AXERA's binding, the only one chunk groups were seen correct
            // with (hardware-facts: F23): outputs in their own buffers, D2D scatter.
            KvWrite::Copy | KvWrite::BindDecodeRow => RowWrite::Copy,
            // Only full chunks are written in place: padding rows hold whatever
            // the NPU computes for fully masked rows, never cache data, and their
            // `T` rows could run past the buffer. A full chunk always fits
            // (`prefill_group` checked `history + n <= kv_rows`).
            KvWrite::BindOutputAtRow if n == t => RowWrite::Bind { size },
            KvWrite::BindOutputAtRow => RowWrite::RebindThenCopy { size },
        };
        let mask_len = t * (group.history_cap + t);
        // A chunk whose rows are copied is staged under `async`: every
        // execute queued into the layers' own outputs, one synchronisation,
        // then the copies (module docs).
        let staged = self.schedule.stages_chunks() && matches!(how, RowWrite::Copy) && self.queue.is_some();
        // Otherwise the scatter copies, the hidden row to the post model and
        // linear layers' state copies decide whether the chunk may be queued.
        let copies = !matches!(how, RowWrite::Bind { .. }) || want_logits || self.linear_copies();
        let queued = !staged && self.step_queue(copies).is_some();
        let device = Arc::clone(&self.device);
        let cx = device.enter()?;
        // With logits, the row is copied into the decode buffer below.
        self.last_hidden = if want_logits { None } else { Some(n - 1) };
        let st = &mut self.prefill;
        let hidden = st.hidden_in(t * h2);
        hidden[n * h2..].fill(0);
        for (i, &tok) in tokens.iter().enumerate() {
            hidden[i * h2..(i + 1) * h2].copy_from_slice(emb.row(tok)?);
        }
        masks::prefill_indices(st.indices_in(t), history, n);
        masks::prefill_mask(st.mask_in(mask_len), t, group.history_cap, history, n);
        st.upload(&cx, t * h2, t * 4, mask_len * 2)?;
        if let Some(gates) = self.gates.as_mut() {
            gates.prefill_for(&cx, n)?;
        }
        let rows = KvRows { offset: history * d2, bytes: n * d2, how, own: staged };
        let ordinal = geo.prefill.iter().position(|x| x.index == group.index).unwrap_or(0);
        let ping_pong = self.schedule.kv_write == KvWrite::BindOutputAtRow;
        let st = &*st;
        if staged {
            let q = self.queue.as_ref().expect("a staged chunk has a queue");
            let mut launched = Ok(());
            for l in &mut self.layers {
                launched = match l.linear.as_ref().map(|lin| lin.geo.group_for(true, ordinal).index) {
                    Some(lg) => l.linear_step(&cx, lg as usize, false, None, Some(q), true),
                    None => l.launch(&cx, st, group.index as usize, rows, None, Some(q)),
                };
                if launched.is_err() {
                    break;
                }
            }
            // Whatever was queued has run before anything is read or rewritten.
            let synced = q.synchronize(&cx);
            launched?;
            synced?;
            for l in &self.layers {
                match l.linear {
                    Some(_) => l.linear_copy(&cx, None)?,
                    None => l.scatter(&cx, st, rows, None)?,
                }
            }
        } else {
            let queue = if queued { self.queue.as_ref() } else { None };
            for l in &mut self.layers {
                match l.linear.as_ref().map(|lin| lin.geo.group_for(true, ordinal).index) {
                    Some(lg) => l.linear_step(&cx, lg as usize, ping_pong, None, queue, false)?,
                    None => l.step(&cx, st, group.index as usize, rows, None, queue)?,
                }
            }
        }
        let queue = if queued { self.queue.as_ref() } else { None };
        if want_logits {
            let last = self.layers.len() % 2;
            let ((dst, dst_off), (src, src_off)) = (self.decode.at(self.decode.hidden[last]), st.at(st.hidden[last]));
            copy(&cx, (dst, dst_off), (src, src_off + (n - 1) * h2), h2, queue)?;
            self.post.run(&cx, queue)?;
        }
        self.post.finish(&cx, want_logits, queue)
    }
}

/// Each layer's kind: the config's when it names them (each checked against
/// the layer's IO), else the IO's (hardware-facts: F28).
fn layer_kinds(files: &[std::path::PathBuf], groups: &[&[GroupInfo]], config: Option<&[LayerKind]>) -> Result<Vec<LayerKind>> {
    files
        .iter()
        .zip(groups)
        .enumerate()
        .map(|(i, (path, groups))| {
            let io = kind_from_io(groups);
            match config.map(|c| c[i]) {
                Some(named) if named != io => Err(Error::bad_file(
                    path.clone(),
                    format!("config.json names layer {i} {named:?} attention but its IO is that of a {io:?} attention layer"),
                )),
                _ => Ok(io),
            }
        })
        .collect()
}

/// Loads a full-attention layer's buffers: K and V caches of `kv_bytes`,
/// every group bound to them and to the step buffers, or with `chunk_out`
/// (bytes) the prefill groups' `K_cache_out`/`V_cache_out` to the layer's
/// own pair of buffers of that size.
#[allow(clippy::too_many_arguments)] // the layer's parts, shared and its own
fn full_layer(
    cx: &Entered<'_>,
    model: EngineModel,
    m: usize,
    geo: &Geometry,
    kv_bytes: usize,
    decode: &StepBuffers,
    prefill: &StepBuffers,
    chunk_out: Option<usize>,
) -> Result<Layer> {
    let k = DeviceBuffer::zeroed(cx, kv_bytes)?;
    let v = DeviceBuffer::zeroed(cx, kv_bytes)?;
    let chunk_out = match chunk_out {
        Some(bytes) => Some([DeviceBuffer::zeroed(cx, bytes)?, DeviceBuffer::zeroed(cx, bytes)?]),
        None => None,
    };
    let mut ios = Vec::with_capacity(model.groups().len());
    let mut kv_out = Vec::with_capacity(model.groups().len());
    let mut step_in = Vec::with_capacity(model.groups().len());
    for (g, grp) in model.groups().iter().enumerate() {
        let mut io = model.create_io(cx)?;
        let is_decode = geo.decode.iter().any(|x| x.index as usize == g);
        let st = if is_decode { decode } else { prefill };
        let (k_out, v_out) = match (&chunk_out, is_decode) {
            (Some([ko, vo]), false) => ((ko, 0), (vo, 0)),
            _ => (st.at(st.k_out), st.at(st.v_out)),
        };
        bind_all(
            cx,
            &mut io,
            grp,
            &[
                (names::K_CACHE, (&k, 0)),
                (names::V_CACHE, (&v, 0)),
                (names::INDICES, st.at(st.indices)),
                (names::INPUT, st.at(st.hidden[m % 2])),
                (names::MASK, st.at(st.mask)),
            ],
            &[
                (names::K_OUT, k_out),
                (names::V_OUT, v_out),
                (names::OUTPUT, st.at(st.hidden[(m + 1) % 2])),
            ],
        )?;
        ios.push(io);
        let input = |name| grp.input(name).expect("geometry checked every name").0;
        let out = |name| grp.output(name).expect("geometry checked every name").0;
        kv_out.push([out(names::K_OUT), out(names::V_OUT)]);
        step_in.push([input(names::INDICES), input(names::MASK)]);
    }
    Ok(Layer { ios, kv_out, step_in, k, v, chunk_out, linear: None, model })
}

/// Loads a linear-attention layer's buffers: its state in and out (zeroed:
/// the state before any token), every group bound to them, to the step
/// buffers and to its gate mask.
fn linear_layer(
    cx: &Entered<'_>,
    model: EngineModel,
    m: usize,
    geo: LinearGeometry,
    decode: &StepBuffers,
    prefill: &StepBuffers,
    gates: &Gates,
) -> Result<Layer> {
    let (k, v) = (DeviceBuffer::zeroed(cx, geo.k_state)?, DeviceBuffer::zeroed(cx, geo.v_state)?);
    let (k_out, v_out) = (DeviceBuffer::zeroed(cx, geo.k_state)?, DeviceBuffer::zeroed(cx, geo.v_state)?);
    let mut ios = Vec::with_capacity(model.groups().len());
    let mut kv_out = Vec::with_capacity(model.groups().len());
    let mut state_io = Vec::with_capacity(model.groups().len());
    let mut step_in = Vec::with_capacity(model.groups().len());
    for (g, grp) in model.groups().iter().enumerate() {
        let mut io = model.create_io(cx)?;
        let is_decode = geo.decode.iter().any(|x| x.index as usize == g);
        let (st, gate) = if is_decode { (decode, &gates.decode) } else { (prefill, &gates.prefill) };
        bind_all(
            cx,
            &mut io,
            grp,
            &[
                (names::K_CACHE, (&k, 0)),
                (names::V_CACHE, (&v, 0)),
                (names::INDICES, st.at(st.indices)),
                (names::INPUT, st.at(st.hidden[m % 2])),
                (names::MASK, (gate, 0)),
            ],
            &[(names::K_OUT, (&k_out, 0)), (names::V_OUT, (&v_out, 0)), (names::OUTPUT, st.at(st.hidden[(m + 1) % 2]))],
        )?;
        ios.push(io);
        let input = |name| grp.input(name).expect("geometry checked every name").0;
        let out = |name| grp.output(name).expect("geometry checked every name").0;
        kv_out.push([out(names::K_OUT), out(names::V_OUT)]);
        state_io.push([input(names::K_CACHE), input(names::V_CACHE), out(names::K_OUT), out(names::V_OUT)]);
        step_in.push([input(names::INDICES), input(names::MASK)]);
    }
    Ok(Layer { ios, kv_out, step_in, k, v, chunk_out: None, linear: Some(Linear { geo, k_out, v_out, state_io, swapped: false }), model })
}

impl Gates {
    /// The gate buffers of the linear layers, `None` when there are none;
    /// the decode gate is written (all 1.0) here, once.
    fn new(cx: &Entered<'_>, linear: &[Option<LinearGeometry>]) -> Result<Option<Gates>> {
        let geos: Vec<&LinearGeometry> = linear.iter().flatten().collect();
        if geos.is_empty() {
            return Ok(None);
        }
        let widest = |prefill: bool| {
            geos.iter().flat_map(|g| if prefill { &g.prefill } else { &g.decode }).map(|x| x.mask).max().unwrap_or(1)
        };
        let (dec, pre) = (widest(false), widest(true));
        let decode = DeviceBuffer::zeroed(cx, dec * 2)?;
        let mut ones = vec![0u16; dec];
        gate_mask(&mut ones, dec);
        decode.write(cx, 0, bytemuck::cast_slice(&ones))?;
        Ok(Some(Gates { decode, prefill: DeviceBuffer::zeroed(cx, pre * 2)?, host: HostBuffer::new(cx, pre * 2)?, prefill_n: None }))
    }

    /// Makes the prefill gate say `n` real rows (written only when it changes).
    fn prefill_for(&mut self, cx: &Entered<'_>, n: usize) -> Result<()> {
        if self.prefill_n != Some(n) {
            self.prefill_n = None;
            gate_mask(bytemuck::cast_slice_mut(self.host.as_mut_slice()), n);
            self.prefill.write(cx, 0, self.host.as_slice())?;
            self.prefill_n = Some(n);
        }
        Ok(())
    }
}

impl SnapshotSlots {
    /// `count` slots for the linear layers' state, `None` when there are no
    /// linear layers or no slots.
    fn new(cx: &Entered<'_>, layers: &[Layer], count: usize) -> Result<Option<SnapshotSlots>> {
        let mut offsets = Vec::new();
        let mut bytes = 0;
        for (_, _, k, v) in layers.iter().filter_map(Layer::state) {
            offsets.push((bytes, bytes + k));
            bytes += k + v;
        }
        if offsets.is_empty() || count == 0 {
            return Ok(None);
        }
        let slots = (0..count).map(|_| DeviceBuffer::alloc(cx, bytes)).collect::<Result<Vec<_>>>()?;
        Ok(Some(SnapshotSlots { slots, offsets, bytes }))
    }
}

/// Checks the post model's IO against the layers' hidden size; returns the vocabulary size.
pub(crate) fn post_vocab(path: &Path, groups: &[GroupInfo], hidden: usize) -> Result<usize> {
    let bad = |reason: String| Error::bad_file(path, reason);
    let grp = groups.first().ok_or_else(|| bad("no shape groups".into()))?;
    let input = grp.input(names::INPUT).ok_or_else(|| bad("no input named \"input\"".into()))?.1;
    let output = grp.output(names::OUTPUT).ok_or_else(|| bad("no output named \"output\"".into()))?.1;
    if input.elements() != hidden {
        return Err(bad(format!("post model input has {} elements; the layers' hidden size is {hidden}", input.elements())));
    }
    if !matches!(output.dtype, crate::npu::dtype::BF16 | crate::npu::dtype::UINT16) || output.elements() < 2 {
        return Err(bad(format!(
            "post model output is {} {:?}: bf16 logits expected (top-k post models are not supported)",
            crate::npu::dtype::name(output.dtype),
            output.dims
        )));
    }
    Ok(output.elements())
}
