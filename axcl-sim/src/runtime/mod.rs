//! Exported AXCL symbols (to be written).
