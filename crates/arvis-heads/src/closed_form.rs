//! Closed-form targets for measuring the samplers: a 1-D Gaussian mixture per channel, its
//! exact ε-model under MAR's diffusion, and the exact Wasserstein-1 distance from samples to it.
//!
//! A [`Mixture1d`] stands for one token channel's conditional distribution; a token of `C`
//! channels is `C` independent draws (a product target), so every channel of every row is one
//! sample. For a mixture the posterior of `x₀` given `x_t = √ᾱ·x₀ + √(1−ᾱ)·ε` is again a
//! mixture of Gaussians, which gives the exact `E[ε | x_t]` and `Var(x₀ | x_t)` —
//! [`ExactDenoiser`] is the head a perfect training run would produce, and what a sampler does
//! with it is the sampler's own error (discretisation, variance), nothing else.
//!
//! Used by the DiSA measurement (`benches/src/bin/disa_closed_form.rs`) and its test.

use arvis_core::{SeededRng, Tensor};

use crate::diffusion::DenoiseModel;
use crate::error::{HeadError, Result};
use crate::schedule::{BASE_TIMESTEPS, cosine_betas};

/// One Gaussian component of a [`Mixture1d`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Component1d {
    /// Mixture weight (the weights sum to 1).
    pub weight: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation (> 0).
    pub std: f64,
}

/// A 1-D Gaussian mixture.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixture1d {
    components: Vec<Component1d>,
}

/// `E[ε | x_t]`, `E[x₀ | x_t]` and `Var(x₀ | x_t)` at one point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Posterior {
    /// `E[ε | x_t]`, what an ε-prediction head is trained to output.
    pub eps: f64,
    /// `E[x₀ | x_t]`.
    pub x0_mean: f64,
    /// `Var(x₀ | x_t)`.
    pub x0_var: f64,
}

/// The standard normal CDF, `Φ(z) = ½·erfc(−z/√2)` (accurate in both tails).
fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * std::f64::consts::FRAC_1_SQRT_2)
}

/// The standard normal density.
fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

impl Mixture1d {
    /// A mixture of `components`.
    ///
    /// Errors: [`HeadError::Config`] when there is no component, a weight is not positive, the
    /// weights do not sum to 1 (within 1e-9), or a standard deviation is not positive and finite.
    pub fn new(components: Vec<Component1d>) -> Result<Self> {
        const WHAT: &str = "closed-form mixture";
        if components.is_empty() {
            return Err(HeadError::config(WHAT, "no component"));
        }
        for c in &components {
            let ok = c.weight > 0.0 && c.mean.is_finite() && c.std > 0.0 && c.std.is_finite();
            if !ok {
                return Err(HeadError::config(WHAT, format!("bad component {c:?}")));
            }
        }
        let total: f64 = components.iter().map(|c| c.weight).sum();
        if (total - 1.0).abs() > 1e-9 {
            return Err(HeadError::config(
                WHAT,
                format!("weights sum to {total}, not 1"),
            ));
        }
        Ok(Mixture1d { components })
    }

    /// The Gaussian `N(mean, std²)`.
    pub fn gaussian(mean: f64, std: f64) -> Result<Self> {
        Self::new(vec![Component1d {
            weight: 1.0,
            mean,
            std,
        }])
    }

    /// The broad, two-mode token channel the DiSA measurement starts from (its first AR
    /// iteration): weights 0.4 / 0.6 at −0.6 / 0.9 (mean 0.3), each of std 0.45, so the std is
    /// ≈ 0.86 — MAR's VAE latents, multiplied by its 0.2325 latent scale, are about unit scale.
    /// Later iterations are [`Mixture1d::contracted`] versions of it.
    pub fn two_mode_token() -> Self {
        Mixture1d {
            components: vec![
                Component1d {
                    weight: 0.4,
                    mean: -0.6,
                    std: 0.45,
                },
                Component1d {
                    weight: 0.6,
                    mean: 0.9,
                    std: 0.45,
                },
            ],
        }
    }

    /// The components.
    pub fn components(&self) -> &[Component1d] {
        &self.components
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        self.components.iter().map(|c| c.weight * c.mean).sum()
    }

    /// The standard deviation.
    pub fn std(&self) -> f64 {
        let m = self.mean();
        let second: f64 = self
            .components
            .iter()
            .map(|c| c.weight * (c.std * c.std + (c.mean - m) * (c.mean - m)))
            .sum();
        second.sqrt()
    }

    /// The same shape contracted about its mean by `scale` (`x ↦ μ + scale·(x − μ)`): the mean
    /// stays, every spread (component offsets and widths, hence the std) is multiplied by
    /// `scale`. This is how the measurement makes a target "more concentrated".
    ///
    /// Errors: [`HeadError::Config`] when `scale` is not positive and finite.
    pub fn contracted(&self, scale: f64) -> Result<Self> {
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(HeadError::config(
                "closed-form mixture",
                format!("contraction scale {scale}"),
            ));
        }
        let m = self.mean();
        Self::new(
            self.components
                .iter()
                .map(|c| Component1d {
                    weight: c.weight,
                    mean: m + scale * (c.mean - m),
                    std: scale * c.std,
                })
                .collect(),
        )
    }

    /// The CDF.
    pub fn cdf(&self, x: f64) -> f64 {
        self.components
            .iter()
            .map(|c| c.weight * normal_cdf((x - c.mean) / c.std))
            .sum()
    }

    /// `∫_{−∞}^x F`: per component `s·(z·Φ(z) + φ(z))` with `z = (x − m)/s`.
    fn cdf_integral(&self, x: f64) -> f64 {
        self.components
            .iter()
            .map(|c| {
                let z = (x - c.mean) / c.std;
                c.weight * c.std * (z * normal_cdf(z) + normal_pdf(z))
            })
            .sum()
    }

    /// `∫_x^∞ (1 − F)`: per component `s·(φ(z) − z·(1 − Φ(z)))`.
    fn survival_integral(&self, x: f64) -> f64 {
        self.components
            .iter()
            .map(|c| {
                let z = (x - c.mean) / c.std;
                c.weight * c.std * (normal_pdf(z) - z * normal_cdf(-z))
            })
            .sum()
    }

    /// The exact posterior at `x_t = y` under `x_t = √ᾱ·x₀ + √(1−ᾱ)·ε` (`0 < ᾱ < 1`).
    ///
    /// Per component `(w, m, s)`: `y ~ N(√ᾱ·m, ᾱs² + 1 − ᾱ)`, so the responsibilities are
    /// Gaussian likelihoods and `x₀ | y` is Gaussian with gain `g = √ᾱ·s²/(ᾱs² + 1 − ᾱ)`;
    /// `E[ε | y] = (y − √ᾱ·E[x₀ | y])/√(1 − ᾱ)`.
    pub fn posterior(&self, y: f64, alpha_bar: f64) -> Posterior {
        self.at(alpha_bar).posterior(y)
    }

    /// The per-time constants of [`Mixture1d::posterior`], computed once per `ᾱ`.
    fn at(&self, alpha_bar: f64) -> PreparedMixture {
        let (a, b) = (alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt());
        let comps = self
            .components
            .iter()
            .map(|c| {
                let s2 = c.std * c.std;
                let var_y = a * a * s2 + b * b;
                let gain = a * s2 / var_y;
                PreparedComponent {
                    log_norm: c.weight.ln() - 0.5 * var_y.ln(),
                    mean_y: a * c.mean,
                    inv_var_y: 1.0 / var_y,
                    mean_x0: c.mean,
                    gain,
                    x0_var: s2 - gain * a * s2,
                }
            })
            .collect();
        PreparedMixture { comps, a, b }
    }

    /// `n` independent draws (a component by its weight, then its Gaussian).
    pub fn draw(&self, n: usize, rng: &mut SeededRng) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u = rng.uniform_f64();
                let mut acc = 0.0;
                let mut pick = self.components[self.components.len() - 1];
                for c in &self.components {
                    acc += c.weight;
                    if u < acc {
                        pick = *c;
                        break;
                    }
                }
                (pick.mean + pick.std * rng.normal_f64()) as f32
            })
            .collect()
    }

    /// The Wasserstein-1 distance between the empirical distribution of `samples` and this
    /// mixture, `∫|F_n − F| dx`, computed exactly: between consecutive sorted samples `F_n` is
    /// the constant `i/n`, and `∫F` has the closed form above, so each interval contributes
    /// `|i/n·Δ − ∫F|` (split where `F` crosses `i/n`, located by linear interpolation of `F`
    /// inside the interval — the crossing's error is second order in the interval's width).
    /// The tails add `∫_{−∞}^{x₍₀₎} F` and `∫_{x₍ₙ₋₁₎}^∞ (1 − F)`.
    ///
    /// For exact draws the value is not 0 but of order `std/√n` (the sampling floor).
    ///
    /// Errors: [`HeadError::Config`] for no samples or a non-finite one.
    pub fn wasserstein1(&self, samples: &[f32]) -> Result<f64> {
        if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
            return Err(HeadError::config(
                "Wasserstein-1",
                format!(
                    "need finite samples, got {} ({} non-finite)",
                    samples.len(),
                    samples.iter().filter(|v| !v.is_finite()).count()
                ),
            ));
        }
        let mut xs: Vec<f64> = samples.iter().map(|&v| v as f64).collect();
        xs.sort_unstable_by(f64::total_cmp);
        let n = xs.len() as f64;
        let mut total = self.cdf_integral(xs[0]) + self.survival_integral(xs[xs.len() - 1]);
        let (mut fa, mut ga) = (self.cdf(xs[0]), self.cdf_integral(xs[0]));
        for (i, w) in xs.windows(2).enumerate() {
            let (a, b) = (w[0], w[1]);
            let level = (i + 1) as f64 / n;
            let (fb, gb) = (self.cdf(b), self.cdf_integral(b));
            total += if fb <= level {
                level * (b - a) - (gb - ga)
            } else if fa >= level {
                (gb - ga) - level * (b - a)
            } else {
                let x = a + (level - fa) / (fb - fa) * (b - a);
                let gx = self.cdf_integral(x);
                (level * (x - a) - (gx - ga)) + ((gb - gx) - level * (b - x))
            };
            (fa, ga) = (fb, gb);
        }
        Ok(total)
    }
}

#[derive(Clone, Copy, Debug)]
struct PreparedComponent {
    log_norm: f64,
    mean_y: f64,
    inv_var_y: f64,
    mean_x0: f64,
    gain: f64,
    x0_var: f64,
}

/// A [`Mixture1d`] seen through `y = a·x₀ + b·ε` at one time.
#[derive(Clone, Debug)]
struct PreparedMixture {
    comps: Vec<PreparedComponent>,
    a: f64,
    b: f64,
}

impl PreparedMixture {
    fn posterior(&self, y: f64) -> Posterior {
        let logit = |c: &PreparedComponent| {
            let d = y - c.mean_y;
            c.log_norm - 0.5 * d * d * c.inv_var_y
        };
        let max = self
            .comps
            .iter()
            .map(logit)
            .fold(f64::NEG_INFINITY, f64::max);
        let (mut z, mut m1, mut m2) = (0.0, 0.0, 0.0);
        for c in &self.comps {
            let r = (logit(c) - max).exp();
            let mean = c.mean_x0 + c.gain * (y - c.mean_y);
            z += r;
            m1 += r * mean;
            m2 += r * (c.x0_var + mean * mean);
        }
        let (m1, m2) = (m1 / z, m2 / z);
        Posterior {
            eps: (y - self.a * m1) / self.b,
            x0_mean: m1,
            x0_var: (m2 - m1 * m1).max(0.0),
        }
    }
}

/// The exact ε-model of a product target (every channel an independent draw of one
/// [`Mixture1d`]) under MAR's 1000-step cosine diffusion, with the variance output a perfectly
/// trained learned-range head gives.
///
/// **ε**: `E[ε | x_t]` at the original timestep `t` the sampler passes (respaced samplers pass
/// the kept original timesteps, as MAR's head sees them).
///
/// **v**: MAR trains `v` with the variational bound of the **1000-step** process, whose optimum
/// (the mean being exact) is the variance of the true reverse transition,
/// `σ²_t = β̃_t + c₁,t²·Var(x₀ | x_t)` with `c₁,t = β_t·√ᾱ_{t−1}/(1 − ᾱ_t)`; the head outputs
/// `v = 2·(ln σ²_t − ln β̃_t)/(ln β_t − ln β̃_t) − 1` (β̃ clipped at `t = 0` as the reference's
/// `posterior_log_variance_clipped`). Respaced sampling then interpolates that same `v` between
/// the *respaced* step's `β̃` and `β`, exactly what happens to a trained MAR head run with fewer
/// steps. At `t = 0` the samplers add no noise and `v = −1` is returned.
#[derive(Clone, Debug)]
pub struct ExactDenoiser {
    target: Mixture1d,
    alphas_cumprod: Vec<f64>,
    betas: Vec<f64>,
    log_posterior_clipped: Vec<f64>,
}

impl ExactDenoiser {
    /// The exact head for `target`.
    pub fn new(target: Mixture1d) -> Self {
        let betas = cosine_betas(BASE_TIMESTEPS);
        let mut alphas_cumprod = Vec::with_capacity(betas.len());
        let mut acc = 1.0;
        for b in &betas {
            acc *= 1.0 - b;
            alphas_cumprod.push(acc);
        }
        let posterior: Vec<f64> = (0..betas.len())
            .map(|t| {
                let prev = if t == 0 { 1.0 } else { alphas_cumprod[t - 1] };
                betas[t] * (1.0 - prev) / (1.0 - alphas_cumprod[t])
            })
            .collect();
        let log_posterior_clipped = (0..betas.len())
            .map(|t| posterior[if t == 0 { 1 } else { t }].ln())
            .collect();
        ExactDenoiser {
            target,
            alphas_cumprod,
            betas,
            log_posterior_clipped,
        }
    }

    /// The target.
    pub fn target(&self) -> &Mixture1d {
        &self.target
    }

    /// The learned-range output `v` for original timestep `t` and `Var(x₀ | x_t) = x0_var`
    /// (see the type's documentation).
    ///
    /// Errors: [`HeadError::Config`] when `t` is not a timestep of the 1000-step process.
    pub fn learned_range_v(&self, t: usize, x0_var: f64) -> Result<f64> {
        self.check_timestep(t)?;
        Ok(self.variance_map(t)(x0_var))
    }

    fn check_timestep(&self, t: usize) -> Result<f64> {
        self.alphas_cumprod.get(t).copied().ok_or_else(|| {
            HeadError::config(
                "ExactDenoiser",
                format!("timestep {t} of a {BASE_TIMESTEPS}-step process"),
            )
        })
    }

    /// `Var(x₀ | x_t) ↦ v` at original timestep `t` (checked by the caller), its constants
    /// computed once.
    fn variance_map(&self, t: usize) -> impl Fn(f64) -> f64 + use<> {
        let consts = (t > 0).then(|| {
            let (ab, prev) = (self.alphas_cumprod[t], self.alphas_cumprod[t - 1]);
            let beta = self.betas[t];
            let post = beta * (1.0 - prev) / (1.0 - ab);
            let c1 = beta * prev.sqrt() / (1.0 - ab);
            (post, c1 * c1, self.log_posterior_clipped[t], beta.ln())
        });
        move |x0_var| match consts {
            None => -1.0,
            Some((post, c1_sq, lo, hi)) => {
                2.0 * ((post + c1_sq * x0_var).ln() - lo) / (hi - lo) - 1.0
            }
        }
    }
}

impl DenoiseModel for ExactDenoiser {
    /// `[ε, v]` for `x` `[rows, C]`: every element through the target's exact posterior.
    fn predict(&self, x: &Tensor, timestep: usize) -> Result<Tensor> {
        let &[rows, channels] = x.shape() else {
            return Err(HeadError::shape("ExactDenoiser", "x [B, C]", x.shape()));
        };
        if channels == 0 {
            return Err(HeadError::shape("ExactDenoiser", "x [B, C ≥ 1]", x.shape()));
        }
        let ab = self.check_timestep(timestep)?;
        let prepared = self.target.at(ab);
        let v_of = self.variance_map(timestep);
        let xs = x.to_vec();
        let mut out = vec![0.0f32; 2 * xs.len()];
        for (row, dst) in xs
            .chunks_exact(channels)
            .zip(out.chunks_exact_mut(2 * channels))
        {
            let (eps, var) = dst.split_at_mut(channels);
            for ((&y, e), v) in row.iter().zip(eps).zip(var) {
                let p = prepared.posterior(y as f64);
                *e = p.eps as f32;
                *v = v_of(p.x0_var) as f32;
            }
        }
        Ok(Tensor::from_vec(out, &[rows, 2 * channels])?.to_device_of(x)?)
    }
}
