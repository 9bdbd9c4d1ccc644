//! Embeddings from a generative model, pooled as Ollama pools one.
//!
//! A generative model has no pooling layer, so the vector is the hidden state
//! of the text's **last token** (what Ollama's llama.cpp runner returns for a
//! model without a pooling type), **L2-normalised** (what Ollama's embed
//! routes do to every vector). The hidden state is the last decoder layer's
//! output: the model's final RMSNorm lives inside the post model on the card
//! together with the LM head, so it is not applied. After L2 normalisation
//! that differs from the normed state only by the norm's per-channel weights
//! (the 1/rms scale cancels). The prompt goes through the layers as a
//! generation's prompt does (the cached prefix is reused, the cache then holds
//! the text) without running the post model, and one device-to-host copy
//! fetches the last row.

use crate::error::{Error, Result};
use crate::shared::Inner;
use std::sync::Arc;

/// Options of one embedding.
#[derive(Debug, Clone, Default)]
pub struct EmbedOptions {
    /// Cut a text longer than the context to its first tokens instead of
    /// refusing it (Ollama's `truncate`, on by default there).
    pub truncate: bool,
    /// Keep only the first this many values (renormalised), Ollama's and
    /// OpenAI's `dimensions`; `None` or a larger value: all of them.
    pub dimensions: Option<usize>,
    /// Apply the tokenizer's post-processor (BOS for Llama).
    pub add_special_tokens: bool,
}

/// An embedding vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// Unit length (L2), `hidden_size` values or `dimensions`.
    pub vector: Vec<f32>,
    /// Tokens of the text that went through the model.
    pub prompt_tokens: usize,
    /// True when the text was cut to fit the context.
    pub truncated: bool,
}

pub(crate) fn embed(inner: &Arc<Inner>, text: &str, opts: &EmbedOptions) -> Result<Embedding> {
    let mut tokens = inner.tokenizer.encode(text, opts.add_special_tokens)?;
    if tokens.is_empty() {
        return Err(Error::invalid("cannot embed an empty text"));
    }
    let max = inner.info.context_length;
    let truncated = tokens.len() > max;
    if truncated {
        if !opts.truncate {
            return Err(Error::PromptTooLong { tokens: tokens.len(), max });
        }
        tokens.truncate(max);
    }
    let mut hidden = vec![0u16; inner.info.hidden_size];
    let lease = Inner::lease(inner, &tokens, None);
    {
        // Declared after the lease: released before it releases the slot.
        let mut engine = inner.engine.lock();
        engine.select(lease.slot)?;
        engine.embed(&inner.embeddings, &tokens, &mut hidden)?;
    }
    drop(lease);
    let mut vector: Vec<f32> = hidden.iter().map(|&b| half::bf16::from_bits(b).to_f32()).collect();
    if let Some(d) = opts.dimensions.filter(|&d| d > 0 && d < vector.len()) {
        vector.truncate(d);
    }
    normalize(&mut vector)?;
    Ok(Embedding { vector, prompt_tokens: tokens.len(), truncated })
}

/// Scales `v` to unit L2 length.
fn normalize(v: &mut [f32]) -> Result<()> {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(Error::invalid("the model's hidden state has no direction (zero or not finite)"));
    }
    v.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalize_gives_unit_length_and_refuses_zero() {
        let mut v = [3.0f32, 4.0];
        super::normalize(&mut v).unwrap();
        assert_eq!(v, [0.6, 0.8]);
        assert!(super::normalize(&mut [0.0, 0.0]).is_err());
    }
}
