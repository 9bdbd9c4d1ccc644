#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| axllm_fuzz::sim_format(data));
