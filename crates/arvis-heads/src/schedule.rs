//! The DDPM noise schedule of MAR's diffusion head and its respacing (MAR's `diffusion/`
//! package: `gaussian_diffusion.py` and `respace.py`, after OpenAI's improved-diffusion).
//!
//! Everything here is `f64`, as the reference builds its tables in float64 numpy; the samplers
//! cast each looked-up value to `f32` (the reference's `_extract_into_tensor`) before using it.

use crate::error::{HeadError, Result};

/// Number of steps of the base process MAR trains with.
pub const BASE_TIMESTEPS: usize = 1000;

/// Largest beta of the cosine schedule (the reference's `max_beta`).
const MAX_BETA: f64 = 0.999;

/// Nichol & Dhariwal's cosine `ᾱ(t) = cos²((t + 0.008)/1.008 · π/2)` for `t ∈ [0, 1]`.
pub fn cosine_alpha_bar(t: f64) -> f64 {
    ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
        .cos()
        .powi(2)
}

/// The `n` betas of the cosine schedule: `βᵢ = min(1 − ᾱ((i+1)/n)/ᾱ(i/n), 0.999)`
/// (`betas_for_alpha_bar`).
pub fn cosine_betas(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
            (1.0 - cosine_alpha_bar(t2) / cosine_alpha_bar(t1)).min(MAX_BETA)
        })
        .collect()
}

/// The original timesteps kept by respacing a `num_timesteps`-step process into sections of
/// `section_counts` steps each (`space_timesteps`, the comma-separated form; MAR passes one
/// section, `"100"`), sorted ascending.
///
/// Each section of `size` steps keeps `round(i · (size − 1)/(count − 1))` for `i < count`, with
/// the stride accumulated by repeated addition and Python's round-half-to-even, so the map is
/// the reference's to the step (`"100"` of 1000 gives `0, 10, 20, …, 50, 61, …, 989, 999`).
///
/// Errors: [`HeadError::Config`] when a section is asked for more steps than it has, or no
/// section or a zero count is given.
pub fn space_timesteps(num_timesteps: usize, section_counts: &[usize]) -> Result<Vec<usize>> {
    const WHAT: &str = "respacing";
    if section_counts.is_empty() || section_counts.contains(&0) {
        return Err(HeadError::config(
            WHAT,
            format!("section counts must be non-empty and positive, got {section_counts:?}"),
        ));
    }
    let size_per = num_timesteps / section_counts.len();
    let extra = num_timesteps % section_counts.len();
    let mut start = 0usize;
    let mut steps = Vec::new();
    for (i, &count) in section_counts.iter().enumerate() {
        let size = size_per + usize::from(i < extra);
        if size < count {
            return Err(HeadError::config(
                WHAT,
                format!("cannot divide a section of {size} steps into {count}"),
            ));
        }
        let stride = if count <= 1 {
            1.0
        } else {
            (size - 1) as f64 / (count - 1) as f64
        };
        let mut cur = 0.0f64;
        for _ in 0..count {
            steps.push(start + cur.round_ties_even() as usize);
            cur += stride;
        }
        start += size;
    }
    steps.sort_unstable();
    steps.dedup();
    Ok(steps)
}

/// A cosine DDPM respaced to a few steps, with every table the samplers read
/// (`SpacedDiffusion` over `GaussianDiffusion` with `LEARNED_RANGE` variance).
///
/// Step `i` of the respaced process (`0..len()`) corresponds to the original timestep
/// `timestep_map()[i]`, which is what the head is given.
#[derive(Clone, Debug)]
pub struct RespacedSchedule {
    timestep_map: Vec<usize>,
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    alphas_cumprod_prev: Vec<f64>,
    posterior_log_variance_clipped: Vec<f64>,
    log_betas: Vec<f64>,
}

impl RespacedSchedule {
    /// MAR's `create_diffusion(timestep_respacing=str(steps), noise_schedule="cosine")`: the
    /// 1000-step cosine schedule respaced to `steps` (1 ≤ steps ≤ 1000).
    pub fn cosine(steps: usize) -> Result<Self> {
        Self::cosine_sections(&[steps])
    }

    /// The 1000-step cosine schedule respaced by sections (`"25,10"` is `&[25, 10]`).
    pub fn cosine_sections(section_counts: &[usize]) -> Result<Self> {
        let base = cosine_betas(BASE_TIMESTEPS);
        let keep = space_timesteps(BASE_TIMESTEPS, section_counts)?;
        Ok(Self::respace(&base, &keep))
    }

    /// Respaces a base process (`base_betas`) to the kept original timesteps `keep` (sorted):
    /// the new betas are `1 − ᾱ_keep[i] / ᾱ_keep[i−1]`, so the kept steps have the base
    /// process's `ᾱ` exactly.
    pub fn respace(base_betas: &[f64], keep: &[usize]) -> Self {
        let mut last = 1.0f64;
        let mut acc = 1.0f64;
        let mut betas = Vec::with_capacity(keep.len());
        let mut timestep_map = Vec::with_capacity(keep.len());
        let mut k = keep.iter().peekable();
        for (i, b) in base_betas.iter().enumerate() {
            acc *= 1.0 - b;
            if k.peek() == Some(&&i) {
                k.next();
                betas.push(1.0 - acc / last);
                last = acc;
                timestep_map.push(i);
            }
        }
        Self::from_betas(betas, timestep_map)
    }

    fn from_betas(betas: Vec<f64>, timestep_map: Vec<usize>) -> Self {
        // Recomputed from the respaced betas with a fresh cumulative product, as the reference
        // does (`GaussianDiffusion.__init__` on the new betas).
        let mut alphas_cumprod = Vec::with_capacity(betas.len());
        let mut acc = 1.0f64;
        for b in &betas {
            acc *= 1.0 - b;
            alphas_cumprod.push(acc);
        }
        let alphas_cumprod_prev: Vec<f64> = std::iter::once(1.0)
            .chain(alphas_cumprod.iter().copied())
            .take(betas.len())
            .collect();
        let posterior_variance: Vec<f64> = (0..betas.len())
            .map(|i| betas[i] * (1.0 - alphas_cumprod_prev[i]) / (1.0 - alphas_cumprod[i]))
            .collect();
        // The posterior variance is 0 at step 0; the reference clips its log by reusing step
        // 1's. With a single step the reference's table is empty (it cannot sample); there the
        // variance never matters (no noise is added at step 0), so log β stands in.
        let posterior_log_variance_clipped = match posterior_variance.len() {
            0 => Vec::new(),
            1 => vec![betas[0].ln()],
            _ => std::iter::once(posterior_variance[1].ln())
                .chain(posterior_variance[1..].iter().map(|v| v.ln()))
                .collect(),
        };
        let log_betas = betas.iter().map(|b| b.ln()).collect();
        RespacedSchedule {
            timestep_map,
            betas,
            alphas_cumprod,
            alphas_cumprod_prev,
            posterior_log_variance_clipped,
            log_betas,
        }
    }

    /// Number of respaced steps.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    /// Whether the schedule has no step (never true for a schedule built by this type).
    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// Original timestep of each respaced step (what the head sees).
    pub fn timestep_map(&self) -> &[usize] {
        &self.timestep_map
    }

    /// Respaced betas.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// `ᾱ` of each respaced step.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// `ᾱ` of the previous step (1 before step 0).
    pub fn alphas_cumprod_prev(&self) -> &[f64] {
        &self.alphas_cumprod_prev
    }

    /// The clipped log posterior variance, the low end of the learned range.
    pub fn posterior_log_variance_clipped(&self) -> &[f64] {
        &self.posterior_log_variance_clipped
    }

    /// `ln β`, the high end of the learned range.
    pub fn log_betas(&self) -> &[f64] {
        &self.log_betas
    }

    /// The per-step constants of the ancestral (DDPM) update at step `i`.
    pub fn step_coefficients(&self, i: usize) -> StepCoefficients {
        let (ab, abp, b) = (
            self.alphas_cumprod[i],
            self.alphas_cumprod_prev[i],
            self.betas[i],
        );
        StepCoefficients {
            sqrt_recip_alphas_cumprod: (1.0 / ab).sqrt(),
            sqrt_recipm1_alphas_cumprod: (1.0 / ab - 1.0).sqrt(),
            posterior_mean_coef1: b * abp.sqrt() / (1.0 - ab),
            posterior_mean_coef2: (1.0 - abp) * (1.0 - b).sqrt() / (1.0 - ab),
            min_log: self.posterior_log_variance_clipped[i],
            max_log: self.log_betas[i],
        }
    }
}

/// The constants of one DDPM step, in `f64` (cast to `f32` where used, as the reference).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCoefficients {
    /// `√(1/ᾱ_t)`: `x̂₀ = √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·ε`.
    pub sqrt_recip_alphas_cumprod: f64,
    /// `√(1/ᾱ_t − 1)`.
    pub sqrt_recipm1_alphas_cumprod: f64,
    /// `β_t·√ᾱ_{t−1}/(1 − ᾱ_t)`, the posterior mean's weight on `x̂₀`.
    pub posterior_mean_coef1: f64,
    /// `(1 − ᾱ_{t−1})·√α_t/(1 − ᾱ_t)`, the posterior mean's weight on `x_t`.
    pub posterior_mean_coef2: f64,
    /// Low end of the learned log-variance range (the clipped log posterior variance).
    pub min_log: f64,
    /// High end (`ln β_t`).
    pub max_log: f64,
}
