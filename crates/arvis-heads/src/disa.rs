//! DiSA (diffusion step annealing, Zhao et al., arXiv 2505.20297): the number of head steps
//! per AR iteration falls from `U` at the first iteration to `L` at the last, since later
//! tokens are conditioned on more context and need fewer denoising steps.
//!
//! For AR iteration `k` of `K` (MAR: masked iteration; FlowAR: scale; xAR: cell):
//!
//! | schedule | steps at iteration `k` |
//! |---|---|
//! | linear (DiSA's default) | `L + ⌊(K−1−k)/(K−1) · (U−L)⌋` |
//! | cosine | `L + ⌊(1 + cos(πk/(K−1)))/2 · (U−L)⌋` |
//! | two-stage | `U` if `k < (K−1)/2`, else `L` |
//! | constant | `L` |
//!
//! The linear floor is computed in integers (exact); with a single iteration (`K = 1`) every
//! schedule but `constant` gives `U`. FlowAR's form `⌊(U−L)(K_s−k)/K_s + L⌋` with
//! `K_s = scales − 1` is the linear schedule over `K = scales` iterations.

use crate::error::{HeadError, Result};

/// The shape of the annealing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepSchedule {
    /// Linear from `U` to `L`.
    Linear,
    /// Half a cosine from `U` to `L`.
    Cosine,
    /// `U` for the first half of the iterations, `L` after.
    TwoStage,
    /// `L` throughout.
    Constant,
}

/// Head steps per AR iteration: a [`StepSchedule`] between `upper` and `lower` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepAnnealing {
    /// The shape.
    pub schedule: StepSchedule,
    /// `U`, the steps of the first iteration (DiSA's MAR setting: 50).
    pub upper: usize,
    /// `L`, the steps of the last iteration (DiSA's MAR setting: 5).
    pub lower: usize,
}

impl StepAnnealing {
    /// A schedule from `upper` steps down to `lower`.
    ///
    /// Errors: [`HeadError::Config`] when `lower` is 0 or above `upper`.
    pub fn new(schedule: StepSchedule, upper: usize, lower: usize) -> Result<Self> {
        if lower == 0 || lower > upper {
            return Err(HeadError::config(
                "DiSA schedule",
                format!("need 1 ≤ lower ≤ upper, got lower {lower}, upper {upper}"),
            ));
        }
        Ok(StepAnnealing {
            schedule,
            upper,
            lower,
        })
    }

    /// Head steps at AR iteration `k` of `total` (`0 ≤ k < total`).
    ///
    /// Errors: [`HeadError::Config`] when `k ≥ total`.
    pub fn steps(&self, k: usize, total: usize) -> Result<usize> {
        if k >= total {
            return Err(HeadError::config(
                "DiSA schedule",
                format!("iteration {k} of {total}"),
            ));
        }
        let (u, l) = (self.upper, self.lower);
        if total == 1 {
            return Ok(match self.schedule {
                StepSchedule::Constant => l,
                _ => u,
            });
        }
        let last = total - 1;
        Ok(match self.schedule {
            StepSchedule::Linear => l + (last - k) * (u - l) / last,
            StepSchedule::Cosine => {
                let c = (std::f64::consts::PI * k as f64 / last as f64).cos();
                l + ((1.0 + c) / 2.0 * (u - l) as f64).floor() as usize
            }
            // k < (K−1)/2 with real division, i.e. 2k < K−1.
            StepSchedule::TwoStage if 2 * k < last => u,
            StepSchedule::TwoStage => l,
            StepSchedule::Constant => l,
        })
    }

    /// The steps of every iteration `0..total`.
    pub fn all_steps(&self, total: usize) -> Result<Vec<usize>> {
        (0..total).map(|k| self.steps(k, total)).collect()
    }
}
