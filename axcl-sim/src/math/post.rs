//! The post model: final RMSNorm and the lm_head.

use super::error::MathError;
use super::linear::Linear;
use super::norm::rms_norm;
use super::weights::{WeightReader, eps_of, expect_kind, to_f32};
use crate::format::{ModelKind, SimModelFile};
use half::bf16;

/// The post model: final RMSNorm and the lm_head, hidden rows to bf16 logits.
#[derive(Debug)]
pub struct PostHead {
    hidden: usize,
    vocab: usize,
    eps: f32,
    norm: Vec<f32>,
    lm_head: Linear,
}

impl PostHead {
    /// Builds the head from a parsed post model file (weights converted to f32).
    pub fn from_file(file: &SimModelFile) -> Result<Self, MathError> {
        expect_kind(file, ModelKind::Post)?;
        let g = &file.header.geometry;
        let (hidden, vocab) = (g.hidden_size, g.vocab_size);
        if hidden == 0 || vocab == 0 {
            return Err(MathError::Geometry(format!("hidden {hidden}, vocab {vocab}")));
        }
        let mut w = WeightReader::new(file);
        let head = Self {
            hidden,
            vocab,
            eps: eps_of(file)?,
            norm: w.required("norm.weight", &[hidden])?,
            lm_head: Linear::load(&mut w, "lm_head", vocab, hidden)?,
        };
        w.finish()?;
        Ok(head)
    }

    /// Checks the element counts of an input `[rows, H]` and output `[rows, V]`; returns `rows`.
    pub fn rows(&self, input: usize, output: usize) -> Result<usize, MathError> {
        let (h, v) = (self.hidden, self.vocab);
        let rows = input / h;
        if rows == 0 || !input.is_multiple_of(h) || output != rows * v {
            return Err(MathError::Shape(format!(
                "post input has {input} elements and output {output}, expected rows of {h} and {v}"
            )));
        }
        Ok(rows)
    }

    /// `input` `[rows, H]` → `output` `[rows, V]` logits.
    pub fn forward(&self, input: &[bf16], output: &mut [bf16]) -> Result<(), MathError> {
        let (h, v) = (self.hidden, self.vocab);
        let rows = self.rows(input.len(), output.len())?;
        let x = to_f32(input);
        let mut normed = vec![0.0f32; x.len()];
        for (xr, nr) in x.chunks_exact(h).zip(normed.chunks_exact_mut(h)) {
            rms_norm(xr, &self.norm, self.eps, nr);
        }
        let mut logits = vec![0.0f32; rows * v];
        self.lm_head.forward(&normed, &mut logits);
        for (o, l) in output.iter_mut().zip(logits) {
            *o = bf16::from_f32(l);
        }
        Ok(())
    }
}
