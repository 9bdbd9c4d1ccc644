//! Tests of the math: the kernels against hand-computed values, a decoder
//! layer and the post head against a scalar loop-by-loop reference.

use super::*;
use crate::format::{
    Arch, DType, Geometry, ModelKind, SimModelFile, SimModelHeader, SimModelWriter, layer_groups, post_groups,
};
use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MASKED: f32 = -65536.0;

fn bf(values: &[f32]) -> Vec<bf16> {
    values.iter().map(|&v| bf16::from_f32(v)).collect()
}

fn close(got: &[bf16], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.to_f32();
        assert!((g - w).abs() <= 0.02 * w.abs() + 2e-3, "element {i}: got {g}, want {w}");
    }
}

#[test]
fn rope_at_position_zero_is_identity_and_rotates_half_pairs() {
    let x = [0.5f32, -1.0, 2.0, 3.0];
    let mut y = x;
    apply_rope(&mut y, 0, &[1.0, 0.5]);
    assert_eq!(y, x);
    apply_rope(&mut y, 2, &[1.0, 0.5]);
    let (c0, s0, c1, s1) = (2f32.cos(), 2f32.sin(), 1f32.cos(), 1f32.sin());
    let want = [0.5 * c0 - 2.0 * s0, -c1 - 3.0 * s1, 2.0 * c0 + 0.5 * s0, 3.0 * c1 - s1];
    y.iter().zip(want).for_each(|(a, b)| assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}"));
}

#[test]
fn rms_norm_scales_by_the_root_mean_square() {
    let mut out = [0.0; 2];
    rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0, &mut out);
    let inv = 1.0 / 12.5f32.sqrt();
    assert_eq!(out, [3.0 * inv, 8.0 * inv]);
    assert!((silu(1.0) - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-7);
}

#[test]
fn single_visible_column_returns_its_value_per_gqa_head() {
    // 4 query heads over 2 kv heads, head_dim 2: heads 0,1 read kv head 0; heads 2,3 kv head 1.
    let shape = AttentionShape { heads: 4, kv_heads: 2, head_dim: 2 };
    let q = [0.3, -0.2, 1.0, 0.5, -0.7, 0.1, 0.2, 0.9];
    let values = [1.0, 2.0, 10.0, 20.0];
    let mut out = [0.0; 8];
    attention(shape, &q, &[0.5, 0.5, -1.0, 2.0], &values, &[0.0], &mut out);
    assert_eq!(out, [1.0, 2.0, 1.0, 2.0, 10.0, 20.0, 10.0, 20.0]);
}

#[test]
fn mask_selects_columns_and_masked_nan_poisons() {
    // Each case runs with one query row (the decode path) and two equal rows (the sgemm path).
    let shape = AttentionShape { heads: 1, kv_heads: 1, head_dim: 2 };
    let run = |keys: &[f32], values: &[f32], mask: &[f32], rows: usize| {
        let q: Vec<f32> = [1.0, 0.0].repeat(rows);
        let mut out = vec![0.0; 2 * rows];
        attention(shape, &q, keys, values, &mask.repeat(rows), &mut out);
        out
    };
    let (keys, values, nan) = ([0.0; 4], [4.0, 8.0, 2.0, 6.0], f32::NAN);
    for rows in [1, 2] {
        assert_eq!(run(&keys, &values, &[0.0, 0.0], rows), [3.0, 7.0].repeat(rows), "equal scores average");
        assert_eq!(run(&keys, &values, &[MASKED, 0.0], rows), [2.0, 6.0].repeat(rows), "masked weight is 0");
        let out = run(&[nan, nan, 0.0, 0.0], &values, &[MASKED, 0.0], rows);
        assert!(out.iter().all(|v| v.is_nan()), "NaN keys poison even when masked: {out:?}");
        let out = run(&keys, &[nan, nan, 2.0, 6.0], &[MASKED, 0.0], rows);
        assert!(out.iter().all(|v| v.is_nan()), "0 · NaN values poison: {out:?}");
    }
}

/// Knobs of a tiny test layer: H 8, 2 heads over 1 kv head of 4, MLP 12.
#[derive(Clone, Copy)]
struct Variant {
    biases: bool,
    qk_norm: bool,
}

const H: usize = 8;
const HEADS: usize = 2;
const HD: usize = 4;
const D: usize = HD;
const INTER: usize = 12;

fn geometry(vocab: usize) -> Geometry {
    Geometry {
        hidden_size: H,
        num_attention_heads: HEADS,
        num_key_value_heads: 1,
        head_dim: HD,
        intermediate_size: INTER,
        rms_norm_eps: 1e-6,
        vocab_size: vocab,
    }
}

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Adds a weight, bf16 except the ones named in `f32_names` (both dtypes must load).
fn add(w: &mut SimModelWriter, name: &str, shape: &[usize], values: &[f32]) {
    if name.ends_with("q_proj.weight") {
        w.add_tensor(name, DType::F32, shape, bytemuck::cast_slice(values));
    } else {
        w.add_tensor(name, DType::Bf16, shape, bytemuck::cast_slice(&bf(values)));
    }
}

fn layer_file(variant: Variant, seed: u64) -> SimModelFile {
    let header = SimModelHeader {
        kind: ModelKind::Layer,
        arch: Arch::Qwen3,
        timing_only: false,
        layer_index: Some(0),
        geometry: geometry(0),
        rope_inv_freq: vec![1.0, 0.01],
        groups: layer_groups(H, D, 4, 8, &[4]),
        tensors: vec![],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = SimModelWriter::new(header);
    let norm = |rng: &mut ChaCha8Rng, n| random(rng, n, 0.3).iter().map(|v| 1.0 + v).collect::<Vec<f32>>();
    add(&mut w, "input_layernorm.weight", &[H], &norm(&mut rng, H));
    add(&mut w, "post_attention_layernorm.weight", &[H], &norm(&mut rng, H));
    for (name, out, inp) in [
        ("self_attn.q_proj", HEADS * HD, H),
        ("self_attn.k_proj", D, H),
        ("self_attn.v_proj", D, H),
        ("self_attn.o_proj", H, HEADS * HD),
        ("mlp.gate_proj", INTER, H),
        ("mlp.up_proj", INTER, H),
        ("mlp.down_proj", H, INTER),
    ] {
        add(&mut w, &format!("{name}.weight"), &[out, inp], &random(&mut rng, out * inp, 0.5));
        if variant.biases && name.starts_with("self_attn") {
            add(&mut w, &format!("{name}.bias"), &[out], &random(&mut rng, out, 0.2));
        }
    }
    if variant.qk_norm {
        add(&mut w, "self_attn.q_norm.weight", &[HD], &norm(&mut rng, HD));
        add(&mut w, "self_attn.k_norm.weight", &[HD], &norm(&mut rng, HD));
    }
    SimModelFile::parse(&w.to_bytes()).unwrap()
}

/// A scalar, loop-by-loop rendition of the layer for comparison.
struct Reference<'a>(&'a SimModelFile);

impl Reference<'_> {
    fn weight(&self, name: &str) -> Option<Vec<f32>> {
        let (e, bytes) = self.0.tensor_bytes(name)?;
        Some(match e.dtype {
            DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
            _ => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes(b.try_into().unwrap()).to_f32()).collect(),
        })
    }

    fn linear(&self, name: &str, x: &[f32]) -> Vec<f32> {
        let w = self.weight(&format!("{name}.weight")).unwrap();
        let bias = self.weight(&format!("{name}.bias"));
        let out = w.len() / x.len();
        (0..out)
            .map(|o| {
                let dot: f32 = (0..x.len()).map(|i| w[o * x.len() + i] * x[i]).sum();
                dot + bias.as_ref().map_or(0.0, |b| b[o])
            })
            .collect()
    }

    fn norm(&self, name: &str, x: &[f32]) -> Vec<f32> {
        let w = self.weight(name).unwrap();
        let ms: f32 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
        x.iter().zip(&w).map(|(v, w)| v / (ms + 1e-6).sqrt() * w).collect()
    }

    fn head(&self, x: &mut [f32], norm: &str, pos: u32) {
        for h in x.chunks_exact_mut(HD) {
            if self.weight(norm).is_some() {
                h.copy_from_slice(&self.norm(norm, h));
            }
            let (a, b) = h.split_at_mut(HD / 2);
            for i in 0..HD / 2 {
                let angle = pos as f64 * [1.0, 0.01][i];
                let (s, c) = (angle.sin() as f32, angle.cos() as f32);
                (a[i], b[i]) = (a[i] * c - b[i] * s, b[i] * c + a[i] * s);
            }
        }
    }

    /// Rows `x` at `pos` over bf16 history `kc`/`vc`; returns (k rows, v rows, outputs).
    fn run(
        &self,
        x: &[Vec<f32>],
        pos: &[u32],
        mask: &[Vec<f32>],
        kc: &[Vec<f32>],
        vc: &[Vec<f32>],
    ) -> [Vec<f32>; 3] {
        let round = |v: Vec<f32>| v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect::<Vec<f32>>();
        let (mut keys, mut values, mut queries) = (kc.to_vec(), vc.to_vec(), vec![]);
        for (r, xr) in x.iter().enumerate() {
            let a = self.norm("input_layernorm.weight", xr);
            let (mut q, mut k) = (self.linear("self_attn.q_proj", &a), self.linear("self_attn.k_proj", &a));
            self.head(&mut q, "self_attn.q_norm.weight", pos[r]);
            self.head(&mut k, "self_attn.k_norm.weight", pos[r]);
            keys.push(round(k));
            values.push(round(self.linear("self_attn.v_proj", &a)));
            queries.push(q);
        }
        let mut outs = vec![];
        for (r, q) in queries.iter().enumerate() {
            let mut attn = vec![];
            for h in 0..HEADS {
                let qh = &q[h * HD..(h + 1) * HD];
                let mut p: Vec<f32> = (0..keys.len())
                    .map(|c| {
                        qh.iter().zip(&keys[c]).map(|(a, b)| a * b).sum::<f32>() / (HD as f32).sqrt() + mask[r][c]
                    })
                    .collect();
                let max = p.iter().copied().fold(f32::MIN, f32::max);
                p.iter_mut().for_each(|v| *v = (*v - max).exp());
                let sum: f32 = p.iter().sum();
                attn.extend((0..HD).map(|i| (0..keys.len()).map(|c| p[c] / sum * values[c][i]).sum::<f32>()));
            }
            let hidden: Vec<f32> =
                self.linear("self_attn.o_proj", &attn).iter().zip(&x[r]).map(|(o, x)| o + x).collect();
            let m = self.norm("post_attention_layernorm.weight", &hidden);
            let (g, u) = (self.linear("mlp.gate_proj", &m), self.linear("mlp.up_proj", &m));
            let act: Vec<f32> = g.iter().zip(&u).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            outs.extend(self.linear("mlp.down_proj", &act).iter().zip(&hidden).map(|(d, h)| d + h));
        }
        let n = x.len();
        [keys[keys.len() - n..].concat(), values[values.len() - n..].concat(), outs]
    }
}

fn run_layer(layer: &DecoderLayer, x: &[f32], pos: &[u32], mask: &[f32], kc: &[f32], vc: &[f32]) -> [Vec<bf16>; 3] {
    let n = pos.len();
    let (mut k, mut v, mut o) = (vec![bf16::ZERO; n * D], vec![bf16::ZERO; n * D], vec![bf16::ZERO; n * H]);
    let (x, mask, kc, vc) = (bf(x), bf(mask), bf(kc), bf(vc));
    let inputs = LayerInputs { input: &x, indices: pos, mask: &mask, k_cache: &kc, v_cache: &vc };
    layer.forward(&inputs, &mut LayerOutputs { k_out: &mut k, v_out: &mut v, output: &mut o }).unwrap();
    [k, v, o]
}

fn rows(flat: &[f32], width: usize) -> Vec<Vec<f32>> {
    flat.chunks(width).map(<[f32]>::to_vec).collect()
}

#[test]
fn layer_matches_a_scalar_reference_for_every_variant() {
    for (seed, variant) in [
        (1, Variant { biases: true, qk_norm: false }),
        (2, Variant { biases: false, qk_norm: true }),
        (3, Variant { biases: false, qk_norm: false }),
    ] {
        let file = layer_file(variant, seed);
        let layer = DecoderLayer::from_file(&file).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
        // Two query rows at positions 5 and 6 over 3 history rows, history row 1 masked.
        let bfr = |v: Vec<f32>| v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect::<Vec<f32>>();
        let (x, kc, vc) = (
            bfr(random(&mut rng, 2 * H, 1.0)),
            bfr(random(&mut rng, 3 * D, 1.0)),
            bfr(random(&mut rng, 3 * D, 1.0)),
        );
        let mask = [0.0, MASKED, 0.0, 0.0, MASKED, 0.0, MASKED, 0.0, 0.0, 0.0];
        let [k, v, o] = run_layer(&layer, &x, &[5, 6], &mask, &kc, &vc);
        let [rk, rv, ro] =
            Reference(&file).run(&rows(&x, H), &[5, 6], &rows(&mask, 5), &rows(&kc, D), &rows(&vc, D));
        close(&k, &rk);
        close(&v, &rv);
        close(&o, &ro);
    }
}

#[test]
fn decode_over_prefilled_rows_matches_the_prefill() {
    let layer = DecoderLayer::from_file(&layer_file(Variant { biases: true, qk_norm: true }, 7)).unwrap();
    let x: Vec<f32> = random(&mut ChaCha8Rng::seed_from_u64(8), 3 * H, 1.0);
    let causal = [0.0, MASKED, MASKED, 0.0, 0.0, MASKED, 0.0, 0.0, 0.0];
    let [k, v, full] = run_layer(&layer, &x, &[0, 1, 2], &causal, &[], &[]);
    // Decode the third token with the first two K/V rows as history (capacity 4: one empty slot).
    let to_f32 = |v: &[bf16]| v.iter().map(|v| v.to_f32()).collect::<Vec<f32>>();
    let mut kc = to_f32(&k[..2 * D]);
    let mut vc = to_f32(&v[..2 * D]);
    kc.extend([0.0; D]);
    vc.extend([0.0; D]);
    let [k2, _, step] = run_layer(&layer, &x[2 * H..], &[2], &[0.0, 0.0, MASKED, 0.0], &kc, &vc);
    assert_eq!(k2, k[2 * D..], "K of the same token at the same position is identical");
    close(&step, &to_f32(&full[2 * H..]));
}

#[test]
fn post_head_is_lm_head_of_the_normed_input() {
    let (v, mut rng) = (5, ChaCha8Rng::seed_from_u64(9));
    let header = SimModelHeader {
        kind: ModelKind::Post,
        arch: Arch::Llama,
        timing_only: false,
        layer_index: None,
        geometry: geometry(v),
        rope_inv_freq: vec![],
        groups: post_groups(H, v),
        tensors: vec![],
    };
    let mut w = SimModelWriter::new(header);
    add(&mut w, "norm.weight", &[H], &random(&mut rng, H, 1.0));
    add(&mut w, "lm_head.weight", &[v, H], &random(&mut rng, v * H, 1.0));
    let file = SimModelFile::parse(&w.to_bytes()).unwrap();
    let head = PostHead::from_file(&file).unwrap();
    let x = bf(&random(&mut rng, H, 2.0));
    let mut logits = vec![bf16::ZERO; v];
    head.forward(&x, &mut logits).unwrap();
    let r = Reference(&file);
    let xf: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
    close(&logits, &r.linear("lm_head", &r.norm("norm.weight", &xf)));
    assert!(matches!(head.forward(&x, &mut logits[..4]), Err(MathError::Shape(_))));
}

#[test]
fn refuses_files_whose_weights_do_not_fit() {
    let file = layer_file(Variant { biases: false, qk_norm: false }, 4);
    let rebuilt = |edit: &dyn Fn(&mut SimModelWriter, &SimModelFile)| {
        let mut header = file.header.clone();
        header.tensors.clear();
        let mut w = SimModelWriter::new(header);
        edit(&mut w, &file);
        SimModelFile::parse(&w.to_bytes()).unwrap()
    };
    let copy_all_but = |skip: &'static str| {
        move |w: &mut SimModelWriter, f: &SimModelFile| {
            for t in f.header.tensors.iter().filter(|t| t.name != skip) {
                w.add_tensor(&t.name, t.dtype, &t.shape, f.tensor_bytes(&t.name).unwrap().1);
            }
        }
    };
    let missing = rebuilt(&copy_all_but("mlp.up_proj.weight"));
    assert!(
        matches!(DecoderLayer::from_file(&missing), Err(MathError::MissingWeight(n)) if n == "mlp.up_proj.weight")
    );
    let extra = rebuilt(&|w, f| {
        copy_all_but("")(w, f);
        w.add_tensor("mlp.gate_proj.weights", DType::Bf16, &[1], &[0, 0]);
    });
    assert!(matches!(DecoderLayer::from_file(&extra), Err(MathError::UnknownWeight(_))));
    let misshapen = rebuilt(&|w, f| {
        copy_all_but("input_layernorm.weight")(w, f);
        w.add_tensor("input_layernorm.weight", DType::Bf16, &[H - 1], &[0; 2 * (H - 1)]);
    });
    assert!(matches!(DecoderLayer::from_file(&misshapen), Err(MathError::WeightShape { .. })));
    assert!(matches!(PostHead::from_file(&file), Err(MathError::WrongKind { .. })));
    let layer = DecoderLayer::from_file(&file).unwrap();
    let sizes =
        LayerSizes { input: H, indices: 1, mask: 4, k_cache: 2 * D, v_cache: 3 * D, k_out: D, v_out: D, output: H };
    assert!(matches!(layer.history_rows(&sizes), Err(MathError::Shape(_))), "history of 3 rows needs 3·D of K");
    assert_eq!(layer.history_rows(&LayerSizes { k_cache: 3 * D, ..sizes }).unwrap(), 3);
}
