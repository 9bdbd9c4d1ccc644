//! `axsim-pack`: packs Hugging Face checkpoints into vendor-layout model
//! directories of simulated axmodels, writes random test checkpoints and
//! timing-only models. A thin wrapper over [`axsim_pack`].

use anyhow::Result;
use axsim_pack::{
    self as pack, DEFAULT_VOCAB_TARGET, Family, IoOptions, Layout, PackOptions, PackReport, RandomOptions, TimingPreset,
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
    /// Pack a Hugging Face checkpoint (qwen3, qwen2 or llama) into a model directory.
    Hf {
        /// Directory with config.json, *.safetensors and the tokenizer files.
        checkpoint_dir: PathBuf,
        /// Where to write the package (created if needed).
        out_dir: PathBuf,
        #[command(flatten)]
        io: IoArgs,
        #[command(flatten)]
        package: PackageArgs,
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
    },
    /// Write a weightless timing-only model at a real Qwen3 geometry.
    Timing {
        /// Where to write the package (created if needed).
        out_dir: PathBuf,
        /// Which published model's numbers to use.
        #[arg(long, value_enum)]
        geometry: TimingPreset,
        /// Prefill chunk length T.
        #[arg(long, default_value_t = 128)]
        chunk: usize,
        /// Decode KV capacity C.
        #[arg(long, default_value_t = 2559)]
        context: usize,
        /// History capacities of the prefill groups; default: the preset's vendor build.
        #[arg(long, value_delimiter = ',')]
        prefill_history: Option<Vec<usize>>,
        #[command(flatten)]
        package: PackageArgs,
    },
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
        Command::Hf { checkpoint_dir, out_dir, io, package, family } => {
            let opts = PackOptions {
                io: IoOptions { chunk: io.chunk, context: io.context, prefill_history: io.prefill_history },
                layout: package.layout,
                name: package.name,
                family,
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
            };
            pack::write_random_checkpoint(&checkpoint_out_dir, &opts)?;
            println!("wrote a random {} checkpoint to {}", arch.prefix(), checkpoint_out_dir.display());
        }
        Command::Timing { out_dir, geometry, chunk, context, prefill_history, package } => {
            let mut opts = geometry.options();
            opts.io.chunk = chunk;
            opts.io.context = context;
            if let Some(history) = prefill_history {
                opts.io.prefill_history = history;
            }
            opts.layout = package.layout;
            if let Some(name) = package.name {
                opts.name = name;
            }
            print_report(&pack::write_timing_model(&out_dir, &opts)?);
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
