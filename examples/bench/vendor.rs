//! The vendor runner's call pattern (as AXERA's runner drives a layer and the card), written over the
//! public `npu` API as the baseline: every layer owns a buffer for every tensor
//! of its decode group and one set for its prefill groups (the largest group's
//! sizes), bound once; a step writes indices and mask into every layer, copies
//! K/V rows and the hidden state on the card, and (prefill) carries the hidden
//! state through the host between layers, as the newest vendor runner does.
//! Its host-side tensors are `axclrtMallocHost` memory (INFERRED: AXERA's
//! runner keeps a host mirror of each tensor allocated that way; with
//! pageable copies its measured 13.5 tok/s would not be reachable).

use crate::runner::Runner;
use anyhow::{Context, Result};
use axllm_core::engine::geometry::{Geometry, names};
use axllm_core::engine::masks;
use axllm_core::npu::{Device, DeviceBuffer, EngineIo, EngineModel, Entered, GroupInfo, HostBuffer};
use axllm_core::package::{Embeddings, ModelFiles};
use std::path::Path;
use std::sync::Arc;

/// One tensor set: every input and output a group binds, except K/V.
struct Tensors {
    indices: DeviceBuffer,
    mask: DeviceBuffer,
    input: DeviceBuffer,
    k_out: DeviceBuffer,
    v_out: DeviceBuffer,
    output: DeviceBuffer,
}

impl Tensors {
    /// Allocates and zeroes each tensor at its largest size over `groups`.
    fn new(cx: &Entered<'_>, geo: &Geometry, groups: &[u32]) -> Result<Tensors> {
        let alloc = |name: &str| -> Result<DeviceBuffer> {
            let size = groups.iter().map(|&g| geo.tensor_size(g, name)).max().unwrap_or(0);
            Ok(DeviceBuffer::zeroed(cx, size)?)
        };
        Ok(Tensors {
            indices: alloc(names::INDICES)?,
            mask: alloc(names::MASK)?,
            input: alloc(names::INPUT)?,
            k_out: alloc(names::K_OUT)?,
            v_out: alloc(names::V_OUT)?,
            output: alloc(names::OUTPUT)?,
        })
    }

    fn bind(&self, cx: &Entered<'_>, io: &mut EngineIo, grp: &GroupInfo, k: &DeviceBuffer, v: &DeviceBuffer) -> Result<()> {
        let inputs = [
            (names::K_CACHE, k),
            (names::V_CACHE, v),
            (names::INDICES, &self.indices),
            (names::INPUT, &self.input),
            (names::MASK, &self.mask),
        ];
        for (name, buf) in inputs {
            let (i, t) = grp.input(name).context("tensor name")?;
            io.bind_input(cx, i, buf, 0, t.size as usize)?;
        }
        for (name, buf) in [(names::K_OUT, &self.k_out), (names::V_OUT, &self.v_out), (names::OUTPUT, &self.output)] {
            let (i, t) = grp.output(name).context("tensor name")?;
            io.bind_output(cx, i, buf, 0, t.size as usize)?;
        }
        Ok(())
    }
}

struct Layer {
    // Drop order: IO objects, buffers, model.
    ios: Vec<EngineIo>,
    decode: Tensors,
    prefill: Tensors,
    k: DeviceBuffer,
    v: DeviceBuffer,
    model: EngineModel,
}

/// The vendor runner's schedule over one model.
pub struct Vendor {
    layers: Vec<Layer>,
    post_io: EngineIo,
    post_input: DeviceBuffer,
    logits: DeviceBuffer,
    post: EngineModel,
    geo: Geometry,
    emb: Embeddings,
    cached: Vec<u32>,
    host_mask: HostBuffer,
    host_indices: HostBuffer,
    host_hidden: HostBuffer,
    host_logits: HostBuffer,
    device: Arc<Device>,
}

impl Vendor {
    /// Loads the package at `dir` the way the vendor runner does.
    pub fn load(device: &Arc<Device>, dir: &Path) -> Result<Vendor> {
        let files = ModelFiles::discover(dir, &[])?;
        let cx = device.enter()?;
        let models = files.layers.iter().map(|p| EngineModel::load_file(&cx, p, p)).collect::<Result<Vec<_>, _>>()?;
        let geo = Geometry::derive(&files.layers[0], models[0].groups())?;
        let post = EngineModel::load_file(&cx, &files.post, &files.post)?;
        let vocab = post.groups()[0].output(names::OUTPUT).context("post output")?.1.elements();
        let decode_groups: Vec<u32> = geo.decode.iter().map(|g| g.index).collect();
        let prefill_groups: Vec<u32> = geo.prefill.iter().map(|g| g.index).collect();
        let kv_bytes = geo.kv_rows * geo.kv_dim * 2;
        let mut layers = Vec::with_capacity(models.len());
        for model in models {
            let (k, v) = (DeviceBuffer::zeroed(&cx, kv_bytes)?, DeviceBuffer::zeroed(&cx, kv_bytes)?);
            let (decode, prefill) = (Tensors::new(&cx, &geo, &decode_groups)?, Tensors::new(&cx, &geo, &prefill_groups)?);
            let mut ios = Vec::new();
            for (g, grp) in model.groups().iter().enumerate() {
                let mut io = model.create_io(&cx)?;
                let set = if decode_groups.contains(&(g as u32)) { &decode } else { &prefill };
                set.bind(&cx, &mut io, grp, &k, &v)?;
                ios.push(io);
            }
            layers.push(Layer { ios, decode, prefill, k, v, model });
        }
        let (post_input, logits) = (DeviceBuffer::zeroed(&cx, geo.hidden * 2)?, DeviceBuffer::zeroed(&cx, vocab * 2)?);
        let mut post_io = post.create_io(&cx)?;
        let grp = &post.groups()[0];
        post_io.bind_input(&cx, grp.input(names::INPUT).context("post input")?.0, &post_input, 0, geo.hidden * 2)?;
        post_io.bind_output(&cx, grp.output(names::OUTPUT).context("post output")?.0, &logits, 0, vocab * 2)?;
        let mask = geo.groups.iter().flat_map(|g| g.input(names::MASK)).map(|(_, t)| t.elements()).max().unwrap_or(0);
        Ok(Vendor {
            emb: Embeddings::open(&files.dir.open(&files.embedding)?, &files.embedding, vocab, geo.hidden)?,
            host_mask: HostBuffer::new(&cx, mask * 2)?,
            host_indices: HostBuffer::new(&cx, geo.chunk * 4)?,
            host_hidden: HostBuffer::new(&cx, geo.chunk * geo.hidden * 2)?,
            host_logits: HostBuffer::new(&cx, vocab * 2)?,
            cached: Vec::with_capacity(geo.max_positions()),
            layers,
            post_io,
            post_input,
            logits,
            post,
            geo,
            device: Arc::clone(device),
        })
    }

    fn post(&mut self, cx: &Entered<'_>) -> Result<()> {
        self.post.execute(cx, 0, &self.post_io)?;
        Ok(self.logits.read(cx, 0, self.host_logits.as_mut_slice())?)
    }

    /// One token at `slot` through every layer, then the post model.
    fn decode(&mut self, token: u32, slot: usize) -> Result<()> {
        let group = self.geo.decode_group(slot).context("no decode group holds the slot")?;
        let (g, h2, d2) = (group.index as usize, self.geo.hidden * 2, self.geo.kv_dim * 2);
        let device = Arc::clone(&self.device);
        let cx = device.enter()?;
        self.host_hidden.as_mut_slice()[..h2].copy_from_slice(self.emb.row(token)?);
        self.layers[0].decode.input.write(&cx, 0, &self.host_hidden.as_slice()[..h2])?;
        let mask = &mut u16s(&mut self.host_mask)[..group.capacity + 1];
        masks::decode_mask(mask, slot);
        self.host_indices.as_mut_slice()[..4].copy_from_slice(&(slot as u32).to_le_bytes());
        let mask = &self.host_mask.as_slice()[..(group.capacity + 1) * 2];
        for m in 0..self.layers.len() {
            let l = &self.layers[m];
            l.decode.indices.write(&cx, 0, &self.host_indices.as_slice()[..4])?;
            l.decode.mask.write(&cx, 0, mask)?;
            l.model.execute(&cx, g as u32, &l.ios[g])?;
            l.k.copy_from(&cx, slot * d2, &l.decode.k_out, 0, d2)?;
            l.v.copy_from(&cx, slot * d2, &l.decode.v_out, 0, d2)?;
            let next = self.layers.get(m + 1).map_or(&self.post_input, |n| &n.decode.input);
            next.copy_from(&cx, 0, &l.decode.output, 0, h2)?;
        }
        self.post(&cx)
    }

    /// One chunk of `tokens` after `history` cached positions.
    fn prefill(&mut self, tokens: &[u32], history: usize, want_logits: bool) -> Result<()> {
        let (t, h2, d2, n) = (self.geo.chunk, self.geo.hidden * 2, self.geo.kv_dim * 2, tokens.len());
        let group = self.geo.prefill_group(history, n).context("no prefill group fits")?;
        let g = group.index as usize;
        let device = Arc::clone(&self.device);
        let cx = device.enter()?;
        let hidden = self.host_hidden.as_mut_slice();
        hidden.fill(0);
        for (i, &tok) in tokens.iter().enumerate() {
            hidden[i * h2..(i + 1) * h2].copy_from_slice(self.emb.row(tok)?);
        }
        masks::prefill_indices(bytemuck::cast_slice_mut(self.host_indices.as_mut_slice()), history, n);
        let mask_len = t * (group.history_cap + t);
        masks::prefill_mask(&mut u16s(&mut self.host_mask)[..mask_len], t, group.history_cap, history, n);
        let last = self.layers.len() - 1;
        for (m, l) in self.layers.iter().enumerate() {
            l.prefill.indices.write(&cx, 0, self.host_indices.as_slice())?;
            l.prefill.mask.write(&cx, 0, &self.host_mask.as_slice()[..mask_len * 2])?;
            l.prefill.input.write(&cx, 0, self.host_hidden.as_slice())?;
            l.model.execute(&cx, g as u32, &l.ios[g])?;
            l.k.copy_from(&cx, history * d2, &l.prefill.k_out, 0, n * d2)?;
            l.v.copy_from(&cx, history * d2, &l.prefill.v_out, 0, n * d2)?;
            if m < last {
                l.prefill.output.read(&cx, 0, self.host_hidden.as_mut_slice())?;
            }
        }
        if !want_logits {
            return Ok(());
        }
        self.post_input.copy_from(&cx, 0, &self.layers[last].prefill.output, (n - 1) * h2, h2)?;
        self.post(&cx)
    }
}

impl Runner for Vendor {
    fn feed_prompt(&mut self, prompt: &[u32]) -> Result<()> {
        let common = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let mut pos = common.min(prompt.len() - 1);
        self.cached.truncate(pos);
        while pos < prompt.len() {
            let want = (prompt.len() - pos).min(self.geo.chunk);
            let n = match self.geo.prefill_plan(pos, want) {
                Some((_, n)) => {
                    self.prefill(&prompt[pos..pos + n], pos, pos + n == prompt.len())?;
                    n
                }
                None => {
                    self.decode(prompt[pos], pos)?;
                    1
                }
            };
            self.cached.extend_from_slice(&prompt[pos..pos + n]);
            pos += n;
        }
        Ok(())
    }

    fn feed_token(&mut self, token: u32) -> Result<()> {
        self.decode(token, self.cached.len())?;
        self.cached.push(token);
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        let cx = self.device.enter()?;
        for l in &self.layers {
            l.k.fill(&cx, 0)?;
            l.v.fill(&cx, 0)?;
        }
        self.cached.clear();
        Ok(())
    }
}

/// Host time of one call of each kind, measured with zero latency: the
/// simulator's bookkeeping plus the FFI, ns.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallCosts {
    pub h2d_mask: f64,
    pub d2d_row: f64,
    pub d2h_logits: f64,
    pub execute: f64,
    pub bind: f64,
}

impl Vendor {
    /// Times `reps` calls of each kind on this model's decode buffers.
    pub fn call_costs(&mut self, reps: usize) -> Result<CallCosts> {
        let (g, d2) = (self.geo.decode[0].index as usize, self.geo.kv_dim * 2);
        let mask_len = self.geo.decode[0].capacity + 1;
        let cx = self.device.enter()?;
        let l = &mut self.layers[0];
        let (idx, t) = l.model.groups()[g].input(names::INDICES).context("indices")?;
        let size = t.size as usize;
        let per = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
            let start = crate::sys::thread_cpu_ns();
            for _ in 0..reps {
                f()?;
            }
            Ok((crate::sys::thread_cpu_ns() - start) as f64 / reps as f64)
        };
        let mask = &self.host_mask.as_slice()[..mask_len * 2];
        Ok(CallCosts {
            h2d_mask: per(&mut || Ok(l.decode.mask.write(&cx, 0, mask)?))?,
            d2d_row: per(&mut || Ok(l.k.copy_from(&cx, 0, &l.decode.k_out, 0, d2)?))?,
            d2h_logits: per(&mut || Ok(self.logits.read(&cx, 0, self.host_logits.as_mut_slice())?))?,
            execute: per(&mut || Ok(l.model.execute(&cx, g as u32, &l.ios[g])?))?,
            bind: per(&mut || Ok(l.ios[g].bind_input(&cx, idx, &l.decode.indices, 0, size)?))?,
        })
    }
}

fn u16s(b: &mut HostBuffer) -> &mut [u16] {
    bytemuck::cast_slice_mut(b.as_mut_slice())
}
