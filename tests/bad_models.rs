//! Broken model directories give specific errors that name the file, never a
//! panic, and leave nothing behind on the card.

mod common;

use axcl_sim::format::{SimModelFile, SimModelWriter};
use axcl_sim::pack::{Family, Layout};
use axllm_core::{Error, Model};
use common::*;
use std::path::{Path, PathBuf};

fn fresh() -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::Axllm, 5);
    (dir, m)
}

fn load_err(m: &Path) -> Error {
    match Model::load(m, &load_options()) {
        Ok(_) => panic!("{} loaded although it is broken", m.display()),
        Err(e) => e,
    }
}

fn layer(m: &Path, i: usize) -> PathBuf {
    m.join(format!("qwen3_p16_l{i}_together.axmodel"))
}

fn assert_names(e: &Error, file: &Path, words: &str) {
    let msg = e.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg:?} should name {}", file.display());
    assert!(msg.contains(words), "{msg:?} should say {words:?}");
}

#[test]
fn missing_layer_file() {
    let (_d, m) = fresh();
    std::fs::remove_file(layer(&m, 1)).unwrap();
    let e = load_err(&m);
    assert!(matches!(e, Error::MissingFile { .. }), "{e}");
    assert_names(&e, &layer(&m, 1), "decoder layer 1");
}

#[test]
fn truncated_and_corrupt_layer_files() {
    let (_d, m) = fresh();
    let bytes = std::fs::read(layer(&m, 0)).unwrap();
    std::fs::write(layer(&m, 0), &bytes[..bytes.len() - 100]).unwrap();
    let e = load_err(&m);
    assert_names(&e, &layer(&m, 0), "truncated");

    std::fs::write(layer(&m, 0), b"\x89PNG garbage, not a model at all").unwrap();
    let e = load_err(&m);
    assert_names(&e, &layer(&m, 0), "not a simulated axmodel");
}

#[test]
fn real_axmodel_on_the_simulator_says_it_needs_the_card() {
    let (_d, m) = fresh();
    // An ONNX ModelProto starts with field 1 (ir_version) as a varint: 0x08.
    std::fs::write(layer(&m, 1), [0x08, 0x07, 0x12, 0x07, b'p', b'u', b'l', b's', b'a', b'r', b'2']).unwrap();
    let e = load_err(&m);
    assert!(e.is_device_failure(), "{e}");
    assert_names(&e, &layer(&m, 1), "AX650 card");
}

#[test]
fn wrong_size_embedding() {
    let (_d, m) = fresh();
    let emb = m.join("model.embed_tokens.weight.bfloat16.bin");
    let f = std::fs::OpenOptions::new().write(true).open(&emb).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 2).unwrap();
    let e = load_err(&m);
    assert!(matches!(e, Error::BadFile { .. }), "{e}");
    assert_names(&e, &emb, "expected");
}

#[test]
fn layer_count_that_does_not_match() {
    let (_d, m) = fresh();
    let cfg_path = m.join("config.json");
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let mut more = cfg.clone();
    more["axmodel_num"] = 3.into();
    std::fs::write(&cfg_path, more.to_string()).unwrap();
    assert_names(&load_err(&m), &layer(&m, 2), "decoder layer 2");
    let mut fewer = cfg.clone();
    fewer["axmodel_num"] = 1.into();
    std::fs::write(&cfg_path, fewer.to_string()).unwrap();
    assert_names(&load_err(&m), &cfg_path, "layer count does not match");
    let mut wrong_v = cfg;
    wrong_v["tokens_embed_num"] = 7.into();
    std::fs::write(&cfg_path, wrong_v.to_string()).unwrap();
    assert_names(&load_err(&m), &cfg_path, "tokens_embed_num");
}

#[test]
fn run_script_layer_count_mismatch() {
    let dir = tempdir();
    let m = packed(dir.path(), Family::Qwen3, Layout::HfPackage, 5);
    let script = std::fs::read_dir(&m)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sh"))
        .unwrap();
    let text = std::fs::read_to_string(&script).unwrap().replace("--axmodel_num 2", "--axmodel_num 5");
    std::fs::write(&script, text).unwrap();
    assert_names(&load_err(&m), &script, "--axmodel_num 5");
}

#[test]
fn corrupt_tokenizer_and_malformed_json() {
    let (_d, m) = fresh();
    let tok = m.join("qwen3_tokenizer/tokenizer.json");
    let good = std::fs::read(&tok).unwrap();
    std::fs::write(&tok, &good[..good.len() / 2]).unwrap();
    let e = load_err(&m);
    assert!(matches!(e, Error::Tokenizer { .. }), "{e}");
    assert_names(&e, &tok, "tokenizer");
    // Cut off inside the decoder: the tokenizers crate panics on this one (found by fuzzing).
    let decoder = good.windows(9).position(|w| w == b"\"decoder\"").expect("a decoder entry");
    std::fs::write(&tok, &good[..decoder + 24]).unwrap();
    let e = load_err(&m);
    assert!(matches!(e, Error::Tokenizer { .. }), "{e}");
    assert_names(&e, &tok, "invalid JSON");
    std::fs::write(&tok, &good).unwrap();

    let cfg = m.join("config.json");
    let good_cfg = std::fs::read(&cfg).unwrap();
    std::fs::write(&cfg, b"{\"template_filename_axmodel\": ").unwrap();
    assert_names(&load_err(&m), &cfg, "invalid JSON");
    std::fs::write(&cfg, &good_cfg).unwrap();

    let post = m.join("post_config.json");
    std::fs::write(&post, br#"{"enable_temperature": true}"#).unwrap();
    assert_names(&load_err(&m), &post, "missing field");
    std::fs::write(&post, b"not json").unwrap();
    assert_names(&load_err(&m), &post, "invalid JSON");
}

#[test]
fn unknown_group_layout() {
    let (_d, m) = fresh();
    // Keep only the decode group of every layer: no prefill group at all.
    for i in 0..2 {
        let p = layer(&m, i);
        let f = SimModelFile::read(&p).unwrap();
        let mut h = f.header.clone();
        h.groups.truncate(1);
        let mut w = SimModelWriter::new(h);
        for t in &f.header.tensors {
            w.add_tensor(&t.name, t.dtype, &t.shape, f.tensor_bytes(&t.name).unwrap().1);
        }
        w.write(&p).unwrap();
    }
    let e = load_err(&m);
    assert!(matches!(e, Error::BadFile { .. }), "{e}");
    assert_names(&e, &layer(&m, 0), "unknown shape-group layout");
}

#[test]
fn not_a_model_directory() {
    let dir = tempdir();
    let e = load_err(dir.path());
    assert!(matches!(e, Error::NotAModelDir { .. }), "{e}");
    let e = load_err(&dir.path().join("nope"));
    assert!(e.to_string().contains("no such directory"), "{e}");
}
