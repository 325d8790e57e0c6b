//! Closed-form targets shared by the sampler tests: 2-D Gaussians and a two-component Gaussian
//! mixture, with their exact ε (DDPM's forward process) and velocity (the linear flow path),
//! and moment checks with statistical error bars.

#![allow(dead_code)]

use arvis_core::Tensor;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A 2×2 matrix (row-major) in f64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct M2(pub [[f64; 2]; 2]);

impl M2 {
    pub const I: M2 = M2([[1.0, 0.0], [0.0, 1.0]]);
    pub fn diag(a: f64, b: f64) -> M2 {
        M2([[a, 0.0], [0.0, b]])
    }
    pub fn scale(self, s: f64) -> M2 {
        let m = self.0;
        M2([[m[0][0] * s, m[0][1] * s], [m[1][0] * s, m[1][1] * s]])
    }
    pub fn add(self, o: M2) -> M2 {
        let (a, b) = (self.0, o.0);
        M2([
            [a[0][0] + b[0][0], a[0][1] + b[0][1]],
            [a[1][0] + b[1][0], a[1][1] + b[1][1]],
        ])
    }
    pub fn mul(self, o: M2) -> M2 {
        let (a, b) = (self.0, o.0);
        let mut r = [[0.0; 2]; 2];
        for (i, row) in r.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = a[i][0] * b[0][j] + a[i][1] * b[1][j];
            }
        }
        M2(r)
    }
    pub fn t(self) -> M2 {
        let a = self.0;
        M2([[a[0][0], a[1][0]], [a[0][1], a[1][1]]])
    }
    pub fn inv(self) -> M2 {
        let a = self.0;
        let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
        M2([
            [a[1][1] / det, -a[0][1] / det],
            [-a[1][0] / det, a[0][0] / det],
        ])
    }
    pub fn apply(self, v: [f64; 2]) -> [f64; 2] {
        let a = self.0;
        [
            a[0][0] * v[0] + a[0][1] * v[1],
            a[1][0] * v[0] + a[1][1] * v[1],
        ]
    }
}

pub fn vadd(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] + b[0], a[1] + b[1]]
}

pub fn vscale(a: [f64; 2], s: f64) -> [f64; 2] {
    [a[0] * s, a[1] * s]
}

/// Mean and covariance of a 2-D Gaussian.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    pub mean: [f64; 2],
    pub cov: M2,
}

impl Moments {
    pub const STANDARD: Moments = Moments {
        mean: [0.0, 0.0],
        cov: M2::I,
    };

    /// Moments of `A·x + k` (+ independent noise of covariance `noise`).
    pub fn affine(self, a: M2, k: [f64; 2], noise: M2) -> Moments {
        Moments {
            mean: vadd(a.apply(self.mean), k),
            cov: a.mul(self.cov).mul(a.t()).add(noise),
        }
    }

    /// A scale-free distance to `other`: the largest |Δ| over the means and covariance entries.
    pub fn distance(&self, other: &Moments) -> f64 {
        let mut d: f64 = 0.0;
        for j in 0..2 {
            d = d.max((self.mean[j] - other.mean[j]).abs());
            for k in 0..2 {
                d = d.max((self.cov.0[j][k] - other.cov.0[j][k]).abs());
            }
        }
        d
    }
}

/// Sample mean and covariance of `[N, 2]` samples, with the standard error of every entry
/// estimated from the samples themselves (valid for non-Gaussian data too).
#[derive(Clone, Debug)]
pub struct SampleMoments {
    pub n: usize,
    pub m: Moments,
    pub mean_se: [f64; 2],
    pub cov_se: [[f64; 2]; 2],
}

impl SampleMoments {
    pub fn of(samples: &Tensor) -> TestResult<SampleMoments> {
        if samples.rank() != 2 || samples.shape()[1] != 2 {
            return Err(format!("samples must be [N, 2], got {:?}", samples.shape()).into());
        }
        let v = samples.to_vec();
        let n = samples.shape()[0];
        let rows = || v.chunks_exact(2).map(|r| [r[0] as f64, r[1] as f64]);
        let mut mean = [0.0; 2];
        for r in rows() {
            mean = vadd(mean, r);
        }
        mean = vscale(mean, 1.0 / n as f64);
        let mut s1 = [[0.0f64; 2]; 2];
        let mut s2 = [[0.0f64; 2]; 2];
        for r in rows() {
            let d = [r[0] - mean[0], r[1] - mean[1]];
            for j in 0..2 {
                for k in 0..2 {
                    let p = d[j] * d[k];
                    s1[j][k] += p;
                    s2[j][k] += p * p;
                }
            }
        }
        let nf = n as f64;
        let mut cov = [[0.0; 2]; 2];
        let mut cov_se = [[0.0; 2]; 2];
        for j in 0..2 {
            for k in 0..2 {
                cov[j][k] = s1[j][k] / nf;
                let var_p = s2[j][k] / nf - cov[j][k] * cov[j][k];
                cov_se[j][k] = (var_p.max(0.0) / nf).sqrt();
            }
        }
        Ok(SampleMoments {
            n,
            m: Moments { mean, cov: M2(cov) },
            mean_se: [(cov[0][0] / nf).sqrt(), (cov[1][1] / nf).sqrt()],
            cov_se,
        })
    }

    /// Every entry within `z` standard errors plus `margin` of `want`; the message lists the
    /// worst entry.
    pub fn check(&self, want: &Moments, z: f64, margin: f64, what: &str) -> TestResult {
        let mut worst = (0.0f64, String::new());
        let mut consider = |got: f64, want: f64, se: f64, name: String| {
            let excess = (got - want).abs() - (z * se + margin);
            if excess > worst.0 {
                worst = (
                    excess,
                    format!("{name}: got {got:.5}, want {want:.5}, se {se:.2e}"),
                );
            }
        };
        for j in 0..2 {
            consider(
                self.m.mean[j],
                want.mean[j],
                self.mean_se[j],
                format!("mean[{j}]"),
            );
            for k in 0..2 {
                consider(
                    self.m.cov.0[j][k],
                    want.cov.0[j][k],
                    self.cov_se[j][k],
                    format!("cov[{j}][{k}]"),
                );
            }
        }
        if worst.0 > 0.0 {
            return Err(format!(
                "{what}: moments off by more than {z}σ + {margin} ({}); sample {:?}, expected {:?}",
                worst.1, self.m, want
            )
            .into());
        }
        Ok(())
    }
}

/// `[N, 2]` → rows of f64.
pub fn rows(x: &Tensor) -> Vec<[f64; 2]> {
    x.to_vec()
        .chunks_exact(2)
        .map(|r| [r[0] as f64, r[1] as f64])
        .collect()
}

/// Rows of f64 → `[N, C]` f32 tensor (C = 2 or 4 for `[ε | v]`).
pub fn tensor(rows: &[Vec<f64>]) -> TestResult<Tensor> {
    let c = rows.first().map_or(0, Vec::len);
    let data: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&v| v as f32))
        .collect();
    Ok(Tensor::from_vec(data, &[rows.len(), c])?)
}

/// The 1000-step cosine `ᾱ` table, written out here from its definition (not the crate's).
pub fn cosine_alphas_cumprod() -> Vec<f64> {
    let f = |t: f64| {
        ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
    };
    let mut acc = 1.0;
    (0..1000)
        .map(|i| {
            let beta = (1.0 - f((i + 1) as f64 / 1000.0) / f(i as f64 / 1000.0)).min(0.999);
            acc *= 1.0 - beta;
            acc
        })
        .collect()
}

/// A component of a 2-D Gaussian mixture with isotropic-free (diagonal or full) covariance.
#[derive(Clone, Copy, Debug)]
pub struct Component {
    pub weight: f64,
    pub mean: [f64; 2],
    pub cov: M2,
}

/// Most components a [`Mixture`] may have.
pub const MAX_COMPONENTS: usize = 2;

/// A mixture of Gaussians (one component: a Gaussian).
#[derive(Clone, Debug)]
pub struct Mixture(pub Vec<Component>);

impl Mixture {
    pub fn gaussian(mean: [f64; 2], cov: M2) -> Mixture {
        Mixture(vec![Component {
            weight: 1.0,
            mean,
            cov,
        }])
    }

    /// Mean and covariance of the mixture.
    pub fn moments(&self) -> Moments {
        let mut mean = [0.0; 2];
        for c in &self.0 {
            mean = vadd(mean, vscale(c.mean, c.weight));
        }
        let mut cov = M2([[0.0; 2]; 2]);
        for c in &self.0 {
            let d = [c.mean[0] - mean[0], c.mean[1] - mean[1]];
            let outer = M2([[d[0] * d[0], d[0] * d[1]], [d[1] * d[0], d[1] * d[1]]]);
            cov = cov.add(c.cov.add(outer).scale(c.weight));
        }
        Moments { mean, cov }
    }

    /// The per-time quantities of `y = a·x₀ + b·ε` for every component (they depend on the
    /// time only, so a model prepares them once per call, not per sample).
    pub fn at(&self, a: f64, b: f64) -> Prepared {
        assert!(!self.0.is_empty() && self.0.len() <= MAX_COMPONENTS);
        let mut comps = [None; MAX_COMPONENTS];
        for (slot, c) in comps.iter_mut().zip(&self.0) {
            let sy = c.cov.scale(a * a).add(M2::I.scale(b * b));
            let sy_inv = sy.inv();
            let det = sy.0[0][0] * sy.0[1][1] - sy.0[0][1] * sy.0[1][0];
            // Cov(x₀, y)·Σ_y⁻¹ and Var(x₀ | y) = Σ − aΣ·Σ_y⁻¹·aΣ.
            let gain = c.cov.scale(a).mul(sy_inv);
            let x0_var = c.cov.add(gain.mul(c.cov.scale(a)).scale(-1.0));
            *slot = Some(PreparedComponent {
                log_norm: c.weight.ln() - 0.5 * det.ln(),
                mean_y: vscale(c.mean, a),
                sy_inv,
                mean_x0: c.mean,
                cov_a: c.cov.scale(a),
                x0_var: [x0_var.0[0][0], x0_var.0[1][1]],
            });
        }
        Prepared { comps, b }
    }

    /// `E[ε | x_t]` and the diagonal of `Var(x₀ | x_t)` under `x_t = √ᾱ·x₀ + √(1−ᾱ)·ε`.
    pub fn eps_and_x0_var(&self, x: [f64; 2], alpha_bar: f64) -> ([f64; 2], [f64; 2]) {
        self.at(alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt())
            .eps_and_x0_var(x)
    }

    /// `E[ε − x₀ | x_t]` under `x_t = (1 − t)·x₀ + t·ε` (FlowAR's path and target).
    pub fn velocity(&self, x: [f64; 2], t: f64) -> [f64; 2] {
        self.at(1.0 - t, t).velocity(x)
    }
}

#[derive(Clone, Copy, Debug)]
struct PreparedComponent {
    log_norm: f64,
    mean_y: [f64; 2],
    sy_inv: M2,
    mean_x0: [f64; 2],
    /// Cov(x₀, y) = a·Σ.
    cov_a: M2,
    x0_var: [f64; 2],
}

/// A [`Mixture`] seen through `y = a·x₀ + b·ε` at one time.
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    comps: [Option<PreparedComponent>; MAX_COMPONENTS],
    b: f64,
}

impl Prepared {
    /// For each component: (responsibility, Σ_y⁻¹·(y − E y)); allocation-free.
    fn posterior(&self, y: [f64; 2]) -> [(f64, [f64; 2]); MAX_COMPONENTS] {
        let mut out = [(f64::NEG_INFINITY, [0.0; 2]); MAX_COMPONENTS];
        for (o, c) in out.iter_mut().zip(&self.comps) {
            if let Some(c) = c {
                let d = [y[0] - c.mean_y[0], y[1] - c.mean_y[1]];
                let q = c.sy_inv.apply(d);
                *o = (c.log_norm - 0.5 * (d[0] * q[0] + d[1] * q[1]), q);
            }
        }
        let max = out.iter().map(|o| o.0).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = out.iter().map(|o| (o.0 - max).exp()).sum();
        for o in &mut out {
            o.0 = (o.0 - max).exp() / z;
        }
        out
    }

    /// `E[ε | y]` (Cov(ε, y) = b·I) and the diagonal of `Var(x₀ | y)`.
    pub fn eps_and_x0_var(&self, y: [f64; 2]) -> ([f64; 2], [f64; 2]) {
        let mut eps = [0.0; 2];
        let mut m1 = [0.0; 2];
        let mut m2 = [0.0; 2];
        for ((r, q), c) in self.posterior(y).into_iter().zip(&self.comps) {
            let Some(c) = c else { continue };
            eps = vadd(eps, vscale(q, r * self.b));
            let mx0 = vadd(c.mean_x0, c.cov_a.apply(q));
            for j in 0..2 {
                m1[j] += r * mx0[j];
                m2[j] += r * (c.x0_var[j] + mx0[j] * mx0[j]);
            }
        }
        (eps, [m2[0] - m1[0] * m1[0], m2[1] - m1[1] * m1[1]])
    }

    /// `E[ε − x₀ | y]` with `y = (1 − t)·x₀ + t·ε` (`b = t`).
    pub fn velocity(&self, y: [f64; 2]) -> [f64; 2] {
        let mut v = [0.0; 2];
        for ((r, q), c) in self.posterior(y).into_iter().zip(&self.comps) {
            let Some(c) = c else { continue };
            let e = vscale(q, self.b);
            let mx0 = vadd(c.mean_x0, c.cov_a.apply(q));
            v = vadd(v, vscale([e[0] - mx0[0], e[1] - mx0[1]], r));
        }
        v
    }
}
