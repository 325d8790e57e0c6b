//! Softmax and log-softmax along any dimension.

use multiversion::multiversion;
use rayon::prelude::*;

use super::lanes;
use crate::error::Result;
use crate::gpu::ops::reduce;
use crate::tensor::gpu_context;
use crate::tensor::{Tensor, outer_n_inner};

/// Numerically stable softmax of one contiguous row, in place.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub(crate) fn softmax_row(row: &mut [f32]) {
    let max = lanes::max(row);
    if max == f32::NEG_INFINITY || max.is_nan() {
        // All entries masked (or NaN present): PyTorch yields NaN, so do we.
        row.fill(f32::NAN);
        return;
    }
    for v in row.iter_mut() {
        *v = lanes::exp_f32(*v - max);
    }
    let inv = (1.0 / lanes::sum(row)) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Log-softmax of one contiguous row, in place: `x - max - ln Σ exp(x - max)`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub(crate) fn log_softmax_row(row: &mut [f32]) {
    let max = lanes::max(row);
    if max == f32::NEG_INFINITY || max.is_nan() {
        row.fill(f32::NAN);
        return;
    }
    let sum = lanes::sum_map(row, |v| lanes::exp_f32(v - max));
    let shift = max + sum.ln() as f32;
    for v in row.iter_mut() {
        *v -= shift;
    }
}

/// `f` applied to every row along `dim`; on the GPU, `softmax.wgsl` (log-softmax when `log`).
fn along(t: &Tensor, op: &'static str, dim: isize, f: fn(&mut [f32]), log: bool) -> Result<Tensor> {
    let ctx = gpu_context(op, &[t])?;
    let axis = t.axis(op, dim)?;
    let (outer, n, inner) = outer_n_inner(t.shape(), axis);
    if n == 0 || t.numel() == 0 {
        return Ok(t.clone());
    }
    if let Some(ctx) = ctx {
        return reduce::softmax(&ctx, t, (outer, n, inner), log);
    }
    let x = t.data();
    let mut out = vec![0.0f32; x.len()];
    if inner == 1 {
        // Copy row by row so each row is transformed while it is still in cache.
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(dst, row)| {
                dst.copy_from_slice(row);
                f(dst);
            });
    } else {
        out.copy_from_slice(x);
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
        along(self, "softmax", dim, softmax_row, false)
    }

    /// Log-softmax along `dim`, computed directly (not `ln(softmax)`) for accuracy.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        along(self, "log_softmax", dim, log_softmax_row, true)
    }
}
