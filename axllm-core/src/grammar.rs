//! Structured outputs: a JSON grammar (any object, or a JSON schema) enforced
//! token by token by masking the logits before the draw.
//!
//! The grammar engine is `llguidance` (the one llama.cpp and vLLM use): it
//! compiles a JSON schema into a grammar over bytes and, given the bytes of
//! every token, computes the set of tokens allowed next, lazily walking a
//! token trie, so a step costs tens of microseconds at a 150k vocabulary
//! (BENCHMARKS.md, "Structured outputs"). The token bytes come from the
//! model's own `tokenizer.json` (byte-level BPE and byte-fallback vocabularies),
//! read once per model when the first constrained generation starts.
//!
//! A thinking model's answer may begin with a thinking block that the format
//! leaves free ([`crate::GenerateOptions::thinking_close`]): the constraint
//! starts after the text that closes it, as upstream Ollama does.

use crate::error::{Error, Result};
use crate::package::Tokenizer;
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{self, SimpleVob, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory, TokenParser};
use std::sync::Arc;

/// What a generation's output must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Any JSON object (Ollama's `format: "json"`).
    Json,
    /// A JSON value valid for this JSON schema (its text).
    JsonSchema(String),
}

impl Format {
    /// Reads Ollama's `format` value: `"json"`, or a JSON schema object.
    /// `""` and `null` mean no format.
    pub fn from_ollama(raw: &str) -> Result<Option<Format>> {
        let raw = raw.trim();
        if raw.is_empty() || raw == "null" || raw == "\"\"" {
            return Ok(None);
        }
        if raw == "json" || raw == "\"json\"" {
            return Ok(Some(Format::Json));
        }
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| Error::invalid(format!("format must be \"json\" or a JSON schema: {e}")))?;
        match value {
            serde_json::Value::Object(_) => Ok(Some(Format::JsonSchema(raw.to_owned()))),
            _ => Err(Error::invalid(format!("format must be \"json\" or a JSON schema object, not {raw}"))),
        }
    }

    /// The JSON schema the format stands for, with our whitespace rule.
    fn schema(&self) -> Result<serde_json::Value> {
        let mut schema = match self {
            Format::Json => serde_json::json!({"type": "object"}),
            Format::JsonSchema(text) => serde_json::from_str(text)
                .map_err(|e| Error::invalid(format!("the format's JSON schema is not JSON: {e}")))?,
        };
        let Some(obj) = schema.as_object_mut() else {
            return Err(Error::invalid("the format's JSON schema must be an object"));
        };
        // Whitespace between JSON tokens is llama.cpp's JSON grammar's: one
        // space, or a newline and at most 20 spaces or tabs of indentation. A
        // model that prefers whitespace cannot spend the budget on it.
        obj.entry("x-guidance").or_insert_with(|| serde_json::json!({"whitespace_pattern": "(\\x20|\\x0A[\\x20\\x09]{0,20})"}));
        Ok(schema)
    }
}

/// A model's vocabulary as the grammar engine sees it; built once per model.
pub(crate) struct Vocabulary {
    factory: ParserFactory,
    /// The model's end-of-generation ids; the engine knows only the first.
    eos: Vec<u32>,
    vocab: usize,
    /// The last few compiled schemas (by their text), most recent last: a
    /// request with the same schema starts from a clone, which skips the
    /// compile and shares the lexer states earlier requests built.
    compiled: parking_lot::Mutex<Vec<(String, TokenParser)>>,
}

/// How many compiled schemas a model keeps.
const COMPILED_KEPT: usize = 8;

impl std::fmt::Debug for Vocabulary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocabulary").field("vocab", &self.vocab).finish()
    }
}

/// Every token's bytes as the model's decoder writes them out (byte-level
/// BPE characters mapped back to bytes, byte-fallback `<0xNN>` tokens as
/// their byte, SentencePiece's `▁` as a space), padded to the model's
/// vocabulary with empty entries. A special token is its text after
/// [`TokTrie::SPECIAL_TOKEN_MARKER`]. Built once per model.
pub(crate) fn token_bytes(tokenizer: &Tokenizer, vocab: usize) -> Result<Vec<Vec<u8>>> {
    let json = serde_json::to_value(tokenizer.hf()).map_err(|e| Error::invalid(format!("cannot read the tokenizer: {e}")))?;
    token_bytes_of_json(&json, vocab)
}

fn token_bytes_of_json(json: &serde_json::Value, vocab: usize) -> Result<Vec<Vec<u8>>> {
    // llguidance asserts on byte-fallback names it does not expect.
    let mut words = std::panic::catch_unwind(|| llguidance::token_bytes_from_tokenizer_json(json))
        .map_err(|_| Error::invalid("the tokenizer's vocabulary is not byte-level"))?
        .map_err(|e| Error::invalid(format!("cannot read the tokenizer's token bytes: {e}")))?;
    words.resize(vocab.max(words.len()), Vec::new());
    Ok(words)
}

/// A token's bytes for display (logprobs): a special token's text without the marker.
pub(crate) fn display_bytes(word: &[u8]) -> &[u8] {
    word.strip_prefix(&[TokTrie::SPECIAL_TOKEN_MARKER]).unwrap_or(word)
}

impl Vocabulary {
    /// The grammar engine's view of a vocabulary of token bytes `words`
    /// ([`token_bytes`]; ids the tokenizer lacks are never allowed) with end tokens `eos`.
    pub(crate) fn new(words: &[Vec<u8>], eos: Vec<u32>) -> Result<Vocabulary> {
        let vocab = words.len();
        let first_eos = *eos.first().ok_or_else(|| Error::invalid("cannot use a format: the model has no end token"))?;
        let info = TokRxInfo::new(words.len() as u32, first_eos);
        let trie = TokTrie::from(&info, words);
        let env: TokEnv = Arc::new(toktrie::ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| Error::invalid(format!("grammar engine: {e}")))?;
        factory.quiet();
        Ok(Vocabulary { factory, eos, vocab, compiled: Default::default() })
    }

    /// Compiles `format` into a constraint for one generation; an unusable
    /// schema is an [`crate::ErrorKind::InvalidArgument`] naming the problem.
    pub(crate) fn constraint(&self, format: &Format, thinking_close: &[String]) -> Result<Constraint> {
        let schema = format.schema()?;
        let key = schema.to_string();
        let cached = {
            let mut compiled = self.compiled.lock();
            let hit = compiled.iter().position(|(k, _)| *k == key).map(|i| compiled.remove(i));
            hit.map(|(k, p)| {
                let copy = p.clone();
                compiled.push((k, p));
                copy
            })
        };
        let parser = match cached {
            Some(p) => p,
            None => {
                let p = self
                    .factory
                    .create_parser(TopLevelGrammar::from_json_schema(schema))
                    .map_err(|e| Error::invalid(format!("the format's JSON schema cannot be used: {e}")))?;
                if p.error_message().is_none() {
                    let mut compiled = self.compiled.lock();
                    if compiled.len() == COMPILED_KEPT {
                        compiled.remove(0);
                    }
                    compiled.push((key, p.clone()));
                }
                p
            }
        };
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::invalid(format!("the format's JSON schema cannot be used: {e}")));
        }
        let close: Vec<String> = thinking_close.iter().filter(|s| !s.is_empty()).cloned().collect();
        Ok(Constraint {
            matcher,
            saved: vec![0.0; self.eos.len()],
            eos: self.eos.clone(),
            active: close.is_empty(),
            window: String::new(),
            close,
            ahead: None,
        })
    }
}

/// The grammar state of one generation.
pub(crate) struct Constraint {
    matcher: Matcher,
    eos: Vec<u32>,
    /// The end tokens' logits while a mask is applied (sized once).
    saved: Vec<f32>,
    /// False while a thinking block is open.
    active: bool,
    /// The strings that close the thinking block.
    close: Vec<String>,
    /// The tail of the thinking text, long enough to hold a closing string.
    window: String,
    /// The mask for the next token, computed ahead by [`Constraint::prepare`]
    /// (while the card runs the step whose logits it will mask).
    ahead: Option<SimpleVob>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint").field("active", &self.active).finish()
    }
}

impl Constraint {
    /// Sets every token the grammar forbids next to -inf in `logits`. The
    /// model's end tokens are allowed exactly when the grammar may end.
    pub(crate) fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        if !self.active {
            return Ok(());
        }
        let mask = match self.ahead.take() {
            Some(mask) => mask,
            None => self.matcher.compute_mask_or_eos().map_err(|e| grammar_failed(&e.to_string()))?,
        };
        // The engine knows one end token (the first); the others follow it.
        let eos_ok = (self.eos[0] as usize) < mask.len() && mask.is_allowed(self.eos[0]);
        for (saved, &t) in self.saved.iter_mut().zip(&self.eos) {
            *saved = logits.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY);
        }
        apply(&mask, logits);
        for (&saved, &t) in self.saved.iter().zip(&self.eos) {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if eos_ok { saved } else { f32::NEG_INFINITY };
            }
        }
        if !eos_ok && mask.is_zero() {
            return Err(grammar_failed("no token is allowed"));
        }
        Ok(())
    }

    /// Computes the mask [`Constraint::mask`] will apply next, now: the
    /// grammar state after the last commit decides it, not the logits, so a
    /// pipelined generation computes it while the card runs the step.
    pub(crate) fn prepare(&mut self) -> Result<()> {
        if self.active && self.ahead.is_none() && !self.matcher.is_stopped() {
            let mask = self.matcher.compute_mask_or_eos().map_err(|e| grammar_failed(&e.to_string()))?;
            self.ahead = Some(mask);
        }
        Ok(())
    }

    /// Records the sampled token (its decoded text is `piece`).
    pub(crate) fn commit(&mut self, token: u32, piece: &str) -> Result<()> {
        // A mask computed ahead was for the state before this token.
        self.ahead = None;
        if !self.active {
            self.window.push_str(piece);
            if self.close.iter().any(|c| self.window.contains(c.as_str())) {
                self.active = true;
                self.window = String::new();
            } else {
                let keep = self.close.iter().map(|c| c.len()).max().unwrap_or(0);
                let mut cut = self.window.len().saturating_sub(keep);
                while !self.window.is_char_boundary(cut) {
                    cut -= 1;
                }
                self.window.drain(..cut);
            }
            return Ok(());
        }
        if self.eos.contains(&token) || self.matcher.is_stopped() {
            return Ok(());
        }
        self.matcher.consume_token(token).map_err(|e| grammar_failed(&e.to_string()))
    }

    /// False while a thinking block is open (nothing is masked then).
    pub(crate) fn active(&self) -> bool {
        self.active
    }

    /// True when the grammar is complete and only an end token may follow.
    pub(crate) fn finished(&self) -> bool {
        self.active && self.matcher.is_stopped()
    }
}

/// Applies a token mask: words of all-allowed tokens are skipped whole,
/// words of all-forbidden ones filled whole, and the rest set logit by logit
/// without a branch (a mixed word's bits are as good as random, so a branch
/// per logit would mispredict about half the time: at Qwen3's 151,936 logits
/// that was 90 of a typical step's 97 µs; BENCHMARKS.md, "Structured outputs").
fn apply(mask: &SimpleVob, logits: &mut [f32]) {
    const FORBIDDEN: u32 = 0xff80_0000; // f32::NEG_INFINITY
    fn select(l: &mut f32, bits: u32, i: usize) {
        let keep = 0u32.wrapping_sub((bits >> i) & 1);
        *l = f32::from_bits((l.to_bits() & keep) | (FORBIDDEN & !keep));
    }
    let words = mask.as_slice();
    let tail_word = logits.len() / 32;
    let mut chunks = logits.chunks_exact_mut(32);
    for (w, chunk) in (&mut chunks).enumerate() {
        let bits = words.get(w).copied().unwrap_or(0);
        if bits == u32::MAX {
            continue;
        }
        if bits == 0 {
            chunk.fill(f32::NEG_INFINITY);
            continue;
        }
        for (i, l) in chunk.iter_mut().enumerate() {
            select(l, bits, i);
        }
    }
    let bits = words.get(tail_word).copied().unwrap_or(0);
    for (i, l) in chunks.into_remainder().iter_mut().enumerate() {
        select(l, bits, i);
    }
}

fn grammar_failed(why: &str) -> Error {
    Error::invalid(format!("the output format cannot be continued: {why}"))
}

/// Measures the per-token cost of a constraint for the benchmark: builds the
/// vocabulary of `tokenizer_json` (padded to `vocab`), then, for `steps`
/// steps, masks a copy of `logits`, takes the best allowed token and commits
/// it, starting a new constraint whenever one ends. Returns each mask's wall
/// time and the calling thread's CPU time (`cpu_ns`, a clock the caller
/// supplies: the difference separates a descheduled step from a slow one).
#[doc(hidden)]
pub fn mask_cost(
    tokenizer_json: &str,
    eos: u32,
    vocab: usize,
    format: &Format,
    logits: &[f32],
    steps: usize,
    cpu_ns: &dyn Fn() -> u64,
) -> Result<Vec<(std::time::Duration, u64)>> {
    let json: serde_json::Value =
        serde_json::from_str(tokenizer_json).map_err(|e| Error::invalid(format!("tokenizer.json: {e}")))?;
    let vocabulary = Vocabulary::new(&token_bytes_of_json(&json, vocab)?, vec![eos])?;
    let mut c = vocabulary.constraint(format, &[])?;
    let mut work = vec![0f32; vocab];
    let mut times = Vec::with_capacity(steps);
    let mut offset = 0usize;
    for _ in 0..steps {
        // Rotate the logits so that the model's preferences change every step.
        offset = (offset + 7919) % vocab;
        work[..vocab - offset].copy_from_slice(&logits[offset..vocab]);
        work[vocab - offset..].copy_from_slice(&logits[..offset]);
        let (t, cpu) = (std::time::Instant::now(), cpu_ns());
        c.mask(&mut work)?;
        times.push((t.elapsed(), cpu_ns() - cpu));
        let tok = crate::sampling::argmax(&work);
        if tok == eos {
            c = vocabulary.constraint(format, &[])?;
            continue;
        }
        c.commit(tok, "")?;
    }
    Ok(times)
}

/// Qwen2.5's and Qwen3's added tokens, in id order from 151,643 (right after
/// the 151,643 BPE tokens): the text, and whether `tokenizer.json` marks it
/// special. The think and tool markers are added but not special, so they
/// are plain text to the grammar engine, as with a real Qwen3 tokenizer.
const QWEN3_ADDED: [(&str, bool); 26] = [
    ("<|endoftext|>", true),
    ("<|im_start|>", true),
    ("<|im_end|>", true),
    ("<|object_ref_start|>", true),
    ("<|object_ref_end|>", true),
    ("<|box_start|>", true),
    ("<|box_end|>", true),
    ("<|quad_start|>", true),
    ("<|quad_end|>", true),
    ("<|vision_start|>", true),
    ("<|vision_end|>", true),
    ("<|vision_pad|>", true),
    ("<|image_pad|>", true),
    ("<|video_pad|>", true),
    ("<tool_call>", false),
    ("</tool_call>", false),
    ("<|fim_prefix|>", false),
    ("<|fim_middle|>", false),
    ("<|fim_suffix|>", false),
    ("<|fim_pad|>", false),
    ("<|repo_name|>", false),
    ("<|file_sep|>", false),
    ("<tool_response>", false),
    ("</tool_response>", false),
    ("<think>", false),
    ("</think>", false),
];

/// Qwen's byte-level BPE tokens (ids 0..151,643), shared by Qwen2 and Qwen3.
#[doc(hidden)]
pub const QWEN_BPE_TOKENS: usize = 151_643;

/// Rows of a Qwen3 model's embedding and logits: its 151,669 tokens padded
/// with ids no tokenizer produces.
#[doc(hidden)]
pub const QWEN3_VOCAB: usize = 151_936;

/// Qwen3's `<|im_end|>`, the end of an answer.
#[doc(hidden)]
pub const QWEN3_IM_END: u32 = 151_645;

/// The `tokenizer.json` of a Qwen3 model as far as the grammar engine reads
/// one (byte-level BPE vocabulary, added tokens, decoder type), built from
/// Qwen's real vocabulary file `qwen.tiktoken` (one `base64(token bytes) id`
/// line per BPE token; `scripts/qwen_vocab.sh` fetches it). For the grammar
/// benchmark and the tokenizer-realistic test; models bring their own.
#[doc(hidden)]
pub fn qwen3_tokenizer_json(tiktoken: &str) -> Result<String> {
    let bad = |line: usize, why: &str| Error::invalid(format!("qwen.tiktoken line {}: {why}", line + 1));
    // GPT-2's byte-to-character map, which byte-level BPE vocabularies use.
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut byte_char = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        byte_char[b as usize] = if printable(b) {
            b as char
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
    }
    let mut vocab = serde_json::Map::new();
    let mut seen = vec![false; QWEN_BPE_TOKENS];
    for (n, line) in tiktoken.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut fields = line.split_ascii_whitespace();
        let (Some(b64), Some(id), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad(n, "expected `base64 id`"));
        };
        let id: usize = id.parse().map_err(|_| bad(n, "the id is not a number"))?;
        if id >= QWEN_BPE_TOKENS || std::mem::replace(&mut seen[id], true) {
            return Err(bad(n, "id out of range or repeated"));
        }
        let bytes = base64_decode(b64).ok_or_else(|| bad(n, "not base64"))?;
        let name: String = bytes.iter().map(|&b| byte_char[b as usize]).collect();
        if vocab.insert(name, serde_json::json!(id)).is_some() {
            return Err(bad(n, "repeated token"));
        }
    }
    if vocab.len() != QWEN_BPE_TOKENS {
        return Err(Error::invalid(format!("qwen.tiktoken has {} tokens, not {QWEN_BPE_TOKENS}", vocab.len())));
    }
    let added: Vec<serde_json::Value> = QWEN3_ADDED
        .iter()
        .enumerate()
        .map(|(i, (text, special))| serde_json::json!({"id": QWEN_BPE_TOKENS + i, "content": text, "special": special}))
        .collect();
    let json = serde_json::json!({
        "added_tokens": added,
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab},
    });
    Ok(json.to_string())
}

/// Standard base64 (with `=` padding) to bytes; `None` if it is not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let text = text.as_bytes();
    if text.is_empty() || !text.len().is_multiple_of(4) {
        return None;
    }
    let body = text.strip_suffix(b"==").or_else(|| text.strip_suffix(b"=")).unwrap_or(text);
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in body {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Left-over bits are padding and must be zero.
    (acc & ((1 << bits) - 1) == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_format_values() {
        assert_eq!(Format::from_ollama("").unwrap(), None);
        assert_eq!(Format::from_ollama("null").unwrap(), None);
        assert_eq!(Format::from_ollama("\"json\"").unwrap(), Some(Format::Json));
        assert!(matches!(Format::from_ollama("{\"type\":\"object\"}").unwrap(), Some(Format::JsonSchema(_))));
        assert!(Format::from_ollama("\"yaml\"").is_err());
        assert!(Format::from_ollama("{oops").is_err());
    }

    #[test]
    fn mask_skips_full_words_and_clears_the_rest() {
        let mut v = SimpleVob::alloc(70);
        v.allow_token(3);
        v.allow_range(32..=63);
        v.allow_token(66);
        let before: Vec<f32> = (0..70).map(|i| i as f32 - 35.5).collect();
        let mut logits = before.clone();
        apply(&v, &mut logits);
        let allowed: Vec<usize> = (0..70).filter(|&i| logits[i] > f32::NEG_INFINITY).collect();
        assert_eq!(allowed, [3].into_iter().chain(32..64).chain([66]).collect::<Vec<_>>());
        assert!(allowed.iter().all(|&i| logits[i] == before[i]), "allowed logits are kept as they were");
    }

    #[test]
    fn base64_of_tiktoken_lines() {
        assert_eq!(base64_decode("IQ==").unwrap(), b"!");
        assert_eq!(base64_decode("4rqf").unwrap(), "\u{2e9f}".as_bytes());
        assert_eq!(base64_decode("IHRoZQ==").unwrap(), b" the");
        assert_eq!(base64_decode("IHRo").unwrap(), b" th");
        for bad in ["", "IQ=", "I!==", "IR==", "IQ==IQ=="] {
            assert!(base64_decode(bad).is_none(), "{bad}");
        }
        assert!(qwen3_tokenizer_json("IQ== 0\nIQ== 1\n").is_err(), "a repeated token");
        assert!(qwen3_tokenizer_json("IQ== 0\n").is_err(), "too few tokens");
        assert!(qwen3_tokenizer_json("IQ==\n").is_err(), "no id");
    }

    /// Qwen's real vocabulary, if `scripts/qwen_vocab.sh` fetched it (or
    /// `AXLLM_QWEN_TIKTOKEN` names it).
    fn qwen_tiktoken() -> Option<String> {
        let path = std::env::var_os("AXLLM_QWEN_TIKTOKEN").map(std::path::PathBuf::from).unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/qwen-vocab/qwen.tiktoken")
        });
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) => {
                eprintln!("skipped: no Qwen vocabulary at {} ({e}); scripts/qwen_vocab.sh fetches it", path.display());
                None
            }
        }
    }

    /// With Qwen3's real 151,936-row vocabulary: the tokens are what a Qwen3
    /// tokenizer.json gives, a mask never allows a padding id or a special
    /// token other than the ends, multi-byte tokens are used, and every
    /// output of a walk with pseudo-random logits parses and validates.
    #[test]
    fn real_qwen_vocabulary_keeps_outputs_valid() {
        let Some(text) = qwen_tiktoken() else { return };
        let json: serde_json::Value = serde_json::from_str(&qwen3_tokenizer_json(&text).unwrap()).unwrap();
        let words = token_bytes_of_json(&json, QWEN3_VOCAB).unwrap();
        assert_eq!(words.len(), QWEN3_VOCAB);
        assert_eq!(words[0], b"!");
        let special = |t: &str| [&[TokTrie::SPECIAL_TOKEN_MARKER], t.as_bytes()].concat();
        assert_eq!(words[QWEN3_IM_END as usize], special("<|im_end|>"));
        assert_eq!(words[151_643], special("<|endoftext|>"));
        assert_eq!(words[151_667], b"<think>", "added but not special");
        assert!(words[151_669..].iter().all(Vec::is_empty), "padding ids have no bytes");
        let id = |b: &[u8]| words.iter().position(|w| w == b).unwrap_or_else(|| panic!("{b:?} is a Qwen token"));
        let (brace_quote, quote) = (id(b"{\""), id(b"\""));
        let ends = [QWEN3_IM_END as usize, 151_643];

        let vocabulary = Vocabulary::new(&words, vec![QWEN3_IM_END, 151_643]).unwrap();
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "kind": {"enum": ["cat", "dog", "bird"]},
                "age": {"type": "integer", "minimum": 0, "maximum": 99},
                "name": {"type": "string", "maxLength": 12},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
                "owner": {
                    "type": "object",
                    "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 1000}, "ok": {"type": "boolean"}},
                    "required": ["id", "ok"],
                    "additionalProperties": false
                }
            },
            "required": ["kind", "age", "name", "owner"],
            "additionalProperties": false
        });
        let format = Format::JsonSchema(schema.to_string());
        let mut state = 7u64;
        let mut logits = vec![0f32; QWEN3_VOCAB];
        let mut finished = 0;
        for run in 0..6 {
            let mut c = vocabulary.constraint(&format, &[]).unwrap();
            let mut out = Vec::new();
            for step in 0..400 {
                for l in logits.iter_mut() {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    *l = (state >> 40) as f32;
                }
                c.mask(&mut logits).unwrap();
                let allowed = |t: usize| logits[t] > f32::NEG_INFINITY;
                assert!((151_669..QWEN3_VOCAB).all(|t| !allowed(t)), "run {run} step {step}: a padding id is allowed");
                assert!(
                    (151_643..151_657).all(|t| !allowed(t) || ends.contains(&t)),
                    "run {run} step {step}: a special token is allowed"
                );
                if step == 0 {
                    assert!(allowed(brace_quote) && !allowed(quote), "the object starts with `{{` (one token may hold `{{\"`)");
                }
                let tok = crate::sampling::argmax(&logits);
                if ends.contains(&(tok as usize)) {
                    let text = String::from_utf8(out.clone()).expect("the output is UTF-8");
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
                    let o = v.as_object().unwrap_or_else(|| panic!("not an object: {text}"));
                    assert!(o.keys().all(|k| ["kind", "age", "name", "tags", "owner"].contains(&k.as_str())), "{text}");
                    assert!(["cat", "dog", "bird"].contains(&o["kind"].as_str().unwrap_or("?")), "{text}");
                    assert!(o["age"].as_i64().is_some_and(|a| (0..=99).contains(&a)), "{text}");
                    assert!(o["name"].as_str().is_some_and(|s| s.chars().count() <= 12), "{text}");
                    if let Some(tags) = o.get("tags") {
                        let tags = tags.as_array().unwrap_or_else(|| panic!("{text}"));
                        assert!(tags.len() <= 3 && tags.iter().all(|t| t.as_str().is_some_and(|s| s.chars().count() <= 6)), "{text}");
                    }
                    let owner = o["owner"].as_object().unwrap_or_else(|| panic!("{text}"));
                    assert!(owner.len() == 2 && owner["ok"].is_boolean(), "{text}");
                    assert!(owner["id"].as_i64().is_some_and(|a| (0..=1000).contains(&a)), "{text}");
                    finished += 1;
                    break;
                }
                assert!(!c.finished(), "run {run}: only an end may follow a finished object");
                out.extend_from_slice(display_bytes(&words[tok as usize]));
                c.commit(tok, "").unwrap();
            }
        }
        assert!(finished >= 4, "only {finished} of 6 walks finished within 400 tokens");
    }
}
