//! Structured outputs, logprobs and embeddings end to end on the simulator
//! (random-weight models: whatever the model prefers, the grammar decides
//! what is allowed, so every finished output must parse and validate).

use axllm_core::{EmbedOptions, ErrorKind, Format, GenerateOptions, LoadOptions, Model, SamplingOptions, Schedule, StopReason};
use axllm_testkit::*;
use axsim_pack::{Family, IoOptions, Layout, PackOptions, RandomOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

const PROMPT: &str = "<|im_start|>user\nDescribe a pet as JSON.<|im_end|>\n<|im_start|>assistant\n";

/// A Qwen3 model with room for a few hundred generated tokens.
fn roomy(dir: &Path, seed: u64) -> PathBuf {
    let random = RandomOptions { arch: Family::Qwen3, seed, ..Default::default() };
    let io = IoOptions { chunk: 16, context: 383, prefill_history: vec![16, 32, 64] };
    pack_random(dir, &random, &PackOptions { io, layout: Layout::Axllm, ..Default::default() })
}

const QUOTE: &str = "say \"hi\"\n\ttab \\ end";

fn schema() -> String {
    serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 10},
            "kind": {"enum": ["cat", "dog", "bird"]},
            "age": {"type": "integer", "minimum": 0, "maximum": 99},
            "weight": {"type": "number", "minimum": -5, "maximum": 5},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
            "owner": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 0, "maximum": 1000},
                    "quote": {"const": QUOTE},
                    "active": {"type": "boolean"}
                },
                "required": ["id", "quote", "active"],
                "additionalProperties": false
            }
        },
        "required": ["name", "kind", "age", "tags", "owner"],
        "additionalProperties": false
    })
    .to_string()
}

/// Checks `v` against [`schema`] field by field.
fn validate(v: &Value) {
    let o = v.as_object().unwrap_or_else(|| panic!("not an object: {v}"));
    for k in o.keys() {
        assert!(["name", "kind", "age", "weight", "tags", "owner"].contains(&k.as_str()), "extra key {k} in {v}");
    }
    assert!(o["name"].as_str().is_some_and(|s| s.chars().count() <= 10), "{v}");
    assert!(["cat", "dog", "bird"].contains(&o["kind"].as_str().unwrap_or("?")), "{v}");
    assert!(o["age"].as_i64().is_some_and(|a| (0..=99).contains(&a)), "{v}");
    if let Some(w) = o.get("weight") {
        assert!(w.as_f64().is_some_and(|w| (-5.0..=5.0).contains(&w)), "{v}");
    }
    let tags = o["tags"].as_array().unwrap_or_else(|| panic!("tags: {v}"));
    assert!(tags.len() <= 3 && tags.iter().all(|t| t.as_str().is_some_and(|s| s.chars().count() <= 5)), "{v}");
    let owner = o["owner"].as_object().unwrap_or_else(|| panic!("owner: {v}"));
    assert_eq!(owner.len(), 3, "{v}");
    assert!(owner["id"].as_i64().is_some_and(|a| (0..=1000).contains(&a)), "{v}");
    assert_eq!(owner["quote"].as_str(), Some(QUOTE), "escapes survive: {v}");
    assert!(owner["active"].is_boolean(), "{v}");
}

fn with_format(sampling: SamplingOptions, format: Format) -> GenerateOptions {
    GenerateOptions { sampling, num_predict: Some(300), format: Some(format), ..Default::default() }
}

#[test]
fn schema_outputs_parse_and_validate_greedy_and_sampled() {
    let dir = tempdir();
    let model = Model::load(&roomy(dir.path(), 11), &load_options()).unwrap();
    let unconstrained = model.generate(PROMPT, &greedy(40), |_| true).unwrap().text;
    assert!(serde_json::from_str::<Value>(&unconstrained).is_err(), "the random model does not write JSON by itself");
    let mut samplings = vec![SamplingOptions::greedy()];
    samplings.extend((1..=2).map(|seed| SamplingOptions { seed, temperature: 1.0, top_k: 0, top_p: 1.0, ..Default::default() }));
    samplings.push(SamplingOptions { seed: 7, repeat_penalty: 1.3, ..Default::default() });
    for s in samplings {
        let c = model.generate(PROMPT, &with_format(s, Format::JsonSchema(schema())), |_| true).unwrap();
        assert_eq!(c.reason, StopReason::EndOfSequence, "{s:?}: {}", c.text);
        let v: Value = serde_json::from_str(&c.text).unwrap_or_else(|e| panic!("{s:?}: {e}: {}", c.text));
        validate(&v);
    }
}

#[test]
fn format_json_gives_an_object() {
    let dir = tempdir();
    let model = Model::load(&roomy(dir.path(), 5), &load_options()).unwrap();
    for seed in [1, 2] {
        let s = SamplingOptions { seed, ..Default::default() };
        let c = model.generate(PROMPT, &with_format(s, Format::Json), |_| true).unwrap();
        let text = c.text.trim_start();
        assert!(text.starts_with('{'), "{text}");
        if c.reason == StopReason::EndOfSequence {
            assert!(serde_json::from_str::<Value>(text).unwrap().is_object(), "{text}");
        } else {
            assert_eq!(c.reason, StopReason::MaxTokens, "{text}");
        }
    }
}

#[test]
fn num_predict_and_stop_strings_still_apply() {
    let dir = tempdir();
    let model = Model::load(&roomy(dir.path(), 11), &load_options()).unwrap();
    let opts = GenerateOptions { num_predict: Some(4), ..with_format(SamplingOptions::greedy(), Format::JsonSchema(schema())) };
    let c = model.generate(PROMPT, &opts, |_| true).unwrap();
    assert_eq!((c.reason, c.reason.as_api_str(), c.tokens.len()), (StopReason::MaxTokens, "length", 4));
    assert!(c.text.trim_start().starts_with('{'), "{}", c.text);

    let full = model.generate(PROMPT, &with_format(SamplingOptions::greedy(), Format::JsonSchema(schema())), |_| true).unwrap();
    let opts = GenerateOptions { stop: vec!["\"kind\"".into()], ..with_format(SamplingOptions::greedy(), Format::JsonSchema(schema())) };
    let c = model.generate(PROMPT, &opts, |_| true).unwrap();
    assert_eq!(c.reason, StopReason::StopString);
    assert_eq!(c.text, full.text[..full.text.find("\"kind\"").unwrap()]);
}

#[test]
fn a_schema_the_engine_cannot_compile_is_an_invalid_argument() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    for bad in [
        r##"{"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}, "required": ["a"]}"##,
        r#"{"type": "frobnicate"}"#,
        r#"{"type": "integer", "minimum": 5, "maximum": 1}"#,
    ] {
        let opts = with_format(SamplingOptions::greedy(), Format::JsonSchema(bad.into()));
        let e = model.begin(PROMPT, &opts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        assert!(e.to_string().contains("schema"), "{bad}: {e}");
    }
    assert!(Format::from_ollama("\"yaml\"").is_err());
    // The model still works afterwards.
    assert!(!model.generate(PROMPT, &greedy(3), |_| true).unwrap().tokens.is_empty());
}

#[test]
fn a_thinking_block_is_left_free_and_the_answer_constrained() {
    let dir = tempdir();
    let model = Model::load(&roomy(dir.path(), 11), &load_options()).unwrap();
    let free = model.generate(PROMPT, &greedy(12), |_| true).unwrap();
    // Treat the text of one of the model's first tokens, one whose text did
    // not appear before it, as the end of its "thinking".
    let tok = model.tokenizer();
    let k = (1..free.tokens.len())
        .find(|&k| {
            let piece = tok.decode(&free.tokens[k..k + 1]).unwrap();
            !piece.is_empty() && !piece.contains('\u{FFFD}') && !tok.decode(&free.tokens[..k]).unwrap().contains(&piece)
                && tok.decode(&free.tokens[..k + 1]).unwrap().find(&piece) == Some(tok.decode(&free.tokens[..k]).unwrap().len())
        })
        .expect("a token with new text");
    let upto = tok.decode(&free.tokens[..k + 1]).unwrap();
    let close = tok.decode(&free.tokens[k..k + 1]).unwrap();
    let opts = GenerateOptions {
        thinking_close: vec![close.clone()],
        ..with_format(SamplingOptions::greedy(), Format::JsonSchema(schema()))
    };
    let c = model.generate(PROMPT, &opts, |_| true).unwrap();
    assert_eq!(c.tokens[..k + 1], free.tokens[..k + 1], "the thinking part is the model's own");
    assert!(c.text.starts_with(&upto));
    let answer: Value = serde_json::from_str(&c.text[upto.len()..]).unwrap_or_else(|e| panic!("{e}: {}", c.text));
    validate(&answer);
}

/// log_softmax of bf16 logits, as f64.
fn log_softmax(bits: &[u16]) -> Vec<f64> {
    let l: Vec<f64> = bits.iter().map(|&b| f64::from(half::bf16::from_bits(b).to_f32())).collect();
    let max = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + l.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
    l.iter().map(|x| x - lse).collect()
}

#[test]
fn logprobs_are_the_log_softmax_of_the_logits_the_sampler_used() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let opts = GenerateOptions { logprobs: true, top_logprobs: 4, ..greedy(6) };
    let c = model.generate(PROMPT, &opts, |_| true).unwrap();
    assert_eq!(c.logprobs.len(), c.tokens.len());
    // The same steps through the layer loop directly.
    let prompt = model.tokenizer().encode(PROMPT, false).unwrap();
    let mut s = model.session();
    s.reset().unwrap();
    let mut want = log_softmax(s.feed_prompt(&prompt).unwrap().1);
    for (i, (lp, &t)) in c.logprobs.iter().zip(&c.tokens).enumerate() {
        assert_eq!(lp.token.token, t);
        assert_eq!(lp.token.text, String::from_utf8_lossy(&lp.token.bytes));
        assert!((f64::from(lp.token.logprob) - want[t as usize]).abs() < 1e-3, "step {i}");
        assert_eq!(lp.top.len(), 4);
        assert_eq!(lp.top[0].token, t, "greedy takes the most likely");
        assert!(lp.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
        for e in &lp.top {
            assert!((f64::from(e.logprob) - want[e.token as usize]).abs() < 1e-3);
        }
        want = log_softmax(s.feed_token(t).unwrap());
    }
    drop(s);
    // The tokens' bytes, joined, are the output's bytes: the stream decoder
    // shows bytes that are no character as U+FFFD and drops a character
    // still incomplete at the end (a random model emits such byte tokens).
    let bytes: Vec<u8> = c.logprobs.iter().flat_map(|lp| lp.token.bytes.clone()).collect();
    let fffd = |s: &str| s.trim_end_matches('\u{FFFD}').to_owned();
    assert_eq!(fffd(&String::from_utf8_lossy(&bytes)), fffd(&c.text), "{bytes:?}");
    // Under a grammar, forbidden tokens have no probability: the allowed
    // alternatives carry all of it.
    let opts = GenerateOptions { logprobs: true, top_logprobs: 20, ..with_format(SamplingOptions::greedy(), Format::JsonSchema(schema())) };
    let c = model.generate(PROMPT, &GenerateOptions { num_predict: Some(8), ..opts }, |_| true).unwrap();
    let first = &c.logprobs[0];
    assert!(first.top.iter().all(|e| model.tokenizer().decode(&[e.token]).unwrap().trim_start().is_empty()
        || model.tokenizer().decode(&[e.token]).unwrap().trim_start().starts_with('{')));
    let mass: f64 = first.top.iter().map(|e| f64::from(e.logprob).exp()).sum();
    assert!(mass > 0.999 || first.top.len() == 20, "{mass}");
    let too_many = GenerateOptions { logprobs: true, top_logprobs: 21, ..greedy(2) };
    assert_eq!(model.begin(PROMPT, &too_many).unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn embeddings_are_the_last_hidden_state_normalised() {
    let dir = tempdir();
    let model = qwen3(dir.path());
    let opts = EmbedOptions { truncate: true, ..Default::default() };
    let a = model.embed("the quick brown fox", &opts).unwrap();
    assert_eq!(a.vector.len(), model.info().hidden_size);
    let norm: f64 = a.vector.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    // The second time the whole text is cached: only its last token is fed
    // again (by the decode path); the vector is the same.
    let again = model.embed("the quick brown fox", &opts).unwrap();
    assert_eq!(again.vector, a.vector);
    let other = model.embed("hello world, hello", &opts).unwrap();
    assert_ne!(other.vector, a.vector);
    // A generation in between does not disturb it.
    model.generate(PROMPT, &greedy(5), |_| true).unwrap();
    assert_eq!(model.embed("the quick brown fox", &opts).unwrap().vector, a.vector);

    let d = model.embed("the quick brown fox", &EmbedOptions { dimensions: Some(8), ..opts.clone() }).unwrap();
    let head: f64 = a.vector[..8].iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    for (x, y) in d.vector.iter().zip(&a.vector[..8]) {
        assert!((f64::from(*x) - f64::from(*y) / head).abs() < 1e-5);
    }

    let long = "fox ".repeat(400);
    let e = model.embed(&long, &EmbedOptions { truncate: false, ..Default::default() }).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PromptTooLong);
    let t = model.embed(&long, &opts).unwrap();
    assert!(t.truncated);
    assert_eq!(t.prompt_tokens, model.info().context_length);
}

#[test]
fn a_mask_computed_while_the_card_runs_equals_one_computed_at_the_draw() {
    // The default schedule is pipelined: the next token's mask is computed
    // after its step is queued. `safe` is not: the mask is computed when the
    // logits are in hand. Same grammar states, same masks, same outputs.
    let dir = tempdir();
    let path = roomy(dir.path(), 11);
    let pipelined = Model::load(&path, &load_options()).unwrap();
    let safe = Model::load(&path, &LoadOptions { schedule: Schedule::SAFE, ..load_options() }).unwrap();
    assert_ne!(pipelined.info().schedule, safe.info().schedule);
    let samplings = [SamplingOptions::greedy(), SamplingOptions { seed: 3, temperature: 1.0, top_k: 0, top_p: 1.0, ..Default::default() }];
    for s in samplings {
        for format in [Format::JsonSchema(schema()), Format::Json] {
            let opts = with_format(s, format.clone());
            let a = pipelined.generate(PROMPT, &opts, |_| true).unwrap();
            let b = safe.generate(PROMPT, &opts, |_| true).unwrap();
            assert_eq!((&a.text, &a.tokens, a.reason), (&b.text, &b.tokens, b.reason), "{s:?} {format:?}");
            // `json` may write one endless string until num_predict; the
            // schema bounds every string, so its answers end.
            if a.reason == StopReason::EndOfSequence || matches!(format, Format::JsonSchema(_)) {
                assert_eq!(a.reason, StopReason::EndOfSequence, "{}", a.text);
                serde_json::from_str::<Value>(&a.text).unwrap_or_else(|e| panic!("{e}: {}", a.text));
            }
        }
    }
}
