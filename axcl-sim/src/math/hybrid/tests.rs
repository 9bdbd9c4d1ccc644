//! Properties of the two Qwen3.5 layer kinds that follow from their definition
//! alone (the token values are checked against mlx-lm in tests/python).

use super::*;
use crate::format::{Arch, FullSpec, Geometry, GroupIo, LinearSpec, ModelKind, SimModelHeader, SimModelWriter, TensorDesc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const H: usize = 16;
const INTER: usize = 24;

fn spec(dtype: DType) -> LinearSpec {
    LinearSpec {
        key_heads: 1,
        value_heads: 2,
        key_head_dim: 4,
        value_head_dim: 4,
        conv_kernel: 3,
        state_dtype: dtype,
        report_state_dtype_none: false,
    }
}

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

fn bf(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&x| bf16::from_f32(x)).collect()
}

fn header(hybrid: HybridSpec, heads: (usize, usize, usize), inv_freq: Vec<f64>) -> SimModelHeader {
    SimModelHeader {
        kind: ModelKind::Layer,
        arch: Arch::Qwen35,
        timing_only: false,
        layer_index: Some(0),
        geometry: Geometry {
            hidden_size: H,
            num_attention_heads: heads.0,
            num_key_value_heads: heads.1,
            head_dim: heads.2,
            intermediate_size: INTER,
            rms_norm_eps: 1e-6,
            vocab_size: 0,
        },
        rope_inv_freq: inv_freq,
        groups: vec![GroupIo {
            inputs: vec![TensorDesc::new("input", DType::Bf16, &[1, 1, H as i32])],
            outputs: vec![],
        }],
        tensors: vec![],
        hybrid: Some(hybrid),
        cost: None,
    }
}

fn add_all(w: &mut SimModelWriter, rng: &mut ChaCha8Rng, weights: &[(&str, Vec<usize>, f32, f32)]) {
    for (name, shape, mean, scale) in weights {
        let n = shape.iter().product();
        let v: Vec<f32> = random(rng, n, *scale).iter().map(|x| x + mean).collect();
        w.add_tensor(name, DType::Bf16, shape, bytemuck::cast_slice(&bf(&v)));
    }
}

fn mlp_weights() -> Vec<(&'static str, Vec<usize>, f32, f32)> {
    vec![
        ("input_layernorm.weight", vec![H], 1.0, 0.2),
        ("post_attention_layernorm.weight", vec![H], 1.0, 0.2),
        ("mlp.gate_proj.weight", vec![INTER, H], 0.0, 0.4),
        ("mlp.up_proj.weight", vec![INTER, H], 0.0, 0.4),
        ("mlp.down_proj.weight", vec![H, INTER], 0.0, 0.4),
    ]
}

fn linear_layer(dtype: DType, seed: u64) -> GatedDeltaLayer {
    let s = spec(dtype);
    let (cd, vd, hv) = (s.conv_dim(), s.value_dim(), s.value_heads);
    let mut w = SimModelWriter::new(header(HybridSpec::Linear(s.clone()), (1, 1, 4), vec![]));
    let mut weights = mlp_weights();
    weights.extend([
        ("linear_attn.in_proj_qkv.weight", vec![cd, H], 0.0, 0.5),
        ("linear_attn.in_proj_z.weight", vec![vd, H], 0.0, 0.5),
        ("linear_attn.in_proj_b.weight", vec![hv, H], 0.0, 0.5),
        ("linear_attn.in_proj_a.weight", vec![hv, H], 0.0, 0.5),
        ("linear_attn.conv1d.weight", vec![cd, 1, s.conv_kernel], 0.0, 0.6),
        ("linear_attn.dt_bias", vec![hv], 1.0, 0.3),
        ("linear_attn.A_log", vec![hv], 0.5, 0.5),
        ("linear_attn.norm.weight", vec![s.value_head_dim], 1.0, 0.2),
        ("linear_attn.out_proj.weight", vec![H, vd], 0.0, 0.5),
    ]);
    add_all(&mut w, &mut ChaCha8Rng::seed_from_u64(seed), &weights);
    let file = SimModelFile::parse(&w.to_bytes()).unwrap();
    GatedDeltaLayer::from_file(&file, &s).unwrap()
}

/// Runs `rows` hidden rows with `gates` from `state`; returns (state, output rows).
fn run(
    layer: &GatedDeltaLayer,
    x: &[bf16],
    gates: &[f32],
    state: &(Vec<u8>, Vec<u8>),
    b: &Behaviour,
) -> (Vec<u8>, Vec<u8>, Vec<bf16>) {
    let n = gates.len();
    let indices: Vec<u32> = (0..n as u32).map(|i| if gates[i as usize] > 0.0 { 10 + i } else { 0 }).collect();
    let mask = bf(gates);
    let io = HybridInputs { input: x, indices: &indices, mask: &mask, k_cache: &state.0, v_cache: &state.1 };
    let out = layer.forward(&io, b).unwrap();
    (out.k_out, out.v_out, out.output.unwrap())
}

fn zero_state(dtype: DType) -> (Vec<u8>, Vec<u8>) {
    let s = spec(dtype);
    (vec![0; s.conv_state_len() * dtype.size()], vec![0; s.recurrent_state_len() * dtype.size()])
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: {x} vs {y}");
    }
}

fn f(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

#[test]
fn a_chunk_equals_its_tokens_one_by_one_with_the_state_carried() {
    let layer = linear_layer(DType::F32, 1);
    let x = bf(&random(&mut ChaCha8Rng::seed_from_u64(2), 5 * H, 2.0));
    let b = Behaviour::default();
    let (k, v, chunk) = run(&layer, &x, &[1.0; 5], &zero_state(DType::F32), &b);
    let mut state = zero_state(DType::F32);
    let mut one_by_one = Vec::new();
    for r in 0..5 {
        let (k, v, o) = run(&layer, &x[r * H..(r + 1) * H], &[1.0], &state, &b);
        state = (k, v);
        one_by_one.extend(o);
    }
    close(&f(&chunk), &f(&one_by_one), 1e-2);
    close(&state_to_f32(&k, DType::F32), &state_to_f32(&state.0, DType::F32), 1e-5);
    close(&state_to_f32(&v, DType::F32), &state_to_f32(&state.1, DType::F32), 1e-4);
    // Dropping the state between tokens changes the result: it is really carried.
    let (_, _, fresh) = run(&layer, &x[4 * H..], &[1.0], &zero_state(DType::F32), &b);
    assert!(f(&fresh).iter().zip(&f(&one_by_one[4 * H..])).any(|(a, b)| (a - b).abs() > 1e-2));
}

#[test]
fn padding_rows_freeze_or_decay_the_state() {
    let layer = linear_layer(DType::Bf16, 3);
    let x = bf(&random(&mut ChaCha8Rng::seed_from_u64(4), 4 * H, 2.0));
    let start = run(&layer, &x[..H], &[1.0], &zero_state(DType::Bf16), &Behaviour::default());
    let start = (start.0, start.1);
    let two = run(&layer, &x[..2 * H], &[1.0, 1.0], &start, &Behaviour::default());
    let padded = run(&layer, &x, &[1.0, 1.0, 0.0, 0.0], &start, &Behaviour::default());
    assert_eq!((&two.0, &two.1), (&padded.0, &padded.1), "freeze: padding leaves the state as after the real rows");
    assert_eq!(two.2, padded.2[..2 * H], "the real rows' outputs do not depend on padding");
    let decay = Behaviour { padding: Padding::Decay, ..Behaviour::default() };
    let decayed = run(&layer, &x, &[1.0, 1.0, 0.0, 0.0], &start, &decay);
    assert_eq!(two.2, decayed.2[..2 * H]);
    assert_ne!(two.1, decayed.1, "decay: padding rows still change the recurrent state");
    assert_ne!(two.0, decayed.0, "decay: zeros are shifted into the history");
}

#[test]
fn the_gate_must_be_one_or_zero_and_indices_are_read_only_when_checked() {
    let layer = linear_layer(DType::Bf16, 5);
    let x = bf(&random(&mut ChaCha8Rng::seed_from_u64(6), 2 * H, 1.0));
    let state = zero_state(DType::Bf16);
    let additive = bf(&[0.0, -65536.0]);
    let io = HybridInputs { input: &x, indices: &[3, 4], mask: &additive, k_cache: &state.0, v_cache: &state.1 };
    let err = layer.forward(&io, &Behaviour::default()).unwrap_err().to_string();
    assert!(err.contains("gate") && err.contains("row 1"), "{err}");
    let gate = bf(&[1.0, 1.0]);
    let check = Behaviour { indices: Indices::Check, ..Behaviour::default() };
    let io = HybridInputs { input: &x, indices: &[3, 9], mask: &gate, k_cache: &state.0, v_cache: &state.1 };
    let ignored = layer.forward(&io, &Behaviour::default()).unwrap();
    assert!(layer.forward(&io, &check).unwrap_err().to_string().contains("reads indices"));
    let io = HybridInputs { indices: &[3, 4], ..io };
    let read = layer.forward(&io, &check).unwrap();
    assert_eq!(ignored.output, read.output, "positions do not change a linear layer's result");
    assert_eq!(ignored.v_out, read.v_out);
}

#[test]
fn sizes_are_checked_by_bytes_of_the_state_dtype() {
    for dtype in [DType::Bf16, DType::F32] {
        let layer = linear_layer(dtype, 7);
        let s = spec(dtype);
        let (conv, rec) = (s.conv_state_len() * dtype.size(), s.recurrent_state_len() * dtype.size());
        let ok = HybridSizes {
            input: 4 * H,
            indices: 4,
            mask: 4,
            k_cache: conv,
            v_cache: rec,
            k_out: conv,
            v_out: rec,
            output: 4 * H,
        };
        layer.check(&ok).unwrap();
        for bad in [
            HybridSizes { k_cache: conv / 2, ..ok },
            HybridSizes { v_out: rec + 2, ..ok },
            HybridSizes { mask: 3, ..ok },
            HybridSizes { output: 3 * H, ..ok },
        ] {
            assert!(layer.check(&bad).is_err(), "{bad:?}");
        }
    }
}

fn full_layer(gate: bool, rotary_dim: usize, seed: u64) -> GatedAttentionLayer {
    let (heads, kv, hd) = (2, 1, 8);
    let spec = FullSpec { rotary_dim, output_gate: gate };
    let inv_freq: Vec<f64> =
        (0..rotary_dim / 2).map(|i| 1.0 / 100f64.powf(2.0 * i as f64 / rotary_dim as f64)).collect();
    let mut w = SimModelWriter::new(header(HybridSpec::Full(spec.clone()), (heads, kv, hd), inv_freq));
    let q_out = if gate { 2 * heads * hd } else { heads * hd };
    let mut weights = mlp_weights();
    weights.extend([
        ("self_attn.q_proj.weight", vec![q_out, H], 0.0, 0.5),
        ("self_attn.k_proj.weight", vec![kv * hd, H], 0.0, 0.5),
        ("self_attn.v_proj.weight", vec![kv * hd, H], 0.0, 0.5),
        ("self_attn.o_proj.weight", vec![H, heads * hd], 0.0, 0.5),
        ("self_attn.q_norm.weight", vec![hd], 1.0, 0.2),
        ("self_attn.k_norm.weight", vec![hd], 1.0, 0.2),
    ]);
    add_all(&mut w, &mut ChaCha8Rng::seed_from_u64(seed), &weights);
    let file = SimModelFile::parse(&w.to_bytes()).unwrap();
    GatedAttentionLayer::from_file(&file, &spec).unwrap()
}

#[test]
fn full_attention_rotates_only_the_leading_dims_and_decode_matches_prefill() {
    let layer = full_layer(true, 4, 8);
    let d = 8;
    let x = bf(&random(&mut ChaCha8Rng::seed_from_u64(9), 3 * H, 2.0));
    let m = -65536.0;
    let causal = bf(&[0.0, m, m, 0.0, 0.0, m, 0.0, 0.0, 0.0]);
    let empty: [u8; 0] = [];
    let io = HybridInputs { input: &x, indices: &[0, 1, 2], mask: &causal, k_cache: &empty, v_cache: &empty };
    let full = layer.forward(&io, &Behaviour::default()).unwrap();
    let k: &[bf16] = bytemuck::cast_slice(&full.k_out);
    // Position 0 rotates nothing; at other positions only dims [0, 4) of the head differ from the unrotated key.
    let io0 = HybridInputs { input: &x[2 * H..], indices: &[0], mask: &bf(&[0.0]), k_cache: &empty, v_cache: &empty };
    let at0 = layer.forward(&io0, &Behaviour::default()).unwrap();
    let k0: &[bf16] = bytemuck::cast_slice(&at0.k_out);
    assert_eq!(k0[4..], k[2 * d + 4..3 * d], "dims past rotary_dim are not rotated");
    assert_ne!(k0[..4], k[2 * d..2 * d + 4]);
    // Decode the third token over the first two rows as history (capacity 3, one empty slot).
    let mut kc = full.k_out[..2 * d * 2].to_vec();
    let mut vc = full.v_out[..2 * d * 2].to_vec();
    kc.extend([0u8; 16]);
    vc.extend([0u8; 16]);
    let dec_mask = bf(&[0.0, 0.0, m, 0.0]);
    let io = HybridInputs { input: &x[2 * H..], indices: &[2], mask: &dec_mask, k_cache: &kc, v_cache: &vc };
    let step = layer.forward(&io, &Behaviour::default()).unwrap();
    close(&f(&step.output.unwrap()), &f(&full.output.unwrap()[2 * H..]), 1e-2);
}
