//! Text to token ids and back, through the `tokenizers` crate: special and
//! added tokens are recognised inside prompts, the end-of-generation set comes
//! from the package's JSON files, and [`StreamDecoder`] turns a token stream
//! into text pieces that never split a UTF-8 character.

use super::config::{HfGenerationFields, TokenRef};
use super::paths::PackageDir;
use crate::chat::ChatTemplate;
use crate::error::{Cause, Error, Result};
use std::path::{Path, PathBuf};

/// A model's tokenizer with its end-of-generation set and chat template.
#[derive(Debug)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    package: PathBuf,
    eos: Vec<u32>,
    chat_template: Option<String>,
    /// Texts of the BOS and EOS tokens named by tokenizer_config.json, for chat templates.
    bos_text: Option<String>,
    eos_text: Option<String>,
}

/// Names tried when no JSON file names an end token.
const FALLBACK_EOS: [&str; 5] = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>", "<|end_of_text|>"];

impl Tokenizer {
    /// Loads `tokenizer.json` and reads `tokenizer_config.json`,
    /// `generation_config.json` and `config.json` from `hf_dirs` (first found wins
    /// per file) for the end-of-generation set and the chat template.
    pub fn load(pkg: &PackageDir, path: &Path, hf_dirs: &[PathBuf]) -> Result<Tokenizer> {
        let text = pkg.read(path)?;
        let bad = |reason: &str, e: Cause| Error::bad_file_from(path, reason, e).in_package(pkg.root());
        // The tokenizers crate panics (an `expect`) on some malformed files,
        // for example one cut off inside its decoder: it only sees valid JSON,
        // and a panic it still raises becomes an error too.
        serde_json::from_slice::<serde::de::IgnoredAny>(&text)
            .map_err(|e| bad("not a usable tokenizer: invalid JSON", e.into()))?;
        let inner = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(&text))
            .map_err(|_| bad("not a usable tokenizer", "the tokenizers library panicked reading it".into()))?
            .map_err(|e| bad("not a usable tokenizer", e))?;
        let find = |name: &str| hf_dirs.iter().map(|d| d.join(name)).find(|p| pkg.has_file(p));
        let mut eos = Vec::new();
        let mut chat_template = None;
        let (mut bos_text, mut eos_text) = (None, None);
        for name in ["tokenizer_config.json", "generation_config.json", "config.json"] {
            let Some(file) = find(name) else { continue };
            let Some(fields) = HfGenerationFields::read_optional(pkg, &file)? else { continue };
            for r in [&fields.eos_token, &fields.eos_token_id].into_iter().flatten() {
                collect_ids(&inner, r, &mut eos);
            }
            if chat_template.is_none() {
                chat_template = fields.chat_template.as_ref().and_then(template_text);
            }
            bos_text = bos_text.or_else(|| fields.bos_token.as_ref().and_then(token_text));
            eos_text = eos_text.or_else(|| fields.eos_token.as_ref().and_then(token_text));
        }
        if chat_template.is_none()
            && let Some(p) = find("chat_template.jinja")
        {
            chat_template = String::from_utf8(pkg.read(&p)?).ok();
        }
        if eos.is_empty() {
            eos.extend(FALLBACK_EOS.iter().filter_map(|t| inner.token_to_id(t)));
        }
        eos.sort_unstable();
        eos.dedup();
        Ok(Tokenizer { inner, path: path.into(), package: pkg.root().into(), eos, chat_template, bos_text, eos_text })
    }

    fn err(&self, e: tokenizers::Error) -> Error {
        Error::bad_file_from(&self.path, "the tokenizer failed", e).in_package(&self.package)
    }

    /// Encodes text; special tokens written in the text (`<|im_start|>`) become
    /// their ids. `add_special` also applies the tokenizer's post-processor
    /// (for example a BOS token for Llama).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, add_special).map_err(|e| self.err(e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids to text, keeping special tokens visible.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| self.err(e))
    }

    /// Whether `id` ends a generation.
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos.binary_search(&id).is_ok()
    }
    /// The `tokenizers` tokenizer underneath (the grammar engine reads its vocabulary).
    pub(crate) fn hf(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
    /// The end-of-generation ids, sorted.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }
    /// The id of a token's text, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
    /// Number of ids the tokenizer can produce, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
    /// The Jinja chat template of `tokenizer_config.json` (or `chat_template.jinja`).
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
    /// The chat template compiled with the tokenizer's BOS/EOS texts.
    pub(crate) fn compile_chat_template(&self) -> Result<ChatTemplate> {
        let Some(source) = self.chat_template.as_deref() else {
            return Err(Error::chat_template("the model package has no chat template"));
        };
        ChatTemplate::new(source, self.bos_text.clone(), self.eos_text.clone())
    }
    /// The `tokenizer.json` it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn collect_ids(tok: &tokenizers::Tokenizer, r: &TokenRef, out: &mut Vec<u32>) {
    match r {
        TokenRef::Id(id) => out.push(*id),
        TokenRef::Ids(ids) => out.extend(ids),
        TokenRef::Text(t) | TokenRef::Added { content: t } => out.extend(tok.token_to_id(t)),
    }
}

/// The text of a token named in tokenizer_config.json (`"<s>"` or `{"content": "<s>"}`).
fn token_text(r: &TokenRef) -> Option<String> {
    match r {
        TokenRef::Text(t) | TokenRef::Added { content: t } => Some(t.clone()),
        TokenRef::Id(_) | TokenRef::Ids(_) => None,
    }
}

/// `chat_template` is a string, or a list of `{name, template}` (use "default").
fn template_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => items
            .iter()
            .find(|i| i.get("name").and_then(|n| n.as_str()) == Some("default"))
            .or_else(|| items.first())
            .and_then(|i| i.get("template"))
            .and_then(|t| t.as_str())
            .map(str::to_owned),
        _ => None,
    }
}

/// Incremental detokenizer. Decodes a short window of recent ids and emits
/// only text that is complete: a piece never ends in the middle of a UTF-8
/// character (byte-level tokens can split one), and special tokens such as
/// `<think>` stay visible.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl StreamDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one token; returns the text it completes (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let before = tok.decode(&self.ids[self.prefix..self.read])?;
        let after = tok.decode(&self.ids[self.prefix..])?;
        if after.len() <= before.len() || after.ends_with('\u{FFFD}') {
            return Ok(String::new()); // incomplete character: wait for more bytes
        }
        let piece = match after.strip_prefix(before.as_str()) {
            Some(p) => p.to_owned(),
            None => after.get(before.len()..).unwrap_or_default().to_owned(),
        };
        self.prefix = self.read;
        self.read = self.ids.len();
        // Keep the window small: everything before `prefix` is settled.
        if self.prefix > 64 {
            self.ids.drain(..self.prefix);
            self.read -= self.prefix;
            self.prefix = 0;
        }
        Ok(piece)
    }

    /// Text still held back at the end of a stream: a trailing incomplete
    /// character is dropped rather than emitted as broken UTF-8.
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<String> {
        let before = tok.decode(&self.ids[self.prefix..self.read])?;
        let after = tok.decode(&self.ids[self.prefix..])?;
        self.ids.clear();
        self.prefix = 0;
        self.read = 0;
        let tail = after.get(before.len()..).unwrap_or_default();
        Ok(tail.trim_end_matches('\u{FFFD}').to_owned())
    }
}
