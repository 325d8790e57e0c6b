//! DDPM and DDIM sampling of an ε-prediction model with learned-range variance (MAR's
//! `p_sample_loop` / `ddim_sample_loop` as driven by `DiffLoss.sample`), with classifier-free
//! guidance on the head.
//!
//! Per step `i` (respaced, from `len − 1` down to 0), with `t = timestep_map[i]` the original
//! timestep the model sees and every constant an `f64` table entry cast to `f32`:
//! ```text
//! ε, v   = model(x, t)                                  (guided: ε = ε_u + s·(ε_c − ε_u), v of the cond rows)
//! x̂₀     = √(1/ᾱ)·x − √(1/ᾱ − 1)·ε                     (not clipped: MAR passes clip_denoised=False)
//! DDPM:  mean = c₁·x̂₀ + c₂·x
//!        log σ² = f·ln β + (1 − f)·log β̃_clipped,  f = (v + 1)/2
//!        x ← mean + [i > 0]·exp(½ log σ²)·z·temperature
//! DDIM:  ε' = (√(1/ᾱ)·x − x̂₀)/√(1/ᾱ − 1),  σ = η·√((1 − ᾱ')/(1 − ᾱ))·√(1 − ᾱ/ᾱ')
//!        x ← √ᾱ'·x̂₀ + √(1 − ᾱ' − σ²)·ε' + [i > 0]·σ·z·temperature
//! ```
//! Temperature scales the noise only (MAR); the reference's DDIM has no temperature, which is
//! the same thing for η = 0.

use arvis_core::Tensor;

use crate::error::{HeadError, Result};
use crate::noise::NoiseSource;
use crate::schedule::RespacedSchedule;

/// An ε-prediction model with learned-range variance, for a fixed batch of conditions.
///
/// Given `x` `[rows, C]` and the **original** timestep (`0..1000`), it returns `[rows, 2C]`:
/// the predicted noise, then the variance interpolation `v` (−1 is the posterior variance, +1
/// is β). A model built for guidance holds `2B` conditions, `[cond; uncond]`: it is called with
/// `2B` rows.
pub trait DenoiseModel {
    /// `[ε, v]` for `x` at original timestep `timestep`.
    fn predict(&self, x: &Tensor, timestep: usize) -> Result<Tensor>;
}

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum DiffusionMethod {
    /// Ancestral sampling with the learned variance (MAR's default).
    Ddpm,
    /// DDIM with noise level `eta` (0: deterministic).
    Ddim {
        /// η of the DDIM paper's equation 12.
        eta: f32,
    },
}

/// A DDPM or DDIM sampler over a respaced cosine schedule.
#[derive(Clone, Debug)]
pub struct DiffusionSampler {
    schedule: RespacedSchedule,
    method: DiffusionMethod,
    temperature: f32,
}

/// `[ε, v]` after guidance: each `[B, C]`.
struct Prediction {
    eps: Tensor,
    var: Tensor,
}

impl DiffusionSampler {
    /// MAR's sampler: DDPM over the 1000-step cosine schedule respaced to `steps`,
    /// temperature 1.
    pub fn ddpm(steps: usize) -> Result<Self> {
        Ok(Self::new(
            RespacedSchedule::cosine(steps)?,
            DiffusionMethod::Ddpm,
        ))
    }

    /// DDIM over the cosine schedule respaced to `steps`.
    pub fn ddim(steps: usize, eta: f32) -> Result<Self> {
        Ok(Self::new(
            RespacedSchedule::cosine(steps)?,
            DiffusionMethod::Ddim { eta },
        ))
    }

    /// A sampler over any respaced schedule.
    pub fn new(schedule: RespacedSchedule, method: DiffusionMethod) -> Self {
        DiffusionSampler {
            schedule,
            method,
            temperature: 1.0,
        }
    }

    /// The same sampler with the noise scaled by `temperature` (MAR's `--temperature`).
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = temperature;
        self
    }

    /// The schedule.
    pub fn schedule(&self) -> &RespacedSchedule {
        &self.schedule
    }

    /// The update rule.
    pub fn method(&self) -> DiffusionMethod {
        self.method
    }

    /// The noise temperature.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// Number of model evaluations per sample (each on `2B` rows with guidance).
    pub fn steps(&self) -> usize {
        self.schedule.len()
    }

    /// Draws `batch` tokens of `channels` values: `[batch, channels]`.
    ///
    /// Without guidance the model is called with `batch` rows. With `guidance = Some(s)` it is
    /// called with `[x; x]` (`2·batch` rows, its conditions `[cond; uncond]`), and the guided
    /// noise `ε_u + s·(ε_c − ε_u)` and the cond rows' variance drive the update (MAR's
    /// `forward_with_cfg`, whose uncond half is discarded by MAR). The noise is drawn for the
    /// `batch` rows only: initial `[batch, channels]`, then one `[batch, channels]` per noisy
    /// step, from step `len − 1` down to 1.
    ///
    /// Errors: the model's errors; [`HeadError::Shape`] when the model returns another shape
    /// than `[rows, 2·channels]`; [`HeadError::Noise`] when recorded noise does not fit.
    pub fn sample(
        &self,
        model: &dyn DenoiseModel,
        batch: usize,
        channels: usize,
        guidance: Option<f32>,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let mut x = noise.initial(&[batch, channels])?;
        for i in (0..self.schedule.len()).rev() {
            x = self.step(model, i, &x, guidance, noise)?;
        }
        Ok(x)
    }

    /// One update, from respaced step `i` to `i − 1` (`i = 0` gives the final tokens): `x` is
    /// `[B, C]`, the model is run as in [`DiffusionSampler::sample`], and step `i`'s noise is
    /// drawn when the step adds noise. For callers that drive the chain themselves (replays,
    /// speculative decoding).
    ///
    /// Errors: [`HeadError::Config`] when `i` is not a step of the schedule; otherwise as
    /// [`DiffusionSampler::sample`].
    pub fn step(
        &self,
        model: &dyn DenoiseModel,
        i: usize,
        x: &Tensor,
        guidance: Option<f32>,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let Some(&t) = self.schedule.timestep_map().get(i) else {
            return Err(HeadError::config(
                "diffusion step",
                format!("step {i} of a {}-step schedule", self.schedule.len()),
            ));
        };
        let &[_, channels] = x.shape() else {
            return Err(HeadError::shape(
                "DiffusionSampler::step",
                "x [B, C]",
                x.shape(),
            ));
        };
        let pred = predict(model, x, t, channels, guidance)?;
        match self.method {
            DiffusionMethod::Ddpm => self.ddpm_step(i, x, &pred, noise),
            DiffusionMethod::Ddim { eta } => self.ddim_step(i, x, &pred, eta, noise),
        }
    }

    /// `x̂₀ = √(1/ᾱ)·x − √(1/ᾱ − 1)·ε`, with the coefficients in `f32`.
    fn pred_xstart(&self, i: usize, x: &Tensor, eps: &Tensor) -> Result<Tensor> {
        let co = self.schedule.step_coefficients(i);
        Ok(x.scale(co.sqrt_recip_alphas_cumprod as f32)?
            .sub(&eps.scale(co.sqrt_recipm1_alphas_cumprod as f32)?)?)
    }

    fn ddpm_step(
        &self,
        i: usize,
        x: &Tensor,
        pred: &Prediction,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let co = self.schedule.step_coefficients(i);
        let x0 = self.pred_xstart(i, x, &pred.eps)?;
        let mean = x0
            .scale(co.posterior_mean_coef1 as f32)?
            .add(&x.scale(co.posterior_mean_coef2 as f32)?)?;
        if i == 0 {
            return Ok(mean);
        }
        let frac = pred.var.add_scalar(1.0)?.scale(0.5)?;
        let log_var = frac
            .scale(co.max_log as f32)?
            .add(&frac.affine(-1.0, 1.0)?.scale(co.min_log as f32)?)?;
        let std = log_var.scale(0.5)?.exp()?;
        let z = noise.step(i, x.shape())?.to_device_of(x)?;
        Ok(mean.add(&std.mul(&z)?.scale(self.temperature)?)?)
    }

    fn ddim_step(
        &self,
        i: usize,
        x: &Tensor,
        pred: &Prediction,
        eta: f32,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let co = self.schedule.step_coefficients(i);
        let x0 = self.pred_xstart(i, x, &pred.eps)?;
        // The reference re-derives ε from x̂₀ (it would differ for an x₀-predicting model).
        let eps = x
            .scale(co.sqrt_recip_alphas_cumprod as f32)?
            .sub(&x0)?
            .scale((1.0 / co.sqrt_recipm1_alphas_cumprod) as f32)?;
        let ab = self.schedule.alphas_cumprod()[i];
        let abp = self.schedule.alphas_cumprod_prev()[i];
        let sigma =
            eta as f64 * ((1.0 - abp) / (1.0 - ab)).sqrt() * (1.0 - ab / abp).max(0.0).sqrt();
        let mean = x0
            .scale(abp.sqrt() as f32)?
            .add(&eps.scale((1.0 - abp - sigma * sigma).max(0.0).sqrt() as f32)?)?;
        if i == 0 || sigma == 0.0 {
            return Ok(mean);
        }
        let z = noise.step(i, x.shape())?.to_device_of(x)?;
        Ok(mean.add(&z.scale(sigma as f32 * self.temperature)?)?)
    }
}

/// Runs the model (on `[x; x]` with guidance) and splits its output into ε and v for the
/// `B` rows of `x`.
fn predict(
    model: &dyn DenoiseModel,
    x: &Tensor,
    t: usize,
    channels: usize,
    guidance: Option<f32>,
) -> Result<Prediction> {
    let rows = x.shape()[0];
    let input = match guidance {
        Some(_) => Tensor::concat(&[x, x], 0)?,
        None => x.clone(),
    };
    let out = model.predict(&input, t)?;
    let model_rows = input.shape()[0];
    if out.shape() != [model_rows, 2 * channels] {
        return Err(HeadError::shape(
            "DiffusionSampler::sample",
            format!("model output [{model_rows}, {}]", 2 * channels),
            out.shape(),
        ));
    }
    let eps = out.narrow(1, 0, channels)?;
    let var = out.narrow(1, channels, channels)?;
    match guidance {
        None => Ok(Prediction { eps, var }),
        Some(scale) => {
            let cond = eps.narrow(0, 0, rows)?;
            let uncond = eps.narrow(0, rows, rows)?;
            Ok(Prediction {
                eps: uncond.add(&cond.sub(&uncond)?.scale(scale)?)?,
                var: var.narrow(0, 0, rows)?,
            })
        }
    }
}
