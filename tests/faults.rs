//! Faults injected through the simulator reach the caller as clear errors,
//! leak no device memory, and the next request succeeds with the same output
//! as before the fault. One sequential test: fault settings are process-wide.

use axllm_core::{Error, ErrorKind, Model};
use axllm_testkit::*;

fn expect_device_error(r: axllm_core::Result<axllm_core::Completion>, call: &str) -> Error {
    match r {
        Ok(c) => panic!("expected a failure in {call}, got {:?}", c.reason),
        Err(e) => {
            assert!(e.is_device_failure(), "{e}");
            assert!(e.to_string().contains(call), "{e} should name {call}");
            e
        }
    }
}

#[test]
fn injected_faults_fail_cleanly_and_the_next_request_succeeds() {
    let dir = tempdir();
    let m = packed(dir.path(), axsim_pack::Family::Qwen3, axsim_pack::Layout::Axllm, 8);
    let model = Model::load(&m, &load_options()).unwrap();
    let sim = model.simulator().unwrap();
    let prompt = "<|im_start|>user\nsay something<|im_end|>\n<|im_start|>assistant\n";
    let want = model.generate(prompt, &greedy(16), |_| true).unwrap();
    let baseline = sim.counters().unwrap();
    let fresh = |model: &Model| {
        model.reset_cache().unwrap();
        model.generate(prompt, &greedy(16), |_| true).unwrap()
    };

    // A failed execute in the middle of decoding (prefill = 2 layers + post,
    // then each token 2 layers + post).
    sim.configure("fail=execute:7").unwrap();
    model.reset_cache().unwrap();
    let e = expect_device_error(model.generate(prompt, &greedy(16), |_| true), "axclrtEngineExecute");
    assert!(e.to_string().contains("0x8030070c") || e.to_string().contains("injected"), "{e}");
    assert_eq!(e.kind(), ErrorKind::RuntimeFailure, "{e}");
    let again = model.generate(prompt, &greedy(16), |_| true).unwrap();
    assert_eq!(again.tokens, want.tokens, "same output after recovering");
    assert_eq!(again.stats.prompt_reused, 0, "the cache was reset after the fault");

    // A failed copy: a K/V row scatter of prefill (device to device,
    // synchronous in the default schedule: queued copies are the opt-in
    // `async-copies`), a host-to-device input, the logits (device to host).
    for (spec, call) in [
        ("fail=d2d:3", "axclrtMemcpy(device to device)"),
        ("fail=h2d:4", "axclrtMemcpy(host to device)"),
        ("fail=d2h:2", "axclrtMemcpy(device to host)"),
    ] {
        sim.configure(spec).unwrap();
        model.reset_cache().unwrap();
        expect_device_error(model.generate(prompt, &greedy(16), |_| true), call);
        assert_eq!(fresh(&model).tokens, want.tokens, "after {spec}");
    }

    // The device lost mid-generation: every later call fails, so this model is
    // unusable; dropping it resets the device, and a fresh load works.
    sim.configure("lose_device=execute:5").unwrap();
    model.reset_cache().unwrap();
    let lost = expect_device_error(model.generate(prompt, &greedy(16), |_| true), "axclrtEngineExecute");
    assert!(matches!(lost, Error::DeviceLost { .. }), "{lost}");
    let e = model.generate(prompt, &greedy(16), |_| true).unwrap_err();
    assert!(matches!(e, Error::Poisoned { .. }), "{e}");
    assert!(e.to_string().contains("load it again"), "{e}");
    // The cause is kept: the card was lost, which is what the caller must act on.
    assert_eq!(e.kind(), ErrorKind::DeviceLost, "{e}");
    let cause = std::error::Error::source(&e).expect("the failure behind it");
    assert!(cause.to_string().contains("device was lost"), "{cause}");
    drop(model);
    let model = Model::load(&m, &load_options()).unwrap();
    assert_eq!(model.generate(prompt, &greedy(16), |_| true).unwrap().tokens, want.tokens);

    // Nothing leaked across all of it: the same allocations as one loaded model.
    let now = model.simulator().unwrap().counters().unwrap();
    assert_eq!((now.live_allocations, now.live_bytes, now.live_models), (baseline.live_allocations, baseline.live_bytes, baseline.live_models));
}

/// An abort inside the runtime kills the process that called it: that is why
/// Ollama runs the engine in a subprocess. Here: the child dies by SIGABRT.
#[test]
fn abort_inside_the_runtime_kills_only_the_calling_process() {
    if std::env::var_os("AXLLM_ABORT_CHILD").is_some() {
        let dir = tempdir();
        let model = qwen3(dir.path());
        model.simulator().unwrap().configure("abort=execute:4").unwrap();
        let _ = model.generate("boom", &greedy(8), |_| true);
        unreachable!("the runtime aborts the process");
    }
    let status = axllm_testkit::self_command()
        .args(["--exact", "abort_inside_the_runtime_kills_only_the_calling_process", "--nocapture"])
        .env("AXLLM_ABORT_CHILD", "1")
        .output()
        .unwrap()
        .status;
    use std::os::unix::process::ExitStatusExt;
    const SIGABRT: i32 = 6;
    assert_eq!(status.signal(), Some(SIGABRT), "{status:?}");
}
