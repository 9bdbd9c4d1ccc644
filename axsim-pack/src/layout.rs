//! The three directory layouts of the vendor's packages and the files around the
//! models: config.json, post_config.json, the tokenizer files, run scripts.

use super::axmodel::ModelSpec;
use super::hf::{Family, HfFile};
use anyhow::{Context, Result, ensure};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Name of the raw bf16 `[V, H]` embedding file.
pub(crate) const EMBED_FILE: &str = "model.embed_tokens.weight.bfloat16.bin";
const POST_CONFIG_FILE: &str = "post_config.json";
/// The tokenizer service address the mid-2025 run scripts pass.
const TOKENIZER_URL: &str = "http://127.0.0.1:12345";

/// Which vendor directory layout to write.
///
/// Derives `clap::ValueEnum` so the CLI can take it directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Layout {
    /// The newest axllm format: one flat directory with a real config.json.
    #[default]
    Axllm,
    /// The mid-2025 Hugging Face package: 0-byte config.json, `<name>-ax650/`, run scripts.
    HfPackage,
    /// Just the compiled directory, with the tokenizer files placed in it.
    Compiled,
}

/// Names and places of everything in one package.
#[derive(Debug, Clone)]
pub(crate) struct Package {
    family: Family,
    name: String,
    layout: Layout,
    layers: usize,
    hidden_size: usize,
    vocab_size: usize,
    chunk: usize,
    /// Hybrid models: the config.json keys naming each layer's kind (hardware-facts: F27).
    hybrid_keys: HybridKeys,
}

/// The hybrid keys of an axllm config.json.
#[derive(Debug, Clone, Default)]
pub(crate) struct HybridKeys {
    pub full_attention_interval: Option<usize>,
    pub layer_types: Option<Vec<&'static str>>,
}

/// post_config.json: all nine keys, in the vendor's order.
#[derive(Serialize)]
struct PostConfig {
    enable_temperature: bool,
    temperature: f64,
    enable_repetition_penalty: bool,
    repetition_penalty: f64,
    penalty_window: u32,
    enable_top_p_sampling: bool,
    top_p: f64,
    enable_top_k_sampling: bool,
    top_k: u32,
}

/// The values the shipped Qwen3 packages use: greedy (top-k 1).
const POST_CONFIG: PostConfig = PostConfig {
    enable_temperature: false,
    temperature: 0.9,
    enable_repetition_penalty: false,
    repetition_penalty: 1.2,
    penalty_window: 20,
    enable_top_p_sampling: false,
    top_p: 0.8,
    enable_top_k_sampling: true,
    top_k: 1,
};

/// The newest axllm config.json: the fields its loader requires.
#[derive(Serialize)]
struct AxllmConfig<'a> {
    model_name: &'a str,
    tokenizer_type: &'a str,
    url_tokenizer_model: String,
    template_filename_axmodel: String,
    axmodel_num: usize,
    filename_post_axmodel: String,
    filename_tokens_embed: &'a str,
    tokens_embed_num: usize,
    tokens_embed_size: usize,
    post_config_path: &'a str,
    devices: [u32; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    full_attention_interval: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_types: Option<&'a [&'static str]>,
}

impl Package {
    /// `name` becomes the display name and, lowercased, the base of the
    /// hf-package directory and script names; it must be a plain file-name
    /// fragment because it ends up in shell scripts.
    pub fn new(spec: &ModelSpec, name: &str, layout: Layout) -> Result<Self> {
        ensure!(
            !name.is_empty()
                && !name.starts_with(['.', '-'])
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "model name {name:?} must be non-empty, not start with '.' or '-', and use only \
             ASCII letters, digits, '.', '_' and '-'"
        );
        Ok(Self {
            family: spec.family,
            name: name.to_owned(),
            layout,
            layers: spec.layers,
            hidden_size: spec.geometry.hidden_size,
            vocab_size: spec.vocab_size,
            chunk: spec.io.chunk,
            hybrid_keys: HybridKeys::default(),
        })
    }

    /// Adds the hybrid keys to the axllm config.json.
    pub fn with_hybrid_keys(mut self, keys: HybridKeys) -> Self {
        self.hybrid_keys = keys;
        self
    }

    /// Lowercase name, as the vendor names its compiled directories (`qwen3-4b-ax650`).
    fn slug(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    fn compiled_dir_name(&self) -> String {
        format!("{}-ax650", self.slug())
    }

    fn tokenizer_dir_name(&self) -> String {
        format!("{}_tokenizer", self.family.prefix())
    }

    /// Where the layer, post and embedding files go.
    pub fn model_dir(&self, out: &Path) -> PathBuf {
        match self.layout {
            Layout::Axllm | Layout::Compiled => out.to_owned(),
            Layout::HfPackage => out.join(self.compiled_dir_name()),
        }
    }

    /// printf template of the layer files.
    fn layer_template(&self) -> String {
        format!("{}_p{}_l%d_together.axmodel", self.family.prefix(), self.chunk)
    }

    pub fn layer_file(&self, index: usize) -> String {
        self.layer_template().replace("%d", &index.to_string())
    }

    pub fn post_file(&self) -> String {
        format!("{}_post.axmodel", self.family.prefix())
    }

    /// Writes everything except the models: post_config.json and, per layout,
    /// config.json, the tokenizer files and the run scripts. `hf_files` holds
    /// the checkpoint's config.json and tokenizer files.
    pub fn write_support_files(&self, out: &Path, hf_files: &[HfFile]) -> Result<Vec<PathBuf>> {
        let post_config = serde_json::to_vec_pretty(&POST_CONFIG).context("serialising post_config.json")?;
        let mut written = vec![write_file(&out.join(POST_CONFIG_FILE), &post_config)?];
        match self.layout {
            Layout::Axllm => {
                written.extend(self.write_tokenizer_dir(out, hf_files)?);
                let cfg = serde_json::to_vec_pretty(&self.axllm_config()).context("serialising config.json")?;
                written.push(write_file(&out.join("config.json"), &cfg)?);
            }
            Layout::HfPackage => {
                written.extend(self.write_tokenizer_dir(out, hf_files)?);
                // The mid-2025 packages ship an empty placeholder config.json.
                written.push(write_file(&out.join("config.json"), b"")?);
                written.extend(self.write_run_scripts(out)?);
            }
            Layout::Compiled => {
                // The checkpoint's config.json stays out: in a model directory a
                // config.json is the axllm runtime config, not the HF one.
                for f in hf_files.iter().filter(|f| f.name != "config.json") {
                    written.push(write_file(&out.join(f.name), &f.bytes)?);
                }
            }
        }
        Ok(written)
    }

    fn write_tokenizer_dir(&self, out: &Path, hf_files: &[HfFile]) -> Result<Vec<PathBuf>> {
        let dir = out.join(self.tokenizer_dir_name());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        hf_files.iter().map(|f| write_file(&dir.join(f.name), &f.bytes)).collect()
    }

    fn axllm_config(&self) -> AxllmConfig<'_> {
        AxllmConfig {
            model_name: &self.name,
            tokenizer_type: self.family.tokenizer_type(),
            url_tokenizer_model: format!("{}/tokenizer.json", self.tokenizer_dir_name()),
            template_filename_axmodel: self.layer_template(),
            axmodel_num: self.layers,
            filename_post_axmodel: self.post_file(),
            filename_tokens_embed: EMBED_FILE,
            tokens_embed_num: self.vocab_size,
            tokens_embed_size: self.hidden_size,
            post_config_path: POST_CONFIG_FILE,
            devices: [0],
            full_attention_interval: self.hybrid_keys.full_attention_interval,
            layer_types: self.hybrid_keys.layer_types.as_deref(),
        }
    }

    /// The three run scripts of the mid-2025 packages:
    /// `run_<name>_{ax650,axcl_x86,axcl_aarch64}.sh`, with the vendor's naming
    /// (lowercase, '-' turned into '_').
    fn write_run_scripts(&self, out: &Path) -> Result<Vec<PathBuf>> {
        let base = self.slug().replace('-', "_");
        let dir = self.compiled_dir_name();
        let flags = [
            ("--system_prompt", "\"You are a helpful assistant.\"".to_owned()),
            ("--kvcache_path", "\"./kvcache\"".to_owned()),
            ("--template_filename_axmodel", format!("\"{dir}/{}\"", self.layer_template())),
            ("--axmodel_num", self.layers.to_string()),
            ("--url_tokenizer_model", format!("\"{TOKENIZER_URL}\"")),
            ("--filename_post_axmodel", format!("\"{dir}/{}\"", self.post_file())),
            ("--filename_tokens_embed", format!("\"{dir}/{EMBED_FILE}\"")),
            ("--tokens_embed_num", self.vocab_size.to_string()),
            ("--tokens_embed_size", self.hidden_size.to_string()),
            ("--use_mmap_load_embed", "1".to_owned()),
            ("--live_print", "1".to_owned()),
            ("--post_config_path", POST_CONFIG_FILE.to_owned()),
        ];
        let scripts = [
            ("ax650", "main_ax650", false),
            ("axcl_x86", "main_axcl_x86", true),
            ("axcl_aarch64", "main_axcl_aarch64", true),
        ];
        let mut written = Vec::new();
        for (suffix, runner, axcl) in scripts {
            let mut text = format!(
                "#!/bin/sh\n# {name}: vendor runner invocation for this package (written by axsim-pack).\n\
                 # Start the tokenizer service for {tok}/ on {TOKENIZER_URL} first.\n./{runner}",
                name = self.name,
                tok = self.tokenizer_dir_name(),
            );
            let axcl_flags = axcl.then_some(("--devices", "0".to_owned()));
            for (flag, value) in flags.iter().cloned().chain(axcl_flags) {
                text.push_str(&format!(" \\\n  {flag} {value}"));
            }
            text.push('\n');
            let path = write_file(&out.join(format!("run_{base}_{suffix}.sh")), text.as_bytes())?;
            make_executable(&path)?;
            written.push(path);
        }
        Ok(written)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_owned())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}
