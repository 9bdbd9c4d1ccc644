//! Hugging Face checkpoint metadata: the family, config.json (read, and
//! written the way transformers does for generated checkpoints), the weights
//! a layer has, and the tokenizer files a package carries.

use super::rope::RopeScaling;
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value, json};
use std::path::Path;

/// A Hugging Face side file (tokenizer, configs) to place in the package.
#[derive(Debug, Clone)]
pub(crate) struct HfFile {
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

pub(crate) const EMBED: &str = "model.embed_tokens.weight";
pub(crate) const FINAL_NORM: &str = "model.norm.weight";
pub(crate) const LM_HEAD: &str = "lm_head.weight";

/// A supported upstream architecture.
///
/// Derives `clap::ValueEnum` so the CLI can take it directly (`qwen3`, `qwen2`,
/// `llama`, `qwen3_5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Family {
    Qwen3,
    Qwen2,
    Llama,
    /// Qwen3.5, the hybrid of Gated DeltaNet and full attention (see `pack::hybrid`).
    #[value(name = "qwen3_5")]
    Qwen35,
}

impl Family {
    /// File-name prefix of the vendor packages, also the
    /// `model_type` of the HF config.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Qwen3 => "qwen3",
            Family::Qwen2 => "qwen2",
            Family::Llama => "llama",
            // AXERA's Qwen3.5 packages (hardware-facts: F27).
            Family::Qwen35 => "qwen3_5_text",
        }
    }

    /// The `architectures` entry of the HF config.
    pub fn hf_architecture(self) -> &'static str {
        match self {
            Family::Qwen3 => "Qwen3ForCausalLM",
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Llama => "LlamaForCausalLM",
            Family::Qwen35 => "Qwen3_5ForConditionalGeneration",
        }
    }

    /// `tokenizer_type` of the axllm config.json.
    pub fn tokenizer_type(self) -> &'static str {
        match self {
            Family::Qwen3 => "Qwen3",
            Family::Qwen2 => "Qwen2_5",
            Family::Llama => "Llama",
            Family::Qwen35 => "Qwen3_5",
        }
    }

    /// The `arch` recorded in the simulated model headers.
    pub fn arch(self) -> axcl_sim::format::Arch {
        match self {
            Family::Qwen3 => axcl_sim::format::Arch::Qwen3,
            Family::Qwen2 => axcl_sim::format::Arch::Qwen2,
            Family::Llama => axcl_sim::format::Arch::Llama,
            Family::Qwen35 => axcl_sim::format::Arch::Qwen35,
        }
    }

    /// The dense family a config describes, from `model_type` or else `architectures`.
    fn detect(cfg: &Map<String, Value>) -> Option<Self> {
        let all = [Family::Qwen3, Family::Qwen2, Family::Llama];
        if let Some(t) = cfg.get("model_type").and_then(Value::as_str) {
            return all.into_iter().find(|f| f.prefix() == t);
        }
        let archs = cfg.get("architectures").and_then(Value::as_array)?;
        archs.iter().filter_map(Value::as_str).find_map(|a| all.into_iter().find(|f| f.hf_architecture() == a))
    }

    /// The upstream models' context length, for configs written in code.
    pub(crate) const fn default_max_positions(self) -> usize {
        match self {
            Family::Qwen3 => 40960,
            Family::Qwen2 => 32768,
            Family::Llama => 131072,
            Family::Qwen35 => 262_144,
        }
    }
}

/// The architecture numbers of a checkpoint (the subset of config.json the packer uses).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HfConfig {
    pub family: Family,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub tie_word_embeddings: bool,
    /// Qwen3/Llama `attention_bias`: q, k, v and o biases. (Qwen2 always has
    /// q/k/v biases and never an o bias, whatever the config says.)
    pub attention_bias: bool,
    /// Llama `mlp_bias`: gate, up and down biases.
    pub mlp_bias: bool,
}

/// What a weight is, which decides how `random` initialises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightKind {
    Matrix,
    Norm,
    Bias,
}

/// One weight of a decoder layer, named relative to `model.layers.{i}.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WeightSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: WeightKind,
}

impl HfConfig {
    /// Reads `dir/config.json`; `family` overrides its model_type.
    pub fn read(dir: &Path, family: Option<Family>) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
        Self::from_json(&value, family).with_context(|| format!("in {}", path.display()))
    }

    fn from_json(value: &Value, family: Option<Family>) -> Result<Self> {
        let Some(cfg) = value.as_object() else { bail!("config.json is not a JSON object") };
        let family = match family.or_else(|| Family::detect(cfg)) {
            Some(Family::Qwen35) => bail!("a Qwen3.5 config is read by the hybrid packer, not as a dense model"),
            Some(f) => f,
            None => bail!(
                "unsupported model: model_type {} (architectures {}); supported: qwen3, qwen2, llama \
                 (Qwen3ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM), qwen3_5 and qwen3_5_text",
                cfg.get("model_type").unwrap_or(&Value::Null),
                cfg.get("architectures").unwrap_or(&Value::Null)
            ),
        };
        refuse_unsupported_compute(cfg, &["full_attention"])?;
        let count = |key: &str| -> Result<usize> {
            match cfg.get(key).and_then(Value::as_u64) {
                Some(n) if n > 0 => usize::try_from(n).with_context(|| format!("`{key}` is too large")),
                _ => bail!("missing or invalid `{key}` (expected a positive integer)"),
            }
        };
        let flag = |key: &str| cfg.get(key).and_then(Value::as_bool).unwrap_or(false);
        let hidden_size = count("hidden_size")?;
        let num_attention_heads = count("num_attention_heads")?;
        let num_key_value_heads = match cfg.get("num_key_value_heads") {
            None | Some(Value::Null) => num_attention_heads,
            Some(_) => count("num_key_value_heads")?,
        };
        let head_dim = match cfg.get("head_dim") {
            None | Some(Value::Null) => {
                ensure!(
                    hidden_size % num_attention_heads == 0,
                    "no `head_dim`, and hidden_size {hidden_size} is not a multiple of \
                     num_attention_heads {num_attention_heads}"
                );
                hidden_size / num_attention_heads
            }
            Some(_) => count("head_dim")?,
        };
        // Transformers 5 moved rope_theta and the scaling into `rope_parameters`.
        let rope_params = cfg.get("rope_parameters").filter(|v| v.is_object());
        let rope_theta = cfg
            .get("rope_theta")
            .or_else(|| rope_params.and_then(|p| p.get("rope_theta")))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0);
        ensure!(rope_theta.is_finite() && rope_theta > 1.0, "invalid rope_theta {rope_theta}");
        let rope_scaling = RopeScaling::from_hf(cfg.get("rope_scaling").filter(|v| !v.is_null()).or(rope_params))?;
        let rms_norm_eps = cfg.get("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6);
        ensure!(rms_norm_eps.is_finite() && rms_norm_eps > 0.0, "invalid rms_norm_eps {rms_norm_eps}");
        let max_position_embeddings = match cfg.get("max_position_embeddings") {
            None | Some(Value::Null) => family.default_max_positions(),
            Some(_) => count("max_position_embeddings")?,
        };
        let cfg = Self {
            family,
            hidden_size,
            intermediate_size: count("intermediate_size")?,
            num_hidden_layers: count("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            vocab_size: count("vocab_size")?,
            max_position_embeddings,
            rms_norm_eps,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: flag("tie_word_embeddings"),
            attention_bias: family != Family::Qwen2 && flag("attention_bias"),
            mlp_bias: family == Family::Llama && flag("mlp_bias"),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that the numbers describe a model the layers can compute.
    pub fn validate(&self) -> Result<()> {
        let counts = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("vocab_size", self.vocab_size),
        ];
        for (key, n) in counts {
            ensure!(n > 0, "{key} must be positive");
        }
        let (heads, kv_heads) = (self.num_attention_heads, self.num_key_value_heads);
        ensure!(
            heads % kv_heads == 0,
            "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
        );
        ensure!(self.head_dim.is_multiple_of(2), "head_dim {} must be even for RoPE", self.head_dim);
        // A Qwen2 config.json has no head_dim: it is always hidden_size / heads.
        ensure!(
            self.family != Family::Qwen2 || self.head_dim * heads == self.hidden_size,
            "qwen2 needs head_dim × num_attention_heads = hidden_size ({} × {heads} ≠ {})",
            self.head_dim,
            self.hidden_size
        );
        // The simulated header stores IO dims as i32.
        ensure!(i32::try_from(self.hidden_size.max(self.vocab_size).max(self.kv_size())).is_ok(), "sizes too large");
        Ok(())
    }

    /// `D`: the length of one K (or V) cache row.
    pub fn kv_size(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Every weight of one decoder layer with its HF name (relative to the
    /// layer) and shape, in a fixed order.
    pub fn layer_weights(&self) -> Vec<WeightSpec> {
        use WeightKind::{Bias, Matrix, Norm};
        let (h, i, hd) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let (q, kv) = (self.num_attention_heads * hd, self.kv_size());
        let mut out = Vec::new();
        let mut add = |name: &str, shape: &[usize], kind| {
            out.push(WeightSpec { name: name.to_owned(), shape: shape.to_vec(), kind });
        };
        let qkv_bias = self.family == Family::Qwen2 || self.attention_bias;
        add("input_layernorm.weight", &[h], Norm);
        for (proj, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            add(&format!("self_attn.{proj}.weight"), &[rows, h], Matrix);
            if qkv_bias {
                add(&format!("self_attn.{proj}.bias"), &[rows], Bias);
            }
        }
        if self.family == Family::Qwen3 {
            add("self_attn.q_norm.weight", &[hd], Norm);
            add("self_attn.k_norm.weight", &[hd], Norm);
        }
        add("self_attn.o_proj.weight", &[h, q], Matrix);
        if self.attention_bias {
            add("self_attn.o_proj.bias", &[h], Bias);
        }
        add("post_attention_layernorm.weight", &[h], Norm);
        for (proj, shape, bias) in [("gate_proj", [i, h], i), ("up_proj", [i, h], i), ("down_proj", [h, i], h)] {
            add(&format!("mlp.{proj}.weight"), &shape, Matrix);
            if self.mlp_bias {
                add(&format!("mlp.{proj}.bias"), &[bias], Bias);
            }
        }
        out
    }

    /// config.json as Hugging Face transformers writes it for this architecture.
    pub fn to_json(&self, bos_token_id: u32, eos_token_id: u32, initializer_range: f64) -> Value {
        let mut v = json!({
            "architectures": [self.family.hf_architecture()],
            "model_type": self.family.prefix(),
            "attention_dropout": 0.0,
            "bos_token_id": bos_token_id,
            "eos_token_id": eos_token_id,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": initializer_range,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_scaling": rope_scaling_json(&self.rope_scaling),
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.51.0",
            "use_cache": true,
            "vocab_size": self.vocab_size,
        });
        let extra = match self.family {
            Family::Qwen3 => json!({
                "attention_bias": self.attention_bias,
                "head_dim": self.head_dim,
                "max_window_layers": self.num_hidden_layers,
                "sliding_window": null,
                "use_sliding_window": false,
            }),
            // Qwen2's q/k/v biases are built into the architecture; the key
            // documents them for readers of the config.
            Family::Qwen2 => json!({
                "attention_bias": true,
                "max_window_layers": self.num_hidden_layers,
                "sliding_window": self.max_position_embeddings,
                "use_sliding_window": false,
            }),
            Family::Llama => json!({
                "attention_bias": self.attention_bias,
                "head_dim": self.head_dim,
                "mlp_bias": self.mlp_bias,
                "pretraining_tp": 1,
            }),
            // Qwen3.5 configs are written by `pack::hybrid`.
            Family::Qwen35 => json!({}),
        };
        if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
            obj.extend(extra);
        }
        v
    }
}

fn rope_scaling_json(s: &RopeScaling) -> Value {
    match *s {
        RopeScaling::Default => Value::Null,
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => json!({
            "factor": factor,
            "high_freq_factor": high_freq_factor,
            "low_freq_factor": low_freq_factor,
            "original_max_position_embeddings": original_max_position_embeddings as u64,
            "rope_type": "llama3",
        }),
    }
}

/// The tokenizer files a package carries, read from a checkpoint:
/// tokenizer.json and tokenizer_config.json are required, the rest copied if
/// present. tokenizer.json must load and fit in `vocab_size` ids.
pub(crate) fn read_tokenizer_files(dir: &Path, vocab_size: usize) -> Result<Vec<HfFile>> {
    const REQUIRED: [&str; 3] = ["config.json", "tokenizer.json", "tokenizer_config.json"];
    const OPTIONAL: [&str; 5] =
        ["generation_config.json", "vocab.json", "merges.txt", "special_tokens_map.json", "chat_template.jinja"];
    let mut files = Vec::new();
    for name in REQUIRED {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files.push(HfFile { name, bytes });
    }
    for name in OPTIONAL {
        let path = dir.join(name);
        if path.exists() {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.push(HfFile { name, bytes });
        }
    }
    let path = dir.join("tokenizer.json");
    let tok = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("loading {}", path.display()))?;
    let size = tok.get_vocab_size(true);
    ensure!(size <= vocab_size, "{} has {size} tokens but config.json's vocab_size is {vocab_size}", path.display());
    Ok(files)
}

/// Refuses a configuration whose layers the simulator would compute wrongly:
/// its layers compute SiLU-gated MLPs with full causal attention (or, for
/// Qwen3.5, the layer kinds in `allowed_layer_types`), nothing else.
/// * `hidden_act` (when present) must be `silu` (`swish` is the same function);
/// * `use_sliding_window: true` is refused; without a `use_sliding_window` key
///   (Mistral's convention) a non-null `sliding_window` means the window is used
///   and is refused too (with `use_sliding_window: false`, transformers ignores it);
/// * `layer_types` (when present) may only name `allowed_layer_types`.
pub(crate) fn refuse_unsupported_compute(cfg: &Map<String, Value>, allowed_layer_types: &[&str]) -> Result<()> {
    match cfg.get("hidden_act") {
        None | Some(Value::Null) => {}
        Some(Value::String(act)) if act == "silu" || act == "swish" => {}
        Some(other) => bail!(
            "hidden_act {other} is not supported: the simulator computes SiLU (silu) only, and would \
             compute this model wrongly from the first token"
        ),
    }
    let window = cfg.get("sliding_window").filter(|v| !v.is_null());
    match cfg.get("use_sliding_window") {
        Some(Value::Bool(true)) => bail!(
            "use_sliding_window is true (sliding_window {}): sliding-window attention is not supported; \
             the simulator computes full causal attention only",
            window.unwrap_or(&Value::Null)
        ),
        Some(Value::Bool(false)) => {}
        Some(other) => bail!("invalid use_sliding_window {other} (expected true or false)"),
        None => {
            if let Some(w) = window {
                bail!(
                    "sliding_window {w} is set (and no use_sliding_window: false turns it off): \
                     sliding-window attention is not supported; the simulator computes full causal attention only"
                );
            }
        }
    }
    if let Some(types) = cfg.get("layer_types").filter(|v| !v.is_null()) {
        let Some(types) = types.as_array() else { bail!("invalid layer_types {types} (expected an array)") };
        if let Some(bad) = types.iter().find(|t| !t.as_str().is_some_and(|t| allowed_layer_types.contains(&t))) {
            bail!(
                "layer_types names {bad}: only {} layers are supported (sliding-window or other \
                 attention kinds would be computed wrongly)",
                allowed_layer_types.join(" and ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod refusal_tests {
    use super::*;
    use serde_json::json;

    fn dense(extra: Value) -> Result<HfConfig> {
        let mut cfg = json!({
            "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 300
        });
        cfg.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        HfConfig::from_json(&cfg, None)
    }

    fn refused(extra: Value, needle: &str) {
        let err = format!("{:#}", dense(extra.clone()).expect_err(&format!("{extra} must be refused")));
        assert!(err.contains(needle), "{extra}: {err}");
    }

    #[test]
    fn configs_it_would_compute_wrongly_are_refused() {
        refused(json!({"hidden_act": "gelu"}), "hidden_act \"gelu\" is not supported");
        refused(json!({"hidden_act": "gelu_pytorch_tanh"}), "SiLU");
        refused(json!({"use_sliding_window": true, "sliding_window": 4096}), "use_sliding_window is true");
        refused(json!({"sliding_window": 4096}), "sliding_window 4096 is set");
        refused(json!({"layer_types": ["full_attention", "sliding_attention"]}), "layer_types names \"sliding_attention\"");
        refused(json!({"use_sliding_window": "yes"}), "invalid use_sliding_window");
    }

    #[test]
    fn configs_that_mean_silu_and_full_attention_are_accepted() {
        dense(json!({})).unwrap();
        dense(json!({"hidden_act": "silu"})).unwrap();
        dense(json!({"hidden_act": "swish"})).unwrap();
        // Qwen2.5's configs carry a window that use_sliding_window: false turns off.
        dense(json!({"use_sliding_window": false, "sliding_window": 131072, "max_window_layers": 28})).unwrap();
        dense(json!({"sliding_window": null})).unwrap();
        dense(json!({"layer_types": ["full_attention", "full_attention"]})).unwrap();
    }
}
