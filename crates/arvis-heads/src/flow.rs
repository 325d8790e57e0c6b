//! Flow-matching heads: a velocity-model interface and the Euler / Heun samplers FlowAR and xAR
//! use, on an `f64` time grid, with classifier-free guidance inside a time interval.
//!
//! Convention (FlowAR's `SILoss`): `x_t = (1 − t)·x₀ + t·ε` with data `x₀` at `t = 0` and noise
//! `ε ~ N(0, I)` at `t = 1`; the model predicts `v = ε − x₀`, and sampling integrates
//! `dx/dt = v` from `t = 1` down to `t = 0`: `x ← x + (t_next − t)·v`.
//!
//! Times and step sizes are `f64` (the reference samples in float64); the state is an `f32`
//! tensor, so the model runs on either device.

use arvis_core::Tensor;

use crate::error::{HeadError, Result};
use crate::noise::NoiseSource;

/// A velocity field `v(x, t)` for a fixed batch of conditions.
///
/// A model used with guidance holds `2B` conditions `[cond; uncond]`. It is called with `2B`
/// rows (`[x; x]`) while guidance is active, and with the `B` conditional rows otherwise (the
/// reference evolves the unconditional half too, but never uses it).
pub trait VelocityModel {
    /// `v(x, t)`, the same shape as `x` (`[rows, C]`).
    fn velocity(&self, x: &Tensor, t: f64) -> Result<Tensor>;
}

/// Classifier-free guidance `v = v_u + scale·(v_c − v_u)`, applied at steps whose start time
/// lies in `[t_lo, t_hi]` and only when `scale > 1` (FlowAR's `guidance_low/high`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guidance {
    /// The guidance scale.
    pub scale: f32,
    /// Lowest time at which guidance applies.
    pub t_lo: f64,
    /// Highest time at which guidance applies (FlowAR-S/L: 0.9, FlowAR-H: 0.7).
    pub t_hi: f64,
}

impl Guidance {
    /// Guidance at every time.
    pub fn always(scale: f32) -> Self {
        Guidance {
            scale,
            t_lo: 0.0,
            t_hi: 1.0,
        }
    }

    /// Whether a step starting at `t` is guided.
    pub fn active(&self, t: f64) -> bool {
        self.scale > 1.0 && t >= self.t_lo && t <= self.t_hi
    }
}

/// A strictly decreasing time grid from the noise end to the data end.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeGrid(Vec<f64>);

impl TimeGrid {
    /// From explicit times.
    ///
    /// Errors: [`HeadError::Config`] when fewer than two times are given or they are not
    /// strictly decreasing and finite.
    pub fn new(times: Vec<f64>) -> Result<Self> {
        let ok = times.len() >= 2
            && times.iter().all(|t| t.is_finite())
            && times.windows(2).all(|w| w[1] < w[0]);
        if !ok {
            return Err(HeadError::config(
                "time grid",
                format!("need ≥ 2 finite, strictly decreasing times, got {times:?}"),
            ));
        }
        Ok(TimeGrid(times))
    }

    /// `torch.linspace(start, end, n)` in float64, element for element (the first half counted
    /// from `start`, the second from `end`).
    pub fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
        match n {
            0 => Vec::new(),
            1 => vec![start],
            _ => {
                let step = (end - start) / (n - 1) as f64;
                let half = n / 2;
                (0..n)
                    .map(|i| {
                        if i < half {
                            start + step * i as f64
                        } else {
                            end - step * (n - i - 1) as f64
                        }
                    })
                    .collect()
            }
        }
    }

    /// `steps` equal steps from 1 to 0 (`linspace(1, 0, steps + 1)`).
    pub fn uniform(steps: usize) -> Result<Self> {
        Self::new(Self::linspace(1.0, 0.0, steps + 1))
    }

    /// FlowAR's `euler_sampler` grid for `num_steps`: `linspace(1, 0, 51)` for 50, otherwise
    /// `linspace(1, 0.3, n/2)` then `linspace(0.25, 0, n/2 + 1)` (25 gives 24 steps).
    pub fn flowar(num_steps: usize) -> Result<Self> {
        if num_steps == 50 {
            return Self::uniform(50);
        }
        let mut t = Self::linspace(1.0, 0.3, num_steps / 2);
        t.extend(Self::linspace(0.25, 0.0, num_steps / 2 + 1));
        Self::new(t)
    }

    /// The times.
    pub fn times(&self) -> &[f64] {
        &self.0
    }

    /// Number of steps (times − 1).
    pub fn steps(&self) -> usize {
        self.0.len() - 1
    }
}

/// The integration rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowMethod {
    /// `x ← x + Δt·v(x, t)`: one model call per step.
    Euler,
    /// Heun's second-order rule `x ← x + Δt·(v(x, t) + v(x̃, t_next))/2` with the Euler
    /// predictor `x̃`, except on the last step, which is Euler (SiT's sampler: the velocity at
    /// the data end is often ill-defined). Two model calls per step.
    Heun,
}

/// An ODE sampler for a flow-matching head.
#[derive(Clone, Debug)]
pub struct FlowSampler {
    grid: TimeGrid,
    method: FlowMethod,
}

impl FlowSampler {
    /// A sampler on `grid` with `method`.
    pub fn new(grid: TimeGrid, method: FlowMethod) -> Self {
        FlowSampler { grid, method }
    }

    /// The grid.
    pub fn grid(&self) -> &TimeGrid {
        &self.grid
    }

    /// The rule.
    pub fn method(&self) -> FlowMethod {
        self.method
    }

    /// Integrates from the noise `x1` `[B, C]` at the grid's first time to its last.
    ///
    /// Errors: the model's; [`HeadError::Shape`] when the model returns another shape.
    pub fn sample(
        &self,
        model: &dyn VelocityModel,
        x1: &Tensor,
        guidance: Option<Guidance>,
    ) -> Result<Tensor> {
        let times = self.grid.times();
        let last = times.len() - 2;
        let mut x = x1.clone();
        for (i, w) in times.windows(2).enumerate() {
            let (t, t_next) = (w[0], w[1]);
            let dt = t_next - t;
            let guided = guidance.filter(|g| g.active(t));
            let d = guided_velocity(model, &x, t, guided)?;
            let euler = x.add(&d.scale(dt as f32)?)?;
            x = match self.method {
                FlowMethod::Heun if i < last => {
                    let d2 = guided_velocity(model, &euler, t_next, guided)?;
                    x.add(&d.add(&d2)?.scale((0.5 * dt) as f32)?)?
                }
                _ => euler,
            };
        }
        Ok(x)
    }

    /// Draws the initial noise `[batch, channels]` from `noise` and integrates
    /// ([`FlowSampler::sample`]).
    pub fn sample_from(
        &self,
        model: &dyn VelocityModel,
        batch: usize,
        channels: usize,
        guidance: Option<Guidance>,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let x1 = noise.initial(&[batch, channels])?;
        self.sample(model, &x1, guidance)
    }
}

/// `v(x, t)`, guided on `[x; x]` when `guidance` is given.
fn guided_velocity(
    model: &dyn VelocityModel,
    x: &Tensor,
    t: f64,
    guidance: Option<Guidance>,
) -> Result<Tensor> {
    let Some(g) = guidance else {
        let v = model.velocity(x, t)?;
        check(&v, x.shape())?;
        return Ok(v);
    };
    let rows = x.shape()[0];
    let v = model.velocity(&Tensor::concat(&[x, x], 0)?, t)?;
    let mut want = x.shape().to_vec();
    want[0] = 2 * rows;
    check(&v, &want)?;
    let (c, u) = (v.narrow(0, 0, rows)?, v.narrow(0, rows, rows)?);
    Ok(u.add(&c.sub(&u)?.scale(g.scale)?)?)
}

fn check(v: &Tensor, want: &[usize]) -> Result<()> {
    if v.shape() != want {
        return Err(HeadError::shape(
            "FlowSampler::sample",
            format!("velocity {want:?}"),
            v.shape(),
        ));
    }
    Ok(())
}
