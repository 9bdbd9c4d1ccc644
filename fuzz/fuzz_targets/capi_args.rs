#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| axllm_fuzz::capi_args(data));
