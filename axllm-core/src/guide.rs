//! What shapes each token choice beyond sampling: a grammar constraint that
//! masks the logits, and the log probabilities a caller asked for. Both see
//! the logits the sampler draws from: after the penalties (and the mask),
//! before any truncation (top-k, top-p, min-p) and before temperature.

use crate::error::{Error, Result};
use crate::grammar::{self, Constraint, Vocabulary};
use crate::options::GenerateOptions;
use crate::package::Tokenizer;
use crate::sampling::{Sampler, top_k_scan};
use std::sync::{Arc, OnceLock};

/// The most alternatives [`crate::GenerateOptions::top_logprobs`] may ask for (Ollama's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// One of the most likely tokens at a position.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    /// The token id.
    pub token: u32,
    /// The token's text: [`TopLogprob::bytes`] as UTF-8, a partial
    /// character as U+FFFD (Ollama's per-token text).
    pub text: String,
    /// The bytes the token adds to the output (a byte-fallback token: its
    /// byte; a special token: its text). The generated tokens' bytes, joined,
    /// are the output's bytes.
    pub bytes: Vec<u8>,
    /// Its natural-log probability.
    pub logprob: f32,
}

/// The log probability of a generated token, and the most likely tokens at its position.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The generated token.
    pub token: TopLogprob,
    /// The `top_logprobs` most likely tokens, most likely first.
    pub top: Vec<TopLogprob>,
}

/// What a model's guides share, each part built by the first generation that needs it.
#[derive(Debug, Default)]
pub(crate) struct GuideCells {
    /// Every token's bytes ([`grammar::token_bytes`]).
    bytes: OnceLock<std::result::Result<Arc<Vec<Vec<u8>>>, String>>,
    /// The grammar engine's vocabulary.
    vocabulary: OnceLock<std::result::Result<Arc<Vocabulary>, String>>,
}

impl GuideCells {
    fn bytes(&self, tokenizer: &Tokenizer, vocab: usize) -> Result<Arc<Vec<Vec<u8>>>> {
        self.bytes
            .get_or_init(|| grammar::token_bytes(tokenizer, vocab).map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::invalid)
    }

    fn vocabulary(&self, tokenizer: &Tokenizer, vocab: usize) -> Result<Arc<Vocabulary>> {
        let bytes = self.bytes(tokenizer, vocab).map_err(|e| Error::invalid(format!("cannot use a format with this tokenizer: {e}")))?;
        self.vocabulary
            .get_or_init(|| Vocabulary::new(&bytes, tokenizer.eos_ids().to_vec()).map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::invalid)
    }
}

/// The per-generation guide.
#[derive(Debug, Default)]
pub(crate) struct Guide {
    constraint: Option<Constraint>,
    logprobs: bool,
    top: usize,
    /// The logprob of the token chosen last, until it is emitted.
    chosen: Option<TokenLogprob>,
    /// Emitted tokens' logprobs not yet taken by the caller.
    emitted: Vec<TokenLogprob>,
    top_buf: Vec<(f32, u32)>,
    /// Every token's bytes, with logprobs (None: the tokenizer has no byte
    /// view; a token's text is then its decoding alone).
    bytes: Option<Arc<Vec<Vec<u8>>>>,
}

impl Guide {
    /// The guide `opts` ask for; compiles the format (a bad schema fails here).
    pub(crate) fn new(opts: &GenerateOptions, cells: &GuideCells, tokenizer: &Tokenizer, vocab: usize) -> Result<Guide> {
        if opts.top_logprobs > MAX_TOP_LOGPROBS {
            return Err(Error::invalid(format!("top_logprobs must be at most {MAX_TOP_LOGPROBS}, not {}", opts.top_logprobs)));
        }
        let constraint = match &opts.format {
            None => None,
            Some(format) => {
                Some(cells.vocabulary(tokenizer, vocab)?.constraint(format, &opts.thinking_close)?)
            }
        };
        let bytes = if opts.logprobs { cells.bytes(tokenizer, vocab).ok() } else { None };
        Ok(Guide {
            constraint,
            bytes,
            logprobs: opts.logprobs,
            top: if opts.logprobs { opts.top_logprobs } else { 0 },
            top_buf: Vec::with_capacity(opts.top_logprobs),
            ..Default::default()
        })
    }

    /// Chooses the next token from the model's logits.
    /// Without a mask to apply or logprobs to report, the sampler's fused
    /// path draws straight from the bf16 logits; otherwise the logits are
    /// converted and penalised ([`Sampler::load`]), masked, read for the
    /// logprobs, and drawn from ([`Sampler::pick`]): the same draw.
    pub(crate) fn choose(&mut self, sampler: &mut Sampler, logits: &[u16], tokenizer: &Tokenizer) -> Result<u32> {
        let masking = self.constraint.as_ref().is_some_and(Constraint::active);
        if !masking && !self.logprobs {
            return Ok(sampler.sample(logits));
        }
        sampler.load(logits);
        if let Some(c) = self.constraint.as_mut() {
            c.mask(sampler.logits_mut())?;
        }
        let token = sampler.pick();
        if self.logprobs {
            self.chosen = Some(self.logprob_of(sampler.logits_mut(), token, tokenizer)?);
        }
        Ok(token)
    }

    /// The chosen token is emitted (not an end token): the grammar takes it,
    /// its logprob joins those the caller takes.
    pub(crate) fn emitted(&mut self, token: u32, piece: &str) -> Result<()> {
        if let Some(c) = self.constraint.as_mut() {
            c.commit(token, piece)?;
        }
        if let Some(lp) = self.chosen.take() {
            self.emitted.push(lp);
        }
        Ok(())
    }

    /// Computes the next token's mask ahead (see [`Constraint::prepare`]).
    pub(crate) fn prepare(&mut self) -> Result<()> {
        match self.constraint.as_mut() {
            Some(c) => c.prepare(),
            None => Ok(()),
        }
    }

    /// True when a format constrains the output.
    pub(crate) fn constrained(&self) -> bool {
        self.constraint.is_some()
    }

    /// True when the format is complete: only an end token may follow.
    pub(crate) fn format_complete(&self) -> bool {
        self.constraint.as_ref().is_some_and(Constraint::finished)
    }

    /// The logprobs of the tokens emitted since the last call.
    pub(crate) fn take_logprobs(&mut self) -> Vec<TokenLogprob> {
        std::mem::take(&mut self.emitted)
    }

    fn logprob_of(&mut self, logits: &[f32], token: u32, tokenizer: &Tokenizer) -> Result<TokenLogprob> {
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
        let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
        let lse = max + sum.ln();
        let table = self.bytes.as_deref();
        let entry = |t: u32, l: f32| -> Result<TopLogprob> {
            let bytes = match table {
                Some(words) => grammar::display_bytes(words.get(t as usize).map_or(&[][..], Vec::as_slice)).to_vec(),
                None => tokenizer.decode(&[t])?.into_bytes(),
            };
            Ok(TopLogprob { token: t, text: String::from_utf8_lossy(&bytes).into_owned(), bytes, logprob: l - lse })
        };
        let chosen = entry(token, logits.get(token as usize).copied().unwrap_or(f32::NEG_INFINITY))?;
        let mut top = Vec::with_capacity(self.top);
        if self.top > 0 {
            top_k_scan(logits, self.top, &mut self.top_buf);
            for &(l, t) in &self.top_buf {
                if l > f32::NEG_INFINITY {
                    top.push(entry(t, l)?);
                }
            }
        }
        Ok(TokenLogprob { token: chosen, top })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_of_the_sampler_logits() {
        // Without a tokenizer: check the arithmetic top_k_scan and lse feed.
        let logits = [0.0f32, (2.0f32).ln(), f32::NEG_INFINITY, (5.0f32).ln()];
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
        let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
        assert!(((logits[3] - lse) - (5.0f32 / 8.0).ln()).abs() < 1e-6);
        let mut buf = Vec::new();
        top_k_scan(&logits, 2, &mut buf);
        assert_eq!(buf.iter().map(|c| c.1).collect::<Vec<_>>(), [3, 1]);
    }
}
