//! Where the samplers' Gaussian noise comes from: a seeded stream, or draws recorded elsewhere
//! (the reference's torch draws, replayed by the golden tests).

use arvis_core::{Device, SeededRng, Tensor};

use crate::error::{HeadError, Result};

/// A source of standard-normal tensors for a sampler.
///
/// A sampler asks for the initial noise once, then for step `i`'s noise (respaced step index,
/// or time-grid index) only when that step adds noise, in the order it runs the steps.
pub trait NoiseSource {
    /// The initial noise `x_T` (or `x₁` of a flow) of `shape`.
    fn initial(&mut self, shape: &[usize]) -> Result<Tensor>;

    /// The noise added by step `step`, of `shape`.
    fn step(&mut self, step: usize, shape: &[usize]) -> Result<Tensor>;
}

/// Seeded draws, in the documented order: the initial noise row-major, then each noisy step's
/// noise row-major, in the order the sampler runs (`arvis_core::rng` fixes the conversion).
impl NoiseSource for SeededRng {
    fn initial(&mut self, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::randn(shape, self))
    }

    fn step(&mut self, _step: usize, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::randn(shape, self))
    }
}

/// Noise recorded elsewhere: one initial tensor and one tensor per step, indexed by the
/// sampler's step index (steps that add no noise may hold anything of the right shape).
#[derive(Clone, Debug)]
pub struct RecordedNoise {
    initial: Tensor,
    steps: Vec<Tensor>,
}

impl RecordedNoise {
    /// From the initial noise and the per-step noise (`steps[i]` for step `i`).
    pub fn new(initial: Tensor, steps: Vec<Tensor>) -> Self {
        RecordedNoise { initial, steps }
    }

    /// From the initial noise and a stacked `[steps, ..]` tensor.
    pub fn from_stacked(initial: Tensor, stacked: &Tensor) -> Result<Self> {
        let Some(&n) = stacked.shape().first() else {
            return Err(HeadError::shape(
                "RecordedNoise::from_stacked",
                "[steps, ..]",
                stacked.shape(),
            ));
        };
        let inner: Vec<usize> = stacked.shape()[1..].to_vec();
        let steps = (0..n)
            .map(|i| stacked.narrow(0, i, 1)?.reshape(&inner))
            .collect::<arvis_core::Result<Vec<_>>>()?;
        Ok(RecordedNoise::new(initial, steps))
    }
}

fn check(what: &str, t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if t.shape() != shape {
        return Err(HeadError::Noise(format!(
            "{what} has shape {:?}, the sampler needs {shape:?}",
            t.shape()
        )));
    }
    Ok(t.clone())
}

impl NoiseSource for RecordedNoise {
    fn initial(&mut self, shape: &[usize]) -> Result<Tensor> {
        check("initial noise", &self.initial, shape)
    }

    fn step(&mut self, step: usize, shape: &[usize]) -> Result<Tensor> {
        let t = self.steps.get(step).ok_or_else(|| {
            HeadError::Noise(format!(
                "no noise recorded for step {step} ({} recorded)",
                self.steps.len()
            ))
        })?;
        check(&format!("noise of step {step}"), t, shape)
    }
}

/// Another source's draws, uploaded to `device`: the draws stay on the host (the same seeded
/// stream, or the same recorded tensors, on every device), and each one is moved once to where
/// the model computes. [`crate::DiffusionHead::sample`] wraps its source in this.
pub struct OnDevice<'a> {
    source: &'a mut dyn NoiseSource,
    device: Device,
}

impl<'a> OnDevice<'a> {
    /// `source`'s draws on `device`.
    pub fn new(source: &'a mut dyn NoiseSource, device: Device) -> Self {
        OnDevice { source, device }
    }
}

impl NoiseSource for OnDevice<'_> {
    fn initial(&mut self, shape: &[usize]) -> Result<Tensor> {
        Ok(self.source.initial(shape)?.to_device(self.device)?)
    }

    fn step(&mut self, step: usize, shape: &[usize]) -> Result<Tensor> {
        Ok(self.source.step(step, shape)?.to_device(self.device)?)
    }
}
