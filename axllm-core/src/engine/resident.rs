//! Everything a model keeps on the device, and the call schedule of one step.
//!
//! Buffers (all allocated and bound once, at load):
//! * per layer: one K and one V buffer of `kv_rows · D` bf16, shared by every
//!   shape group and zeroed (contract §2.6, pitfall 1);
//! * shared by all layers, because they are the same for every layer of a step:
//!   the decode `indices`/`mask`, the prefill `indices`/`mask`, and the
//!   `K_cache_out`/`V_cache_out` rows (each layer's rows are copied into its own
//!   cache before the next layer runs);
//! * two hidden-state buffers per step kind, used alternately: layer `m` reads
//!   one and writes the other, so each layer's output is bound as the next
//!   layer's input and the hidden state never leaves the card; no execution
//!   reads and writes the same buffer;
//! * the post model reads the decode hidden buffer the last layer wrote, and its
//!   logits are the one device-to-host copy per token.
//!
//! Per decode token: 3 host-to-device copies (embedding row, indices, mask),
//! then per layer one execute and two device-to-device K/V row copies, then the
//! post execute and one logits copy. The vendor runner makes six calls per layer.

use super::geometry::{Geometry, names};
use super::masks;
use crate::error::{Error, Result};
use crate::model::Embeddings;
use crate::npu::{Device, DeviceBuffer, EngineIo, EngineModel, Entered, GroupInfo};
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
    k: DeviceBuffer,
    v: DeviceBuffer,
    model: EngineModel,
}

struct Post {
    io: EngineIo,
    model: EngineModel,
    vocab: usize,
}

struct Shared {
    dec_indices: DeviceBuffer,
    dec_mask: DeviceBuffer,
    pre_indices: DeviceBuffer,
    pre_mask: DeviceBuffer,
    dec_hidden: [DeviceBuffer; 2],
    pre_hidden: [DeviceBuffer; 2],
    dec_k_out: DeviceBuffer,
    dec_v_out: DeviceBuffer,
    pre_k_out: DeviceBuffer,
    pre_v_out: DeviceBuffer,
    logits: DeviceBuffer,
}

/// Host staging buffers, sized once so the token loop allocates nothing.
struct Staging {
    mask: Vec<u16>,
    indices: Vec<u32>,
    hidden: Vec<u8>,
    logits: Vec<u16>,
}

/// A model resident on the NPU.
pub struct Resident {
    layers: Vec<Layer>,
    post: Post,
    shared: Shared,
    staging: Staging,
    geometry: Geometry,
    device_bytes: u64,
    device: Arc<Device>,
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resident").field("layers", &self.layers.len()).field("geometry", &self.geometry).finish()
    }
}

/// Progress of a load, reported per model file.
#[derive(Debug, Clone, Copy)]
pub struct LoadProgress {
    pub loaded: usize,
    pub total: usize,
}

fn load_model(cx: &Entered<'_>, path: &Path, method: LoadMethod) -> Result<EngineModel> {
    match method {
        LoadMethod::File => EngineModel::load_file(cx, path),
        LoadMethod::DeviceMemory => EngineModel::load_via_device_memory(cx, path),
    }
}

fn bind_all(
    cx: &Entered<'_>,
    io: &mut EngineIo,
    grp: &GroupInfo,
    inputs: &[(&str, &DeviceBuffer)],
    outputs: &[(&str, &DeviceBuffer)],
) -> Result<()> {
    for (name, buf) in inputs {
        let (i, t) = grp.input(name).expect("geometry checked every name");
        io.bind_input(cx, i, buf, 0, t.size as usize)?;
    }
    for (name, buf) in outputs {
        let (i, t) = grp.output(name).expect("geometry checked every name");
        io.bind_output(cx, i, buf, 0, t.size as usize)?;
    }
    Ok(())
}

impl Resident {
    /// Loads every layer and the post model, checks that they agree with each
    /// other, allocates and zeroes the buffers and binds every IO once.
    pub fn load(
        device: &Arc<Device>,
        layer_files: &[std::path::PathBuf],
        post_file: &Path,
        method: LoadMethod,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Resident> {
        let cx = device.enter()?;
        let total = layer_files.len() + 1;
        let mut models = Vec::with_capacity(layer_files.len());
        let mut geometry: Option<Geometry> = None;
        for (i, path) in layer_files.iter().enumerate() {
            let model = load_model(&cx, path, method)?;
            let g = Geometry::derive(path, model.groups())?;
            match &geometry {
                None => geometry = Some(g),
                Some(first) if !first.same_shape(&g) => {
                    return Err(Error::BadFile {
                        path: path.clone(),
                        reason: format!("layer {i} has different shapes than layer 0 ({g:?} vs {first:?})"),
                    });
                }
                Some(_) => {}
            }
            models.push(model);
            progress(LoadProgress { loaded: i + 1, total });
        }
        let geo = geometry.ok_or_else(|| Error::InvalidArgument("a model needs at least one layer".into()))?;
        let post_model = load_model(&cx, post_file, method)?;
        let vocab = post_vocab(post_file, post_model.groups(), geo.hidden)?;
        progress(LoadProgress { loaded: total, total });

        let (h, d, t) = (geo.hidden, geo.kv_dim, geo.chunk);
        let max = |name: &str, groups: &mut dyn Iterator<Item = u32>| groups.map(|g| geo.tensor_size(g, name)).max().unwrap_or(0);
        let dec_mask_bytes = max(names::MASK, &mut geo.decode.iter().map(|g| g.index));
        let pre_mask_bytes = max(names::MASK, &mut geo.prefill.iter().map(|g| g.index));
        let shared = Shared {
            dec_indices: DeviceBuffer::zeroed(&cx, 4)?,
            dec_mask: DeviceBuffer::zeroed(&cx, dec_mask_bytes)?,
            pre_indices: DeviceBuffer::zeroed(&cx, t * 4)?,
            pre_mask: DeviceBuffer::zeroed(&cx, pre_mask_bytes)?,
            dec_hidden: [DeviceBuffer::zeroed(&cx, h * 2)?, DeviceBuffer::zeroed(&cx, h * 2)?],
            pre_hidden: [DeviceBuffer::zeroed(&cx, t * h * 2)?, DeviceBuffer::zeroed(&cx, t * h * 2)?],
            dec_k_out: DeviceBuffer::zeroed(&cx, d * 2)?,
            dec_v_out: DeviceBuffer::zeroed(&cx, d * 2)?,
            pre_k_out: DeviceBuffer::zeroed(&cx, t * d * 2)?,
            pre_v_out: DeviceBuffer::zeroed(&cx, t * d * 2)?,
            logits: DeviceBuffer::zeroed(&cx, vocab * 2)?,
        };
        let kv_bytes = geo.kv_rows * d * 2;
        let mut layers = Vec::with_capacity(models.len());
        for (m, model) in models.into_iter().enumerate() {
            let k = DeviceBuffer::zeroed(&cx, kv_bytes)?;
            let v = DeviceBuffer::zeroed(&cx, kv_bytes)?;
            let mut ios = Vec::with_capacity(model.groups().len());
            for (g, grp) in model.groups().iter().enumerate() {
                let mut io = model.create_io(&cx)?;
                let decode = geo.decode.iter().any(|x| x.index as usize == g);
                let (idx, mask, hid, k_out, v_out) = if decode {
                    (&shared.dec_indices, &shared.dec_mask, &shared.dec_hidden, &shared.dec_k_out, &shared.dec_v_out)
                } else {
                    (&shared.pre_indices, &shared.pre_mask, &shared.pre_hidden, &shared.pre_k_out, &shared.pre_v_out)
                };
                bind_all(
                    &cx,
                    &mut io,
                    grp,
                    &[
                        (names::K_CACHE, &k),
                        (names::V_CACHE, &v),
                        (names::INDICES, idx),
                        (names::INPUT, &hid[m % 2]),
                        (names::MASK, mask),
                    ],
                    &[(names::K_OUT, k_out), (names::V_OUT, v_out), (names::OUTPUT, &hid[(m + 1) % 2])],
                )?;
                ios.push(io);
            }
            layers.push(Layer { ios, k, v, model });
        }
        let mut post_io = post_model.create_io(&cx)?;
        let last = &shared.dec_hidden[layers.len() % 2];
        bind_all(&cx, &mut post_io, &post_model.groups()[0], &[(names::INPUT, last)], &[(names::OUTPUT, &shared.logits)])?;

        let staging = Staging {
            mask: vec![0; (dec_mask_bytes.max(pre_mask_bytes)) / 2],
            indices: vec![0; t],
            hidden: vec![0; t * h * 2],
            logits: vec![0; vocab],
        };
        let device_bytes = (layers.len() as u64) * 2 * kv_bytes as u64
            + [&shared.dec_mask, &shared.pre_mask, &shared.logits, &shared.pre_k_out, &shared.pre_v_out]
                .iter()
                .map(|b| b.size() as u64)
                .sum::<u64>()
            + 4 * (t * h * 2) as u64
            + layer_files.iter().chain(std::iter::once(&post_file.to_path_buf())).map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum::<u64>();
        drop(cx);
        Ok(Resident {
            layers,
            post: Post { io: post_io, model: post_model, vocab },
            shared,
            staging,
            geometry: geo,
            device_bytes,
            device: Arc::clone(device),
        })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
    pub fn vocab(&self) -> usize {
        self.post.vocab
    }
    /// Device memory used: buffers plus the model files' sizes (an estimate of the weights' share).
    pub fn device_bytes(&self) -> u64 {
        self.device_bytes
    }
    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// The logits (bf16 bits) of the last step that ran the post model.
    pub fn last_logits(&self) -> &[u16] {
        &self.staging.logits
    }

    /// Zeroes every K/V buffer (a full cache reset).
    pub fn clear_cache(&self) -> Result<()> {
        let cx = self.device.enter()?;
        for l in &self.layers {
            l.k.fill(&cx, 0)?;
            l.v.fill(&cx, 0)?;
        }
        Ok(())
    }

    /// Feeds one token at slot `slot` through every layer (decode group).
    /// With `want_logits`, runs the post model and returns the logits' bf16 bits.
    pub fn decode(&mut self, emb: &Embeddings, token: u32, slot: usize, want_logits: bool) -> Result<Option<&[u16]>> {
        let geo = &self.geometry;
        let group = geo.decode_group(slot).ok_or(Error::PromptTooLong { tokens: slot + 1, max: geo.max_positions() })?;
        let d2 = geo.kv_dim * 2;
        let cx = self.device.enter()?;
        let sh = &self.shared;
        sh.dec_hidden[0].write(&cx, 0, emb.row(token)?)?;
        sh.dec_indices.write(&cx, 0, &(slot as u32).to_le_bytes())?;
        let mask = &mut self.staging.mask[..group.capacity + 1];
        masks::decode_mask(mask, slot);
        sh.dec_mask.write(&cx, 0, bytemuck::cast_slice(mask))?;
        for l in &self.layers {
            l.model.execute(&cx, group.index, &l.ios[group.index as usize])?;
            l.k.copy_from(&cx, slot * d2, &sh.dec_k_out, 0, d2)?;
            l.v.copy_from(&cx, slot * d2, &sh.dec_v_out, 0, d2)?;
        }
        if !want_logits {
            return Ok(None);
        }
        self.post.model.execute(&cx, 0, &self.post.io)?;
        sh.logits.read(&cx, 0, bytemuck::cast_slice_mut(&mut self.staging.logits))?;
        Ok(Some(&self.staging.logits))
    }

    /// Feeds `tokens` (at most one chunk) after `history` cached positions
    /// through every layer with the prefill group that fits. With
    /// `want_logits`, runs the post model on the last token.
    pub fn prefill_chunk(&mut self, emb: &Embeddings, tokens: &[u32], history: usize, want_logits: bool) -> Result<Option<&[u16]>> {
        let geo = &self.geometry;
        let (t, h2, d2, n) = (geo.chunk, geo.hidden * 2, geo.kv_dim * 2, tokens.len());
        debug_assert!(n >= 1 && n <= t);
        let group = geo.prefill_group(history, n).ok_or(Error::PromptTooLong { tokens: history + n, max: geo.max_prefill() })?;
        let cx = self.device.enter()?;
        let sh = &self.shared;
        let st = &mut self.staging;
        st.hidden[n * h2..].fill(0);
        for (i, &tok) in tokens.iter().enumerate() {
            st.hidden[i * h2..(i + 1) * h2].copy_from_slice(emb.row(tok)?);
        }
        sh.pre_hidden[0].write(&cx, 0, &st.hidden)?;
        masks::prefill_indices(&mut st.indices, history, n);
        sh.pre_indices.write(&cx, 0, bytemuck::cast_slice(&st.indices))?;
        let mask = &mut st.mask[..t * (group.history_cap + t)];
        masks::prefill_mask(mask, t, group.history_cap, history, n);
        sh.pre_mask.write(&cx, 0, bytemuck::cast_slice(mask))?;
        for l in &self.layers {
            l.model.execute(&cx, group.index, &l.ios[group.index as usize])?;
            l.k.copy_from(&cx, history * d2, &sh.pre_k_out, 0, n * d2)?;
            l.v.copy_from(&cx, history * d2, &sh.pre_v_out, 0, n * d2)?;
        }
        if !want_logits {
            return Ok(None);
        }
        let last = self.layers.len() % 2;
        sh.dec_hidden[last].copy_from(&cx, 0, &sh.pre_hidden[last], (n - 1) * h2, h2)?;
        self.post.model.execute(&cx, 0, &self.post.io)?;
        sh.logits.read(&cx, 0, bytemuck::cast_slice_mut(&mut self.staging.logits))?;
        Ok(Some(&self.staging.logits))
    }
}

/// Checks the post model's IO against the layers' hidden size; returns the vocabulary size.
fn post_vocab(path: &Path, groups: &[GroupInfo], hidden: usize) -> Result<usize> {
    let bad = |reason: String| Error::BadFile { path: path.into(), reason };
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
