//! Checking a model package on disk without the NPU, as `ollama create` does
//! before it stores one: the loader's own checks of everything the files say
//! by themselves (layout and layer count, tokenizer, `post_config.json`, the
//! embedding table, and each model file's container, read to its end).
//!
//! The shape groups, and with them the context length, are what the runtime
//! reports once a model is on a card. Without one they are known only for
//! the simulator's files, whose header lists them; a real `.axmodel` is
//! checked as a container only (see [`container`]).

mod container;

pub use container::Container;

use crate::engine::Geometry;
use crate::error::{Error, Result};
use crate::model::config::{PostConfig, read_json};
use crate::model::{Embeddings, ModelFiles, Tokenizer};
use crate::sampling::SamplingOptions;
use serde::Deserialize;
use std::path::Path;

/// What a package's files say about the model, once they passed the checks.
#[derive(Debug)]
pub struct PackageReport {
    pub files: ModelFiles,
    /// The layers' geometry, when the files describe their shape groups.
    pub geometry: Option<Geometry>,
    /// Vocabulary (post model output), when the files describe it.
    pub vocab: Option<usize>,
    /// The tokenizer's chat template (`tokenizer_config.json` or `chat_template.jinja`).
    pub chat_template: Option<String>,
    /// The package's sampling defaults (`post_config.json`) exactly as a
    /// loaded model uses them; `None` when the package has none.
    pub sampling_defaults: Option<SamplingOptions>,
}

impl PackageReport {
    /// Positions a conversation may occupy, when known without the card.
    pub fn context_length(&self) -> Option<usize> {
        self.geometry.as_ref().map(Geometry::max_positions)
    }
    /// The longest prompt prefilled in chunks, when known without the card.
    pub fn max_prefill(&self) -> Option<usize> {
        self.geometry.as_ref().map(Geometry::max_prefill)
    }
    /// Hidden size, when known without the card.
    pub fn hidden(&self) -> Option<usize> {
        self.geometry.as_ref().map(|g| g.hidden)
    }
}

/// The Hugging Face `config.json` numbers used when the model files do not
/// describe themselves.
#[derive(Debug, Default, Deserialize)]
struct HfSizes {
    hidden_size: Option<usize>,
}

/// Checks the package at `dir` without the NPU runtime. Errors name the file
/// at fault, as the loader's do.
pub fn check_package(dir: &Path) -> Result<PackageReport> {
    let files = ModelFiles::discover(dir)?;
    let tokenizer = Tokenizer::load(&files.tokenizer, &files.hf_dirs)?;
    let post_config: Option<PostConfig> = files.post_config.as_deref().map(read_json).transpose()?;

    let mut geometry: Option<Geometry> = None;
    for (i, path) in files.layers.iter().enumerate() {
        let Container::Groups(groups) = container::read(path)? else { continue };
        let g = Geometry::derive(path, &groups)?;
        match &geometry {
            Some(first) if !first.same_shape(&g) => {
                return Err(Error::BadFile {
                    path: path.clone(),
                    reason: format!("layer {i} has different shapes than layer 0 ({g:?} vs {first:?})"),
                });
            }
            Some(_) => {}
            None => geometry = Some(g),
        }
    }
    let vocab = match (container::read(&files.post)?, &geometry) {
        (Container::Groups(groups), Some(g)) => Some(crate::engine::resident::post_vocab(&files.post, &groups, g.hidden)?),
        _ => None,
    };

    check_embedding(&files, &tokenizer, geometry.as_ref(), vocab)?;
    Ok(PackageReport {
        chat_template: tokenizer.chat_template().map(str::to_owned),
        sampling_defaults: post_config.as_ref().map(SamplingOptions::from_post_config),
        files,
        geometry,
        vocab,
    })
}

/// The embedding table against the sizes the package states: exactly
/// `V x H` bf16 values as the loader requires, when both are known (from the
/// runtime config or the model files); otherwise whole rows of the Hugging
/// Face hidden size, at least as many as the tokenizer has tokens.
fn check_embedding(files: &ModelFiles, tokenizer: &Tokenizer, geometry: Option<&Geometry>, vocab: Option<usize>) -> Result<()> {
    let config = files.root.join("config.json");
    let from_runtime = files.runtime_config.as_ref().map(|c| (c.tokens_embed_num, c.tokens_embed_size));
    if let (Some((num, size)), Some(g), Some(v)) = (from_runtime, geometry, vocab)
        && (num, size) != (v, g.hidden)
    {
        return Err(Error::BadFile {
            path: config,
            reason: format!(
                "tokens_embed_num/size are {num}/{size} but the models report vocabulary {v} and hidden size {}",
                g.hidden
            ),
        });
    }
    let sizes = from_runtime.or(geometry.zip(vocab).map(|(g, v)| (v, g.hidden)));
    let rows = match sizes {
        Some((rows, hidden)) => {
            Embeddings::open(&files.embedding, rows, hidden)?;
            rows
        }
        None => {
            let bad = |reason: String| Error::BadFile { path: files.embedding.clone(), reason };
            let len = std::fs::metadata(&files.embedding).map_err(|e| bad(e.to_string()))?.len();
            let hidden = hf_hidden_size(files).unwrap_or(1);
            let row = hidden as u64 * 2;
            if len == 0 || len % row != 0 {
                return Err(bad(format!("embedding table is {len} bytes: not whole rows of {hidden} bf16 values")));
            }
            (len / row) as usize
        }
    };
    if tokenizer.vocab_size() > rows {
        return Err(Error::Tokenizer {
            path: files.tokenizer.clone(),
            reason: format!("{} tokens but the model's vocabulary has {rows}", tokenizer.vocab_size()),
        });
    }
    Ok(())
}

/// `hidden_size` from the first Hugging Face `config.json` that states it.
fn hf_hidden_size(files: &ModelFiles) -> Option<usize> {
    files.hf_dirs.iter().map(|d| d.join("config.json")).filter(|p| p.is_file()).find_map(|p| {
        let bytes = std::fs::read(p).ok()?;
        serde_json::from_slice::<HfSizes>(&bytes).ok()?.hidden_size.filter(|&h| h > 0)
    })
}
