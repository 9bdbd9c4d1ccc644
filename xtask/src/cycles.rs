//! `modules`: no import circles between the modules of a crate.
//!
//! A module is a source file; it imports another when it names it through
//! `crate::` or `super::` paths outside comments and its `#[cfg(test)] mod
//! tests` block. A parent naming its own children (declaring and re-exporting
//! them) is not an import. Any strongly connected set of two or more modules
//! is reported.

use anyhow::{Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).expect("under src").with_extension("");
    let mut parts: Module = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its unit-test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The modules `text` (the code of module `m`) names.
fn imports(m: &Module, text: &str, modules: &BTreeSet<Module>) -> BTreeSet<Module> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start).map(|i| i + from) {
            from = i + start.len();
            if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
                continue;
            }
            let path: Vec<&str> = text[i..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            let (mut base, mut rest) =
                if path[0] == "crate" { (Vec::new(), &path[1..]) } else { (m.clone(), &path[..]) };
            while let Some((&"super", tail)) = rest.split_first() {
                base.pop();
                rest = tail;
            }
            for seg in rest {
                let mut next = base.clone();
                next.push((*seg).to_string());
                if !modules.contains(&next) {
                    break;
                }
                base = next;
            }
            let parent_naming_child = base.len() > m.len() && base[..m.len()] == m[..];
            if &base != m && modules.contains(&base) && !parent_naming_child {
                out.insert(base);
            }
        }
    }
    out
}

/// Strongly connected sets of two or more modules (Tarjan).
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let Some((w, _)) = s.graph.get_key_value(w) else { continue };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut set = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                set.push(w.clone());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                s.out.push(set);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// Fails when a crate under `root` (its `src/`) has an import circle.
pub fn check(root: &Path, crates: &[&str]) -> Result<()> {
    let mut found = Vec::new();
    for krate in crates {
        let src = root.join(krate).join("src");
        let mut list = Vec::new();
        files(&src, &mut list);
        let texts: BTreeMap<Module, String> =
            list.iter().map(|f| Ok((module_of(&src, f), code(&std::fs::read_to_string(f)?)))).collect::<Result<_>>()?;
        let modules: BTreeSet<Module> = texts.keys().cloned().collect();
        let graph: BTreeMap<Module, BTreeSet<Module>> =
            texts.iter().map(|(m, t)| (m.clone(), imports(m, t, &modules))).collect();
        for set in circles(&graph) {
            let names: Vec<String> = set.iter().map(|m| format!("crate::{}", m.join("::"))).collect();
            found.push(format!("{krate}: {}", names.join(" <-> ")));
        }
    }
    if !found.is_empty() {
        bail!("import circles between modules:\n  {}", found.join("\n  "));
    }
    println!("no import circles: {}", crates.join(", "));
    Ok(())
}
