//! [`Tolerance`]: how close two f32 results must be, shared by every kernel test in arvis.
//!
//! A pair passes when `|actual − expected| ≤ abs + rel·|expected|` elementwise (numpy's
//! `allclose`). Presets follow the project's rule: f32 elementwise ops `rel 1e-4`, matmul and
//! attention `rel 1e-3` (reductions of length k accumulate rounding), f16 storage `rel 1e-2`.

use std::fmt;

/// Relative and absolute tolerance for comparing a result against a reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative part, scaled by `|expected|`.
    pub rel: f64,
    /// Absolute floor, for expected values near zero.
    pub abs: f64,
}

/// The worst element of a failed comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// Flat row-major index.
    pub index: usize,
    /// Value produced.
    pub actual: f64,
    /// Reference value.
    pub expected: f64,
    /// Number of elements out of tolerance.
    pub count: usize,
    /// Tolerance that was applied.
    pub tol: Tolerance,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} element(s) out of tolerance (rel {:e}, abs {:e}); worst at {}: got {}, expected {} (|Δ| = {:e})",
            self.count,
            self.tol.rel,
            self.tol.abs,
            self.index,
            self.actual,
            self.expected,
            (self.actual - self.expected).abs()
        )
    }
}

impl std::error::Error for Mismatch {}

impl Tolerance {
    /// f32 elementwise ops (activations, norms, resampling): rel 1e-4.
    pub const ELEMENTWISE: Tolerance = Tolerance {
        rel: 1e-4,
        abs: 1e-5,
    };
    /// f32 reductions over a long axis (matmul, conv, attention): rel 1e-3.
    pub const MATMUL: Tolerance = Tolerance {
        rel: 1e-3,
        abs: 1e-4,
    };
    /// f16 storage: rel 1e-2.
    pub const F16: Tolerance = Tolerance {
        rel: 1e-2,
        abs: 1e-3,
    };

    /// A custom tolerance.
    pub const fn new(rel: f64, abs: f64) -> Self {
        Tolerance { rel, abs }
    }

    /// Compares `actual` with `expected` (f32 or f64 references both convert to f64). Lengths
    /// must match; NaN only matches NaN.
    pub fn check<A, E>(&self, actual: &[A], expected: &[E]) -> Result<(), Mismatch>
    where
        A: Copy + Into<f64>,
        E: Copy + Into<f64>,
    {
        if actual.len() != expected.len() {
            return Err(Mismatch {
                index: actual.len().min(expected.len()),
                actual: actual.len() as f64,
                expected: expected.len() as f64,
                count: usize::MAX,
                tol: *self,
            });
        }
        let mut worst: Option<(usize, f64, f64, f64)> = None;
        let mut count = 0;
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            let (a, e): (f64, f64) = (a.into(), e.into());
            let excess = if a.is_nan() || e.is_nan() {
                if a.is_nan() && e.is_nan() {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else if a == e {
                0.0 // equal infinities
            } else {
                (a - e).abs() - (self.abs + self.rel * e.abs())
            };
            if excess > 0.0 || excess.is_nan() {
                count += 1;
                if worst.is_none_or(|w| excess > w.3) {
                    worst = Some((i, a, e, excess));
                }
            }
        }
        match worst {
            None => Ok(()),
            Some((index, actual, expected, _)) => Err(Mismatch {
                index,
                actual,
                expected,
                count,
                tol: *self,
            }),
        }
    }
}
