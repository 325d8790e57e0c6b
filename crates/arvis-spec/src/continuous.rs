//! Continuous speculative decoding (CSpD; Wang et al., arXiv 2411.11925) for models whose
//! tokens come from a diffusion head: the math of the paper (not of the reference code, which
//! inverts `Σ`, tempers the exponent by 42 and verifies blocks without prefix truncation).
//!
//! Each token is the end `x_0` of a DDPM chain `x_T → … → x_0`,
//! `x_{t−1} = μ(x_t, t) + σ_t ε_t`, run by the draft's head and, in verification, by the
//! target's head **with the same noise** (`x_T` and every `ε_t`: trajectory alignment). The
//! acceptance ratio is
//!
//! `Σ · p(x_0^q | x_1^p) / q(x_0^q | x_1^q)`, with `Σ = ∏_{t ≥ 2} ∏_d σ^q_{t,d} / σ^p_{t,d}`,
//!
//! which is the ratio of the two aligned trajectory densities once the equal exponents
//! `−|ε_t|²/2` cancel ([`log_acceptance_ratio`]; the tests check it against a brute-force sum of
//! both trajectories' log-densities). On rejection, [`verify_token`] resamples by
//! acceptance–rejection: propose `x ~ p(· | x_1^p)` (one Gaussian step) and keep it with
//! probability `(Σ·p(x) − q(x))₊ / (Σ·p(x))`, so the unknown normaliser of the residual never
//! appears.
//!
//! **Exactness:** for a single Gaussian step (`Σ = 1`) this is exact speculative sampling of the
//! target's density (tested by a KS test against the closed form). For whole trajectories the
//! ratio is not the marginal ratio of `x_0`, so CSpD is **approximate** there, as the paper
//! says.

use arvis_core::SeededRng;

use crate::error::{Result, SpecError};

/// A diagonal Gaussian `N(mean, diag(std²))`.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianStep {
    /// Mean, length `d`.
    pub mean: Vec<f64>,
    /// Standard deviations, length `d`, all `> 0` where densities are evaluated.
    pub std: Vec<f64>,
}

impl GaussianStep {
    /// Checks lengths and positivity of the standard deviations.
    pub fn validate(&self) -> Result<()> {
        if self.mean.len() != self.std.len() || self.mean.is_empty() {
            return Err(SpecError::arg(
                "GaussianStep",
                format!(
                    "mean of {} and std of {} values",
                    self.mean.len(),
                    self.std.len()
                ),
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return Err(SpecError::arg(
                "GaussianStep",
                format!("standard deviation {s}: a density needs every std > 0"),
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(SpecError::arg("GaussianStep", "non-finite mean"));
        }
        Ok(())
    }

    /// `ln N(x; mean, diag(std²))`.
    pub fn log_density(&self, x: &[f64]) -> f64 {
        const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
        self.mean
            .iter()
            .zip(&self.std)
            .zip(x)
            .map(|((m, s), x)| {
                let z = (x - m) / s;
                -0.5 * z * z - s.ln() - LN_SQRT_2PI
            })
            .sum()
    }

    /// `mean + std · eps`.
    pub fn at(&self, eps: &[f64]) -> Vec<f64> {
        self.mean
            .iter()
            .zip(&self.std)
            .zip(eps)
            .map(|((m, s), e)| m + s * e)
            .collect()
    }
}

/// What CSpD needs from one run of a diffusion head's chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    /// The token, `x_0`.
    pub x0: Vec<f64>,
    /// The last step's Gaussian `p(x_0 | x_1)`.
    pub final_step: GaussianStep,
    /// `Σ_{t ≥ 2} Σ_d ln σ_{t,d}`: the earlier steps' log standard deviations (their exponents
    /// cancel under shared noise).
    pub log_std_sum: f64,
}

/// One denoising step of a head: the Gaussian of `x_{t−1}` given `x_t` at step `t` (`t = T`
/// first, `t = 1` last).
pub trait DenoiseStep {
    /// `N(μ(x_t, t), σ_t²)`.
    fn step(&self, t: usize, x_t: &[f64]) -> Result<GaussianStep>;
}

/// The noise of one chain: `x_T` and `ε_t` for `t = T … 1` (`eps[0]` is `ε_T`).
#[derive(Clone, Debug, PartialEq)]
pub struct ChainNoise {
    /// The starting point `x_T`.
    pub x_t: Vec<f64>,
    /// `ε_T, …, ε_1`.
    pub eps: Vec<Vec<f64>>,
}

impl ChainNoise {
    /// Standard-normal noise for a `steps`-step chain in dimension `dim`: `x_T` first, then
    /// `ε_T … ε_1`, each coordinate one `normal_f64` in order.
    pub fn draw(dim: usize, steps: usize, rng: &mut SeededRng) -> Self {
        let mut v = |_| (0..dim).map(|_| rng.normal_f64()).collect::<Vec<f64>>();
        let x_t = v(0);
        let eps = (0..steps).map(v).collect();
        ChainNoise { x_t, eps }
    }

    /// Number of steps `T`.
    pub fn steps(&self) -> usize {
        self.eps.len()
    }
}

/// Runs `head` from `noise` (`T = noise.steps() ≥ 1`) and records the [`Trajectory`].
pub fn run_chain<H: DenoiseStep + ?Sized>(head: &H, noise: &ChainNoise) -> Result<Trajectory> {
    let steps = noise.steps();
    if steps == 0 {
        return Err(SpecError::arg(
            "run_chain",
            "a chain needs at least one step",
        ));
    }
    let mut x = noise.x_t.clone();
    let mut log_std_sum = 0.0;
    for (i, eps) in noise.eps.iter().enumerate() {
        let t = steps - i;
        let s = head.step(t, &x)?;
        if s.mean.len() != x.len() || eps.len() != x.len() {
            return Err(SpecError::contract(
                "DenoiseStep::step",
                format!(
                    "step {t}: dimension {} for a chain of {}",
                    s.mean.len(),
                    x.len()
                ),
            ));
        }
        x = s.at(eps);
        if t == 1 {
            s.validate()?;
            return Ok(Trajectory {
                x0: x,
                final_step: s,
                log_std_sum,
            });
        }
        log_std_sum += s.std.iter().map(|v| v.ln()).sum::<f64>();
    }
    Err(SpecError::arg("run_chain", "unreachable: no final step"))
}

/// `ln Σ + ln p(x_0^q | x_1^p) − ln q(x_0^q | x_1^q)` for a draft trajectory and the target's
/// trajectory run with the same noise.
pub fn log_acceptance_ratio(draft: &Trajectory, target: &Trajectory) -> f64 {
    let ln_sigma = draft.log_std_sum - target.log_std_sum;
    ln_sigma + target.final_step.log_density(&draft.x0) - draft.final_step.log_density(&draft.x0)
}

/// The outcome of verifying one continuous draft token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenOutcome {
    /// The token kept: the draft's `x_0` if accepted, else the resampled one.
    pub x0: Vec<f64>,
    /// Whether the draft was accepted.
    pub accepted: bool,
    /// Proposals drawn from the target's final step (0 if accepted).
    pub proposals: usize,
    /// Whether resampling hit `max_proposals` and returned its last proposal unchecked.
    pub capped: bool,
}

/// Verifies a draft token against the target's aligned trajectory: accept with
/// `min(1, ratio)` ([`log_acceptance_ratio`]), else resample by acceptance–rejection from the
/// target's final step with `(Σ·p − q)₊/(Σ·p)`, at most `max_proposals` times (the reference
/// caps at 100).
///
/// Draw order: one `uniform_f64` for the test; then per proposal `d` `normal_f64` (the step's
/// noise) and one `uniform_f64`.
pub fn verify_token(
    draft: &Trajectory,
    target: &Trajectory,
    max_proposals: usize,
    rng: &mut SeededRng,
) -> Result<TokenOutcome> {
    draft.final_step.validate()?;
    target.final_step.validate()?;
    let d = draft.x0.len();
    if target.final_step.mean.len() != d || draft.final_step.mean.len() != d {
        return Err(SpecError::arg(
            "verify_token",
            format!(
                "draft token of dimension {d}, steps of {} and {}",
                draft.final_step.mean.len(),
                target.final_step.mean.len()
            ),
        ));
    }
    let lr = log_acceptance_ratio(draft, target);
    if rng.uniform_f64() < lr.min(0.0).exp() {
        return Ok(TokenOutcome {
            x0: draft.x0.clone(),
            accepted: true,
            proposals: 0,
            capped: false,
        });
    }
    let ln_sigma = draft.log_std_sum - target.log_std_sum;
    let mut last = target.final_step.mean.clone();
    for k in 1..=max_proposals {
        let eps: Vec<f64> = (0..d).map(|_| rng.normal_f64()).collect();
        let x = target.final_step.at(&eps);
        // (Σp − q)₊ / (Σp) = (1 − q/(Σp))₊, computed in logs.
        let lq_over_sp =
            draft.final_step.log_density(&x) - ln_sigma - target.final_step.log_density(&x);
        let keep = (1.0 - lq_over_sp.exp()).max(0.0);
        if rng.uniform_f64() < keep {
            return Ok(TokenOutcome {
                x0: x,
                accepted: false,
                proposals: k,
                capped: false,
            });
        }
        last = x;
    }
    Ok(TokenOutcome {
        x0: last,
        accepted: false,
        proposals: max_proposals,
        capped: true,
    })
}
