//! Broken model directories give specific errors that name the file, never a
//! panic, and leave nothing behind on the card; and every path a package's
//! configuration names stays inside the package (one test per way out).

use axcl_sim::format::{SimModelFile, SimModelWriter};
use axllm_core::{Error, ErrorKind, LoadOptions, Model};
use axllm_testkit::*;
use axsim_pack::{Family, Layout};
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

/// The message of `e` followed by its causes'.
fn chain(e: &Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

/// The error is a bad package naming `file` (relative to the package `m`) and saying `words`.
fn assert_names(e: &Error, file: &Path, words: &str) {
    assert_eq!(e.kind(), ErrorKind::BadPackage, "{e}");
    let Error::BadPackage { package, file: named, .. } = e else { unreachable!() };
    assert_eq!(package.join(named), file, "{e}");
    let msg = chain(e);
    let rel = file.strip_prefix(package).unwrap_or(file);
    assert!(msg.contains(&rel.display().to_string()), "{msg:?} should name {}", rel.display());
    assert!(msg.contains(words), "{msg:?} should say {words:?}");
}

#[test]
fn missing_layer_file() {
    let (_d, m) = fresh();
    std::fs::remove_file(layer(&m, 1)).unwrap();
    let e = load_err(&m);
    assert_names(&e, &layer(&m, 1), "missing (decoder layer 1)");
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
    assert!(!e.is_device_failure(), "the file is at fault, not the card: {e}");
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
    assert_names(&e, &tok, "not a usable tokenizer");
    assert!(std::error::Error::source(&e).is_some(), "the parser's error is kept: {e:?}");
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
    assert_names(&e, &layer(&m, 0), "unknown shape-group layout");
}

#[test]
fn not_a_model_directory() {
    let dir = tempdir();
    let e = load_err(dir.path());
    assert!(e.kind() == ErrorKind::BadPackage && e.to_string().contains("not an AX650 model package"), "{e}");
    let e = load_err(&dir.path().join("nope"));
    assert!(e.kind() == ErrorKind::BadPackage && e.to_string().contains("no such directory"), "{e}");
}

// ---- Paths stay inside the package ------------------------------------------

/// A package (`axllm` layout, with its runtime config.json) and, beside it,
/// `outside/` holding a copy of its files: whatever a hostile config reaches
/// there would load.
fn with_outside() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (d, m) = fresh();
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    for e in std::fs::read_dir(&m).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, outside.join(p.file_name().unwrap())).unwrap();
        }
    }
    (d, m, outside)
}

/// Sets `field` of the package's config.json to `value`.
fn set_config(m: &Path, field: &str, value: &str) {
    let path = m.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg[field] = value.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
}

/// Refused as a bad package whose message names config.json, the field and why.
fn refused_name(m: &Path, field: &str, why: &str) {
    let e = load_err(m);
    assert_names(&e, &m.join("config.json"), &format!("config.json: {field}"));
    assert!(e.to_string().contains(why), "{e} should say {why:?}");
}

#[test]
fn an_absolute_path_in_the_config_is_refused() {
    let (_d, m, outside) = with_outside();
    // /etc/passwd (the reported attack) and a file of exactly the right size.
    set_config(&m, "filename_tokens_embed", "/etc/passwd");
    refused_name(&m, "filename_tokens_embed", "is an absolute path");
    let emb = outside.join("model.embed_tokens.weight.bfloat16.bin");
    set_config(&m, "filename_tokens_embed", emb.to_str().unwrap());
    let e = load_err(&m);
    assert!(!e.to_string().contains("bytes"), "nothing about the outside file leaks: {e}");
    refused_name(&m, "filename_tokens_embed", "is an absolute path");
}

#[test]
fn dot_dot_in_the_config_is_refused() {
    let (_d, m, _outside) = with_outside();
    set_config(&m, "filename_post_axmodel", "../outside/qwen3_post.axmodel");
    refused_name(&m, "filename_post_axmodel", "goes up with ..");
}

#[test]
fn dot_dot_in_the_layer_template_is_refused() {
    let (_d, m, _outside) = with_outside();
    set_config(&m, "template_filename_axmodel", "../outside/qwen3_p16_l%d_together.axmodel");
    refused_name(&m, "template_filename_axmodel", "goes up with ..");
}

#[test]
fn a_tokenizer_or_sampling_config_outside_is_refused() {
    let (_d, m, outside) = with_outside();
    std::fs::create_dir(outside.join("tok")).unwrap();
    std::fs::copy(m.join("qwen3_tokenizer/tokenizer.json"), outside.join("tok/tokenizer.json")).unwrap();
    let abs = outside.join("tok/tokenizer.json");
    set_config(&m, "url_tokenizer_model", abs.to_str().unwrap());
    refused_name(&m, "url_tokenizer_model", "is an absolute path");
    set_config(&m, "url_tokenizer_model", "qwen3_tokenizer/tokenizer.json");
    set_config(&m, "post_config_path", "../outside/post_config.json");
    refused_name(&m, "post_config_path", "goes up with ..");
}

#[test]
fn a_symlink_out_of_the_package_is_refused() {
    let (_d, m, outside) = with_outside();
    // The embedding table replaced by a link to a file of the right size outside.
    let emb = m.join("model.embed_tokens.weight.bfloat16.bin");
    std::fs::remove_file(&emb).unwrap();
    std::os::unix::fs::symlink(outside.join("model.embed_tokens.weight.bfloat16.bin"), &emb).unwrap();
    let e = load_err(&m);
    assert_names(&e, &emb, "outside the package directory");
}

#[test]
fn a_symlinked_directory_out_of_the_package_is_refused() {
    let (_d, m, outside) = with_outside();
    let tok_dir = m.join("qwen3_tokenizer");
    std::fs::rename(&tok_dir, outside.join("qwen3_tokenizer")).unwrap();
    std::os::unix::fs::symlink(outside.join("qwen3_tokenizer"), &tok_dir).unwrap();
    let e = load_err(&m);
    assert_names(&e, &tok_dir.join("tokenizer.json"), "outside the package directory");
}

#[test]
fn a_layer_file_symlinked_out_is_refused() {
    let (_d, m, outside) = with_outside();
    let l1 = layer(&m, 1);
    std::fs::remove_file(&l1).unwrap();
    std::os::unix::fs::symlink(outside.join("qwen3_p16_l1_together.axmodel"), &l1).unwrap();
    let e = load_err(&m);
    assert_names(&e, &l1, "outside the package directory");
}

#[test]
fn links_inside_the_package_or_into_a_link_root_load() {
    let (d, m, outside) = with_outside();
    let want = Model::load(&m, &load_options()).unwrap().generate("hi", &greedy(6), |_| true).unwrap().tokens;
    // A package made of links into a store (as Ollama's runner builds one):
    // refused by default, loaded when the store is a link root, same output.
    let linked = d.path().join("linked");
    std::fs::create_dir(&linked).unwrap();
    for e in std::fs::read_dir(&m).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if p.is_file() {
            std::os::unix::fs::symlink(outside.join(name), linked.join(name)).unwrap();
        } else {
            std::os::unix::fs::symlink(&p, linked.join(name)).unwrap();
        }
    }
    assert!(load_err(&linked).to_string().contains("outside the package directory"));
    let opts = LoadOptions { link_roots: vec![outside.clone(), m.clone()], ..load_options() };
    let got = Model::load(&linked, &opts).unwrap().generate("hi", &greedy(6), |_| true).unwrap().tokens;
    assert_eq!(got, want);
    // A link that stays inside the package needs nothing.
    let alias = m.join("embed-alias.bin");
    std::fs::rename(m.join("model.embed_tokens.weight.bfloat16.bin"), &alias).unwrap();
    std::os::unix::fs::symlink("embed-alias.bin", m.join("model.embed_tokens.weight.bfloat16.bin")).unwrap();
    let got = Model::load(&m, &load_options()).unwrap().generate("hi", &greedy(6), |_| true).unwrap().tokens;
    assert_eq!(got, want);
}
