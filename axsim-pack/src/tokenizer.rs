//! The test tokenizer: a real byte-level BPE trained at pack time on a
//! built-in corpus, with Qwen-style added tokens and a ChatML chat template.
//! It is small but behaves like the real thing: any text encodes, multi-byte
//! characters can be split across tokens, special tokens are single ids.

use super::hf::HfFile;
use anyhow::{Context, Result, ensure};
use serde_json::{Map, Value, json};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, TokenizerBuilder, TokenizerImpl};

pub const ENDOFTEXT: &str = "<|endoftext|>";
pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";

/// Tokens added after the trained vocabulary, in id order, with whether each
/// is special. As in Qwen3, the think and tool markers are added but not
/// special (so decoding with `skip_special_tokens` keeps them).
pub const ADDED_TOKENS: [(&str, bool); 9] = [
    (ENDOFTEXT, true),
    (IM_START, true),
    (IM_END, true),
    ("<think>", false),
    ("</think>", false),
    ("<tool_call>", false),
    ("</tool_call>", false),
    ("<tool_response>", false),
    ("</tool_response>", false),
];

/// Default BPE vocabulary size (256 byte tokens plus merges), before added tokens.
pub const DEFAULT_VOCAB_TARGET: usize = 512;

const CORPUS: &str = include_str!("corpus.txt");
const CHAT_TEMPLATE: &str = include_str!("chat_template.jinja");

/// The ChatML chat template stored in tokenizer_config.json (Jinja; renders
/// the same in minijinja and Python jinja2).
pub fn chat_template() -> &'static str {
    CHAT_TEMPLATE.trim_end()
}

/// A trained tokenizer, serialised the way Hugging Face saves one.
#[derive(Debug, Clone)]
pub struct TrainedTokenizer {
    /// tokenizer.json
    pub tokenizer_json: String,
    /// tokenizer_config.json (with `added_tokens_decoder` and `chat_template`)
    pub tokenizer_config_json: String,
    /// generation_config.json (eos ids `<|im_end|>` and `<|endoftext|>`)
    pub generation_config_json: String,
    /// Number of ids: trained vocabulary plus added tokens.
    pub len: usize,
    pub endoftext_id: u32,
    pub im_end_id: u32,
}

type Trainable = TokenizerImpl<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

fn tk<T>(r: tokenizers::Result<T>) -> Result<T> {
    r.map_err(anyhow::Error::msg)
}

/// Trains the byte-level BPE on the built-in corpus up to `vocab_target`
/// entries (fewer if the corpus runs out of pairs) and adds [`ADDED_TOKENS`].
/// Deterministic: the same target gives the same tokenizer.
pub fn train_tokenizer(vocab_target: usize) -> Result<TrainedTokenizer> {
    ensure!(vocab_target >= 256, "the vocabulary target {vocab_target} is below the 256 byte tokens");
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_target)
        // The whole byte alphabet, so text never seen in training still encodes.
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let byte_level = ByteLevel::new(false, true, true);
    let mut tok: Trainable = tk(TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(byte_level.into()))
        .with_post_processor(Some(byte_level.into()))
        .with_decoder(Some(byte_level.into()))
        .build())
    .context("building the tokenizer")?;
    tk(tok.train(&mut trainer, CORPUS.split_inclusive('\n'))).context("training the tokenizer")?;
    for (content, special) in ADDED_TOKENS {
        let token = AddedToken::from(content, special).normalized(false);
        if special {
            tok.add_special_tokens(&[token]);
        } else {
            tok.add_tokens(&[token]);
        }
    }
    let id = |t: &str| tok.token_to_id(t).with_context(|| format!("added token {t} has no id"));
    let (endoftext_id, im_end_id) = (id(ENDOFTEXT)?, id(IM_END)?);
    let mut added = Map::new();
    for (content, special) in ADDED_TOKENS {
        added.insert(
            id(content)?.to_string(),
            json!({
                "content": content,
                "lstrip": false,
                "normalized": false,
                "rstrip": false,
                "single_word": false,
                "special": special,
            }),
        );
    }
    let tokenizer_config = json!({
        "add_bos_token": false,
        "add_prefix_space": false,
        "added_tokens_decoder": Value::Object(added),
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": null,
        "chat_template": chat_template(),
        "clean_up_tokenization_spaces": false,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": ENDOFTEXT,
        "split_special_tokens": false,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": null,
    });
    let generation_config = json!({
        "bos_token_id": endoftext_id,
        "do_sample": true,
        "eos_token_id": [im_end_id, endoftext_id],
        "pad_token_id": endoftext_id,
        "temperature": 0.6,
        "top_k": 20,
        "top_p": 0.95,
        "transformers_version": "4.51.0",
    });
    Ok(TrainedTokenizer {
        tokenizer_json: tk(tok.to_string(true)).context("serialising tokenizer.json")?,
        tokenizer_config_json: serde_json::to_string_pretty(&tokenizer_config)?,
        generation_config_json: serde_json::to_string_pretty(&generation_config)?,
        len: tok.get_vocab_size(true),
        endoftext_id,
        im_end_id,
    })
}

impl TrainedTokenizer {
    /// tokenizer.json, tokenizer_config.json and generation_config.json.
    pub(crate) fn files(&self) -> Vec<HfFile> {
        [
            ("tokenizer.json", &self.tokenizer_json),
            ("tokenizer_config.json", &self.tokenizer_config_json),
            ("generation_config.json", &self.generation_config_json),
        ]
        .into_iter()
        .map(|(name, text)| HfFile { name, bytes: text.clone().into_bytes() })
        .collect()
    }
}
