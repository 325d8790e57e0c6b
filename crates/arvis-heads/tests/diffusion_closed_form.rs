//! The DDPM and DDIM samplers against closed forms: an ε-model that is exact for a Gaussian (or
//! a two-component Gaussian mixture) target, so the sampled mean and covariance can be checked
//! against the target, and — because every step is affine for a Gaussian — against the exact
//! moments the discretised chain must produce (propagated here in f64), whatever the number of
//! steps.

mod common;

use arvis_core::{SeededRng, Tensor};
use arvis_heads::{
    DenoiseModel, DiffusionMethod, DiffusionSampler, RespacedSchedule, Result as HeadResult,
    StepAnnealing, StepSchedule,
};
use common::{
    Component, M2, Mixture, Moments, SampleMoments, TestResult, cosine_alphas_cumprod, rows, vadd,
    vscale,
};

/// Samples per check: standard errors ≈ 3e-3 on unit-scale moments.
const N: usize = 100_000;
/// Statistical bound, in standard errors.
const Z: f64 = 5.0;

/// What the model outputs in its variance channels.
#[derive(Clone, Copy, Debug)]
enum Var {
    /// The same interpolation `v` everywhere (−1: posterior variance, +1: β).
    Fixed(f64),
    /// The variance of the exact reverse transition's moment match,
    /// `β̃ + c₁²·Var(x₀ | x_t)` per dimension: exact for a Gaussian with diagonal covariance.
    Exact,
}

/// The respaced process the model and the propagation share, from the test's own ᾱ table.
struct Process {
    ab: Vec<f64>,
    /// Kept original timesteps, ascending.
    map: Vec<usize>,
}

impl Process {
    fn new(schedule: &RespacedSchedule) -> Self {
        Process {
            ab: cosine_alphas_cumprod(),
            map: schedule.timestep_map().to_vec(),
        }
    }

    fn index(&self, t: usize) -> usize {
        self.map
            .iter()
            .position(|&m| m == t)
            .expect("a kept timestep")
    }

    /// (ᾱ_t, ᾱ_prev) of respaced step `i`.
    fn alphas(&self, i: usize) -> (f64, f64) {
        let ab = self.ab[self.map[i]];
        let abp = if i == 0 {
            1.0
        } else {
            self.ab[self.map[i - 1]]
        };
        (ab, abp)
    }

    /// (β, β̃, c₁, c₂) of respaced step `i`.
    fn step(&self, i: usize) -> (f64, f64, f64, f64) {
        let (ab, abp) = self.alphas(i);
        let beta = 1.0 - ab / abp;
        let post = beta * (1.0 - abp) / (1.0 - ab);
        let c1 = beta * abp.sqrt() / (1.0 - ab);
        let c2 = (1.0 - abp) * (1.0 - beta).sqrt() / (1.0 - ab);
        (beta, post, c1, c2)
    }

    /// The learned range's ends (min_log, max_log) at step `i` (step 0 borrows step 1's
    /// posterior variance).
    fn log_range(&self, i: usize) -> (f64, f64) {
        let j = if i == 0 && self.map.len() > 1 { 1 } else { i };
        (self.step(j).1.ln(), self.step(i).0.ln())
    }

    /// The reverse variance a model output `v` stands for.
    fn variance_of(&self, i: usize, v: f64) -> f64 {
        let (lo, hi) = self.log_range(i);
        let f = (v + 1.0) / 2.0;
        (f * hi + (1.0 - f) * lo).exp()
    }
}

/// An exact ε-model for `cond` (and `uncond` for the second half of the rows when guided).
struct ExactEps {
    cond: Mixture,
    uncond: Option<Mixture>,
    var: Var,
    process: Process,
}

impl DenoiseModel for ExactEps {
    fn predict(&self, x: &Tensor, timestep: usize) -> HeadResult<Tensor> {
        // Everything that depends on the time only is prepared once per call.
        let i = self.process.index(timestep);
        let ab = self.process.ab[timestep];
        let (a, b) = (ab.sqrt(), (1.0 - ab).sqrt());
        let cond = self.cond.at(a, b);
        let uncond = self.uncond.as_ref().map(|u| u.at(a, b));
        let (_, post, c1, _) = self.process.step(i);
        let (lo, hi) = self.process.log_range(i);
        let v = |x0_var: f64| match self.var {
            Var::Fixed(v) => v,
            Var::Exact if i == 0 => 0.0,
            Var::Exact => 2.0 * ((post + c1 * c1 * x0_var).ln() - lo) / (hi - lo) - 1.0,
        };
        let xs = rows(x);
        let half = xs.len() / 2;
        let mut out = Vec::with_capacity(xs.len() * 4);
        for (r, &xr) in xs.iter().enumerate() {
            let target = match &uncond {
                Some(u) if r >= half => u,
                _ => &cond,
            };
            let (eps, x0_var) = target.eps_and_x0_var(xr);
            out.extend([eps[0], eps[1], v(x0_var[0]), v(x0_var[1])].map(|v| v as f32));
        }
        Ok(Tensor::from_vec(out, &[xs.len(), 4])?)
    }
}

/// The exact moments of the discretised chain for a Gaussian target (every step is affine):
/// start at N(0, I), apply each step's map and add its noise.
fn propagate(sampler: &DiffusionSampler, target: &Moments, var: Var, temperature: f64) -> Moments {
    let p = Process::new(sampler.schedule());
    let (mu, sigma) = (target.mean, target.cov);
    let mut m = Moments::STANDARD;
    for i in (0..p.map.len()).rev() {
        let (ab, abp) = p.alphas(i);
        // ε(x) = E·x + e with E = √(1−ᾱ)·M⁻¹, M = ᾱΣ + (1−ᾱ)I.
        let minv = sigma.scale(ab).add(M2::I.scale(1.0 - ab)).inv();
        let e_mat = minv.scale((1.0 - ab).sqrt());
        let e_vec = vscale(e_mat.apply(mu), -ab.sqrt());
        let (a, b) = ((1.0 / ab).sqrt(), (1.0 / ab - 1.0).sqrt());
        // x̂₀ = (aI − bE)·x − b·e.
        let x0_mat = M2::I.scale(a).add(e_mat.scale(-b));
        let x0_vec = vscale(e_vec, -b);
        let (map, shift, noise) = match sampler.method() {
            DiffusionMethod::Ddpm => {
                let (_, post, c1, c2) = p.step(i);
                let noise = if i == 0 {
                    M2([[0.0; 2]; 2])
                } else {
                    let var_j = |j: usize| match var {
                        Var::Fixed(v) => p.variance_of(i, v),
                        Var::Exact => {
                            post + c1 * c1 * (sigma.0[j][j] * (1.0 - ab) / minv.inv().0[j][j])
                        }
                    };
                    M2::diag(var_j(0), var_j(1)).scale(temperature * temperature)
                };
                (
                    x0_mat.scale(c1).add(M2::I.scale(c2)),
                    vscale(x0_vec, c1),
                    noise,
                )
            }
            DiffusionMethod::Ddim { .. } => {
                let (s0, s1) = (abp.sqrt(), (1.0 - abp).sqrt());
                (
                    x0_mat.scale(s0).add(e_mat.scale(s1)),
                    vadd(vscale(x0_vec, s0), vscale(e_vec, s1)),
                    M2([[0.0; 2]; 2]),
                )
            }
            _ => unreachable!("only DDPM and DDIM exist"),
        };
        m = m.affine(map, shift, noise);
    }
    m
}

fn sample(
    sampler: &DiffusionSampler,
    model: &ExactEps,
    guidance: Option<f32>,
    seed: u64,
) -> TestResult<SampleMoments> {
    let mut rng = SeededRng::new(seed);
    let x = sampler.sample(model, N, 2, guidance, &mut rng)?;
    SampleMoments::of(&x)
}

fn diagonal_target() -> Mixture {
    Mixture::gaussian([0.8, -0.4], M2::diag(0.3, 1.6))
}

fn full_target() -> Mixture {
    Mixture::gaussian([0.5, -1.0], M2([[0.6, 0.35], [0.35, 0.9]]))
}

fn two_modes() -> Mixture {
    Mixture(vec![
        Component {
            weight: 0.3,
            mean: [-1.5, 0.5],
            cov: M2::diag(0.2, 0.3),
        },
        Component {
            weight: 0.7,
            mean: [1.0, -0.5],
            cov: M2::diag(0.25, 0.15),
        },
    ])
}

fn exact(target: Mixture, var: Var, sampler: &DiffusionSampler) -> ExactEps {
    ExactEps {
        cond: target,
        uncond: None,
        var,
        process: Process::new(sampler.schedule()),
    }
}

/// With the exact ε and the exact reverse variance, DDPM reproduces a Gaussian at any step
/// count (100 and 7 steps), and the propagated chain agrees.
#[test]
fn ddpm_with_exact_variance_samples_the_gaussian() -> TestResult {
    let target = diagonal_target();
    for steps in [100, 7] {
        let sampler = DiffusionSampler::ddpm(steps)?;
        let model = exact(target.clone(), Var::Exact, &sampler);
        let got = sample(&sampler, &model, None, steps as u64)?;
        let prop = propagate(&sampler, &target.moments(), Var::Exact, 1.0);
        // The chain is exact up to x₀'s posterior spread at ᾱ(0) ≈ 1 − 4e-5.
        assert!(prop.distance(&target.moments()) < 1e-3, "{prop:?}");
        got.check(
            &target.moments(),
            Z,
            0.0,
            &format!("DDPM {steps} steps vs target"),
        )?;
        got.check(&prop, Z, 0.0, &format!("DDPM {steps} steps vs propagation"))?;
    }
    Ok(())
}

/// A two-component mixture: DDPM (100 steps, moment-matched variance) and DDIM (100 steps)
/// give its mean and covariance; the margin covers the discretisation of a non-Gaussian
/// reverse process and is well under the modes' separation.
#[test]
fn ddpm_and_ddim_sample_a_two_component_mixture() -> TestResult {
    let target = two_modes();
    let want = target.moments();
    let ddpm = DiffusionSampler::ddpm(100)?;
    let got = sample(&ddpm, &exact(target.clone(), Var::Exact, &ddpm), None, 11)?;
    got.check(&want, Z, 0.01, "DDPM mixture")?;
    let ddim = DiffusionSampler::ddim(100, 0.0)?;
    let got = sample(
        &ddim,
        &exact(target.clone(), Var::Fixed(0.0), &ddim),
        None,
        12,
    )?;
    got.check(&want, Z, 0.02, "DDIM mixture")?;
    // The weight of each mode: the share of samples on the first mode's side.
    let mut rng = SeededRng::new(13);
    let x = ddpm.sample(&exact(target, Var::Exact, &ddpm), N, 2, None, &mut rng)?;
    let left = rows(&x).iter().filter(|r| r[0] < -0.25).count() as f64 / N as f64;
    let se = (0.3f64 * 0.7 / N as f64).sqrt();
    assert!((left - 0.3).abs() < Z * se + 0.005, "mode weight {left}");
    Ok(())
}

/// DDIM (η = 0) on a Gaussian with correlated covariance: the samples match the exactly
/// propagated chain, which is within 0.03 of the target at 100 steps (DDIM's discretisation
/// error on this target is ≈ 0.016 in the first variance).
#[test]
fn ddim_matches_its_propagated_moments() -> TestResult {
    let target = full_target();
    let sampler = DiffusionSampler::ddim(100, 0.0)?;
    let got = sample(
        &sampler,
        &exact(target.clone(), Var::Fixed(0.0), &sampler),
        None,
        21,
    )?;
    let prop = propagate(&sampler, &target.moments(), Var::Fixed(0.0), 1.0);
    got.check(&prop, Z, 0.0, "DDIM vs propagation")?;
    let d = prop.distance(&target.moments());
    assert!(d < 0.03, "{d}: {prop:?}");
    got.check(&target.moments(), Z, 0.03, "DDIM vs target")?;
    Ok(())
}

/// Temperature scales the noise only: with τ = 0.5 the samples follow the chain propagated
/// with τ²-scaled noise variances, which is visibly narrower than the τ = 1 chain.
#[test]
fn temperature_scales_only_the_noise() -> TestResult {
    let target = diagonal_target();
    let sampler = DiffusionSampler::ddpm(50)?.with_temperature(0.5);
    let model = exact(target.clone(), Var::Fixed(0.0), &sampler);
    let got = sample(&sampler, &model, None, 31)?;
    let cold = propagate(&sampler, &target.moments(), Var::Fixed(0.0), 0.5);
    let warm = propagate(&sampler, &target.moments(), Var::Fixed(0.0), 1.0);
    got.check(&cold, Z, 0.0, "τ = 0.5")?;
    assert!(
        got.check(&warm, Z, 0.0, "τ = 1").is_err(),
        "temperature had no effect"
    );
    // The means agree (temperature does not move them), the variances shrink.
    assert!((cold.mean[0] - warm.mean[0]).abs() < 1e-9);
    assert!(cold.cov.0[1][1] < 0.8 * warm.cov.0[1][1]);
    Ok(())
}

/// CFG on the head: with cond N(μ_c, Σ) and uncond N(μ_u, Σ), the guided ε is the exact ε of
/// N(μ_u + s·(μ_c − μ_u), Σ) (ε is affine in the mean), so guided DDPM samples that Gaussian.
#[test]
fn guidance_mixes_eps_of_cond_and_uncond() -> TestResult {
    let sigma = M2::diag(0.4, 0.7);
    let (mc, mu, s) = ([1.0, 0.5], [0.2, -0.3], 2.5f32);
    let guided_mean = [
        mu[0] + s as f64 * (mc[0] - mu[0]),
        mu[1] + s as f64 * (mc[1] - mu[1]),
    ];
    let sampler = DiffusionSampler::ddpm(100)?;
    let model = ExactEps {
        cond: Mixture::gaussian(mc, sigma),
        uncond: Some(Mixture::gaussian(mu, sigma)),
        var: Var::Exact,
        process: Process::new(sampler.schedule()),
    };
    let got = sample(&sampler, &model, Some(s), 41)?;
    got.check(
        &Moments {
            mean: guided_mean,
            cov: sigma,
        },
        Z,
        0.0,
        "guided DDPM",
    )
}

/// DiSA: fewer head steps degrade the samples as the closed form predicts. With the fixed
/// posterior variance (v = −1), the step counts a linear 50 → 5 schedule gives over four AR
/// iterations move the chain's exact moments monotonically away from the target; the samples
/// follow the predicted moments at every count, and at 5 steps they are detectably off-target.
#[test]
fn fewer_disa_steps_degrade_as_predicted() -> TestResult {
    let target = diagonal_target();
    let annealing = StepAnnealing::new(StepSchedule::Linear, 50, 5)?;
    let counts = annealing.all_steps(4)?;
    assert_eq!(counts, [50, 35, 20, 5]);
    let mut last = 0.0;
    for (k, &steps) in counts.iter().enumerate() {
        for method in [DiffusionMethod::Ddpm, DiffusionMethod::Ddim { eta: 0.0 }] {
            let schedule = RespacedSchedule::cosine(steps)?;
            let sampler = DiffusionSampler::new(schedule, method);
            let model = exact(target.clone(), Var::Fixed(-1.0), &sampler);
            let prop = propagate(&sampler, &target.moments(), Var::Fixed(-1.0), 1.0);
            let got = sample(&sampler, &model, None, 50 + k as u64)?;
            got.check(
                &prop,
                Z,
                0.0,
                &format!("{method:?} {steps} steps vs propagation"),
            )?;
            if method == DiffusionMethod::Ddpm {
                let d = prop.distance(&target.moments());
                assert!(d > last, "{steps} steps: distance {d} not above {last}");
                last = d;
                if steps == 5 {
                    assert!(
                        got.check(&target.moments(), Z, 0.0, "5 steps").is_err(),
                        "5 steps should be detectably off-target: {prop:?}"
                    );
                }
            }
        }
    }
    Ok(())
}

/// The seeded stream is the sampler's only randomness: the same seed gives the same tokens,
/// another seed other tokens.
#[test]
fn seeded_sampling_is_deterministic() -> TestResult {
    let sampler = DiffusionSampler::ddpm(10)?;
    let model = exact(diagonal_target(), Var::Fixed(0.0), &sampler);
    let run = |seed| -> TestResult<Vec<f32>> {
        Ok(sampler
            .sample(&model, 8, 2, None, &mut SeededRng::new(seed))?
            .to_vec())
    };
    assert_eq!(run(3)?, run(3)?);
    assert_ne!(run(3)?, run(4)?);
    Ok(())
}
