//! The cost of structured outputs: the grammar mask per token at Qwen3's
//! vocabulary size (151,936), with a realistic JSON schema (a tool call with
//! nested objects, an array of objects, enums, numbers, bounded strings).
//! Not part of the test suite.
//!
//! `cargo run --release --example grammar_bench [-- --steps 3000 --tiktoken target/qwen-vocab/qwen.tiktoken]`
//!
//! `--tiktoken` takes Qwen's real vocabulary file (`scripts/qwen_vocab.sh`
//! fetches it) and presents it as a Qwen3 `tokenizer.json` would: the 151,643
//! byte-level BPE tokens, Qwen3's 26 added tokens (the special ones marked as
//! such), ids up to 151,936 empty (never allowed); the end token is
//! `<|im_end|>`. `--tokenizer` takes any real `tokenizer.json` instead.
//! Without either the vocabulary is synthetic but shaped like Qwen3's
//! byte-level BPE: the 256 byte tokens, then words and word pieces with and
//! without a leading space, capitalised forms, digit groups, punctuation runs
//! (JSON's among them), whitespace runs and CJK characters, up to 151,643
//! tokens, then Qwen3's special tokens and padding to 151,936. The logits are
//! pseudo-random (rotated every step) so the walk visits every part of the
//! schema; each step masks, takes the best allowed token and commits it.

#[path = "bench/sys.rs"]
#[allow(dead_code)] // only the thread CPU clock
mod sys;

use axllm_core::Format;
use clap::Parser;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// Masks to time.
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    /// A real tokenizer.json instead of the synthetic Qwen3-sized vocabulary.
    #[arg(long)]
    tokenizer: Option<std::path::PathBuf>,
    /// Its end token id (with --tokenizer).
    #[arg(long, default_value_t = 0)]
    eos: u32,
    /// Qwen's real vocabulary (`qwen.tiktoken`, from scripts/qwen_vocab.sh),
    /// presented as a Qwen3 tokenizer.json would present it.
    #[arg(long, conflicts_with = "tokenizer")]
    tiktoken: Option<std::path::PathBuf>,
}

const VOCAB: usize = 151_936;
const REGULAR: usize = 151_643;

/// GPT-2's byte-to-character map of byte-level BPE vocabularies.
fn byte_char(b: u8) -> char {
    let printable = |c: u8| matches!(c, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|&c| !printable(c)).count() as u32;
    char::from_u32(256 + n).unwrap()
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() as usize) % xs.len()]
    }
}

/// A synthetic byte-level tokenizer.json of Qwen3's size; returns it and its end token.
fn synthetic_tokenizer() -> (String, u32) {
    let mut words: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let mut seen: std::collections::HashSet<Vec<u8>> = words.iter().cloned().collect();
    let onsets = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "v", "w", "x", "z", "st", "tr", "ch", "sh", "th", "pl", "gr", "br"];
    let vowels = ["a", "e", "i", "o", "u", "y", "ea", "ou", "io", "ai"];
    let codas = ["", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "tion", "ment", "ing", "ed", "er", "ly"];
    let puncts = ["\"", ":", ",", "{", "}", "[", "]", "\":", "\",", "{\"", "\"}", "\"]", "\":\"", "\",\"", "},", "],", ".", "(", ")", ";", "_", "-", "'", "\\", "\\n", "/", "=", "+", "*", "#", "<", ">"];
    let mut rng = Lcg(42);
    let mut add = |w: Vec<u8>, words: &mut Vec<Vec<u8>>| {
        if !w.is_empty() && seen.insert(w.clone()) {
            words.push(w);
        }
    };
    while words.len() < REGULAR {
        let kind = rng.next() % 20;
        let w: String = match kind {
            0..=11 => {
                let syll = 1 + rng.next() % 4;
                let mut s = String::new();
                for _ in 0..syll {
                    s += rng.pick(&onsets);
                    s += rng.pick(&vowels);
                    s += rng.pick(&codas);
                }
                match rng.next() % 4 {
                    0 => format!(" {s}"),
                    1 => {
                        let mut c = s.chars();
                        c.next().map(|f| format!(" {}{}", f.to_uppercase(), c.as_str())).unwrap_or_default()
                    }
                    _ => s,
                }
            }
            12 | 13 => format!("{}{}", if rng.next() % 2 == 0 { " " } else { "" }, rng.next() % 1000),
            14 | 15 => (0..1 + rng.next() % 3).map(|_| rng.pick(&puncts)).collect(),
            16 => " ".repeat(1 + (rng.next() % 16) as usize) + if rng.next() % 2 == 0 { "\n" } else { "" },
            _ => (0..1 + rng.next() % 3).map(|_| char::from_u32(0x4E00 + (rng.next() % 20000) as u32).unwrap()).collect(),
        };
        add(w.into_bytes(), &mut words);
    }
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.iter().map(|&b| byte_char(b)).collect::<String>(), serde_json::json!(i)))
        .collect();
    let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| serde_json::json!({"id": REGULAR + i, "content": s, "special": true}))
        .collect();
    let json = serde_json::json!({
        "added_tokens": added,
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab},
    });
    (json.to_string(), REGULAR as u32 + 2)
}

fn schema() -> String {
    serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"enum": ["HassTurnOn", "HassTurnOff", "HassLightSet", "HassClimateSetTemperature"]},
            "arguments": {
                "type": "object",
                "properties": {
                    "area": {"type": "string", "maxLength": 24},
                    "domain": {"type": "array", "items": {"enum": ["light", "switch", "fan", "climate"]}, "maxItems": 3},
                    "brightness": {"type": "integer", "minimum": 0, "maximum": 100},
                    "temperature": {"type": "number", "minimum": 5, "maximum": 35},
                    "color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"}
                },
                "required": ["area", "domain"],
                "additionalProperties": false
            },
            "confirmations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"entity_id": {"type": "string", "maxLength": 32}, "ok": {"type": "boolean"}},
                    "required": ["entity_id", "ok"]
                },
                "maxItems": 4
            },
            "reply": {"type": "string", "maxLength": 80}
        },
        "required": ["name", "arguments", "reply"],
        "additionalProperties": false
    })
    .to_string()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (json, eos, vocab, what) = match (&args.tokenizer, &args.tiktoken) {
        (_, Some(p)) => {
            let j = axllm_core::qwen3_tokenizer_json(&std::fs::read_to_string(p)?)?;
            (j, axllm_core::QWEN3_IM_END, axllm_core::QWEN3_VOCAB, format!("Qwen3's real vocabulary from {}", p.display()))
        }
        (Some(p), None) => {
            let j = std::fs::read_to_string(p)?;
            let v: serde_json::Value = serde_json::from_str(&j)?;
            let n = v["model"]["vocab"].as_object().map_or(0, |m| m.len()) + v["added_tokens"].as_array().map_or(0, Vec::len);
            (j, args.eos, n, format!("{}", p.display()))
        }
        (None, None) => {
            let (j, eos) = synthetic_tokenizer();
            (j, eos, VOCAB, "synthetic byte-level BPE".to_string())
        }
    };
    let mut rng = Lcg(7);
    let logits: Vec<f32> = (0..vocab).map(|_| (rng.next() % 10_000) as f32 / 1000.0).collect();
    let built = std::time::Instant::now();
    // The vocabulary (token trie, slices) is built before the first timed
    // step; a grammar state's first visit (building lexer states) is timed.
    let times = axllm_core::mask_cost(&json, eos, vocab, &Format::JsonSchema(schema()), &logits, args.steps, &sys::thread_cpu_ns)?;
    let total = built.elapsed();
    println!("grammar mask per token: vocabulary {vocab} ({what}), tool-call JSON schema, {} steps", times.len());
    let wall: Vec<f64> = times.iter().map(|(d, _): &(Duration, u64)| d.as_secs_f64() * 1e6).collect();
    let cpu: Vec<f64> = times.iter().map(|&(_, ns)| ns as f64 / 1e3).collect();
    for (name, us) in [("wall", wall), ("thread CPU", cpu)] {
        let mut us = us;
        us.sort_by(f64::total_cmp);
        let mean = us.iter().sum::<f64>() / us.len() as f64;
        let p = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "  {name:>10}: mean {mean:.1} us  p50 {:.1} us  p99 {:.1} us  max {:.1} us  p99 / 1 ms target = {:.3}",
            p(0.5),
            p(0.99),
            us[us.len() - 1],
            p(0.99) / 1000.0
        );
        println!("  {name:>10}: steps over 1 ms: {} of {}", us.iter().filter(|&&x| x > 1000.0).count(), us.len());
    }
    println!("  (vocabulary build + compile + all steps: {:.2} s)", total.as_secs_f64());
    Ok(())
}
