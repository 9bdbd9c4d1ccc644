//! The static package check (`axllm_core::check_package`, what `ollama
//! create` runs): it refuses every broken package the loader refuses, naming
//! the file, and on a good package reports what the loaded model reports.

use axllm_core::{Error, ErrorKind, Model, PackageReport, check_package};
use axllm_testkit::*;
use axsim_pack::{Family, Layout};
use std::path::{Path, PathBuf};

fn fresh(layout: Layout) -> (TempDir, PathBuf) {
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, layout, 5);
    (dir, m)
}

fn layer(m: &Path, i: usize) -> PathBuf {
    m.join(format!("qwen3_p16_l{i}_together.axmodel"))
}

/// The check and the loader both refuse `m` as a bad package, both naming
/// `file` (relative to the package, as the loader's errors do).
fn refused(m: &Path, file: &Path, words: &str) -> Error {
    let e = match check_package(m, &[]) {
        Ok(r) => panic!("check accepted the broken package {}: {r:?}", m.display()),
        Err(e) => e,
    };
    let msg = e.to_string();
    let rel = file.strip_prefix(m).unwrap().display().to_string();
    assert!(msg.contains(&format!(": {rel}")), "{msg:?} should name {rel}");
    assert!(msg.contains(words), "{msg:?} should say {words:?}");
    assert_eq!(e.kind(), ErrorKind::BadPackage, "{msg}");
    match Model::load(m, &load_options()) {
        Ok(_model) => panic!("the loader accepted what the check refused: {msg}"),
        Err(l) => assert!(l.to_string().contains(&format!(": {rel}")), "the loader names {rel} too: {l}"),
    }
    e
}

#[test]
fn good_packages_report_what_the_loaded_model_reports() {
    for layout in [Layout::Axllm, Layout::HfPackage, Layout::Compiled] {
        let (_d, m) = fresh(layout);
        let r: PackageReport = check_package(&m, &[]).unwrap_or_else(|e| panic!("{layout:?}: {e}"));
        let model = Model::load(&m, &load_options()).unwrap();
        let info = model.info();
        assert_eq!(r.context_length, Some(info.context_length), "{layout:?}");
        assert_eq!(r.max_prefill, Some(info.max_prefill), "{layout:?}");
        assert_eq!(r.hidden_size, Some(info.hidden_size), "{layout:?}");
        assert_eq!(r.vocab, Some(info.vocab), "{layout:?}");
        assert_eq!(r.layers, info.layers, "{layout:?}");
        assert_eq!(r.chat_template.as_deref(), model.tokenizer().chat_template(), "{layout:?}");
        assert!(r.chat_template.as_deref().is_some_and(|t| t.contains("<|im_start|>")), "{layout:?}");
        assert_eq!(r.sampling_defaults, Some(model.default_sampling()), "{layout:?}");
    }
}

#[test]
fn missing_layer() {
    let (_d, m) = fresh(Layout::Axllm);
    std::fs::remove_file(layer(&m, 1)).unwrap();
    refused(&m, &layer(&m, 1), "decoder layer 1");
}

#[test]
fn truncated_and_overwritten_layers() {
    let (_d, m) = fresh(Layout::Axllm);
    let bytes = std::fs::read(layer(&m, 0)).unwrap();
    std::fs::write(layer(&m, 0), &bytes[..bytes.len() - 100]).unwrap();
    refused(&m, &layer(&m, 0), "truncated");
    std::fs::write(layer(&m, 0), &bytes[..12]).unwrap();
    refused(&m, &layer(&m, 0), "truncated");
    std::fs::write(layer(&m, 0), b"\x89PNG garbage, not a model at all").unwrap();
    refused(&m, &layer(&m, 0), "not a whole .axmodel");
}

#[test]
fn truncated_real_axmodel_container() {
    // A real (ONNX) layer is checked as a container: whole, it passes the
    // check (its groups are for the card to report); cut short, it does not.
    let (_d, m) = fresh(Layout::Axllm);
    let mut onnx = vec![0x08, 0x08, 0x3a, 0x80, 0x01];
    onnx.extend(std::iter::repeat_n(0x11, 128));
    std::fs::write(layer(&m, 1), &onnx).unwrap();
    let r = check_package(&m, &[]).unwrap_or_else(|e| panic!("a whole ONNX container was refused: {e}"));
    assert_eq!(r.layers, 2);
    std::fs::write(layer(&m, 1), &onnx[..100]).unwrap();
    let e = check_package(&m, &[]).unwrap_err().to_string();
    assert!(e.contains(": qwen3_p16_l1_together.axmodel") && e.contains("truncated"), "{e}");
}

#[test]
fn short_embedding() {
    let (_d, m) = fresh(Layout::Axllm);
    let emb = m.join("model.embed_tokens.weight.bfloat16.bin");
    let f = std::fs::OpenOptions::new().write(true).open(&emb).unwrap();
    f.set_len(f.metadata().unwrap().len() - 2).unwrap();
    refused(&m, &emb, "expected");
}

#[test]
fn bad_tokenizer_and_post_config() {
    let (_d, m) = fresh(Layout::Axllm);
    let tok = m.join("qwen3_tokenizer/tokenizer.json");
    let good = std::fs::read(&tok).unwrap();
    std::fs::write(&tok, b"{\"model\": [1, 2").unwrap();
    refused(&m, &tok, "tokenizer");
    std::fs::write(&tok, good).unwrap();

    let post = m.join("post_config.json");
    std::fs::write(&post, b"{\"enable_temperature\": true}").unwrap();
    refused(&m, &post, "invalid JSON");
}

#[test]
fn not_a_package() {
    let dir = tempdir();
    let e = check_package(dir.path(), &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadPackage, "{e}");
}

#[test]
fn files_outside_the_package_are_refused_unless_under_a_link_root() {
    // A package made of links into a store, as Ollama's blob store: refused
    // as the loader refuses it, accepted with the store as a link root.
    let (_d, m) = fresh(Layout::Axllm);
    let store = tempdir();
    let emb = m.join("model.embed_tokens.weight.bfloat16.bin");
    let stored = store.path().join("blob");
    std::fs::rename(&emb, &stored).unwrap();
    std::os::unix::fs::symlink(&stored, &emb).unwrap();
    refused(&m, &emb, "outside the package");
    let roots = [store.path().canonicalize().unwrap()];
    let r = check_package(&m, &roots).unwrap_or_else(|e| panic!("the link root was not admitted: {e}"));
    assert_eq!(r.layers, 2);
}

#[test]
fn a_qwen35_package_is_checked_as_the_loader_loads_it() {
    // Linear-attention layers carry a gate mask and a whole state, not a
    // mask over history rows: the check classifies layers as the loader does.
    let dir = TempDir::new().unwrap();
    let m = packed_qwen35(dir.path(), "q35", axsim_pack::HybridOptions::default(), 7);
    let r = check_package(&m, &[]).unwrap_or_else(|e| panic!("{e}"));
    let model = Model::load(&m, &load_options()).unwrap();
    let info = model.info();
    assert!(info.linear_layers > 0);
    assert_eq!(r.layers, info.layers);
    assert_eq!(r.context_length, Some(info.context_length));
    assert_eq!(r.max_prefill, Some(info.max_prefill));
    assert_eq!(r.hidden_size, Some(info.hidden_size));
    assert_eq!(r.vocab, Some(info.vocab));

    // A truncated linear layer (layer 1 of 3 linear + 1 full) is refused naming it.
    let layer1 = std::fs::read_dir(&m)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("_l1_together.axmodel"))
        .expect("layer 1");
    let len = std::fs::metadata(&layer1).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&layer1).unwrap().set_len(len / 2).unwrap();
    let e = check_package(&m, &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadPackage, "{e}");
    assert!(e.to_string().contains("_l1_together.axmodel"), "{e}");
}
