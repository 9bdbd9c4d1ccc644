//! The vendor's JSON files, field for field (contract §1.5, §1.6), plus the
//! Hugging Face files we read the end-of-generation set from.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The newest vendor runtime `config.json` (contract §1.5). Only the fields the
/// loader needs are typed; unknown fields are ignored as the vendor loader does.
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeConfig {
    pub model_name: Option<String>,
    pub tokenizer_type: Option<String>,
    pub url_tokenizer_model: Option<String>,
    pub template_filename_axmodel: String,
    pub axmodel_num: usize,
    pub filename_post_axmodel: String,
    pub filename_tokens_embed: String,
    pub tokens_embed_num: usize,
    pub tokens_embed_size: usize,
    pub post_config_path: Option<String>,
    #[serde(default)]
    pub devices: Vec<usize>,
    /// Hybrid models (contract §10.2): every this-many-th layer (1-based) is
    /// full attention, the others linear attention; 0 or absent: all full.
    #[serde(default)]
    pub full_attention_interval: Option<usize>,
    /// Hybrid models: each layer's kind (`full_attention`, `linear_attention`);
    /// wins over `full_attention_interval`.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
}

/// `post_config.json`: the package's sampling defaults (contract §1.6). The
/// vendor reads all nine keys unconditionally, so all nine are required.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct PostConfig {
    pub enable_temperature: bool,
    pub temperature: f32,
    pub enable_repetition_penalty: bool,
    pub repetition_penalty: f32,
    pub penalty_window: i32,
    pub enable_top_p_sampling: bool,
    pub top_p: f32,
    pub enable_top_k_sampling: bool,
    pub top_k: i32,
}

/// Reads and parses a JSON file, naming the file in every error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::BadFile { path: path.into(), reason: e.to_string() })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::BadFile { path: path.into(), reason: format!("invalid JSON: {e}") })
}

/// What a `config.json` in a model directory is.
#[derive(Debug)]
pub enum ConfigKind {
    /// 0 bytes: the placeholder of the mid-2025 packages.
    Placeholder,
    /// The newest vendor runtime format.
    Runtime(Box<RuntimeConfig>),
    /// Some other JSON object (for example a copied Hugging Face config).
    Other,
}

/// Classifies `dir/config.json` (absent → `None`).
pub fn classify_config(path: &Path) -> Result<Option<ConfigKind>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::BadFile { path: path.into(), reason: e.to_string() }),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(ConfigKind::Placeholder));
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::BadFile { path: path.into(), reason: format!("invalid JSON: {e}") })?;
    if value.get("template_filename_axmodel").is_none() {
        return Ok(Some(ConfigKind::Other));
    }
    let cfg: RuntimeConfig = serde_json::from_value(value)
        .map_err(|e| Error::BadFile { path: path.into(), reason: format!("not a valid runtime config: {e}") })?;
    Ok(Some(ConfigKind::Runtime(Box::new(cfg))))
}

/// Token ids or strings naming end-of-generation tokens, in the several
/// shapes Hugging Face files use (`2`, `[1, 2]`, `"</s>"`, `{"content": "</s>"}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenRef {
    Id(u32),
    Ids(Vec<u32>),
    Text(String),
    Added { content: String },
}

/// The fields of the Hugging Face JSON files that matter to generation.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct HfGenerationFields {
    pub eos_token_id: Option<TokenRef>,
    pub eos_token: Option<TokenRef>,
    pub bos_token: Option<TokenRef>,
    pub add_bos_token: Option<bool>,
    pub chat_template: Option<serde_json::Value>,
}

impl HfGenerationFields {
    /// Reads the file if present; a malformed file is an error naming it.
    pub fn read_optional(path: &Path) -> Result<Option<Self>> {
        if !path.is_file() || std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            return Ok(None);
        }
        read_json(path).map(Some)
    }
}
