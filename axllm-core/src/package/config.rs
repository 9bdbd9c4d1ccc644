//! The vendor's JSON files, field for field (the newest runtime `config.json`
//! and `post_config.json`, as the vendor's loader and documentation define
//! them), plus the Hugging Face files we read the end-of-generation set from.
//! Every file is read through [`PackageDir`], so it stays inside the package.

use super::paths::PackageDir;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The newest vendor runtime `config.json`. Only the fields the loader needs
/// are typed; unknown fields are ignored as the vendor loader does. The file
/// names in it are checked by [`PackageDir::named`] before use.
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeConfig {
    /// Display name.
    pub model_name: Option<String>,
    /// Tokenizer and chat-template family (`Qwen3`, ...); not used yet.
    #[allow(dead_code)]
    pub tokenizer_type: Option<String>,
    /// A local tokenizer file (used when it is a `.json` file).
    pub url_tokenizer_model: Option<String>,
    /// The layer files' name, with `%d` for the layer index.
    pub template_filename_axmodel: String,
    /// Number of decoder layers.
    pub axmodel_num: usize,
    /// The post model's file.
    pub filename_post_axmodel: String,
    /// The embedding table's file.
    pub filename_tokens_embed: String,
    /// Rows of the embedding table (the vocabulary).
    pub tokens_embed_num: usize,
    /// Columns of the embedding table (the hidden size).
    pub tokens_embed_size: usize,
    /// The sampling configuration's file.
    pub post_config_path: Option<String>,
    /// Card indices (the vendor's multi-card builds); not used here.
    #[allow(dead_code)]
    #[serde(default)]
    pub devices: Vec<usize>,
    /// Hybrid models (hardware-facts: F28): every this-many-th layer (1-based) is
    /// full attention, the others linear attention; 0 or absent: all full.
    #[serde(default)]
    pub full_attention_interval: Option<usize>,
    /// Hybrid models: each layer's kind (`full_attention`, `linear_attention`);
    /// wins over `full_attention_interval`.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
}

/// `post_config.json`: the package's sampling defaults. The vendor reads all
/// nine keys unconditionally, so all nine are required.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct PostConfig {
    /// Whether `temperature` applies.
    pub enable_temperature: bool,
    /// Sampling temperature.
    pub temperature: f32,
    /// Whether `repetition_penalty` applies.
    pub enable_repetition_penalty: bool,
    /// Penalty on repeated tokens.
    pub repetition_penalty: f32,
    /// Tokens the penalty looks back over.
    pub penalty_window: i32,
    /// Whether `top_p` applies.
    pub enable_top_p_sampling: bool,
    /// Nucleus sampling mass.
    pub top_p: f32,
    /// Whether `top_k` applies.
    pub enable_top_k_sampling: bool,
    /// Tokens kept by top-k sampling.
    pub top_k: i32,
}

/// Parses JSON bytes read from `path`, naming the file in the error.
pub fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::bad_file_from(path, "invalid JSON", e))
}

/// Reads and parses a JSON file of the package, naming the file in every error.
pub fn read_json<T: serde::de::DeserializeOwned>(pkg: &PackageDir, path: &Path) -> Result<T> {
    parse_json(path, &pkg.read(path)?).map_err(|e| e.in_package(pkg.root()))
}

/// What a `config.json` in a model directory is.
#[derive(Debug)]
pub enum ConfigKind {
    /// Empty: the placeholder of the mid-2025 packages.
    Placeholder,
    /// The newest vendor runtime format.
    Runtime(Box<RuntimeConfig>),
    /// Some other JSON object (for example a copied Hugging Face config).
    Other,
}

/// Classifies the package's `config.json` at `path` (absent → `None`).
pub fn classify_config(pkg: &PackageDir, path: &Path) -> Result<Option<ConfigKind>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let bytes = pkg.read(path)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(ConfigKind::Placeholder));
    }
    let value: serde_json::Value = parse_json(path, &bytes).map_err(|e| e.in_package(pkg.root()))?;
    if value.get("template_filename_axmodel").is_none() {
        return Ok(Some(ConfigKind::Other));
    }
    let cfg: RuntimeConfig = serde_json::from_value(value)
        .map_err(|e| Error::bad_file_from(path, "not a valid runtime config", e).in_package(pkg.root()))?;
    Ok(Some(ConfigKind::Runtime(Box::new(cfg))))
}

/// Token ids or strings naming end-of-generation tokens, in the several
/// shapes Hugging Face files use (`2`, `[1, 2]`, `"</s>"`, `{"content": "</s>"}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenRef {
    /// One id.
    Id(u32),
    /// Several ids.
    Ids(Vec<u32>),
    /// A token's text.
    Text(String),
    /// An added-token object.
    Added {
        /// The token's text.
        content: String,
    },
}

/// The fields of the Hugging Face JSON files that matter to generation.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct HfGenerationFields {
    /// End-of-generation ids.
    pub eos_token_id: Option<TokenRef>,
    /// End-of-generation token.
    pub eos_token: Option<TokenRef>,
    /// Beginning-of-sequence token (its text is `bos_token` in chat templates).
    pub bos_token: Option<TokenRef>,
    /// The Jinja chat template (a string or a list of named templates).
    pub chat_template: Option<serde_json::Value>,
}

impl HfGenerationFields {
    /// Reads the file if present; a malformed file is an error naming it.
    pub fn read_optional(pkg: &PackageDir, path: &Path) -> Result<Option<Self>> {
        if !pkg.has_file(path) {
            return Ok(None);
        }
        let bytes = pkg.read(path)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        parse_json(path, &bytes).map(Some).map_err(|e| e.in_package(pkg.root()))
    }
}
