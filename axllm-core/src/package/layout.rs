//! Finding the files of a vendor model package, in the vendor's three layouts:
//! the newest runtime `config.json`, a mid-2025 Hugging Face package root
//! (compiled subdirectory, run scripts, tokenizer folder, 0-byte config.json),
//! or the compiled directory alone. Every name a configuration gives is checked
//! by [`PackageDir::named`]; every file is opened through [`PackageDir`].

use super::config::{ConfigKind, RuntimeConfig, classify_config};
use super::paths::PackageDir;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The standard embedding file name of the vendor's packages.
pub const EMBED_FILE: &str = "model.embed_tokens.weight.bfloat16.bin";

/// Every file the loader needs, found.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// The package directory and the roots its files may resolve into.
    pub dir: PackageDir,
    /// The directory holding the layer files.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // for the inspect example
    pub compiled_dir: PathBuf,
    /// File-name prefix of the layer files (`qwen3` in `qwen3_p128_l0_together.axmodel`).
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // for the inspect example
    pub prefix: String,
    /// One file per decoder layer, in order.
    pub layers: Vec<PathBuf>,
    /// The post model (final norm and lm_head).
    pub post: PathBuf,
    /// The bf16 embedding table.
    pub embedding: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `post_config.json`, when the package has one.
    pub post_config: Option<PathBuf>,
    /// The runtime config.json, when the package has one.
    pub runtime_config: Option<RuntimeConfig>,
    /// Directories searched for Hugging Face JSON files, most specific first.
    pub hf_dirs: Vec<PathBuf>,
    /// Display name.
    pub name: String,
}

/// A layer file name split into its parts: `<prefix>_p<T>_l<i>_together.axmodel`.
fn parse_layer_name(name: &str) -> Option<(&str, usize, usize)> {
    let stem = name.strip_suffix("_together.axmodel")?;
    let (head, idx) = stem.rsplit_once("_l")?;
    let (prefix, t) = head.rsplit_once("_p")?;
    let t: usize = t.parse().ok()?;
    let idx: usize = idx.parse().ok()?;
    (!prefix.is_empty()).then_some((prefix, t, idx))
}

fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::bad_file_from(dir, "cannot list the directory", e))?;
    let mut out: Vec<(String, PathBuf)> =
        rd.filter_map(|e| e.ok()).filter_map(|e| Some((e.file_name().into_string().ok()?, e.path()))).collect();
    out.sort();
    Ok(out)
}

/// Layer files of one directory grouped by (prefix, chunk): index → path.
type LayerSets = BTreeMap<(String, usize), BTreeMap<usize, PathBuf>>;

fn layer_sets(dir: &Path) -> Result<LayerSets> {
    let mut sets = LayerSets::new();
    for (name, path) in list_dir(dir)? {
        if let Some((prefix, t, i)) = parse_layer_name(&name) {
            sets.entry((prefix.to_owned(), t)).or_default().insert(i, path);
        }
    }
    Ok(sets)
}

/// A file the package needs: missing is an error naming it and what it is for.
fn require_file(path: PathBuf, what: &str) -> Result<PathBuf> {
    if path.is_file() { Ok(path) } else { Err(Error::bad_file(path, format!("missing ({what})"))) }
}

impl ModelFiles {
    /// Finds the files of the package at `path`, whose symlinks may point into
    /// `link_roots` (normally none) but nowhere else outside it.
    pub fn discover(path: &Path, link_roots: &[PathBuf]) -> Result<ModelFiles> {
        let dir = PackageDir::new(path, link_roots)?;
        let found = match classify_config(&dir, &path.join("config.json"))? {
            Some(ConfigKind::Runtime(cfg)) => Self::from_runtime_config(dir, *cfg),
            _ => Self::from_file_names(dir),
        };
        found.map_err(|e| e.in_package(path))
    }

    fn from_runtime_config(dir: PackageDir, cfg: RuntimeConfig) -> Result<ModelFiles> {
        let root = dir.root().to_path_buf();
        let root = root.as_path();
        let config_path = root.join("config.json");
        let template = &cfg.template_filename_axmodel;
        if template.matches("%d").count() != 1 {
            return Err(Error::bad_file(
                config_path,
                format!("template_filename_axmodel {template:?} must contain exactly one %d"),
            ));
        }
        if cfg.axmodel_num == 0 {
            return Err(Error::bad_file(config_path, "axmodel_num is 0"));
        }
        let layer_name =
            |i: usize| dir.named("config.json: template_filename_axmodel", &template.replace("%d", &i.to_string()));
        let layers = (0..cfg.axmodel_num)
            .map(|i| require_file(layer_name(i)?, &format!("decoder layer {i}")))
            .collect::<Result<Vec<_>>>()?;
        let extra = layer_name(cfg.axmodel_num)?;
        if extra.is_file() {
            return Err(Error::bad_file(
                config_path,
                format!(
                    "axmodel_num is {} but {} also exists: the layer count does not match",
                    cfg.axmodel_num,
                    extra.strip_prefix(root).unwrap_or(&extra).display()
                ),
            ));
        }
        let compiled_dir = layers[0].parent().unwrap_or(root).to_path_buf();
        let prefix = layers[0]
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_layer_name)
            .map(|(p, _, _)| p.to_owned())
            .unwrap_or_default();
        let post = require_file(
            dir.named("config.json: filename_post_axmodel", &cfg.filename_post_axmodel)?,
            "post model (filename_post_axmodel)",
        )?;
        let embedding = require_file(
            dir.named("config.json: filename_tokens_embed", &cfg.filename_tokens_embed)?,
            "embedding table (filename_tokens_embed)",
        )?;
        let post_config = match cfg.post_config_path.as_deref() {
            Some(p) => Some(dir.named("config.json: post_config_path", p)?).filter(|p| p.is_file()),
            None => None,
        };
        let explicit_tok = match cfg.url_tokenizer_model.as_deref() {
            Some(u) if u.ends_with(".json") && !u.contains("://") => {
                Some(dir.named("config.json: url_tokenizer_model", u)?)
            }
            _ => None,
        };
        let tokenizer = match explicit_tok {
            Some(p) => require_file(p, "tokenizer (url_tokenizer_model)")?,
            None => find_tokenizer(root, &compiled_dir, &prefix)?,
        };
        let name = cfg.model_name.clone().unwrap_or_else(|| dir_name(root));
        let hf_dirs = hf_dirs(&tokenizer, &compiled_dir, root);
        Ok(ModelFiles {
            dir,
            compiled_dir,
            prefix,
            layers,
            post,
            embedding,
            tokenizer,
            post_config,
            runtime_config: Some(cfg),
            hf_dirs,
            name,
        })
    }

    fn from_file_names(dir: PackageDir) -> Result<ModelFiles> {
        let root = dir.root().to_path_buf();
        let root = root.as_path();
        // The compiled directory is the root itself or exactly one subdirectory.
        let mut sets = layer_sets(root)?;
        let mut compiled_dir = root.to_path_buf();
        if sets.is_empty() {
            let mut found = Vec::new();
            for (_, p) in list_dir(root)? {
                if p.is_dir() {
                    let s = layer_sets(&p)?;
                    if !s.is_empty() {
                        found.push((p, s));
                    }
                }
            }
            match found.len() {
                0 => {
                    return Err(Error::bad_file(
                        root,
                        "not an AX650 model package: no <prefix>_p<T>_l<i>_together.axmodel layer files here or in a subdirectory",
                    ));
                }
                1 => (compiled_dir, sets) = found.pop().expect("one entry"),
                _ => {
                    let names: Vec<String> =
                        found.iter().map(|(p, _)| p.strip_prefix(root).unwrap_or(p).display().to_string()).collect();
                    return Err(Error::bad_file(
                        root,
                        format!("several compiled model directories ({}); name one of them", names.join(", ")),
                    ));
                }
            }
        }
        if sets.len() > 1 {
            let kinds: Vec<String> = sets.keys().map(|(p, t)| format!("{p}_p{t}")).collect();
            return Err(Error::bad_file(
                compiled_dir,
                format!("layer files of several models ({}) in one directory", kinds.join(", ")),
            ));
        }
        let ((prefix, chunk), files) = sets.pop_first().expect("one set");
        let count = files.keys().max().map_or(0, |m| m + 1);
        let layers = (0..count)
            .map(|i| {
                files.get(&i).cloned().ok_or_else(|| {
                    Error::bad_file(
                        compiled_dir.join(format!("{prefix}_p{chunk}_l{i}_together.axmodel")),
                        format!("missing (decoder layer {i} of {count})"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        check_run_scripts(&dir, count)?;
        let post = require_file(compiled_dir.join(format!("{prefix}_post.axmodel")), "post model")?;
        let embedding = require_file(compiled_dir.join(EMBED_FILE), "embedding table")?;
        let parent = compiled_dir.parent().map(Path::to_path_buf);
        let post_config = [Some(compiled_dir.clone()), Some(root.to_path_buf()), parent]
            .into_iter()
            .flatten()
            .map(|d| d.join("post_config.json"))
            .find(|p| p.is_file());
        let tokenizer = find_tokenizer(root, &compiled_dir, &prefix)?;
        let hf_dirs = hf_dirs(&tokenizer, &compiled_dir, root);
        Ok(ModelFiles {
            name: dir_name(root),
            dir,
            compiled_dir,
            prefix,
            layers,
            post,
            embedding,
            tokenizer,
            post_config,
            runtime_config: None,
            hf_dirs,
        })
    }
}

fn dir_name(p: &Path) -> String {
    p.canonicalize()
        .ok()
        .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| p.display().to_string())
}

fn hf_dirs(tokenizer: &Path, compiled: &Path, root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for d in [tokenizer.parent(), Some(compiled), Some(root)].into_iter().flatten() {
        if !dirs.iter().any(|x: &PathBuf| x == d) {
            dirs.push(d.to_path_buf());
        }
    }
    dirs
}

/// The vendor run scripts (`run_*.sh`) name `--axmodel_num`; when they do, it
/// must agree with the layer files found.
fn check_run_scripts(dir: &PackageDir, count: usize) -> Result<()> {
    for (name, path) in list_dir(dir.root())? {
        if !(name.starts_with("run") && name.ends_with(".sh")) {
            continue;
        }
        let Ok(text) = String::from_utf8(dir.read(&path)?) else { continue };
        let mut words = text.split_whitespace();
        while let Some(w) = words.next() {
            if w == "--axmodel_num"
                && let Some(n) = words.next().and_then(|v| v.trim_matches(['"', '\'', '\\']).parse::<usize>().ok())
                && n != count
            {
                return Err(Error::bad_file(path, format!("--axmodel_num {n} but {count} layer files were found")));
            }
        }
    }
    Ok(())
}

/// Looks for `tokenizer.json`: beside the layers, in the root, in a
/// `<prefix>_tokenizer/` folder (preferred: the Qwen3 packages also ship a
/// `qwen2.5_tokenizer/`), in any `*_tokenizer/` or `tokenizer/` folder.
fn find_tokenizer(root: &Path, compiled: &Path, prefix: &str) -> Result<PathBuf> {
    let mut candidates = vec![compiled.join("tokenizer.json"), root.join("tokenizer.json")];
    let mut bases = vec![root.to_path_buf()];
    if let Some(p) = compiled.parent().filter(|p| *p != root) {
        bases.push(p.to_path_buf());
    }
    for base in &bases {
        candidates.push(base.join(format!("{prefix}_tokenizer")).join("tokenizer.json"));
        candidates.push(base.join("tokenizer").join("tokenizer.json"));
        if let Ok(entries) = list_dir(base) {
            candidates.extend(
                entries
                    .into_iter()
                    .filter(|(n, p)| n.ends_with("_tokenizer") && p.is_dir())
                    .map(|(_, p)| p.join("tokenizer.json")),
            );
        }
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        Error::bad_file(
            root.join("tokenizer.json"),
            format!("missing tokenizer (also looked in {}, {prefix}_tokenizer/ and *_tokenizer/)", compiled.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names() {
        assert_eq!(parse_layer_name("qwen3_p128_l35_together.axmodel"), Some(("qwen3", 128, 35)));
        assert_eq!(parse_layer_name("qwen3_vl_text_p256_l0_together.axmodel"), Some(("qwen3_vl_text", 256, 0)));
        assert_eq!(
            parse_layer_name("MiniCPMForCausalLM_p128_l2_together.axmodel"),
            Some(("MiniCPMForCausalLM", 128, 2))
        );
        assert_eq!(parse_layer_name("qwen3_post.axmodel"), None);
        assert_eq!(parse_layer_name("tinyllama_l3.axmodel"), None);
    }
}
