//! The model's own chat template: a conversation rendered into the prompt
//! text the model was trained on, the way Hugging Face transformers'
//! `apply_chat_template` renders `tokenizer_config.json`'s Jinja template
//! (default system prompts, role checks and all).
//!
//! Rendering follows transformers' environment: blocks trimmed and
//! left-stripped, Python string and dict methods (`.strip()`, `.items()`),
//! `raise_exception(msg)` for templates that refuse a conversation, and a
//! `tojson` that writes what Python's `json.dumps` writes (`", "` and `": "`
//! separators, non-ASCII kept, keys in the request's order).

use crate::error::{Error, Result};
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, ErrorKind, Value};

/// A compiled chat template with the special tokens it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

/// Template variables every request gets unless it sets them itself.
const DEFAULT_VARS: [(&str, bool); 1] = [("add_generation_prompt", true)];

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts of the
    /// tokenizer's special tokens (`{{ bos_token }}` in many templates).
    pub fn new(source: &str, bos_token: Option<String>, eos_token: Option<String>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_owned()).map_err(|e| template_error("does not compile", e))?;
        Ok(Self { env, bos_token, eos_token })
    }

    /// Renders a request given as JSON: an object with `messages` (a list of
    /// `{role, content, ...}`), optionally `tools`, `documents`,
    /// `add_generation_prompt` (default true) and any other variable the
    /// template reads (for example `enable_thinking`).
    pub fn render_json(&self, request: &str) -> Result<String> {
        let value: Value = serde_json::from_str(request).map_err(|e| Error::ChatTemplate {
            reason: "the chat request is not valid JSON".into(),
            source: Some(Box::new(e)),
        })?;
        self.render(&value)
    }

    /// Renders a request object (see [`ChatTemplate::render_json`]).
    pub fn render(&self, request: &Value) -> Result<String> {
        if request.kind() != ValueKind::Map {
            return Err(Error::chat_template("the chat request must be an object with `messages`"));
        }
        let messages = request.get_attr("messages").unwrap_or_default();
        if messages.kind() != ValueKind::Seq {
            return Err(Error::chat_template("the chat request needs `messages`, a list"));
        }
        let mut vars: Vec<(String, Value)> = Vec::new();
        for (name, value) in [("bos_token", &self.bos_token), ("eos_token", &self.eos_token)] {
            if let Some(v) = value {
                vars.push((name.into(), Value::from(v.as_str())));
            }
        }
        for (name, value) in DEFAULT_VARS {
            vars.push((name.into(), Value::from(value)));
        }
        // The request's own keys come last and win.
        for key in request.try_iter().map_err(|e| template_error("cannot read the request", e))? {
            let value = request.get_item(&key).unwrap_or_default();
            if let Some(name) = key.as_str() {
                vars.push((name.to_owned(), value));
            }
        }
        let ctx: Value = vars.into_iter().collect::<std::collections::BTreeMap<_, _>>().into();
        let template = self.env.get_template("chat").map_err(|e| template_error("is missing", e))?;
        template.render(ctx).map_err(|e| template_error("failed on this conversation", e))
    }
}

/// The engine's error (a `raise_exception` message, or what failed where) is
/// kept as the cause; the message says which step failed.
fn template_error(what: &str, e: minijinja::Error) -> Error {
    Error::ChatTemplate { reason: format!("the chat template {what}"), source: Some(Box::new(e)) }
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False,
/// indent=indent)`, so `", "`/`": "` separators, or newlines and `indent`
/// spaces when given; map keys stay in order.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(value, indent, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn write_json(v: &Value, indent: Option<usize>, depth: usize, out: &mut String) -> std::result::Result<(), minijinja::Error> {
    let bad = |what: String| minijinja::Error::new(ErrorKind::InvalidOperation, what);
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number | ValueKind::String => {
            out.push_str(&serde_json::to_string(v).map_err(|e| bad(format!("tojson: {e}")))?);
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(item, indent, depth + 1, out)?;
            }
            newline(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                let name = match key.as_str() {
                    Some(s) => s.to_owned(),
                    None => key.to_string(),
                };
                out.push_str(&serde_json::to_string(&name).map_err(|e| bad(format!("tojson: {e}")))?);
                out.push_str(": ");
                write_json(&v.get_item(key)?, indent, depth + 1, out)?;
            }
            newline(out, depth);
            out.push('}');
        }
        other => return Err(bad(format!("tojson: cannot write a {other} as JSON"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ChatML with a default system prompt when the first message is not
    /// one (the shape of SmolLM2's template), written for this test.
    const CHATML_DEFAULT_SYSTEM: &str = "{% for m in messages %}\
        {% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nBe brief.<|im_end|>\n' }}{% endif %}\
        {{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}\
        {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn render(src: &str, request: &str) -> Result<String> {
        ChatTemplate::new(src, Some("<s>".into()), Some("</s>".into()))?.render_json(request)
    }

    #[test]
    fn default_system_prompt_unless_the_conversation_has_one() {
        let out = render(CHATML_DEFAULT_SYSTEM, r#"{"messages":[{"role":"user","content":"Hi"}]}"#).unwrap();
        assert_eq!(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        let out = render(
            CHATML_DEFAULT_SYSTEM,
            r#"{"messages":[{"role":"system","content":"Be long."},{"role":"user","content":"Hi"}],"add_generation_prompt":false}"#,
        )
        .unwrap();
        assert_eq!(out, "<|im_start|>system\nBe long.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    }

    #[test]
    fn blocks_are_trimmed_and_special_tokens_and_extra_variables_are_visible() {
        let src = "{{ bos_token }}\n{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content.strip() }}]\n  {% endif %}\n{% endfor %}\n{% if enable_thinking is defined and not enable_thinking %}no-think{% endif %}{{ eos_token }}";
        let out = render(src, r#"{"messages":[{"role":"user","content":"  a  "},{"role":"assistant","content":"b"}],"enable_thinking":false}"#)
            .unwrap();
        assert_eq!(out, "<s>\n[a]\nno-think</s>"); // what jinja2 renders with the same settings
    }

    #[test]
    fn tojson_writes_what_python_json_dumps_writes() {
        let src = "{{ tools | tojson }}|{{ tools[0] | tojson(indent=2) }}";
        let out = render(src, r#"{"messages":[],"tools":[{"name":"f","b":[1,2.5,true,null],"a":"é\"\n"}]}"#).unwrap();
        assert_eq!(
            out,
            "[{\"name\": \"f\", \"b\": [1, 2.5, true, null], \"a\": \"é\\\"\\n\"}]|{\n  \"name\": \"f\",\n  \"b\": [\n    1,\n    2.5,\n    true,\n    null\n  ],\n  \"a\": \"é\\\"\\n\"\n}"
        );
    }

    #[test]
    fn refusals_and_bad_requests_are_errors_that_say_why() {
        let src = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with the user') }}{% endif %}ok";
        let e = render(src, r#"{"messages":[{"role":"assistant","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "the chat template failed on this conversation");
        let cause = std::error::Error::source(&e).map(|c| c.to_string()).unwrap_or_default();
        assert!(cause.contains("Conversations must start with the user"), "{cause}");
        for bad in ["", "[]", r#"{"messages":3}"#, "{}"] {
            let e = render(src, bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::ChatTemplate, "{bad}: {e}");
        }
        let e = ChatTemplate::new("{% for %}", None, None).unwrap_err().to_string();
        assert!(e.contains("does not compile"), "{e}");
    }
}
