//! The static package check (`axllm_core::check`, what `ollama create` runs):
//! it refuses every broken package the loader refuses, naming the file, and
//! on a good package reports what the loaded model reports.

mod common;

use axcl_sim::pack::{Family, Layout};
use axllm_core::check::{PackageReport, check_package};
use axllm_core::{Error, Model};
use common::*;
use std::path::{Path, PathBuf};

fn fresh(layout: Layout) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, layout, 5);
    (dir, m)
}

fn layer(m: &Path, i: usize) -> PathBuf {
    m.join(format!("qwen3_p16_l{i}_together.axmodel"))
}

/// The check and the loader both refuse `m`, both naming `file`.
fn refused(m: &Path, file: &Path, words: &str) -> Error {
    let e = match check_package(m) {
        Ok(r) => panic!("check accepted the broken package {}: {r:?}", m.display()),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg:?} should name {}", file.display());
    assert!(msg.contains(words), "{msg:?} should say {words:?}");
    if let Ok(_model) = Model::load(m, &load_options()) {
        panic!("the loader accepted what the check refused: {msg}");
    }
    e
}

#[test]
fn good_packages_report_what_the_loaded_model_reports() {
    for layout in [Layout::Axllm, Layout::HfPackage, Layout::Compiled] {
        let (_d, m) = fresh(layout);
        let r: PackageReport = check_package(&m).unwrap_or_else(|e| panic!("{layout:?}: {e}"));
        let model = Model::load(&m, &load_options()).unwrap();
        let info = model.info();
        assert_eq!(r.context_length(), Some(info.context_length), "{layout:?}");
        assert_eq!(r.max_prefill(), Some(info.max_prefill), "{layout:?}");
        assert_eq!(r.hidden(), Some(info.geometry.hidden), "{layout:?}");
        assert_eq!(r.vocab, Some(info.vocab), "{layout:?}");
        assert_eq!(r.files.layers.len(), info.layers, "{layout:?}");
        assert_eq!(r.chat_template.as_deref(), model.tokenizer().chat_template(), "{layout:?}");
        assert!(r.chat_template.as_deref().is_some_and(|t| t.contains("<|im_start|>")), "{layout:?}");
        assert_eq!(r.sampling_defaults, Some(model.default_sampling()), "{layout:?}");
    }
}

#[test]
fn missing_layer() {
    let (_d, m) = fresh(Layout::Axllm);
    std::fs::remove_file(layer(&m, 1)).unwrap();
    let e = refused(&m, &layer(&m, 1), "decoder layer 1");
    assert!(matches!(e, Error::MissingFile { .. }), "{e}");
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
    let r = check_package(&m).unwrap_or_else(|e| panic!("a whole ONNX container was refused: {e}"));
    assert_eq!(r.files.layers.len(), 2);
    std::fs::write(layer(&m, 1), &onnx[..100]).unwrap();
    let e = check_package(&m).unwrap_err().to_string();
    assert!(e.contains(&layer(&m, 1).display().to_string()) && e.contains("truncated"), "{e}");
}

#[test]
fn short_embedding() {
    let (_d, m) = fresh(Layout::Axllm);
    let emb = m.join("model.embed_tokens.weight.bfloat16.bin");
    let f = std::fs::OpenOptions::new().write(true).open(&emb).unwrap();
    f.set_len(f.metadata().unwrap().len() - 2).unwrap();
    let e = refused(&m, &emb, "expected");
    assert!(matches!(e, Error::BadFile { .. }), "{e}");
}

#[test]
fn bad_tokenizer_and_post_config() {
    let (_d, m) = fresh(Layout::Axllm);
    let tok = m.join("qwen3_tokenizer/tokenizer.json");
    let good = std::fs::read(&tok).unwrap();
    std::fs::write(&tok, b"{\"model\": [1, 2").unwrap();
    let e = refused(&m, &tok, "tokenizer");
    assert!(matches!(e, Error::Tokenizer { .. }), "{e}");
    std::fs::write(&tok, good).unwrap();

    let post = m.join("post_config.json");
    std::fs::write(&post, b"{\"enable_temperature\": true}").unwrap();
    refused(&m, &post, "invalid JSON");
}

#[test]
fn not_a_package() {
    let dir = tempdir();
    let e = check_package(dir.path()).unwrap_err();
    assert!(matches!(e, Error::NotAModelDir { .. }), "{e}");
}
