//! CSpD math on closed-form Gaussians: exactness of the single-step accept/resample (KS),
//! the resampling cost, the trajectory ratio against brute-force densities, and the whole
//! continuous loop on a linear-Gaussian AR model.

mod common;

use arvis_core::SeededRng;
use arvis_spec::continuous::{
    ChainNoise, DenoiseStep, GaussianStep, Trajectory, log_acceptance_ratio, run_chain,
    verify_token,
};
use arvis_spec::cspd::{ContinuousSpecModel, CspdConfig, continuous_plain_decode, cspd_decode};
use arvis_spec::{Result, SpecError};
use common::ks_pvalue;
use statrs::distribution::{ContinuousCDF, Normal};

const ALPHA: f64 = 1e-6;

fn std_normal_cdf(x: f64) -> f64 {
    Normal::new(0.0, 1.0).map_or(f64::NAN, |n| n.cdf(x))
}

fn single_step(mean: Vec<f64>, std: Vec<f64>, eps: &[f64]) -> Trajectory {
    let s = GaussianStep { mean, std };
    Trajectory {
        x0: s.at(eps),
        final_step: s,
        log_std_sum: 0.0,
    }
}

#[test]
fn single_step_verification_samples_the_target() -> Result<()> {
    let mut rng = SeededRng::new(17);
    for d in 1..=4 {
        let mu_q: Vec<f64> = (0..d).map(|i| 0.3 * i as f64).collect();
        let sd_q: Vec<f64> = (0..d).map(|i| 1.0 + 0.2 * i as f64).collect();
        let mu_p: Vec<f64> = (0..d).map(|i| 0.8 - 0.4 * i as f64).collect();
        let sd_p: Vec<f64> = (0..d).map(|i| 0.7 + 0.3 * i as f64).collect();
        let n = 100_000;
        let mut cols = vec![Vec::with_capacity(n); d];
        let mut draft_cols = vec![Vec::with_capacity(n); d];
        let (mut rejected, mut proposals) = (0usize, 0usize);
        for _ in 0..n {
            let eps: Vec<f64> = (0..d).map(|_| rng.normal_f64()).collect();
            let q = single_step(mu_q.clone(), sd_q.clone(), &eps);
            // The target's "trajectory" with the same noise: only its final step matters.
            let p = single_step(mu_p.clone(), sd_p.clone(), &eps);
            let o = verify_token(&q, &p, 1000, &mut rng)?;
            assert!(!o.capped);
            rejected += usize::from(!o.accepted);
            proposals += o.proposals;
            for k in 0..d {
                cols[k].push((o.x0[k] - mu_p[k]) / sd_p[k]);
                draft_cols[k].push((q.x0[k] - mu_p[k]) / sd_p[k]);
            }
        }
        for k in 0..d {
            let p = ks_pvalue(&mut cols[k], std_normal_cdf);
            assert!(p > ALPHA, "d={d}, coordinate {k}: KS p = {p}");
            // Power: the drafts themselves are rejected by the same test.
            let p = ks_pvalue(&mut draft_cols[k], std_normal_cdf);
            assert!(p < ALPHA, "d={d}, coordinate {k}: drafts passed (p = {p})");
        }
        // E[proposals | rejected] = 1/TV and E[proposals] = 1 (acceptance–rejection with
        // bound 1/Z, Z = TV).
        let per_token = proposals as f64 / n as f64;
        assert!(
            (per_token - 1.0).abs() < 0.03,
            "d={d}: {per_token} proposals per token"
        );
        if d == 1 {
            let tv = rejected as f64 / n as f64;
            let (mq, sq, mp, sp) = (mu_q[0], sd_q[0], mu_p[0], sd_p[0]);
            let dens = |x: f64, m: f64, s: f64| {
                (-0.5 * ((x - m) / s).powi(2)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
            };
            let h = 1e-3;
            let tv_exact: f64 = (-10_000..10_000)
                .map(|i| {
                    let x = i as f64 * h;
                    (dens(x, mp, sp) - dens(x, mq, sq)).max(0.0) * h
                })
                .sum();
            assert!(
                (tv - tv_exact).abs() < 0.01,
                "rejection rate {tv} vs TV {tv_exact}"
            );
            let per_rejected = proposals as f64 / rejected as f64;
            assert!(
                (per_rejected * tv_exact - 1.0).abs() < 0.03,
                "{per_rejected} proposals per rejection vs 1/TV = {}",
                1.0 / tv_exact
            );
        }
    }
    Ok(())
}

/// `x_{t−1} = α_t x_t + (1 − α_t) c + s_t ε_t`.
struct LinearHead {
    center: Vec<f64>,
    alpha: Vec<f64>,
    std: Vec<f64>,
}

impl DenoiseStep for LinearHead {
    fn step(&self, t: usize, x: &[f64]) -> Result<GaussianStep> {
        let i = t - 1;
        Ok(GaussianStep {
            mean: x
                .iter()
                .zip(&self.center)
                .map(|(x, c)| self.alpha[i] * x + (1.0 - self.alpha[i]) * c)
                .collect(),
            std: vec![self.std[i]; x.len()],
        })
    }
}

/// `Σ_t ln N(x_{t−1}; μ(x_t), s_t²)` along the points `xs` (`xs[0] = x_T`, …, last = `x_0`).
fn path_log_density(head: &LinearHead, xs: &[Vec<f64>]) -> Result<f64> {
    let steps = xs.len() - 1;
    let mut total = 0.0;
    for k in 0..steps {
        let t = steps - k;
        total += head.step(t, &xs[k])?.log_density(&xs[k + 1]);
    }
    Ok(total)
}

/// The chain's points from `noise`, recomputed independently of `run_chain`.
fn path(head: &LinearHead, noise: &ChainNoise) -> Result<Vec<Vec<f64>>> {
    let mut xs = vec![noise.x_t.clone()];
    for (k, eps) in noise.eps.iter().enumerate() {
        let t = noise.steps() - k;
        let s = head.step(t, &xs[k])?;
        xs.push(s.at(eps));
    }
    Ok(xs)
}

#[test]
fn trajectory_ratio_equals_brute_force_densities() -> Result<()> {
    let mut rng = SeededRng::new(23);
    for case in 0..50 {
        let d = 1 + case % 4;
        let steps = 1 + case % 6;
        let head = |rng: &mut SeededRng| LinearHead {
            center: (0..d).map(|_| rng.normal_f64()).collect(),
            alpha: (0..steps).map(|_| 0.3 + 0.6 * rng.uniform_f64()).collect(),
            std: (0..steps).map(|_| 0.1 + rng.uniform_f64()).collect(),
        };
        let (hq, hp) = (head(&mut rng), head(&mut rng));
        let noise = ChainNoise::draw(d, steps, &mut rng);
        let tq = run_chain(&hq, &noise)?;
        let tp = run_chain(&hp, &noise)?;
        // Brute force: the target's aligned path ending at the draft's x_0, against the draft's
        // path, both as full products of Gaussian step densities (x_T's density is shared).
        let q_path = path(&hq, &noise)?;
        let mut p_path = path(&hp, &noise)?;
        assert_eq!(q_path.last(), Some(&tq.x0));
        *p_path
            .last_mut()
            .ok_or_else(|| SpecError::arg("test", "empty path"))? = tq.x0.clone();
        let brute = path_log_density(&hp, &p_path)? - path_log_density(&hq, &q_path)?;
        let closed = log_acceptance_ratio(&tq, &tp);
        assert!(
            (brute - closed).abs() < 1e-9,
            "case {case}: brute {brute} vs closed form {closed}"
        );
    }
    Ok(())
}

/// A linear-Gaussian AR model over `d`-dimensional tokens: the head at a position is centred on
/// `a · (previous token) + bias[class]` (zero previous token at position 0).
#[derive(Clone)]
struct GaussAr {
    classes: Vec<usize>,
    d: usize,
    n: usize,
    a: f64,
    bias: Vec<f64>,
    alpha: Vec<f64>,
    std: Vec<f64>,
    cache: Vec<Vec<Vec<f64>>>,
    /// Per row, the previous token of each slot of the latest start/forward.
    slots: Vec<Vec<Vec<f64>>>,
}

impl GaussAr {
    fn new(a: f64, bias: Vec<f64>, alpha: Vec<f64>, std: Vec<f64>) -> Self {
        GaussAr {
            classes: vec![0, 1],
            d: 2,
            n: 4,
            a,
            bias,
            alpha,
            std,
            cache: Vec::new(),
            slots: Vec::new(),
        }
    }
}

impl ContinuousSpecModel for GaussAr {
    fn rows(&self) -> usize {
        self.classes.len()
    }
    fn token_dim(&self) -> usize {
        self.d
    }
    fn seq_len(&self) -> usize {
        self.n
    }
    fn cached(&self) -> usize {
        self.cache.first().map_or(0, Vec::len)
    }
    fn start(&mut self) -> Result<()> {
        self.cache = vec![Vec::new(); self.rows()];
        self.slots = vec![vec![vec![0.0; self.d]]; self.rows()];
        Ok(())
    }
    fn forward(&mut self, tokens: &[f64], width: usize) -> Result<()> {
        if self.cached() + width > self.n - 1 || tokens.len() != self.rows() * width * self.d {
            return Err(SpecError::arg("GaussAr::forward", "bad window"));
        }
        for (r, chunk) in tokens.chunks_exact(width * self.d).enumerate() {
            self.slots[r].clear();
            for tok in chunk.chunks_exact(self.d) {
                self.cache[r].push(tok.to_vec());
                self.slots[r].push(tok.to_vec());
            }
        }
        Ok(())
    }
    fn rollback(&mut self, len: usize) -> Result<()> {
        for c in &mut self.cache {
            c.truncate(len);
        }
        Ok(())
    }
    fn denoise(&self, row: usize, slot: usize, noise: &ChainNoise) -> Result<Trajectory> {
        let prev = &self.slots[row][slot];
        let bias = self.bias[self.classes[row]];
        let head = LinearHead {
            center: prev.iter().map(|x| self.a * x + bias).collect(),
            alpha: self.alpha.clone(),
            std: self.std.clone(),
        };
        run_chain(&head, noise)
    }
}

/// KS p-values of the standardised innovations `(x_t − a x_{t−1} − bias)/σ` under the target,
/// per (row, position, coordinate): i.i.d. N(0, 1) iff the joint is the target's.
fn innovation_pvalue(target: &GaussAr, runs: &[Vec<Vec<Vec<f64>>>]) -> f64 {
    let sigma = target.std[0];
    let mut p_min: f64 = 1.0;
    for r in 0..2 {
        for t in 0..target.n {
            for k in 0..target.d {
                let mut z: Vec<f64> = runs
                    .iter()
                    .map(|run| {
                        let prev = if t == 0 { 0.0 } else { run[r][t - 1][k] };
                        (run[r][t][k] - target.a * prev - target.bias[r]) / sigma
                    })
                    .collect();
                p_min = p_min.min(ks_pvalue(&mut z, std_normal_cdf));
            }
        }
    }
    p_min
}

#[test]
fn single_step_cspd_loop_is_exact() -> Result<()> {
    // T = 1 heads (α irrelevant): the target is x_t = 0.6 x_{t−1} + bias + 0.8 ε.
    let mut target = GaussAr::new(0.6, vec![0.5, -1.0], vec![0.0], vec![0.8]);
    let mut draft = GaussAr::new(0.4, vec![0.9, -0.7], vec![0.0], vec![1.0]);
    let cfg = CspdConfig {
        drafts: 2,
        prefill: 1,
        steps: 1,
        max_proposals: 10_000,
    };
    let calls = 30_000;
    let mut runs = Vec::with_capacity(calls);
    let mut passed = 0;
    for seed in 0..calls as u64 {
        let out = cspd_decode(&mut target, &mut draft, &cfg, seed)?;
        assert_eq!(out.capped, 0);
        assert_eq!(
            out.stats.drafts_committed / 2 + out.stats.rounds,
            target.n - 1
        );
        passed += out.stats.drafts_passed;
        runs.push(out.tokens);
    }
    assert!(
        passed > calls / 2,
        "drafts were hardly ever accepted ({passed})"
    );
    let p = innovation_pvalue(&target, &runs);
    assert!(p > ALPHA, "CSpD single-step loop: KS p = {p}");
    // Power: plain decoding of the draft model fails the same test.
    let drafts: Vec<_> = (0..calls as u64)
        .map(|s| continuous_plain_decode(&mut draft, 1, s).map(|o| o.tokens))
        .collect::<Result<_>>()?;
    let p = innovation_pvalue(&target, &drafts);
    assert!(p < ALPHA, "the draft model passed as the target (p = {p})");
    // And plain decoding of the target passes it.
    let plain: Vec<_> = (0..calls as u64)
        .map(|s| continuous_plain_decode(&mut target, 1, s).map(|o| o.tokens))
        .collect::<Result<_>>()?;
    assert!(innovation_pvalue(&target, &plain) > ALPHA);
    Ok(())
}

#[test]
fn multi_step_cspd_keeps_accounts_and_identical_heads_always_accept() -> Result<()> {
    // Multi-step heads: approximate (documented), so only accounting and the effect of noise
    // alignment are checked: identical heads accept every draft.
    let heads = (vec![0.5, 0.4, 0.0], vec![0.6, 0.5, 0.3]);
    let mut target = GaussAr::new(0.6, vec![0.5, -1.0], heads.0.clone(), heads.1.clone());
    let mut same = target.clone();
    let cfg = CspdConfig {
        drafts: 3,
        prefill: 1,
        steps: 3,
        max_proposals: 100,
    };
    let out = cspd_decode(&mut target, &mut same, &cfg, 1)?;
    assert_eq!(out.stats.acceptance_rate(), 1.0);
    assert_eq!(out.stats.rounds, 1);
    let mut other = GaussAr::new(0.5, vec![0.6, -0.8], heads.0, vec![0.7, 0.5, 0.35]);
    for seed in 0..50 {
        let out = cspd_decode(&mut target, &mut other, &cfg, seed)?;
        assert_eq!(out.tokens[0].len(), target.n);
        assert_eq!(
            out.stats.drafts_committed / 2 + out.stats.rounds,
            target.n - 1
        );
    }
    Ok(())
}
