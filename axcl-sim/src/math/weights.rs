//! Reading a model file's weights by name, as f32.

use super::error::MathError;
use crate::format::{DType, ModelKind, SimModelFile};
use half::bf16;
use std::collections::HashSet;

/// Reads weights by name, converting them to f32, and remembers which names the
/// math asked for so that leftover (unknown) weights can be reported.
pub(super) struct WeightReader<'a> {
    file: &'a SimModelFile,
    asked: HashSet<String>,
}

impl<'a> WeightReader<'a> {
    pub(super) fn new(file: &'a SimModelFile) -> Self {
        Self { file, asked: HashSet::new() }
    }

    pub(super) fn required(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, MathError> {
        self.optional(name, shape)?.ok_or_else(|| MathError::MissingWeight(name.to_owned()))
    }

    pub(super) fn optional(&mut self, name: &str, shape: &[usize]) -> Result<Option<Vec<f32>>, MathError> {
        self.asked.insert(name.to_owned());
        let Some((entry, bytes)) = self.file.tensor_bytes(name) else { return Ok(None) };
        if entry.shape != shape {
            return Err(MathError::WeightShape {
                name: name.to_owned(),
                got: entry.shape.clone(),
                want: shape.to_vec(),
            });
        }
        let values = match entry.dtype {
            DType::Bf16 => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            DType::U32 => return Err(MathError::WeightDType { name: name.to_owned(), dtype: entry.dtype }),
        };
        Ok(Some(values))
    }

    /// Fails on a stored weight the math never asked for.
    pub(super) fn finish(self) -> Result<(), MathError> {
        match self.file.header.tensors.iter().find(|t| !self.asked.contains(&t.name)) {
            Some(t) => Err(MathError::UnknownWeight(t.name.clone())),
            None => Ok(()),
        }
    }
}

pub(super) fn expect_kind(file: &SimModelFile, expected: ModelKind) -> Result<(), MathError> {
    match file.header.kind {
        found if found == expected => Ok(()),
        found => Err(MathError::WrongKind { expected, found }),
    }
}

pub(super) fn eps_of(file: &SimModelFile) -> Result<f32, MathError> {
    let eps = file.header.geometry.rms_norm_eps;
    if eps.is_finite() && eps >= 0.0 { Ok(eps as f32) } else { Err(MathError::Geometry(format!("rms_norm_eps {eps}"))) }
}

pub(super) fn to_f32(values: &[bf16]) -> Vec<f32> {
    values.iter().map(|v| v.to_f32()).collect()
}
