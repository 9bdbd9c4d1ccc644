//! Interactive chat with an AX650 model package.
//!
//! `cargo run --release --example chat -- <model dir> [--system TEXT] [--no-think]`
//!
//! Streams each answer as it is produced and keeps the conversation: every
//! turn re-renders the whole chat with the package's chat template, and the
//! device cache reuses the part it already holds, which the timing line shows.
//! Without a card, set `AXLLM_AXCL_LIB` to the simulator (`libaxcl_sim.so`);
//! `AXLLM_SCHEDULE` picks the call schedule.

#[path = "support/env.rs"]
mod env;

use anyhow::{Context, Result};
use axllm_core::{GenerateOptions, LoadOptions, Model, Step};
use clap::Parser;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// The model package directory.
    model: PathBuf,
    /// Index of the card in the runtime's device list.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
    /// Ask Qwen3-style models not to think.
    #[arg(long)]
    no_think: bool,
    /// Most tokens per answer.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Sampling temperature (default: the package's post_config.json).
    #[arg(long)]
    temperature: Option<f32>,
}

/// Renders the chat with the package's Jinja template (Hugging Face conventions).
fn render(template: &str, messages: &[serde_json::Value], think: bool) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_template("chat", template).context("parsing the chat template")?;
    let ctx = minijinja::context! {
        messages => messages,
        add_generation_prompt => true,
        enable_thinking => think,
    };
    Ok(env.get_template("chat")?.render(ctx)?)
}

/// ChatML, for packages without a template.
fn chatml(messages: &[serde_json::Value]) -> String {
    let mut s = String::new();
    for m in messages {
        s += &format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            m["role"].as_str().unwrap_or("user"),
            m["content"].as_str().unwrap_or("")
        );
    }
    s + "<|im_start|>assistant\n"
}

fn main() -> Result<()> {
    let args = Args::parse();
    let opts = LoadOptions { device_index: args.device, ..env::load_options()? };
    let model = Model::load_with_progress(&args.model, &opts, &mut |p| {
        eprint!("\rloading {}/{} model files", p.loaded, p.total);
    })?;
    let info = model.info();
    eprintln!(
        "\r{}: {} layers, context {} tokens, {:.1} MiB on {} in {:.1} s",
        info.name,
        info.layers,
        info.context_length,
        info.device_bytes as f64 / (1 << 20) as f64,
        if model.simulator().is_some() { "the simulator".to_string() } else { format!("device {}", info.device_id) },
        info.load_duration.as_secs_f64()
    );
    let mut gen_opts =
        GenerateOptions { sampling: model.default_sampling(), num_predict: args.max_tokens, ..Default::default() };
    if let Some(t) = args.temperature {
        gen_opts.sampling.temperature = t;
    }
    let mut messages: Vec<serde_json::Value> = Vec::new();
    if let Some(system) = &args.system {
        messages.push(serde_json::json!({"role": "system", "content": system}));
    }
    let stdin = std::io::stdin();
    loop {
        eprint!(">>> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "/bye" {
            break;
        }
        messages.push(serde_json::json!({"role": "user", "content": line}));
        let prompt = match model.tokenizer().chat_template() {
            Some(t) => render(t, &messages, !args.no_think)?,
            None => chatml(&messages),
        };
        let mut generation = model.begin(&prompt, &gen_opts)?;
        let mut reply = String::new();
        let reason = loop {
            match generation.next()? {
                Step::Text(t) => {
                    print!("{t}");
                    std::io::stdout().flush()?;
                    reply.push_str(&t);
                }
                Step::Done(r) => break r,
            }
        };
        let s = generation.stats();
        drop(generation);
        println!();
        let rate = |n: usize, d: std::time::Duration| {
            if d.is_zero() { 0.0 } else { n as f64 / d.as_secs_f64() }
        };
        eprintln!(
            "[prompt {} tokens ({} reused) in {:.0} ms; {} tokens at {:.2} tok/s; {}]",
            s.prompt_tokens,
            s.prompt_reused,
            s.prompt_duration.as_secs_f64() * 1e3,
            s.generated,
            rate(s.generated.saturating_sub(1), s.generate_duration),
            reason.as_api_str()
        );
        messages.push(serde_json::json!({"role": "assistant", "content": reply}));
    }
    Ok(())
}
