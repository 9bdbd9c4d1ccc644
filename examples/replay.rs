//! Runs a script of requests against one loaded model and prints the results
//! as JSON: the harness the cross-checks against an independent reference use
//! (tests/python), and a handy way to reproduce a conversation exactly.
//!
//! `cargo run --release --example replay -- <model dir> <script.json>`
//!
//! Script: `{"requests": [REQUEST, ...]}`, run in order on the same model, so
//! later requests see the device cache earlier ones left. A REQUEST is either
//! * `{"kind": "session", "prompt": [ids], "steps": N, "stop_at_eos": B}`:
//!   greedy decoding through the low-level session, reporting every step's
//!   logits (with `stop_at_eos`, ending after the first end token);
//! * `{"kind": "generate", "prompt": [ids] | "text": "...", "num_predict": N,
//!   "temperature": T, "seed": S, "top_k": K, "top_p": P, "stop": [..],
//!   "defaults": "package"}`: the generation API, reporting tokens, text, done
//!   reason and stats. Unset sampling values are greedy, or with
//!   `"defaults": "package"` the package's own (`post_config.json`);
//! * `{"kind": "tokenize", "texts": ["...", ...]}`: the ids of each text
//!   (special tokens written in a text map to their ids, nothing is added);
//! * `{"kind": "render", "chat": "{\"messages\": [...], ...}"}`: the prompt
//!   the package's own chat template renders (`Model::render_chat`) for the
//!   request given as a JSON string (so its keys keep their order);
//! * `{"kind": "embed", "text": "..."}`: the text's embedding
//!   (`Model::embed`, nothing added to the text) and the ids it went through.
//!
//! Every result also reports the tokens the device cache holds afterwards
//! (and, for hybrid models, the snapshots held and where a prompt's reuse
//! came from). The runtime library is `$AXLLM_AXCL_LIB` when set.
//!
//! An optional `"load": {...}` object sets load options: `snapshot_slots`,
//! and the assumptions about the card (`axllm_core::Inferred`):
//! `padded_rows_keep_state`, `min_chunk_rows`.

#[path = "support/env.rs"]
mod env;

use anyhow::{Context, Result, bail};
use axllm_core::{GenerateOptions, Inferred, LoadOptions, Model, SamplingOptions};
use serde_json::{Value, json};

fn ids(v: &Value) -> Result<Vec<u32>> {
    v.as_array()
        .context("prompt must be an array of token ids")?
        .iter()
        .map(|x| x.as_u64().map(|n| n as u32).context("token ids are non-negative integers"))
        .collect()
}

/// Index of the largest value; the first one on ties (greedy decoding).
fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

fn to_f32(bits: &[u16]) -> Vec<f32> {
    bits.iter().map(|&b| half::bf16::from_bits(b).to_f32()).collect()
}

fn session(model: &Model, req: &Value) -> Result<Value> {
    let prompt = ids(&req["prompt"])?;
    let steps = req["steps"].as_u64().unwrap_or(32) as usize;
    let stop_at_eos = req["stop_at_eos"].as_bool().unwrap_or(false);
    let mut s = model.session();
    let (feed, logits) = s.feed_prompt(&prompt)?;
    let mut logits = to_f32(logits);
    let (mut tokens, mut all_logits, mut reason) = (Vec::new(), Vec::new(), "steps");
    for step in 0..steps {
        let t = argmax(&logits);
        tokens.push(t);
        all_logits.push(std::mem::take(&mut logits));
        if step + 1 == steps {
            break;
        }
        if stop_at_eos && model.tokenizer().is_eos(t) {
            reason = "eos";
            break;
        }
        if !s.has_room() {
            reason = "length";
            break;
        }
        logits = to_f32(s.feed_token(t)?);
    }
    Ok(json!({
        "tokens": tokens,
        "logits": all_logits,
        "reason": reason,
        "reused": feed.reused,
        "fed": feed.fed,
        "fed_by_decode": feed.fed_by_decode,
        "restored": feed.restored,
        "cached": s.cached_tokens(),
        "snapshots": s.snapshot_lengths(),
    }))
}

fn generate(model: &Model, req: &Value) -> Result<Value> {
    let f = |k: &str| req.get(k).and_then(Value::as_f64);
    let d = match req["defaults"].as_str() {
        None => SamplingOptions::greedy(),
        Some("package") => model.default_sampling(),
        Some(other) => bail!("unknown defaults {other:?} (\"package\" or absent)"),
    };
    let opts = GenerateOptions {
        sampling: SamplingOptions {
            temperature: f("temperature").map_or(d.temperature, |v| v as f32),
            top_k: f("top_k").map_or(d.top_k, |v| v as i32),
            top_p: f("top_p").map_or(d.top_p, |v| v as f32),
            seed: f("seed").map_or(d.seed, |v| v as i64),
            ..d
        },
        num_predict: req["num_predict"].as_u64().map(|n| n as usize),
        stop: req["stop"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default(),
        add_special_tokens: false,
        ..Default::default()
    };
    let mut pieces = Vec::new();
    let done = match (&req["text"], &req["prompt"]) {
        (Value::String(text), _) => {
            let mut g = model.begin(text, &opts)?;
            drain(&mut g, &mut pieces)?
        }
        (_, p) => {
            let mut g = model.begin_tokens(&ids(p)?, &opts)?;
            drain(&mut g, &mut pieces)?
        }
    };
    let (reason, stats, tokens) = done;
    Ok(json!({
        "tokens": tokens,
        "text": pieces.concat(),
        "pieces": pieces,
        "reason": reason.as_api_str(),
        "reason_detail": format!("{reason:?}"),
        "prompt_tokens": stats.prompt_tokens,
        "reused": stats.prompt_reused,
        "restored": stats.prompt_restored,
        "generated": stats.generated,
        "cached": model.cached_tokens(),
        "snapshots": model.session().snapshot_lengths(),
    }))
}

fn tokenize(model: &Model, req: &Value) -> Result<Value> {
    let texts = req["texts"].as_array().context("texts must be an array of strings")?;
    let ids = texts
        .iter()
        .map(|t| model.tokenizer().encode(t.as_str().context("texts must be strings")?, false).map_err(Into::into))
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "ids": ids }))
}

fn render(model: &Model, req: &Value) -> Result<Value> {
    let chat = req["chat"].as_str().context("chat must be the request as a JSON string")?;
    Ok(json!({ "text": model.render_chat(chat)? }))
}

fn embed(model: &Model, req: &Value) -> Result<Value> {
    let text = req["text"].as_str().context("text must be a string")?;
    let e = model.embed(text, &axllm_core::EmbedOptions::default())?;
    Ok(json!({ "ids": model.tokenizer().encode(text, false)?, "vector": e.vector, "prompt_tokens": e.prompt_tokens }))
}

fn drain(g: &mut axllm_core::Generation, pieces: &mut Vec<String>) -> Result<(axllm_core::StopReason, axllm_core::Stats, Vec<u32>)> {
    loop {
        match g.next()? {
            axllm_core::Step::Text(t) => pieces.push(t),
            axllm_core::Step::Done(r) => return Ok((r, g.stats(), g.tokens().to_vec())),
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, script] = args.as_slice() else { bail!("usage: replay <model dir> <script.json>") };
    let script: Value = serde_json::from_str(&std::fs::read_to_string(script)?)?;
    let load = &script["load"];
    let d = Inferred::default();
    let opts = LoadOptions {
        snapshot_slots: load["snapshot_slots"].as_u64().map(|n| n as usize),
        inferred: Inferred {
            padded_rows_keep_state: load["padded_rows_keep_state"].as_bool().unwrap_or(d.padded_rows_keep_state),
            min_chunk_rows: load["min_chunk_rows"].as_u64().map_or(d.min_chunk_rows, |n| n as usize),
        },
        ..env::load_options()?
    };
    let model = Model::load(dir.as_ref(), &opts)?;
    let mut results = Vec::new();
    for req in script["requests"].as_array().context("script needs a \"requests\" array")? {
        let r = match req["kind"].as_str() {
            Some("session") => session(&model, req),
            Some("generate") => generate(&model, req),
            Some("tokenize") => tokenize(&model, req),
            Some("render") => render(&model, req),
            Some("embed") => embed(&model, req),
            other => bail!("unknown request kind {other:?}"),
        };
        results.push(r.unwrap_or_else(|e| json!({"error": e.to_string()})));
    }
    let info = model.info();
    println!(
        "{}",
        json!({
            "results": results,
            "context_length": info.context_length,
            "max_prefill": info.max_prefill,
            "chunk": info.chunk,
            "vocab": info.vocab,
            "linear_layers": info.linear_layers,
            "snapshot_slots": info.snapshot_slots,
            "snapshot_bytes": info.snapshot_bytes,
        })
    );
    Ok(())
}
