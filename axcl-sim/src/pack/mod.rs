//! Hugging Face checkpoint packer (to be written).
