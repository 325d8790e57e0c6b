//! Softmax and log-softmax along any dimension.

use rayon::prelude::*;

use crate::error::Result;
use crate::tensor::{Tensor, outer_n_inner};

/// Numerically stable softmax of one contiguous row, in place.
pub(crate) fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        // All entries masked: PyTorch yields NaN; keep the row as is (-inf) would poison callers
        // silently, so match PyTorch.
        row.fill(f32::NAN);
        return;
    }
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Log-softmax of one contiguous row, in place: `x - max - ln Σ exp(x - max)`.
pub(crate) fn log_softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(f32::NAN);
        return;
    }
    let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
    let shift = max + sum.ln();
    for v in row.iter_mut() {
        *v -= shift;
    }
}

fn along(t: &Tensor, op: &'static str, dim: isize, f: fn(&mut [f32])) -> Result<Tensor> {
    let axis = t.axis(op, dim)?;
    let (_, n, inner) = outer_n_inner(t.shape(), axis);
    let mut out = t.to_vec();
    if n == 0 || out.is_empty() {
        return Tensor::from_vec(out, t.shape());
    }
    if inner == 1 {
        out.par_chunks_mut(n).for_each(f);
    } else {
        // Strided rows: gather each into a scratch row, transform, scatter back.
        out.par_chunks_mut(n * inner).for_each(|block| {
            let mut row = vec![0.0f32; n];
            for j in 0..inner {
                for i in 0..n {
                    row[i] = block[i * inner + j];
                }
                f(&mut row);
                for i in 0..n {
                    block[i * inner + j] = row[i];
                }
            }
        });
    }
    Tensor::from_vec(out, t.shape())
}

impl Tensor {
    /// Softmax along `dim` (negative counts from the end). A row that is entirely `-inf`
    /// becomes NaN, as in PyTorch.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        along(self, "softmax", dim, softmax_row)
    }

    /// Log-softmax along `dim`, computed directly (not `ln(softmax)`) for accuracy.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        along(self, "log_softmax", dim, log_softmax_row)
    }
}
