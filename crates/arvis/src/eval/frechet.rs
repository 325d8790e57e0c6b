//! Feature statistics and the Fréchet distance between two Gaussians, in `f64`.
//!
//! `FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2})` (the formula behind FID). `tr (Σ₁Σ₂)^{1/2}`
//! is computed without a non-symmetric matrix square root: `Σ₁Σ₂` is similar to the symmetric
//! positive semi-definite `M = Σ₁^{1/2} Σ₂ Σ₁^{1/2}`, so the trace is `Σ √λᵢ(M)`. Both
//! eigendecompositions (of `Σ₁`, for its square root, and of `M`) use the cyclic Jacobi method
//! below; eigenvalues that rounding pushes slightly below zero are clamped to zero.

use arvis_core::Tensor;

use crate::error::Result;

/// Largest number of Jacobi sweeps; the method converges quadratically, a 128×128 covariance
/// takes about 8.
const MAX_SWEEPS: usize = 100;

/// Mean and covariance of a set of feature vectors, in `f64`.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureStats {
    mean: Vec<f64>,
    cov: Vec<f64>,
}

impl FeatureStats {
    /// From a mean `[D]` and a row-major covariance `[D·D]`. Errors on a size mismatch or a
    /// non-finite value.
    pub fn new(mean: Vec<f64>, cov: Vec<f64>) -> Result<Self> {
        let d = mean.len();
        if cov.len() != d * d {
            return Err(shape_err(
                "FeatureStats::new",
                format!("covariance of {d}x{d}"),
                &[cov.len()],
            ));
        }
        if mean.iter().chain(&cov).any(|v| !v.is_finite()) {
            return Err(arg_err(
                "FeatureStats::new",
                "non-finite mean or covariance",
            ));
        }
        Ok(FeatureStats { mean, cov })
    }

    /// From stored tensors: `mu` `[D]`, `sigma` `[D, D]`.
    pub fn from_tensors(mu: &Tensor, sigma: &Tensor) -> Result<Self> {
        let d = mu.numel();
        if mu.rank() != 1 || sigma.shape() != [d, d] {
            return Err(shape_err(
                "FeatureStats::from_tensors",
                format!("mu [D], sigma [D, D] with D = {d}"),
                sigma.shape(),
            ));
        }
        let f64s = |t: &Tensor| t.to_vec().into_iter().map(f64::from).collect();
        Self::new(f64s(mu), f64s(sigma))
    }

    /// Mean and unbiased covariance (normalised by `N − 1`, as `numpy.cov`) of the rows of
    /// `features` `[N, D]`, `N ≥ 2`, accumulated in `f64`.
    pub fn from_features(features: &Tensor) -> Result<Self> {
        let s = features.shape();
        if s.len() != 2 || s[0] < 2 || s[1] == 0 {
            return Err(shape_err(
                "FeatureStats::from_features",
                "[N, D] with N >= 2, D >= 1",
                s,
            ));
        }
        let (n, d) = (s[0], s[1]);
        let x = features.to_vec();
        let mut mean = vec![0.0f64; d];
        for row in x.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0f64; d * d];
        let mut centred = vec![0.0f64; d];
        for row in x.chunks_exact(d) {
            for ((c, &v), m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = f64::from(v) - m;
            }
            for i in 0..d {
                let ci = centred[i];
                if ci != 0.0 {
                    let out = &mut cov[i * d..i * d + i + 1];
                    for (o, &cj) in out.iter_mut().zip(&centred[..=i]) {
                        *o += ci * cj;
                    }
                }
            }
        }
        for i in 0..d {
            for j in 0..=i {
                let v = cov[i * d + j] / (n - 1) as f64;
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        Self::new(mean, cov)
    }

    /// Feature dimension `D`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The mean `[D]`.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The covariance, row-major `[D·D]`.
    pub fn cov(&self) -> &[f64] {
        &self.cov
    }

    /// [`frechet_distance`] between `self` and `other`.
    pub fn frechet_distance(&self, other: &FeatureStats) -> Result<f64> {
        frechet_distance(&self.mean, &self.cov, &other.mean, &other.cov)
    }
}

/// Fréchet distance `‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2})` between `N(μ₁, Σ₁)` and
/// `N(μ₂, Σ₂)`; covariances are row-major `D·D`, symmetric positive semi-definite (rank-deficient
/// is fine: fewer samples than dimensions). Computed in `f64` (see the module docs) after
/// dropping the dimensions that are zero in both covariances; a result that rounding makes
/// negative (identical inputs give `≈ −1e-13`) is returned as `0`.
///
/// Accuracy: about `1e-12` relative for full-rank covariances. A zero eigenvalue of
/// `Σ₁^{1/2} Σ₂ Σ₁^{1/2}` is only known to `≈ ε‖Σ‖²`, and its square root to `≈ √ε ‖Σ‖`, so
/// every such direction that is not an exactly zero row can add up to `~1e-8·‖Σ‖` (as with any
/// eigenvalue-based FID code).
///
/// Errors on mismatched sizes or non-finite inputs.
pub fn frechet_distance(mu1: &[f64], sigma1: &[f64], mu2: &[f64], sigma2: &[f64]) -> Result<f64> {
    let d = mu1.len();
    if mu2.len() != d || sigma1.len() != d * d || sigma2.len() != d * d {
        return Err(shape_err(
            "frechet_distance",
            format!("mu1, mu2 of length {d}, sigma1, sigma2 of {d}x{d}"),
            &[mu2.len(), sigma1.len(), sigma2.len()],
        ));
    }
    if mu1
        .iter()
        .chain(mu2)
        .chain(sigma1)
        .chain(sigma2)
        .any(|v| !v.is_finite())
    {
        return Err(arg_err("frechet_distance", "non-finite mean or covariance"));
    }
    let mean_term: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    // Dimensions whose row and column are zero in both covariances (dead ReLU units) add exactly
    // nothing to the trace terms: leave them out of the eigenproblems.
    let live: Vec<usize> = (0..d)
        .filter(|&i| {
            (0..d).any(|j| {
                [sigma1, sigma2]
                    .iter()
                    .any(|s| s[i * d + j] != 0.0 || s[j * d + i] != 0.0)
            })
        })
        .collect();
    let n = live.len();
    let restrict = |s: &[f64]| -> Vec<f64> {
        live.iter()
            .flat_map(|&i| live.iter().map(move |&j| s[i * d + j]))
            .collect()
    };
    let (s1, s2) = (restrict(sigma1), restrict(sigma2));
    let trace = |s: &[f64]| (0..n).map(|i| s[i * n + i]).sum::<f64>();
    let cross = trace_sqrt_product(&s1, &s2, n)?;
    Ok((mean_term + trace(&s1) + trace(&s2) - 2.0 * cross).max(0.0))
}

/// `tr (Σ₁Σ₂)^{1/2}` for symmetric PSD `Σ₁`, `Σ₂` (`n×n`, row-major): `Σ √λᵢ` over the
/// eigenvalues of `Σ₁^{1/2} Σ₂ Σ₁^{1/2}`, negative ones clamped to zero.
pub fn trace_sqrt_product(sigma1: &[f64], sigma2: &[f64], n: usize) -> Result<f64> {
    let root = sqrt_psd(sigma1, n)?;
    let m = matmul(&matmul(&root, sigma2, n), &root, n);
    let eig = symmetric_eigen(&m, n)?;
    Ok(eig.values.iter().map(|&l| l.max(0.0).sqrt()).sum())
}

/// The symmetric square root `V diag(√max(λ, 0)) Vᵀ` of a symmetric PSD matrix.
pub fn sqrt_psd(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let eig = symmetric_eigen(a, n)?;
    let roots: Vec<f64> = eig.values.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let v = &eig.vectors;
    let mut out = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..n).map(|k| v[i * n + k] * roots[k] * v[j * n + k]).sum();
            out[i * n + j] = s;
            out[j * n + i] = s;
        }
    }
    Ok(out)
}

/// Eigenvalues and eigenvectors of a symmetric matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct SymmetricEigen {
    /// Eigenvalues, ascending.
    pub values: Vec<f64>,
    /// Eigenvectors as the columns of a row-major `n×n` matrix: `vectors[i·n + k]` is component
    /// `i` of the eigenvector of `values[k]`. Orthonormal.
    pub vectors: Vec<f64>,
}

/// Eigendecomposition `A = V diag(λ) Vᵀ` of a symmetric `n×n` matrix (row-major; the strict
/// lower triangle is mirrored from the upper one after averaging both) by the cyclic Jacobi
/// method: sweeps of plane rotations over every pair `p < q` until the off-diagonal Frobenius
/// norm is below `1e-15·‖A‖_F` (at most 100 sweeps). Accurate to a few ulps of `‖A‖` for every
/// eigenvalue; `O(n³)` per sweep.
///
/// Errors on a size mismatch or a non-finite entry.
pub fn symmetric_eigen(a: &[f64], n: usize) -> Result<SymmetricEigen> {
    if a.len() != n * n {
        return Err(shape_err(
            "symmetric_eigen",
            format!("{n}x{n} matrix"),
            &[a.len()],
        ));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(arg_err("symmetric_eigen", "non-finite entry"));
    }
    let mut m = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
        }
    }
    let mut v = vec![0.0f64; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    let norm2: f64 = m.iter().map(|x| x * x).sum();
    let tol2 = norm2 * 1e-30;
    for _ in 0..MAX_SWEEPS {
        let off2: f64 = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| 2.0 * m[i * n + j] * m[i * n + j])
            .sum();
        if off2 <= tol2 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                rotate(&mut m, &mut v, n, p, q);
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[i * n + i].total_cmp(&m[j * n + j]));
    let values = order.iter().map(|&k| m[k * n + k]).collect();
    let mut vectors = vec![0.0f64; n * n];
    for (col, &k) in order.iter().enumerate() {
        for i in 0..n {
            vectors[i * n + col] = v[i * n + k];
        }
    }
    Ok(SymmetricEigen { values, vectors })
}

/// One Jacobi rotation `A ← JᵀAJ`, `V ← VJ` in the plane `(p, q)` that zeroes `A[p][q]`.
fn rotate(m: &mut [f64], v: &mut [f64], n: usize, p: usize, q: usize) {
    let apq = m[p * n + q];
    if apq == 0.0 {
        return;
    }
    let (app, aqq) = (m[p * n + p], m[q * n + q]);
    let theta = (aqq - app) / (2.0 * apq);
    // The smaller root of t² + 2θt − 1 = 0 (rotation angle ≤ π/4), overflow-safe.
    let t = theta.signum() / (theta.abs() + theta.hypot(1.0));
    let c = 1.0 / t.hypot(1.0);
    let s = t * c;
    for k in 0..n {
        let (akp, akq) = (m[k * n + p], m[k * n + q]);
        m[k * n + p] = c * akp - s * akq;
        m[k * n + q] = s * akp + c * akq;
    }
    for k in 0..n {
        let (apk, aqk) = (m[p * n + k], m[q * n + k]);
        m[p * n + k] = c * apk - s * aqk;
        m[q * n + k] = s * apk + c * aqk;
    }
    m[p * n + q] = 0.0;
    m[q * n + p] = 0.0;
    for k in 0..n {
        let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
        v[k * n + p] = c * vkp - s * vkq;
        v[k * n + q] = s * vkp + c * vkq;
    }
}

/// Row-major `n×n` product.
fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik != 0.0 {
                let (row, brow) = (&mut out[i * n..(i + 1) * n], &b[k * n..(k + 1) * n]);
                row.iter_mut().zip(brow).for_each(|(o, &bv)| *o += aik * bv);
            }
        }
    }
    out
}

pub(crate) fn shape_err(
    op: &'static str,
    expected: impl Into<String>,
    found: &[usize],
) -> crate::Error {
    arvis_core::Error::Shape {
        op,
        expected: expected.into(),
        found: found.to_vec(),
    }
    .into()
}

pub(crate) fn arg_err(op: &'static str, msg: impl Into<String>) -> crate::Error {
    arvis_core::Error::Arg {
        op,
        msg: msg.into(),
    }
    .into()
}
