//! A vendor model package on disk: layout, JSON configs, embeddings,
//! tokenizer, and the rule that its paths stay inside it (`paths`).
pub mod config;
pub mod embed;
pub mod layout;
pub mod paths;
pub mod tokenizer;

pub use config::PostConfig;
pub use embed::Embeddings;
pub use layout::ModelFiles;
pub use paths::PackageDir;
pub use tokenizer::{StreamDecoder, Tokenizer};
