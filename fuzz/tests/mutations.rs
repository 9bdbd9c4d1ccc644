//! Runs every fuzz target over a seeded, bounded corpus on stable Rust: valid
//! inputs mutated by byte flips, insertions, deletions and truncation. CI runs
//! this; `cargo +nightly fuzz run <target>` explores further with coverage.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn mutate(rng: &mut ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..8) {
        match rng.random_range(0..5) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=v.len());
                v.insert(i, rng.random());
            }
            2 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v.remove(i);
            }
            3 => v.truncate(rng.random_range(0..=v.len())),
            _ => v.extend((0..rng.random_range(0..16)).map(|_| rng.random::<u8>())),
        }
    }
    v
}

fn run(target: fn(&[u8]), seeds: &[Vec<u8>], iterations: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(0xA650);
    for i in 0..iterations {
        let input = mutate(&mut rng, &seeds[i % seeds.len()]);
        target(&input);
    }
}

fn package_seeds() -> Vec<Vec<u8>> {
    let pkg = axllm_fuzz::template_package();
    ["config.json", "post_config.json", "qwen3_tokenizer/tokenizer.json", "qwen3_tokenizer/tokenizer_config.json"]
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut v = vec![i as u8, 1];
            v.extend(std::fs::read(pkg.join(f)).unwrap());
            v
        })
        .collect()
}

#[test]
fn model_dir() {
    run(axllm_fuzz::model_dir, &package_seeds(), 400);
}

#[test]
fn geometry() {
    run(axllm_fuzz::geometry, &[vec![], vec![3; 200], (0..=255).collect()], 20_000);
}

#[test]
fn sim_format() {
    let pkg = axllm_fuzz::template_package();
    let seeds: Vec<Vec<u8>> = ["qwen3_p8_l0_together.axmodel", "qwen3_post.axmodel"]
        .iter()
        .map(|f| std::fs::read(pkg.join(f)).unwrap()[..2048].to_vec())
        .collect();
    run(axllm_fuzz::sim_format, &seeds, 3_000);
}

#[test]
fn capi_args() {
    // A live model on the simulator, so calls with a valid handle go deep.
    // The fuzz crate is its own workspace: use the main workspace's simulator.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    axllm_fuzz::use_runtime(&axllm_testkit::sim_library_in(&root.join("target")));
    run(axllm_fuzz::capi_args, &[vec![], (0..=255).rev().collect(), vec![4, 1, 5, b'h', b'e', b'l', b'l', b'o']], 5_000);
}
