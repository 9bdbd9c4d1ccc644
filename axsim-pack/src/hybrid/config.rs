//! A Qwen3.5 checkpoint's config.json: read (the `qwen3_5` wrapper with a
//! `text_config`, or a bare `qwen3_5_text`), validated, and written the way
//! transformers writes one; the layer kinds and the weights each kind has.

use crate::hf::Family;
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value, json};
use std::path::Path;

/// The model types this packer reads as Qwen3.5.
pub(crate) const MODEL_TYPES: [&str; 2] = ["qwen3_5", "qwen3_5_text"];
/// Upstream Qwen3.5 context length, for configs written in code.
pub(crate) const MAX_POSITIONS: usize = Family::Qwen35.default_max_positions();

/// What a decoder layer is (`layer_types` entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Gated DeltaNet (`linear_attention`).
    Linear,
    /// Gated full attention (`full_attention`).
    Full,
}

impl LayerKind {
    /// The `layer_types` string.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Linear => "linear_attention",
            LayerKind::Full => "full_attention",
        }
    }

    /// The pattern of `full_attention_interval`: layer `i` (0-based) is full
    /// when `(i + 1) % interval == 0`.
    pub fn pattern(layers: usize, interval: usize) -> Vec<LayerKind> {
        (0..layers).map(|i| if (i + 1) % interval == 0 { LayerKind::Full } else { LayerKind::Linear }).collect()
    }
}

/// The Gated DeltaNet dims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinearDims {
    pub key_heads: usize,
    pub value_heads: usize,
    pub key_head_dim: usize,
    pub value_head_dim: usize,
    pub conv_kernel: usize,
}

impl LinearDims {
    pub fn key_dim(&self) -> usize {
        self.key_heads * self.key_head_dim
    }
    pub fn value_dim(&self) -> usize {
        self.value_heads * self.value_head_dim
    }
    pub fn conv_dim(&self) -> usize {
        2 * self.key_dim() + self.value_dim()
    }
}

/// The text model's numbers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Qwen35Config {
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
    pub partial_rotary_factor: f64,
    pub linear: LinearDims,
    pub layer_types: Vec<LayerKind>,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    /// Where the text model's tensors live: `model.language_model.` in the
    /// `qwen3_5` wrapper, `model.` in a bare text checkpoint.
    pub prefix: &'static str,
}

/// How a random checkpoint initialises a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Init {
    /// N(0, init_std).
    Matrix,
    /// The convolution taps: N(0, a larger std), so few taps still mix.
    Conv,
    /// A Qwen3.5 RMSNorm weight, used as `1 + w`: small noise around 0.
    NormPlusOne,
    /// A plain scale (the gated norm): small noise around 1.
    Scale,
    /// `dt_bias`: around 1, as transformers initialises it.
    DtBias,
    /// `A_log`: the log of a decay rate in [1, 8].
    ALog,
    /// Small values around 0.
    Bias,
}

/// One weight of a layer, named relative to `<prefix>layers.{i}.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HybridWeight {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    /// Stored as f32 in the layer file (the per-head decay parameters, which
    /// go through `exp`); every other weight is stored as bf16.
    pub f32: bool,
    /// A Qwen3.5 RMSNorm weight that scales by `1 + w`: stored as `bf16(1 + w)`.
    pub plus_one: bool,
}

/// True when `config.json` in `dir` is a Qwen3.5 config.
pub(crate) fn is_qwen35(dir: &Path) -> bool {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("model_type").and_then(Value::as_str).map(|t| MODEL_TYPES.contains(&t)))
        .unwrap_or(false)
}

impl Qwen35Config {
    /// Reads `dir/config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
        Self::from_json(&value).with_context(|| format!("in {}", path.display()))
    }

    pub fn from_json(value: &Value) -> Result<Self> {
        let Some(top) = value.as_object() else { bail!("config.json is not a JSON object") };
        let model_type = top.get("model_type").and_then(Value::as_str).unwrap_or_default();
        let (text, prefix) = match model_type {
            "qwen3_5" => match top.get("text_config") {
                Some(Value::Object(t)) => (t, "model.language_model."),
                _ => (top, "model.language_model."),
            },
            "qwen3_5_text" => (top, "model."),
            other => bail!("model_type {other:?} is not Qwen3.5 ({MODEL_TYPES:?})"),
        };
        let count = |key: &str| -> Result<usize> {
            match text.get(key).and_then(Value::as_u64) {
                Some(n) if n > 0 => usize::try_from(n).with_context(|| format!("`{key}` is too large")),
                _ => bail!("missing or invalid `{key}` (expected a positive integer)"),
            }
        };
        let count_or = |key: &str, default: usize| if text.contains_key(key) { count(key) } else { Ok(default) };
        crate::hf::refuse_unsupported_compute(text, &["linear_attention", "full_attention"])?;
        let layers = count("num_hidden_layers")?;
        let layer_types = match text.get("layer_types") {
            Some(Value::Array(types)) => {
                ensure!(types.len() == layers, "layer_types has {} entries for {layers} layers", types.len());
                types
                    .iter()
                    .map(|t| match t.as_str() {
                        Some("linear_attention") => Ok(LayerKind::Linear),
                        Some("full_attention") => Ok(LayerKind::Full),
                        _ => bail!("unsupported layer type {t} (expected linear_attention or full_attention)"),
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            _ => LayerKind::pattern(layers, count_or("full_attention_interval", 4)?),
        };
        let rope = rope_params(text)?;
        let tie = |m: &Map<String, Value>| m.get("tie_word_embeddings").and_then(Value::as_bool);
        let cfg = Self {
            hidden_size: count("hidden_size")?,
            intermediate_size: count("intermediate_size")?,
            num_hidden_layers: layers,
            num_attention_heads: count("num_attention_heads")?,
            num_key_value_heads: count("num_key_value_heads")?,
            head_dim: count_or("head_dim", 256)?,
            vocab_size: count("vocab_size")?,
            max_position_embeddings: count_or("max_position_embeddings", MAX_POSITIONS)?,
            rms_norm_eps: text.get("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
            rope_theta: rope.0,
            partial_rotary_factor: rope.1,
            linear: LinearDims {
                key_heads: count_or("linear_num_key_heads", 16)?,
                value_heads: count_or("linear_num_value_heads", 32)?,
                key_head_dim: count_or("linear_key_head_dim", 128)?,
                value_head_dim: count_or("linear_value_head_dim", 128)?,
                conv_kernel: count_or("linear_conv_kernel_dim", 4)?,
            },
            layer_types,
            tie_word_embeddings: tie(top).or_else(|| tie(text)).unwrap_or(false),
            attention_bias: text.get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
            prefix,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that the numbers describe layers the simulator can compute.
    pub fn validate(&self) -> Result<()> {
        let (heads, kv) = (self.num_attention_heads, self.num_key_value_heads);
        ensure!(kv > 0 && heads % kv == 0, "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}");
        let l = &self.linear;
        ensure!(
            l.key_heads > 0 && l.value_heads.is_multiple_of(l.key_heads),
            "linear_num_value_heads {} is not a multiple of linear_num_key_heads {}",
            l.value_heads,
            l.key_heads
        );
        ensure!(l.conv_kernel >= 2, "linear_conv_kernel_dim {} must be at least 2", l.conv_kernel);
        let rd = self.rotary_dim();
        ensure!(
            rd >= 2 && rd.is_multiple_of(2) && rd <= self.head_dim,
            "partial_rotary_factor {} of head_dim {} gives {rd} rotary dims (needs an even number >= 2)",
            self.partial_rotary_factor,
            self.head_dim
        );
        ensure!(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0, "invalid rms_norm_eps {}", self.rms_norm_eps);
        ensure!(
            self.layer_types.contains(&LayerKind::Full),
            "no full_attention layer: the context geometry comes from one"
        );
        let widest = self.hidden_size.max(self.vocab_size).max(l.conv_dim()).max(2 * heads * self.head_dim);
        ensure!(i32::try_from(widest).is_ok(), "sizes too large");
        Ok(())
    }

    /// Dims of each head that RoPE rotates.
    pub fn rotary_dim(&self) -> usize {
        (self.head_dim as f64 * self.partial_rotary_factor) as usize
    }

    /// `D` of the full-attention layers.
    pub fn kv_size(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// The regular interval of full layers, when the layer kinds follow one.
    pub fn full_attention_interval(&self) -> Option<usize> {
        let first = self.layer_types.iter().position(|k| *k == LayerKind::Full)? + 1;
        (LayerKind::pattern(self.num_hidden_layers, first) == self.layer_types).then_some(first)
    }

    /// The weights of a layer of `kind`, relative to the layer, in a fixed order.
    pub fn layer_weights(&self, kind: LayerKind) -> Vec<HybridWeight> {
        use Init::{Bias, Matrix, NormPlusOne as Norm};
        let (h, i, hd) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let mut out = Vec::new();
        let mut add = |name: &str, shape: &[usize], init, f32: bool, plus_one: bool| {
            out.push(HybridWeight { name: name.to_owned(), shape: shape.to_vec(), init, f32, plus_one });
        };
        add("input_layernorm.weight", &[h], Norm, false, true);
        match kind {
            LayerKind::Linear => {
                let l = &self.linear;
                let (cd, vd, hv) = (l.conv_dim(), l.value_dim(), l.value_heads);
                add("linear_attn.in_proj_qkv.weight", &[cd, h], Matrix, false, false);
                add("linear_attn.in_proj_z.weight", &[vd, h], Matrix, false, false);
                add("linear_attn.in_proj_b.weight", &[hv, h], Matrix, false, false);
                add("linear_attn.in_proj_a.weight", &[hv, h], Matrix, false, false);
                add("linear_attn.conv1d.weight", &[cd, 1, l.conv_kernel], Init::Conv, false, false);
                add("linear_attn.dt_bias", &[hv], Init::DtBias, true, false);
                add("linear_attn.A_log", &[hv], Init::ALog, true, false);
                add("linear_attn.norm.weight", &[l.value_head_dim], Init::Scale, false, false);
                add("linear_attn.out_proj.weight", &[h, vd], Matrix, false, false);
            }
            LayerKind::Full => {
                let (q, kv) = (self.num_attention_heads * hd, self.kv_size());
                for (proj, rows) in [("q_proj", 2 * q), ("k_proj", kv), ("v_proj", kv)] {
                    add(&format!("self_attn.{proj}.weight"), &[rows, h], Matrix, false, false);
                    if self.attention_bias {
                        add(&format!("self_attn.{proj}.bias"), &[rows], Bias, false, false);
                    }
                }
                add("self_attn.q_norm.weight", &[hd], Norm, false, true);
                add("self_attn.k_norm.weight", &[hd], Norm, false, true);
                add("self_attn.o_proj.weight", &[h, q], Matrix, false, false);
                if self.attention_bias {
                    add("self_attn.o_proj.bias", &[h], Bias, false, false);
                }
            }
        }
        add("post_attention_layernorm.weight", &[h], Norm, false, true);
        for (proj, shape) in [("gate_proj", [i, h]), ("up_proj", [i, h]), ("down_proj", [h, i])] {
            add(&format!("mlp.{proj}.weight"), &shape, Matrix, false, false);
        }
        out
    }

    /// Full tensor names: embedding, final norm, lm_head.
    pub fn embed_name(&self) -> String {
        format!("{}embed_tokens.weight", self.prefix)
    }
    pub fn norm_name(&self) -> String {
        format!("{}norm.weight", self.prefix)
    }
    pub fn layer_name(&self, layer: usize, weight: &str) -> String {
        format!("{}layers.{layer}.{weight}", self.prefix)
    }

    /// config.json as transformers writes a `qwen3_5` checkpoint (text part only).
    pub fn to_json(&self, eos_token_id: u32, initializer_range: f64) -> Value {
        let l = &self.linear;
        let text = json!({
            "model_type": "qwen3_5_text",
            "attention_bias": self.attention_bias,
            "attention_dropout": 0.0,
            "eos_token_id": eos_token_id,
            "full_attention_interval": self.full_attention_interval(),
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": initializer_range,
            "intermediate_size": self.intermediate_size,
            "layer_types": self.layer_types.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "linear_conv_kernel_dim": l.conv_kernel,
            "linear_key_head_dim": l.key_head_dim,
            "linear_num_key_heads": l.key_heads,
            "linear_num_value_heads": l.value_heads,
            "linear_value_head_dim": l.value_head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_parameters": {
                "mrope_interleaved": true,
                "mrope_section": [11, 11, 10],
                "partial_rotary_factor": self.partial_rotary_factor,
                "rope_theta": self.rope_theta,
                "rope_type": "default",
            },
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "bfloat16",
            "vocab_size": self.vocab_size,
        });
        json!({
            "architectures": ["Qwen3_5ForConditionalGeneration"],
            "model_type": "qwen3_5",
            "text_config": text,
            "tie_word_embeddings": self.tie_word_embeddings,
            "transformers_version": "5.0.0",
        })
    }
}

/// `(rope_theta, partial_rotary_factor)` from `rope_parameters` (or the older
/// top-level keys). Only plain RoPE is supported: for text, Qwen3.5's
/// interleaved mRoPE gives every section the same position, which is plain RoPE.
fn rope_params(text: &Map<String, Value>) -> Result<(f64, f64)> {
    let params = text.get("rope_parameters").or_else(|| text.get("rope_scaling")).filter(|v| v.is_object());
    let get = |key: &str| params.and_then(|p| p.get(key)).or_else(|| text.get(key)).and_then(Value::as_f64);
    if let Some(kind) = params.and_then(|p| p.get("rope_type").or_else(|| p.get("type"))).and_then(Value::as_str) {
        ensure!(kind == "default", "unsupported rope type {kind:?} for Qwen3.5 (only default)");
    }
    let theta = get("rope_theta").unwrap_or(10_000_000.0);
    let factor = get("partial_rotary_factor").unwrap_or(0.25);
    ensure!(theta.is_finite() && theta > 1.0, "invalid rope_theta {theta}");
    ensure!(factor > 0.0 && factor <= 1.0, "invalid partial_rotary_factor {factor}");
    Ok((theta, factor))
}
