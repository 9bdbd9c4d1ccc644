//! Reading the tensors of a Hugging Face checkpoint from its safetensors
//! files (single or sharded), converting them to bf16.

use super::hf::{EMBED, FINAL_NORM, HfConfig, LM_HEAD};
use anyhow::{Context, Result, bail, ensure};
use safetensors::Dtype;
use safetensors::tensor::TensorInfo;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const INDEX_FILE: &str = "model.safetensors.index.json";
/// Safetensors headers are JSON; anything larger than this is a corrupt file.
const MAX_SAFETENSORS_HEADER: u64 = 100 << 20;

/// Where one tensor lives.
#[derive(Debug, Clone)]
struct TensorLoc {
    file: PathBuf,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte offset in the file.
    start: u64,
    len: u64,
}

/// The tensors of a checkpoint, indexed from the safetensors headers; data is
/// read on demand so a multi-gigabyte checkpoint is never held in memory whole.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    dir: PathBuf,
    tensors: HashMap<String, TensorLoc>,
}

impl Checkpoint {
    /// Indexes `dir/model.safetensors.index.json`'s shards if the index exists,
    /// else every `*.safetensors` file in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join(INDEX_FILE);
        let mut tensors = HashMap::new();
        if index_path.exists() {
            let weight_map = read_index(&index_path)?;
            let mut shards: Vec<&String> = weight_map.values().collect();
            shards.sort();
            shards.dedup();
            for shard in shards {
                let path = dir.join(shard);
                ensure!(path.is_file(), "shard {} listed in {} is missing", path.display(), index_path.display());
                add_file(&mut tensors, &path)?;
            }
            for (name, shard) in &weight_map {
                let found = tensors.get(name).is_some_and(|t| t.file == dir.join(shard));
                ensure!(found, "{} maps tensor {name} to {shard}, which does not contain it", index_path.display());
            }
        } else {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
                let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
                if path.extension().is_some_and(|e| e == "safetensors") {
                    files.push(path);
                }
            }
            ensure!(!files.is_empty(), "no *.safetensors file (and no {INDEX_FILE}) in {}", dir.display());
            files.sort();
            for path in files {
                add_file(&mut tensors, &path)?;
            }
        }
        Ok(Self { dir: dir.to_owned(), tensors })
    }

    /// Checks the whole checkpoint against the config before anything is
    /// written: every weight present with its shape and a supported dtype, and
    /// no tensor the model would not have (a quantized checkpoint, another
    /// architecture), which packing would otherwise silently drop.
    pub fn validate(&self, cfg: &HfConfig) -> Result<()> {
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let mut expected = vec![(EMBED.to_owned(), vec![v, h]), (FINAL_NORM.to_owned(), vec![h])];
        if !cfg.tie_word_embeddings {
            expected.push((LM_HEAD.to_owned(), vec![v, h]));
        }
        let specs = cfg.layer_weights();
        for i in 0..cfg.num_hidden_layers {
            expected.extend(specs.iter().map(|w| (format!("model.layers.{i}.{}", w.name), w.shape.clone())));
        }
        for (name, shape) in &expected {
            self.locate(name, shape)?;
        }
        let known: HashSet<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
        let mut unexpected: Vec<(&String, &TensorLoc)> = self
            .tensors
            .iter()
            .filter(|(name, _)| {
                // A tied lm_head may still be saved; rotary buffers are recomputed.
                !(name.as_str() == LM_HEAD || name.ends_with("rotary_emb.inv_freq") || known.contains(name.as_str()))
            })
            .collect();
        unexpected.sort_by_key(|(name, _)| *name);
        if let Some((name, loc)) = unexpected.first() {
            bail!(
                "unexpected tensor {name} in {} ({} unexpected in all): not part of a {} model with \
                 {} layers as config.json describes it (quantized or different architecture?)",
                loc.file.display(),
                unexpected.len(),
                cfg.family.prefix(),
                cfg.num_hidden_layers
            );
        }
        Ok(())
    }

    /// A tensor's location, checked for shape and a dtype [`to_bf16`] converts.
    fn locate(&self, name: &str, shape: &[usize]) -> Result<&TensorLoc> {
        let Some(loc) = self.tensors.get(name) else {
            bail!("tensor {name} is missing from the checkpoint in {}", self.dir.display())
        };
        ensure!(
            loc.shape == shape,
            "tensor {name} in {} has shape {:?}, expected {shape:?} from config.json",
            loc.file.display(),
            loc.shape
        );
        ensure!(
            matches!(loc.dtype, Dtype::BF16 | Dtype::F16 | Dtype::F32),
            "tensor {name} in {} has dtype {:?}; only BF16, F16 and F32 are supported (quantized checkpoints are not)",
            loc.file.display(),
            loc.dtype
        );
        Ok(loc)
    }

    /// Reads a tensor, checks its shape and converts it to little-endian bf16
    /// (round to nearest even) from bf16, f16 or f32.
    pub fn read_bf16(&self, name: &str, shape: &[usize]) -> Result<Vec<u8>> {
        let loc = self.locate(name, shape)?;
        let mut f = File::open(&loc.file).with_context(|| format!("opening {}", loc.file.display()))?;
        let mut raw = vec![0u8; usize::try_from(loc.len)?];
        f.seek(SeekFrom::Start(loc.start))
            .and_then(|_| f.read_exact(&mut raw))
            .with_context(|| format!("reading tensor {name} from {}", loc.file.display()))?;
        to_bf16(loc.dtype, raw).with_context(|| format!("tensor {name} in {}", loc.file.display()))
    }
}

fn read_index(path: &Path) -> Result<BTreeMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let index: Index = serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(index.weight_map)
}

/// Adds the tensors of one safetensors file to the index, reading only its header.
fn add_file(tensors: &mut HashMap<String, TensorLoc>, path: &Path) -> Result<()> {
    let ctx = || format!("reading safetensors header of {}", path.display());
    let mut f = File::open(path).with_context(ctx)?;
    let file_len = f.metadata().with_context(ctx)?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n).with_context(ctx)?;
    let n = u64::from_le_bytes(n);
    ensure!(
        n <= MAX_SAFETENSORS_HEADER && 8 + n <= file_len,
        "{} is not a safetensors file (header length {n}, file length {file_len})",
        path.display()
    );
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).with_context(ctx)?;
    let header: BTreeMap<String, Value> = serde_json::from_slice(&header).with_context(ctx)?;
    let data_start = 8 + n;
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let info: TensorInfo = serde_json::from_value(info)
            .with_context(|| format!("tensor {name} in {}: bad header entry", path.display()))?;
        let (begin, end) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
        let want = info.shape.iter().product::<usize>() as u64 * info.dtype.bitsize() as u64 / 8;
        ensure!(
            end >= begin && end - begin == want && data_start + end <= file_len,
            "tensor {name} in {}: data offsets {:?} do not match its shape {:?} and dtype {:?} or the file length",
            path.display(),
            info.data_offsets,
            info.shape,
            info.dtype
        );
        let loc = TensorLoc {
            file: path.to_owned(),
            dtype: info.dtype,
            shape: info.shape,
            start: data_start + begin,
            len: end - begin,
        };
        if let Some(prev) = tensors.insert(name.clone(), loc) {
            bail!("tensor {name} is in both {} and {}", prev.file.display(), path.display());
        }
    }
    Ok(())
}

/// Converts raw little-endian tensor bytes to bf16 with round-to-nearest-even.
fn to_bf16(dtype: Dtype, raw: Vec<u8>) -> Result<Vec<u8>> {
    let convert = |f: f32| half::bf16::from_f32(f).to_bits().to_le_bytes();
    Ok(match dtype {
        Dtype::BF16 => raw,
        Dtype::F16 => raw
            .chunks_exact(2)
            .flat_map(|c| convert(half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()))
            .collect(),
        Dtype::F32 => raw.chunks_exact(4).flat_map(|c| convert(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
        other => bail!("dtype {other:?} is not supported (only BF16, F16 and F32; quantized checkpoints are not)"),
    })
}
