//! Token sampling on the host, with Ollama's option names and defaults.
//!
//! The chain is llama.cpp's (the engine behind Ollama's GGUF models):
//! repetition penalties → top_k → typical_p → top_p → min_p → temperature →
//! draw. Temperature 0 is greedy (first maximum wins). Nothing sorts the whole
//! vocabulary: top-k is a single scan that keeps the best k, and top-p without
//! top-k sorts a growing prefix only until it holds the nucleus.

use crate::package::PostConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::collections::VecDeque;

/// Sampling options, named and defaulted as Ollama's `api.Options`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingOptions {
    /// 0 means greedy.
    pub temperature: f32,
    /// ≤ 0 disables.
    pub top_k: i32,
    /// ≥ 1 disables.
    pub top_p: f32,
    /// ≤ 0 disables.
    pub min_p: f32,
    /// ≥ 1 disables.
    pub typical_p: f32,
    /// How many recent tokens the penalties look at; 0 disables, -1 means all.
    pub repeat_last_n: i32,
    /// 1 disables.
    pub repeat_penalty: f32,
    /// Subtracted from the logit of every token in the window; 0 disables.
    pub presence_penalty: f32,
    /// Subtracted once per occurrence in the window; 0 disables.
    pub frequency_penalty: f32,
    /// Negative: a random seed per sampler.
    pub seed: i64,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            typical_p: 1.0,
            repeat_last_n: 64,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: -1,
        }
    }
}

impl SamplingOptions {
    /// Greedy decoding, no penalties.
    pub fn greedy() -> Self {
        SamplingOptions { temperature: 0.0, repeat_penalty: 1.0, ..Default::default() }
    }

    /// The package's defaults (`post_config.json`). The vendor runner argmaxes
    /// when nothing is enabled and applies only the enabled steps otherwise.
    /// (Its repetition penalty divides by √penalty; ours is Ollama's, the plain factor.)
    pub(crate) fn from_post_config(pc: &PostConfig) -> Self {
        let any = pc.enable_temperature || pc.enable_top_k_sampling || pc.enable_top_p_sampling;
        if !any || (pc.enable_top_k_sampling && pc.top_k == 1 && !pc.enable_top_p_sampling) {
            let mut g = Self::greedy();
            if pc.enable_repetition_penalty {
                g.repeat_penalty = pc.repetition_penalty;
                g.repeat_last_n = pc.penalty_window;
            }
            return g;
        }
        SamplingOptions {
            temperature: if pc.enable_temperature { pc.temperature } else { 1.0 },
            top_k: if pc.enable_top_k_sampling { pc.top_k } else { 0 },
            top_p: if pc.enable_top_p_sampling { pc.top_p } else { 1.0 },
            min_p: 0.0,
            typical_p: 1.0,
            repeat_last_n: if pc.enable_repetition_penalty { pc.penalty_window } else { 64 },
            repeat_penalty: if pc.enable_repetition_penalty { pc.repetition_penalty } else { 1.0 },
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: -1,
        }
    }

    fn penalties_active(&self) -> bool {
        self.repeat_last_n != 0 && (self.repeat_penalty != 1.0 || self.presence_penalty != 0.0 || self.frequency_penalty != 0.0)
    }
}

/// A sampler: options, a seeded RNG, the recent-token window, and buffers
/// sized once for the vocabulary.
#[derive(Debug)]
pub struct Sampler {
    opts: SamplingOptions,
    rng: ChaCha8Rng,
    recent: VecDeque<u32>,
    counts: HashMap<u32, u32>,
    logits: Vec<f32>,
    /// How many of `logits` the last [`Sampler::load`] filled.
    loaded: usize,
    cands: Vec<(f32, u32)>,
    probs: Vec<f32>,
}

impl Sampler {
    /// A sampler for a vocabulary of `vocab` tokens.
    pub fn new(opts: SamplingOptions, vocab: usize) -> Sampler {
        let rng = if opts.seed >= 0 { ChaCha8Rng::seed_from_u64(opts.seed as u64) } else { ChaCha8Rng::from_os_rng() };
        Sampler {
            opts,
            rng,
            recent: VecDeque::new(),
            counts: HashMap::new(),
            logits: vec![0.0; vocab],
            loaded: 0,
            cands: Vec::with_capacity(vocab),
            probs: Vec::with_capacity(vocab),
        }
    }

    /// Records a token (prompt or generated) for the repetition penalties.
    pub fn accept(&mut self, token: u32) {
        let n = self.opts.repeat_last_n;
        if n == 0 {
            return;
        }
        self.recent.push_back(token);
        if n > 0 && self.recent.len() > n as usize {
            self.recent.pop_front();
        }
    }

    /// Picks the next token from bf16 logits.
    pub fn sample(&mut self, logits_bf16: &[u16]) -> u32 {
        self.sample_with(logits_bf16, true)
    }

    /// `fused`: with top-k and a temperature (Ollama's defaults), select the
    /// candidates straight from the bf16 logits without converting the whole
    /// vocabulary (same candidates, so the same tokens, as the unfused path:
    /// [`Sampler::load`] then [`Sampler::pick`]).
    fn sample_with(&mut self, logits_bf16: &[u16], fused: bool) -> u32 {
        let v = logits_bf16.len().min(self.logits.len());
        let opts = self.opts;
        let k = opts.top_k;
        if fused && opts.temperature > 0.0 && k > 0 && (k as usize) < v {
            self.top_k_fused(&logits_bf16[..v], k as usize);
            return self.truncate_and_draw();
        }
        self.load(logits_bf16);
        self.pick()
    }

    /// First half of the unfused [`Sampler::sample`]: converts the logits and
    /// applies the penalties; [`Sampler::logits_mut`] then sees what the draw
    /// will use (a grammar masks it there, logprobs read it), and
    /// [`Sampler::pick`] draws.
    pub fn load(&mut self, logits_bf16: &[u16]) {
        let v = logits_bf16.len().min(self.logits.len());
        self.loaded = v;
        for (dst, &b) in self.logits[..v].iter_mut().zip(logits_bf16) {
            *dst = bf16_to_f32(b);
        }
        if self.opts.penalties_active() {
            self.apply_penalties(v);
        }
    }

    /// The logits [`Sampler::load`] prepared (after the penalties).
    pub fn logits_mut(&mut self) -> &mut [f32] {
        &mut self.logits[..self.loaded]
    }

    /// Second half of the unfused [`Sampler::sample`]: truncation and the
    /// draw. Tokens at -inf (a grammar forbade them) are never drawn.
    pub fn pick(&mut self) -> u32 {
        let v = self.loaded;
        if self.opts.temperature <= 0.0 {
            return argmax(&self.logits[..v]);
        }
        self.collect_candidates(v);
        self.truncate_and_draw()
    }

    /// typical_p, top_p and min_p over the sorted candidates, then the draw.
    fn truncate_and_draw(&mut self) -> u32 {
        let opts = self.opts;
        if opts.typical_p < 1.0 {
            self.typical(opts.typical_p);
        }
        if opts.top_p < 1.0 {
            self.top_p(opts.top_p);
        }
        if opts.min_p > 0.0 && !self.cands.is_empty() {
            let floor = self.cands[0].0 + opts.min_p.ln();
            let keep = self.cands.iter().take_while(|c| c.0 >= floor).count().max(1);
            self.cands.truncate(keep);
        }
        self.draw(opts.temperature)
    }

    fn count_recent(&mut self) {
        self.counts.clear();
        for &t in &self.recent {
            *self.counts.entry(t).or_insert(0) += 1;
        }
    }

    fn apply_penalties(&mut self, v: usize) {
        self.count_recent();
        let o = self.opts;
        for (&t, &c) in &self.counts {
            let Some(l) = self.logits[..v].get_mut(t as usize) else { continue };
            *l = penalised(*l, c, &o);
        }
    }

    /// The top `k` after penalties, sorted as `top_k_scan` sorts, read from
    /// the bf16 logits. The scan keeps `k + p` raw candidates (p = distinct
    /// penalised ids): a token outside them has at least `k` unpenalised
    /// tokens ahead of it, so it cannot be in the top k whichever way the
    /// penalties move the p others. Then the penalised ids get their
    /// penalised values (and are added if absent), and the best k stay.
    fn top_k_fused(&mut self, logits: &[u16], k: usize) {
        let active = self.opts.penalties_active();
        let p = if active {
            self.count_recent();
            self.counts.len()
        } else {
            0
        };
        top_k_scan_bf16(logits, (k + p).min(logits.len()), &mut self.cands);
        if !active {
            return;
        }
        let o = self.opts;
        for (&t, &c) in &self.counts {
            let Some(&b) = logits.get(t as usize) else { continue };
            let l = penalised(bf16_to_f32(b), c, &o);
            match self.cands.iter_mut().find(|x| x.1 == t) {
                Some(x) => x.0 = l,
                None => self.cands.push((l, t)),
            }
        }
        // Ids are unique, so the unstable sort is deterministic (and allocates nothing).
        self.cands.sort_unstable_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
        self.cands.truncate(k);
    }

    /// Fills `cands` sorted by logit (descending): the top k, or, without top-k,
    /// enough of the head for the later steps (see `ensure_sorted_head`).
    fn collect_candidates(&mut self, v: usize) {
        let k = self.opts.top_k;
        self.cands.clear();
        if k > 0 && (k as usize) < v {
            top_k_scan(&self.logits[..v], k as usize, &mut self.cands);
            // Fewer than k allowed: the forbidden ones (-inf) filled the rest.
            while self.cands.len() > 1 && self.cands.last().is_some_and(|c| c.0 == f32::NEG_INFINITY) {
                self.cands.pop();
            }
            return;
        }
        // Tokens a grammar forbade (-inf) can never be drawn: leave them out.
        self.cands.extend(self.logits[..v].iter().enumerate().filter(|c| *c.1 > f32::NEG_INFINITY).map(|(i, &l)| (l, i as u32)));
        let v = self.cands.len();
        if self.opts.top_p >= 1.0 && self.opts.typical_p >= 1.0 && self.opts.min_p <= 0.0 {
            return; // drawing needs no order
        }
        // Sort only a head that already holds the nucleus: grow it until its
        // probability mass reaches top_p (min_p and typical need the head only too).
        let max = self.cands.iter().fold(f32::NEG_INFINITY, |m, c| m.max(c.0));
        let total: f32 = self.cands.iter().map(|c| (c.0 - max).exp()).sum();
        let need = if self.opts.top_p < 1.0 { self.opts.top_p } else { 0.999 };
        let mut m = 256.min(v);
        loop {
            sort_head(&mut self.cands, m);
            let mass: f32 = self.cands[..m].iter().map(|c| (c.0 - max).exp()).sum::<f32>() / total;
            if mass >= need || m == v {
                self.cands.truncate(m);
                return;
            }
            m = (m * 4).min(v);
        }
    }

    /// Softmax of the candidates' logits into `probs` (candidates stay sorted).
    fn softmax(&mut self, temperature: f32) {
        let max = self.cands.first().map_or(0.0, |c| c.0);
        self.probs.clear();
        self.probs.extend(self.cands.iter().map(|c| ((c.0 - max) / temperature).exp()));
        let sum: f32 = self.probs.iter().sum();
        self.probs.iter_mut().for_each(|p| *p /= sum);
    }

    fn top_p(&mut self, p: f32) {
        self.softmax(1.0);
        let mut acc = 0.0;
        let mut keep = self.cands.len();
        for (i, q) in self.probs.iter().enumerate() {
            acc += q;
            if acc >= p {
                keep = i + 1;
                break;
            }
        }
        self.cands.truncate(keep.max(1));
    }

    /// Locally typical sampling: keep the tokens whose surprise is closest to
    /// the distribution's entropy, up to mass `p`.
    fn typical(&mut self, p: f32) {
        self.softmax(1.0);
        let entropy: f32 = self.probs.iter().filter(|&&q| q > 0.0).map(|&q| -q * q.ln()).sum();
        let mut order: Vec<(f32, usize)> =
            self.probs.iter().enumerate().map(|(i, &q)| ((-q.ln() - entropy).abs(), i)).collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut acc = 0.0;
        let mut keep = order.len();
        for (n, &(_, i)) in order.iter().enumerate() {
            acc += self.probs[i];
            if acc >= p {
                keep = n + 1;
                break;
            }
        }
        let mut kept: Vec<(f32, u32)> = order[..keep.max(1)].iter().map(|&(_, i)| self.cands[i]).collect();
        kept.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.cands = kept;
    }

    fn draw(&mut self, temperature: f32) -> u32 {
        self.softmax(temperature);
        let r: f32 = self.rng.random();
        let mut acc = 0.0;
        for (c, q) in self.cands.iter().zip(&self.probs) {
            acc += q;
            if r < acc {
                return c.1;
            }
        }
        // Rounding left `acc` just below `r`: the last candidate that has any probability.
        self.cands.iter().zip(&self.probs).rev().find(|(_, q)| **q > 0.0).map_or(0, |(c, _)| c.1)
    }
}

/// Index of the largest value; the first one on ties.
pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// The `k` largest logits, sorted descending, in one pass: a value enters the
/// kept set only if it beats the current k-th best (rare after the first few
/// hundred elements), so the cost is about one comparison per logit.
pub(crate) fn top_k_scan(logits: &[f32], k: usize, out: &mut Vec<(f32, u32)>) {
    out.clear();
    for (i, &l) in logits.iter().enumerate() {
        if out.len() == k {
            if l <= out[k - 1].0 {
                continue;
            }
            out.pop();
        }
        // Insert after equal values so earlier ids win ties, as argmax does.
        let pos = out.partition_point(|c| c.0 >= l);
        out.insert(pos, (l, i as u32));
    }
}

/// A bf16 value as f32 (exact; a bf16 is the top half of an f32).
#[inline]
fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// A logit after the repetition, frequency and presence penalties for a token
/// seen `count` times in the window.
#[inline]
fn penalised(l: f32, count: u32, o: &SamplingOptions) -> f32 {
    let mut l = l;
    if o.repeat_penalty != 1.0 {
        l = if l > 0.0 { l / o.repeat_penalty } else { l * o.repeat_penalty };
    }
    l - (count as f32 * o.frequency_penalty + o.presence_penalty)
}

/// `top_k_scan` over bf16 logits, same result: once `k` are kept, blocks of
/// 32 values are first tested against the current k-th best with a
/// branch-free count (vectorised), and only a block with a value above it is
/// walked one by one. The k-th best only rises, so a value not above it at the
/// block's start would not have entered later in the block either.
fn top_k_scan_bf16(logits: &[u16], k: usize, out: &mut Vec<(f32, u32)>) {
    const BLOCK: usize = 32;
    out.clear();
    if k == 0 {
        return;
    }
    let head = k.min(logits.len());
    for (i, &b) in logits[..head].iter().enumerate() {
        let l = bf16_to_f32(b);
        let pos = out.partition_point(|c| c.0 >= l);
        out.insert(pos, (l, i as u32));
    }
    for (n, block) in logits[head..].chunks(BLOCK).enumerate() {
        let start = head + n * BLOCK;
        let threshold = out[k - 1].0;
        // `!(x <= t)`, not `x > t`: a NaN enters as it does in `top_k_scan`.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        let above = block.iter().fold(0u32, |acc, &b| acc + u32::from(!(bf16_to_f32(b) <= threshold)));
        if above == 0 {
            continue;
        }
        for (j, &b) in block.iter().enumerate() {
            let l = bf16_to_f32(b);
            if l <= out[k - 1].0 {
                continue;
            }
            out.pop();
            let pos = out.partition_point(|c| c.0 >= l);
            out.insert(pos, (l, (start + j) as u32));
        }
    }
}

/// Puts the `m` largest entries first, sorted descending.
fn sort_head(c: &mut [(f32, u32)], m: usize) {
    if m < c.len() {
        c.select_nth_unstable_by(m, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    }
    c[..m].sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16(xs: &[f32]) -> Vec<u16> {
        xs.iter().map(|x| half::bf16::from_f32(*x).to_bits()).collect()
    }

    #[test]
    fn greedy_takes_first_maximum() {
        let mut s = Sampler::new(SamplingOptions::greedy(), 4);
        assert_eq!(s.sample(&bf16(&[1.0, 3.0, 3.0, -1.0])), 1);
    }

    #[test]
    fn top_k_scan_keeps_best_sorted() {
        let mut out = Vec::new();
        top_k_scan(&[0.5, 2.0, -1.0, 3.0, 2.0, 0.0], 3, &mut out);
        assert_eq!(out, vec![(3.0, 3), (2.0, 1), (2.0, 4)]);
    }

    #[test]
    fn same_seed_same_draws() {
        let opts = SamplingOptions { seed: 42, top_k: 0, top_p: 1.0, temperature: 1.0, ..Default::default() };
        let logits = bf16(&(0..1000).map(|i| ((i * 37 % 101) as f32) / 20.0).collect::<Vec<_>>());
        let draw = |o| {
            let mut s = Sampler::new(o, 1000);
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(opts), draw(opts));
        assert_ne!(draw(opts), draw(SamplingOptions { seed: 43, ..opts }));
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_limits_support() {
        let logits = bf16(&[0.0, 5.0, 4.9, -3.0]);
        let mut s = Sampler::new(SamplingOptions { top_k: 1, seed: 1, ..Default::default() }, 4);
        assert!((0..20).all(|_| s.sample(&logits) == 1));
        let mut s = Sampler::new(SamplingOptions { top_k: 0, top_p: 0.5, seed: 1, ..Default::default() }, 4);
        assert!((0..20).all(|_| s.sample(&logits) == 1));
        let mut s = Sampler::new(SamplingOptions { top_k: 0, top_p: 0.99, temperature: 1.0, seed: 3, ..Default::default() }, 4);
        let seen: std::collections::HashSet<u32> = (0..200).map(|_| s.sample(&logits)).collect();
        assert_eq!(seen, [1, 2].into_iter().collect());
    }

    #[test]
    fn min_p_and_penalties() {
        let logits = bf16(&[2.0, 1.9, -5.0]);
        let mut s = Sampler::new(SamplingOptions { min_p: 0.5, top_k: 0, top_p: 1.0, seed: 9, ..Default::default() }, 3);
        assert!((0..50).all(|_| s.sample(&logits) != 2));
        let mut s = Sampler::new(SamplingOptions { repeat_penalty: 2.0, ..SamplingOptions::greedy() }, 3);
        s.accept(0);
        assert_eq!(s.sample(&logits), 1, "2.0/2 < 1.9");
        let mut s = Sampler::new(SamplingOptions { presence_penalty: 0.5, repeat_last_n: 64, ..SamplingOptions::greedy() }, 3);
        s.accept(0);
        assert_eq!(s.sample(&logits), 1);
    }

    #[test]
    fn post_config_defaults() {
        let pc = PostConfig {
            enable_temperature: false,
            temperature: 0.9,
            enable_repetition_penalty: false,
            repetition_penalty: 1.2,
            penalty_window: 20,
            enable_top_p_sampling: false,
            top_p: 0.8,
            enable_top_k_sampling: true,
            top_k: 1,
        };
        assert_eq!(SamplingOptions::from_post_config(&pc).temperature, 0.0);
        let pc2 = PostConfig { enable_temperature: true, top_k: 10, ..pc };
        let o = SamplingOptions::from_post_config(&pc2);
        assert_eq!((o.temperature, o.top_k, o.top_p), (0.9, 10, 1.0));
    }

    /// Logits like a model's: normal-ish values, bf16-rounded (so with ties).
    fn random_logits(rng: &mut ChaCha8Rng, v: usize) -> Vec<u16> {
        let xs: Vec<f32> = (0..v).map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 6.0).collect();
        bf16(&xs)
    }

    #[test]
    fn bf16_top_k_scan_matches_a_full_sort() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (v, k) in [(10, 3), (100, 40), (5000, 40), (5000, 1), (5000, 104), (37, 37), (20, 40)] {
            let logits = random_logits(&mut rng, v);
            let f: Vec<f32> = logits.iter().map(|&b| half::bf16::from_bits(b).to_f32()).collect();
            let mut want: Vec<(f32, u32)> = f.iter().enumerate().map(|(i, &l)| (l, i as u32)).collect();
            want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            want.truncate(k);
            let (mut fast, mut plain) = (Vec::new(), Vec::new());
            top_k_scan_bf16(&logits, k, &mut fast);
            top_k_scan(&f, k.min(v), &mut plain);
            assert_eq!(fast, want, "v {v} k {k}");
            assert_eq!(plain, want, "v {v} k {k}");
        }
    }

    #[test]
    fn fused_top_k_draws_the_same_tokens_as_the_plain_path() {
        let v = 20_000;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let steps: Vec<Vec<u16>> = (0..40).map(|_| random_logits(&mut rng, v)).collect();
        let variants = [
            SamplingOptions { seed: 1, ..Default::default() },
            SamplingOptions { seed: 2, repeat_penalty: 1.1, ..Default::default() },
            SamplingOptions { seed: 3, repeat_penalty: 0.8, presence_penalty: -0.5, frequency_penalty: 0.3, top_k: 5, ..Default::default() },
            SamplingOptions { seed: 4, repeat_penalty: 1.3, repeat_last_n: -1, top_p: 1.0, min_p: 0.05, temperature: 1.5, ..Default::default() },
            SamplingOptions { seed: 5, top_k: 1, repeat_penalty: 2.0, ..Default::default() },
        ];
        for opts in variants {
            let mut fast = Sampler::new(opts, v);
            let mut plain = Sampler::new(opts, v);
            // A prompt whose tokens are among the best of the first step, so penalties matter.
            let mut head = Vec::new();
            top_k_scan_bf16(&steps[0], 30, &mut head);
            for &(_, t) in &head {
                fast.accept(t);
                plain.accept(t);
            }
            for logits in &steps {
                let (a, b) = (fast.sample_with(logits, true), plain.sample_with(logits, false));
                assert_eq!(a, b, "{opts:?}");
                assert_eq!(fast.cands, plain.cands, "{opts:?}");
                fast.accept(a);
                plain.accept(b);
            }
        }
    }

    #[test]
    fn masked_tokens_are_never_drawn() {
        // A grammar's path: load, set the forbidden tokens to -inf, pick.
        // The allowed tokens are the worst of the vocabulary, and fewer than
        // top_k or more than it, so that an unmasked draw would never pick them.
        let v = 20_000;
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let steps: Vec<Vec<u16>> = (0..30).map(|_| random_logits(&mut rng, v)).collect();
        let variants = [
            SamplingOptions { seed: 1, ..Default::default() },
            SamplingOptions { seed: 2, repeat_penalty: 1.3, presence_penalty: 0.5, ..Default::default() },
            SamplingOptions { seed: 3, top_k: 0, top_p: 0.95, ..Default::default() },
            SamplingOptions { seed: 4, top_k: 0, top_p: 1.0, min_p: 0.05, temperature: 1.5, ..Default::default() },
            SamplingOptions { seed: 5, top_k: 0, top_p: 1.0, typical_p: 0.5, ..Default::default() },
            SamplingOptions { seed: 6, top_k: 0, top_p: 1.0, temperature: 2.0, ..Default::default() },
            SamplingOptions::greedy(),
        ];
        for allowed_n in [1, 3, 39, 500] {
            for opts in variants {
                let mut s = Sampler::new(opts, v);
                for logits in &steps {
                    let mut order: Vec<u32> = (0..v as u32).collect();
                    order.sort_by(|&a, &b| bf16_to_f32(logits[a as usize]).total_cmp(&bf16_to_f32(logits[b as usize])));
                    let allowed: std::collections::HashSet<u32> = order[..allowed_n].iter().copied().collect();
                    s.load(logits);
                    for (i, l) in s.logits_mut().iter_mut().enumerate() {
                        if !allowed.contains(&(i as u32)) {
                            *l = f32::NEG_INFINITY;
                        }
                    }
                    let t = s.pick();
                    assert!(allowed.contains(&t), "{opts:?} allowed {allowed_n}: drew {t}");
                    s.accept(t);
                }
            }
        }
    }

    #[test]
    fn large_vocab_defaults_do_not_need_a_full_sort() {
        let v = 151_936;
        let logits = bf16(&(0..v).map(|i| ((i * 7919 % 10007) as f32) / 1000.0).collect::<Vec<_>>());
        let mut s = Sampler::new(SamplingOptions { seed: 5, ..Default::default() }, v);
        let t = s.sample(&logits);
        assert!((t as usize) < v);
        assert!(s.cands.len() <= 40);
    }
}
