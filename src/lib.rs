//! The workspace root package: it hosts `examples/` (chat, inspect, replay)
//! and the end-to-end tests in `tests/`, which use `axllm-core` directly.
