//! Transformer math of simulated models (to be written).
