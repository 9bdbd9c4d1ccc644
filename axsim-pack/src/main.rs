//! `axsim-pack`: packs Hugging Face checkpoints into vendor-layout model
//! directories of simulated axmodels, writes random test checkpoints and
//! timing-only models. A thin wrapper over [`axsim_pack`].

use anyhow::Result;
use axsim_pack::hybrid::Quant;
use axsim_pack::{
    self as pack, DEFAULT_VOCAB_TARGET, Family, HybridOptions, HybridPreset, HybridRandomOptions, IoOptions, LayerKeys,
    Layout, PackOptions, PackReport, RandomOptions, StateDtype, TimingPreset,
};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(version, about = "Pack Hugging Face checkpoints into simulated AX650 model directories")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pack a Hugging Face checkpoint (qwen3, qwen2, llama or qwen3_5) into a model directory.
    Hf {
        /// Directory with config.json, *.safetensors and the tokenizer files.
        checkpoint_dir: PathBuf,
        /// Where to write the package (created if needed).
        out_dir: PathBuf,
        #[command(flatten)]
        io: IoArgs,
        #[command(flatten)]
        package: PackageArgs,
        #[command(flatten)]
        hybrid: HybridArgs,
        /// Model family; default: from config.json's model_type.
        #[arg(long, value_enum)]
        family: Option<Family>,
    },
    /// Write a small random-weight Hugging Face checkpoint with a trained tokenizer.
    Random {
        /// Where to write the checkpoint (created if needed).
        checkpoint_out_dir: PathBuf,
        /// Architecture of the checkpoint (config.json and tensor names).
        #[arg(long, value_enum)]
        arch: Family,
        /// Hidden size H.
        #[arg(long, default_value_t = 64)]
        hidden: usize,
        /// Number of decoder layers.
        #[arg(long, default_value_t = 2)]
        layers: usize,
        /// Attention heads.
        #[arg(long, default_value_t = 4)]
        heads: usize,
        /// Key/value heads (grouped-query attention).
        #[arg(long, default_value_t = 2)]
        kv_heads: usize,
        /// Head dimension (qwen2: must be hidden / heads).
        #[arg(long, default_value_t = 16)]
        head_dim: usize,
        /// MLP intermediate size.
        #[arg(long, default_value_t = 128)]
        intermediate: usize,
        /// Seed of the ChaCha generator: same options, same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share the embedding with the lm_head (no lm_head.weight tensor).
        #[arg(long)]
        tie_embeddings: bool,
        /// Standard deviation of the random matrix weights.
        #[arg(long, default_value_t = 0.02)]
        init_std: f64,
        /// BPE vocabulary target of the tokenizer (before the added tokens).
        #[arg(long, default_value_t = DEFAULT_VOCAB_TARGET)]
        vocab_target: usize,
        #[command(flatten)]
        linear: LinearArgs,
    },
    /// Write a weightless timing-only model at a real Qwen3 or Qwen3.5 geometry.
    Timing {
        /// Where to write the package (created if needed).
        out_dir: PathBuf,
        /// Which published model's numbers to use.
        #[arg(long, value_enum)]
        geometry: Preset,
        /// Prefill chunk length T; default: the preset's vendor build (128).
        #[arg(long)]
        chunk: Option<usize>,
        /// Decode KV capacity C; default: the preset's vendor build (2047).
        #[arg(long)]
        context: Option<usize>,
        /// History capacities of the prefill groups; default: the preset's vendor build.
        #[arg(long, value_delimiter = ',')]
        prefill_history: Option<Vec<usize>>,
        /// Weight quantisation the per-layer costs assume (w8a16, w4a16 = int4); default: the preset's package.
        #[arg(long, value_enum)]
        quant: Option<Quant>,
        #[command(flatten)]
        package: PackageArgs,
        #[command(flatten)]
        hybrid: HybridArgs,
    },
}

/// The published models a timing-only package can copy.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Preset {
    #[value(name = "qwen3-0.6b")]
    Qwen3_0_6B,
    #[value(name = "qwen3-1.7b")]
    Qwen3_1_7B,
    #[value(name = "qwen3-4b")]
    Qwen3_4B,
    #[value(name = "qwen3.5-0.8b")]
    Qwen35_0_8B,
    #[value(name = "qwen3.5-2b")]
    Qwen35_2B,
    #[value(name = "qwen3.5-4b")]
    Qwen35_4B,
}

impl Preset {
    fn split(self) -> Result<TimingPreset, HybridPreset> {
        match self {
            Preset::Qwen3_0_6B => Ok(TimingPreset::Qwen3_0_6B),
            Preset::Qwen3_1_7B => Ok(TimingPreset::Qwen3_1_7B),
            Preset::Qwen3_4B => Ok(TimingPreset::Qwen3_4B),
            Preset::Qwen35_0_8B => Err(HybridPreset::Qwen35_0_8B),
            Preset::Qwen35_2B => Err(HybridPreset::Qwen35_2B),
            Preset::Qwen35_4B => Err(HybridPreset::Qwen35_4B),
        }
    }
}

/// How the linear-attention layers of a Qwen3.5 package are compiled (ignored for other models).
#[derive(Debug, Args)]
struct HybridArgs {
    /// Element type of the linear layers' state tensors.
    #[arg(long, value_enum, default_value_t = StateDtype::Bf16)]
    state_dtype: StateDtype,
    /// Have the runtime report the state tensors' dtype as NONE, as older AXCL builds do.
    #[arg(long)]
    state_dtype_none: bool,
    /// Prefill groups of the linear layers (a pruned build); default: as many as the full layers.
    #[arg(long)]
    linear_prefill_groups: Option<usize>,
    /// Which config.json keys name the layer kinds.
    #[arg(long, value_enum, default_value_t = LayerKeys::Both)]
    layer_keys: LayerKeys,
}

impl HybridArgs {
    fn options(&self) -> HybridOptions {
        HybridOptions {
            state_dtype: self.state_dtype,
            report_state_dtype_none: self.state_dtype_none,
            linear_prefill_groups: self.linear_prefill_groups,
            layer_keys: self.layer_keys,
        }
    }
}

/// The Gated DeltaNet dims and layer pattern of a random Qwen3.5 checkpoint.
#[derive(Debug, Args)]
struct LinearArgs {
    /// Qwen3.5: linear-attention key heads.
    #[arg(long, default_value_t = 2)]
    linear_key_heads: usize,
    /// Qwen3.5: linear-attention value heads (a multiple of the key heads).
    #[arg(long, default_value_t = 4)]
    linear_value_heads: usize,
    /// Qwen3.5: linear-attention key head dim.
    #[arg(long, default_value_t = 16)]
    linear_key_head_dim: usize,
    /// Qwen3.5: linear-attention value head dim.
    #[arg(long, default_value_t = 16)]
    linear_value_head_dim: usize,
    /// Qwen3.5: kernel width of the causal convolution.
    #[arg(long, default_value_t = 4)]
    conv_kernel: usize,
    /// Qwen3.5: every this-many-th layer is full attention.
    #[arg(long, default_value_t = 4)]
    full_attention_interval: usize,
    /// Qwen3.5: share of each full-attention head that RoPE rotates.
    #[arg(long, default_value_t = 0.25)]
    partial_rotary_factor: f64,
}

#[derive(Debug, Args)]
struct IoArgs {
    /// Prefill chunk length T.
    #[arg(long, default_value_t = 128)]
    chunk: usize,
    /// Decode KV capacity C.
    #[arg(long, default_value_t = 2559)]
    context: usize,
    /// History capacities of the prefill groups 2.., ascending, each ≤ C.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024,1536,2048")]
    prefill_history: Vec<usize>,
}

#[derive(Debug, Args)]
struct PackageArgs {
    /// Directory layout.
    #[arg(long, value_enum, default_value_t = Layout::Axllm)]
    layout: Layout,
    /// Model name; default: the checkpoint directory's name (hf) or the preset's (timing).
    #[arg(long)]
    name: Option<String>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Hf { checkpoint_dir, out_dir, io, package, hybrid, family } => {
            let opts = PackOptions {
                io: IoOptions { chunk: io.chunk, context: io.context, prefill_history: io.prefill_history },
                layout: package.layout,
                name: package.name,
                family,
                hybrid: hybrid.options(),
            };
            print_report(&pack::pack_checkpoint(&checkpoint_dir, &out_dir, &opts)?);
        }
        Command::Random {
            checkpoint_out_dir,
            arch,
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            intermediate,
            seed,
            tie_embeddings,
            init_std,
            vocab_target,
            linear,
        } => {
            let opts = RandomOptions {
                arch,
                hidden,
                layers,
                heads,
                kv_heads,
                head_dim,
                intermediate,
                seed,
                tie_embeddings,
                init_std,
                vocab_target,
                hybrid: HybridRandomOptions {
                    linear_key_heads: linear.linear_key_heads,
                    linear_value_heads: linear.linear_value_heads,
                    linear_key_head_dim: linear.linear_key_head_dim,
                    linear_value_head_dim: linear.linear_value_head_dim,
                    conv_kernel: linear.conv_kernel,
                    full_attention_interval: linear.full_attention_interval,
                    partial_rotary_factor: linear.partial_rotary_factor,
                },
            };
            pack::write_random_checkpoint(&checkpoint_out_dir, &opts)?;
            println!("wrote a random {} checkpoint to {}", arch.prefix(), checkpoint_out_dir.display());
        }
        Command::Timing { out_dir, geometry, chunk, context, prefill_history, quant, package, hybrid } => {
            let io = |io: &mut IoOptions| {
                io.chunk = chunk.unwrap_or(io.chunk);
                io.context = context.unwrap_or(io.context);
                if let Some(history) = prefill_history {
                    io.prefill_history = history;
                }
            };
            match geometry.split() {
                Ok(dense) => {
                    let mut opts = dense.options();
                    io(&mut opts.io);
                    opts.layout = package.layout;
                    opts.name = package.name.unwrap_or(opts.name);
                    opts.quant = quant.unwrap_or(opts.quant);
                    print_report(&pack::write_timing_model(&out_dir, &opts)?);
                }
                Err(hybrid_preset) => {
                    let mut opts = hybrid_preset.options();
                    io(&mut opts.io);
                    opts.layout = package.layout;
                    opts.name = package.name.unwrap_or(opts.name);
                    opts.quant = quant.unwrap_or(opts.quant);
                    opts.hybrid = hybrid.options();
                    print_report(&pack::hybrid::write_hybrid_timing_model(&out_dir, &opts)?);
                }
            }
        }
    }
    Ok(())
}

fn print_report(r: &PackReport) {
    println!(
        "packed {} model: {} layers, H={}, D={}, V={}, {} files; models in {}",
        r.family.prefix(),
        r.layers,
        r.hidden_size,
        r.kv_size,
        r.vocab_size,
        r.files.len(),
        r.model_dir.display()
    );
}
