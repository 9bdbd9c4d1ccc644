//! Fuzz target bodies. Each takes arbitrary bytes and must return without a
//! panic (errors are fine). `fuzz_targets/*.rs` hand them to libFuzzer
//! (`cargo +nightly fuzz run <target>`); `tests/mutations.rs` runs them over a
//! seeded mutation corpus on stable Rust, so CI exercises them either way.
#![allow(unsafe_code)] // capi_args calls the exported C functions

use axcl_sim::format::SimModelFile;
use axllm::*;
use axllm_core::engine::geometry::Geometry;
use axllm_core::engine::masks;
use axllm_core::npu::{GroupInfo, TensorInfo, dtype};
use axllm_core::package::config::{PostConfig, read_json};
use axllm_core::package::{ModelFiles, Tokenizer};
use std::ffi::{CString, c_char};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A byte reader that yields zeros when the input runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn i32_small(&mut self) -> i32 {
        self.u8() as i8 as i32
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// A small packed model (Qwen3 layout, vendor `axllm` format) used as the
/// starting point of directory fuzzing.
pub fn template_package() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = DIR.get_or_init(|| {
        use axsim_pack::*;
        let tmp = axllm_testkit::tempdir();
        let random = RandomOptions { hidden: 32, intermediate: 64, ..Default::default() };
        let io = IoOptions { chunk: 8, context: 31, prefill_history: vec![8, 16] };
        let out = axllm_testkit::pack_random(tmp.path(), &random, &PackOptions { io, ..Default::default() });
        (tmp, out)
    });
    p
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files_of(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}

/// Directory parsing: one file of a valid package is replaced by (or cut to)
/// the fuzz bytes, or deleted; then the static package check runs, and
/// layout discovery, the tokenizer, the sampling config and every model
/// file's header are read.
pub fn model_dir(data: &[u8]) {
    let tpl = template_package();
    let files = files_of(tpl);
    let mut b = Bytes(data);
    let victim = b.u8() as usize % files.len();
    let mode = b.u8() % 3;
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, f) in files.iter().enumerate() {
        let rel = f.strip_prefix(tpl).expect("inside the template");
        let dst = dir.path().join(rel);
        std::fs::create_dir_all(dst.parent().expect("has a parent")).expect("mkdir");
        if i != victim {
            // Hard links (or copies): a symlink out of the package would be refused.
            std::fs::hard_link(f, &dst).or_else(|_| std::fs::copy(f, &dst).map(|_| ())).expect("link");
            continue;
        }
        match mode {
            0 => {} // deleted
            1 => std::fs::write(&dst, b.0).expect("write"),
            _ => {
                let orig = std::fs::read(f).expect("read");
                let cut = (b.u32() as usize) % (orig.len() + 1);
                std::fs::write(&dst, &orig[..cut]).expect("write");
            }
        }
    }
    // The static check `ollama create` runs reads all of it too, containers included.
    let _ = axllm_core::check_package(dir.path(), &[]);
    let Ok(found) = ModelFiles::discover(dir.path(), &[]) else { return };
    let _ = Tokenizer::load(&found.dir, &found.tokenizer, &found.hf_dirs);
    if let Some(p) = &found.post_config {
        let _ = read_json::<PostConfig>(&found.dir, p);
    }
    for p in found.layers.iter().chain([&found.post]) {
        if let Ok(f) = SimModelFile::read(p) {
            let _ = axcl_sim::math::DecoderLayer::from_file(&f);
        }
    }
}

/// Geometry derivation from arbitrary IO info, then the group choices and
/// mask builders for whatever it accepts.
pub fn geometry(data: &[u8]) {
    const IN: [&str; 5] = ["K_cache", "V_cache", "indices", "input", "mask"];
    const OUT: [&str; 3] = ["K_cache_out", "V_cache_out", "output"];
    let mut b = Bytes(data);
    let n_groups = (b.u8() % 6) as usize + 1;
    let tensor = |b: &mut Bytes<'_>, name: &str| {
        let ndims = (b.u8() % 4) as usize + 1;
        let dims: Vec<i32> = (0..ndims).map(|_| b.i32_small()).collect();
        let code = match b.u8() % 4 {
            0 => dtype::BF16,
            1 => dtype::UINT32,
            2 => dtype::UINT16,
            _ => b.i32_small(),
        };
        let elems: usize = dims.iter().map(|&d| d.max(0) as usize).product();
        let size = if b.u8() % 8 == 0 { b.u32() as u64 } else { (elems * if code == dtype::UINT32 { 4 } else { 2 }) as u64 };
        let name = if b.u8() % 16 == 0 { "other".to_string() } else { name.to_string() };
        TensorInfo { name, dims, dtype: code, size }
    };
    let groups: Vec<GroupInfo> = (0..n_groups)
        .map(|_| GroupInfo {
            inputs: IN.iter().map(|n| tensor(&mut b, n)).collect(),
            outputs: OUT.iter().map(|n| tensor(&mut b, n)).collect(),
        })
        .collect();
    // The same IO read as a Qwen3.5 linear-attention layer's.
    let _ = axllm_core::engine::hybrid::kind_from_io(&groups);
    let (hidden, chunk) = (b.u8() as usize + 1, (b.u8() % 8) as usize + 2);
    if let Ok(lg) = axllm_core::engine::hybrid::LinearGeometry::derive(Path::new("fuzz"), &groups, hidden, chunk) {
        assert!(lg.k_state > 0 && lg.v_state > 0 && !lg.decode.is_empty() && !lg.prefill.is_empty());
        let (p, d) = (lg.group_for(true, b.u8() as usize), lg.group_for(false, b.u8() as usize));
        assert!(p.rows == chunk && d.rows == 1 && p.mask >= p.rows);
    }
    let Ok(g) = Geometry::derive(Path::new("fuzz"), &groups) else { return };
    let _ = (g.max_positions(), g.max_prefill());
    for _ in 0..4 {
        let (h, n) = (b.u8() as usize * 3, b.u8() as usize);
        if let Some((pg, len)) = g.prefill_plan(h, n.max(1)) {
            assert!(len >= 1 && h + len <= pg.total_cap && h <= pg.history_cap);
            let cols = pg.history_cap + g.chunk;
            if g.chunk * cols <= 1 << 16 && len <= g.chunk {
                let mut m = vec![0u16; g.chunk * cols];
                masks::prefill_mask(&mut m, g.chunk, pg.history_cap, h, len);
                let mut idx = vec![0u32; g.chunk];
                masks::prefill_indices(&mut idx, h, len);
            }
        }
        if let Some(dg) = g.decode_group(h) {
            assert!(dg.capacity > h);
            if dg.capacity < 1 << 16 {
                masks::decode_mask(&mut vec![0u16; dg.capacity + 1], h);
            }
        }
    }
}

/// The simulated model format and the simulator's weight loading.
pub fn sim_format(data: &[u8]) {
    if let Ok(f) = SimModelFile::parse(data) {
        let _ = axcl_sim::math::DecoderLayer::from_file(&f);
        let _ = axcl_sim::math::PostHead::from_file(&f);
        let _ = axcl_sim::math::hybrid::HybridLayer::from_file(&f);
    }
}

/// The runtime library `capi_args` loads its live model with: set by the
/// caller ([`use_runtime`]), else `$AXLLM_AXCL_LIB` (the libFuzzer binary's
/// edge); without either, no live model is loaded.
static RUNTIME: OnceLock<PathBuf> = OnceLock::new();

/// Makes [`capi_args`] load a live model (the template package) on `runtime`.
pub fn use_runtime(runtime: &Path) {
    let _ = RUNTIME.set(runtime.to_path_buf());
}

/// The C ABI with fuzzed arguments: arbitrary handle values (handles are
/// keys, never dereferenced), NULL or valid pointers, capacities up to the
/// real buffer size, strings that may not be UTF-8. With a runtime library
/// (see [`use_runtime`]), a real model is loaded first and its handle is among
/// the candidates.
pub fn capi_args(data: &[u8]) {
    static MODEL: OnceLock<usize> = OnceLock::new();
    let live = *MODEL.get_or_init(|| {
        let runtime = RUNTIME.get().cloned().or_else(|| std::env::var_os("AXLLM_AXCL_LIB").map(PathBuf::from));
        let Some(runtime) = runtime else { return 0 };
        let dir = CString::new(template_package().as_os_str().as_encoded_bytes()).expect("no NUL");
        let lib = CString::new(runtime.into_os_string().into_encoded_bytes()).expect("no NUL");
        let mut p = std::mem::MaybeUninit::<axllm_load_params>::uninit();
        let mut m = std::ptr::null_mut();
        // SAFETY: valid arguments; the params are filled before use.
        unsafe {
            axllm_load_default_params(p.as_mut_ptr(), std::mem::size_of::<axllm_load_params>());
            let mut p = p.assume_init();
            p.runtime_library = lib.as_ptr();
            axllm_model_load(dir.as_ptr(), &p, &mut m);
        }
        m as usize
    });
    let mut b = Bytes(data);
    let mut gens: Vec<usize> = Vec::new();
    for _ in 0..16 {
        let op = b.u8();
        let handle = match b.u8() % 4 {
            0 => 0,
            1 => live,
            2 => gens.last().copied().unwrap_or(live),
            _ => b.u32() as usize,
        };
        let slen = (b.u8() % 24) as usize;
        let mut text = b.take(slen).to_vec();
        text.retain(|&c| c != 0);
        text.push(0);
        let s = if b.u8() % 8 == 0 { std::ptr::null() } else { text.as_ptr().cast::<c_char>() };
        let mut buf = vec![0 as c_char; 64];
        let cap = (b.u8() as usize) % (buf.len() + 1);
        let bufp = if b.u8() % 8 == 0 { std::ptr::null_mut() } else { buf.as_mut_ptr() };
        let (mut n, mut done) = (0usize, axllm_done_reason::AXLLM_DONE_NONE);
        // SAFETY: every pointer is NULL or valid for the length passed with it.
        unsafe {
            match op % 9 {
                0 => {
                    let mut m = std::ptr::null_mut();
                    let mut p = std::mem::MaybeUninit::<axllm_load_params>::uninit();
                    axllm_load_default_params(p.as_mut_ptr(), std::mem::size_of::<axllm_load_params>());
                    let mut p = p.assume_init();
                    p.runtime_library = s;
                    p.schedule = if op & 32 != 0 { s } else { std::ptr::null() };
                    axllm_model_load(s, &p, &mut m);
                    if !m.is_null() {
                        axllm_model_free(m);
                    }
                }
                1 => {
                    let mut info = axllm_model_info::default();
                    let size = if op & 32 != 0 { cap } else { std::mem::size_of::<axllm_model_info>() };
                    let infop = if bufp.is_null() { std::ptr::null_mut() } else { &mut info };
                    axllm_model_get_info(handle as *const _, infop, size.min(std::mem::size_of::<axllm_model_info>()));
                    axllm_model_diagnostics(handle as *const _, bufp, cap, &mut n);
                }
                2 => {
                    let mut toks = [0i32; 16];
                    axllm_tokenize(handle as *const _, s, op & 16 != 0, toks.as_mut_ptr(), cap % 17, &mut n);
                }
                3 => {
                    let toks: Vec<i32> = (0..(op % 5)).map(|_| b.u32() as i32 % 700).collect();
                    axllm_detokenize(handle as *const _, toks.as_ptr(), toks.len(), bufp, cap, &mut n);
                }
                4 => {
                    let stops = [s, text.as_ptr().cast::<c_char>()];
                    let mut p = std::mem::MaybeUninit::<axllm_generate_params>::uninit();
                    axllm_generate_default_params(p.as_mut_ptr(), std::mem::size_of::<axllm_generate_params>());
                    let mut p = p.assume_init();
                    if op & 32 != 0 {
                        p.struct_size = b.u8() as usize;
                    }
                    p.num_predict = (b.u8() % 4) as i32 - 1;
                    p.temperature = b.u8() as f32 / 64.0;
                    p.top_k = b.i32_small();
                    p.stop = if b.u8() % 4 == 0 { std::ptr::null() } else { stops.as_ptr() };
                    p.n_stop = (b.u8() % 3) as usize;
                    // One thread holds at most one generation of a model:
                    // a second begin would wait for the first forever.
                    for g in gens.drain(..) {
                        axllm_generation_end(g as *mut _);
                    }
                    let mut g = std::ptr::null_mut();
                    if axllm_generation_begin(handle as *mut _, s, &p, &mut g) == axllm_status::AXLLM_OK {
                        gens.push(g as usize);
                    }
                }
                5 => {
                    axllm_generation_next(handle as *mut _, bufp, cap, &mut n, &mut done);
                }
                6 => axllm_generation_cancel(handle as *mut _),
                7 => {
                    if let Some(g) = gens.pop() {
                        axllm_generation_end(g as *mut _);
                    }
                    axllm_generation_end(handle as *mut _);
                }
                _ => {
                    let mut st = axllm_stats::default();
                    axllm_generation_stats(handle as *const _, &mut st);
                    axllm_model_last_stats(handle as *const _, &mut st);
                }
            }
        }
        // Never free the shared live model; anything else may be freed.
        if op % 9 == 8 && handle != live {
            axllm_model_free(handle as *mut _);
        }
    }
    for g in gens {
        axllm_generation_end(g as *mut _);
    }
}
