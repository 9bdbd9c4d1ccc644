#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| axllm_fuzz::model_dir(data));
