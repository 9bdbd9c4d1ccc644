//! What goes wrong when a model file is turned into math or executed.

use crate::format::{DType, ModelKind};

/// Why a model file cannot be turned into math, or an execution does not fit it.
#[derive(Debug, thiserror::Error)]
pub enum MathError {
    #[error("expected a {expected:?} model, the file holds a {found:?} model")]
    WrongKind { expected: ModelKind, found: ModelKind },
    #[error("bad geometry: {0}")]
    Geometry(String),
    #[error("weight {0} is missing")]
    MissingWeight(String),
    #[error("weight {name} has shape {got:?}, the geometry needs {want:?}")]
    WeightShape { name: String, got: Vec<usize>, want: Vec<usize> },
    #[error("weight {name} is stored as {dtype:?}; weights must be bf16 or f32")]
    WeightDType { name: String, dtype: DType },
    #[error("weight {0} is not used by the math of this model kind (misspelt or foreign weight?)")]
    UnknownWeight(String),
    #[error("tensor sizes do not fit the model: {0}")]
    Shape(String),
}
