//! A vendor model package on disk: layout, JSON configs, embeddings, tokenizer.
pub mod config;
pub mod embed;
pub mod layout;
pub mod tokenizer;

pub use config::PostConfig;
pub use embed::Embeddings;
pub use layout::ModelFiles;
pub use tokenizer::{StreamDecoder, Tokenizer};
