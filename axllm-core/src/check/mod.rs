//! Checking a model package on disk without the NPU, as `ollama create` does
//! before it stores one: the loader's own checks of everything the files say
//! by themselves (layout and layer count, tokenizer, `post_config.json`, the
//! embedding table, and each model file's container, read to its end), with
//! the loader's rule that every file stays inside the package.
//!
//! The shape groups, and with them the context length, are what the runtime
//! reports once a model is on a card. Without one they are known only for
//! the simulator's files, whose header lists them; a real `.axmodel` is
//! checked as a container only (see [`container`]).

pub(crate) mod container;

use crate::engine::geometry::Geometry;
use crate::engine::hybrid::{LayerKind, LinearGeometry, kind_from_io};
use crate::error::{Error, Result};
use crate::package::config::{PostConfig, read_json};
use crate::package::{Embeddings, ModelFiles, Tokenizer};
use crate::sampling::SamplingOptions;
use container::Container;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What a package's files say about the model, once they passed the checks
/// of [`check_package`]. Sizes are `None` when only the runtime can tell
/// (the shape groups of a real `.axmodel`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PackageReport {
    /// Decoder layers.
    pub layers: usize,
    /// Positions a conversation may occupy.
    pub context_length: Option<usize>,
    /// The longest prompt prefilled in chunks from an empty cache.
    pub max_prefill: Option<usize>,
    /// Hidden size.
    pub hidden_size: Option<usize>,
    /// Vocabulary size (the post model's output).
    pub vocab: Option<usize>,
    /// The tokenizer's chat template (`tokenizer_config.json` or `chat_template.jinja`).
    pub chat_template: Option<String>,
    /// The package's sampling defaults (`post_config.json`) exactly as a
    /// loaded model uses them ([`crate::Model::default_sampling`]); `None`
    /// when the package has none.
    pub sampling_defaults: Option<SamplingOptions>,
}

/// The Hugging Face `config.json` numbers used when the model files do not
/// describe themselves.
#[derive(Debug, Default, Deserialize)]
struct HfSizes {
    hidden_size: Option<usize>,
}

/// Checks the package at `dir` without the NPU runtime (the library is not
/// loaded). `link_roots` are as in [`crate::LoadOptions::link_roots`]: the
/// directories outside the package its symlinks may point into (normally
/// none). Errors are [`Error::BadPackage`], naming the file at fault as the
/// loader's do.
pub fn check_package(dir: &Path, link_roots: &[PathBuf]) -> Result<PackageReport> {
    let files = ModelFiles::discover(dir, link_roots)?;
    let pkg = &files.dir;
    let tokenizer = Tokenizer::load(pkg, &files.tokenizer, &files.hf_dirs)?;
    let post_config: Option<PostConfig> = files.post_config.as_deref().map(|p| read_json(pkg, p)).transpose()?;

    // As the loader does: each layer's kind from its IO, the first
    // full-attention layer as the reference for the context geometry, every
    // other full layer shaped like it, linear layers checked against it.
    let mut layers = Vec::with_capacity(files.layers.len());
    for path in &files.layers {
        if let Container::Groups(groups) = container::read(pkg, path)? {
            layers.push((path, groups));
        }
    }
    let kinds: Vec<LayerKind> = layers.iter().map(|(_, groups)| kind_from_io(groups)).collect();
    let mut geometry: Option<Geometry> = None;
    if let Some(reference) = kinds.iter().position(|k| *k == LayerKind::Full) {
        let (ref_path, ref_groups) = &layers[reference];
        let first = Geometry::derive(ref_path, ref_groups).map_err(|e| e.in_package(dir))?;
        for (i, ((path, groups), kind)) in layers.iter().zip(&kinds).enumerate() {
            match kind {
                LayerKind::Full => {
                    let g = Geometry::derive(path, groups).map_err(|e| e.in_package(dir))?;
                    if !first.same_shape(&g) {
                        return Err(Error::bad_file(
                            *path,
                            format!("layer {i} has different shapes than layer {reference} ({g:?} vs {first:?})"),
                        )
                        .in_package(dir));
                    }
                }
                LayerKind::Linear => {
                    LinearGeometry::derive(path, groups, first.hidden, first.chunk).map_err(|e| e.in_package(dir))?;
                }
            }
        }
        geometry = Some(first);
    } else if let Some((path, _)) = layers.first() {
        return Err(Error::bad_file(*path, "no full-attention layer: the context geometry comes from one").in_package(dir));
    }
    let vocab = match (container::read(pkg, &files.post)?, &geometry) {
        (Container::Groups(groups), Some(g)) => Some(
            crate::engine::resident::post_vocab(&files.post, &groups, g.hidden).map_err(|e| e.in_package(dir))?,
        ),
        _ => None,
    };

    check_embedding(&files, &tokenizer, geometry.as_ref(), vocab).map_err(|e| e.in_package(dir))?;
    Ok(PackageReport {
        layers: files.layers.len(),
        context_length: geometry.as_ref().map(Geometry::max_positions),
        max_prefill: geometry.as_ref().map(Geometry::max_prefill),
        hidden_size: geometry.as_ref().map(|g| g.hidden),
        vocab,
        chat_template: tokenizer.chat_template().map(str::to_owned),
        sampling_defaults: post_config.as_ref().map(SamplingOptions::from_post_config),
    })
}

/// The embedding table against the sizes the package states: exactly
/// `V x H` bf16 values as the loader requires, when both are known (from the
/// runtime config or the model files); otherwise whole rows of the Hugging
/// Face hidden size, at least as many as the tokenizer has tokens.
fn check_embedding(files: &ModelFiles, tokenizer: &Tokenizer, geometry: Option<&Geometry>, vocab: Option<usize>) -> Result<()> {
    let pkg = &files.dir;
    let config = pkg.root().join("config.json");
    let from_runtime = files.runtime_config.as_ref().map(|c| (c.tokens_embed_num, c.tokens_embed_size));
    if let (Some((num, size)), Some(g), Some(v)) = (from_runtime, geometry, vocab)
        && (num, size) != (v, g.hidden)
    {
        return Err(Error::bad_file(
            config,
            format!(
                "tokens_embed_num/size are {num}/{size} but the models report vocabulary {v} and hidden size {}",
                g.hidden
            ),
        ));
    }
    let sizes = from_runtime.or(geometry.zip(vocab).map(|(g, v)| (v, g.hidden)));
    let file = pkg.open(&files.embedding)?;
    let rows = match sizes {
        Some((rows, hidden)) => {
            Embeddings::open(&file, &files.embedding, rows, hidden)?;
            rows
        }
        None => {
            let bad = |reason: String| Error::bad_file(&files.embedding, reason);
            let len = file.metadata().map_err(|e| Error::bad_file_from(&files.embedding, "cannot read the metadata", e))?.len();
            let hidden = hf_hidden_size(files).unwrap_or(1);
            let row = hidden as u64 * 2;
            if len == 0 || len % row != 0 {
                return Err(bad(format!("embedding table is {len} bytes: not whole rows of {hidden} bf16 values")));
            }
            (len / row) as usize
        }
    };
    if tokenizer.vocab_size() > rows {
        return Err(Error::bad_file(
            &files.tokenizer,
            format!("{} tokens but the model's vocabulary has {rows}", tokenizer.vocab_size()),
        ));
    }
    Ok(())
}

/// `hidden_size` from the first Hugging Face `config.json` that states it
/// (read through the package, so a link outside is not followed).
fn hf_hidden_size(files: &ModelFiles) -> Option<usize> {
    files.hf_dirs.iter().map(|d| d.join("config.json")).filter(|p| files.dir.has_file(p)).find_map(|p| {
        let bytes = files.dir.read(&p).ok()?;
        serde_json::from_slice::<HfSizes>(&bytes).ok()?.hidden_size.filter(|&h| h > 0)
    })
}
