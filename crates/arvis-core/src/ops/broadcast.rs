//! Elementwise binary ops with numpy broadcasting, and scalar ops.

use ndarray::{ArrayD, IxDyn, Zip};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::gpu::ops::elementwise::{self, BinaryOp, UnaryOp};
use crate::tensor::{Tensor, gpu_context, numel, via_host};

/// Below this many elements an elementwise op runs on one thread (rayon's overhead dominates).
pub(crate) const PAR_MIN: usize = 1 << 14;

/// The numpy broadcast of two shapes, or `None` if they are incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() {
            1
        } else {
            a[i - (rank - a.len())]
        };
        let db = if i < rank - b.len() {
            1
        } else {
            b[i - (rank - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// `true` when `b` (leading 1s stripped) equals the trailing dims of `a`: then `b` repeats
/// contiguously along `a` and needs no index arithmetic.
fn is_trailing(a: &[usize], b: &[usize]) -> bool {
    let b = &b[b.iter().take_while(|&&d| d == 1).count()..];
    b.len() <= a.len() && a[a.len() - b.len()..] == *b
}

/// Generic over the operation so each op is monomorphised and inlined into its loops (a function
/// pointer would cost a call per element and block vectorisation).
fn binary<F>(op: &'static str, a: &Tensor, b: &Tensor, gpu_op: BinaryOp, f: F) -> Result<Tensor>
where
    F: Fn(f32, f32) -> f32 + Copy + Send + Sync,
{
    let (sa, sb) = (a.shape(), b.shape());
    let out_shape = broadcast_shapes(sa, sb).ok_or_else(|| Error::Broadcast {
        op,
        lhs: sa.to_vec(),
        rhs: sb.to_vec(),
    })?;
    if let Some(ctx) = gpu_context(op, &[a, b])? {
        return elementwise::binary(&ctx, op, a, b, gpu_op, &out_shape);
    }
    let n = numel(&out_shape);
    let (x, y) = (a.data(), b.data());
    let mut out = vec![0.0f32; n];
    if sa == sb {
        let kernel = |(o, (&p, &q)): (&mut f32, (&f32, &f32))| *o = f(p, q);
        if n >= PAR_MIN {
            out.par_iter_mut()
                .zip(x.par_iter().zip(y.par_iter()))
                .for_each(kernel);
        } else {
            out.iter_mut().zip(x.iter().zip(y.iter())).for_each(kernel);
        }
    } else if out_shape == sa && is_trailing(sa, sb) && !y.is_empty() {
        // e.g. a bias [C] added to [N, L, C]: the rhs repeats every y.len() elements.
        let chunk = |(o, xs): (&mut [f32], &[f32])| {
            for ((o, &p), &q) in o.iter_mut().zip(xs).zip(y) {
                *o = f(p, q);
            }
        };
        if n >= PAR_MIN {
            out.par_chunks_mut(y.len())
                .zip(x.par_chunks(y.len()))
                .for_each(chunk);
        } else {
            out.chunks_mut(y.len())
                .zip(x.chunks(y.len()))
                .for_each(chunk);
        }
    } else if out_shape == sb && is_trailing(sb, sa) && !x.is_empty() {
        let chunk = |(o, ys): (&mut [f32], &[f32])| {
            for ((o, &q), &p) in o.iter_mut().zip(ys).zip(x) {
                *o = f(p, q);
            }
        };
        out.par_chunks_mut(x.len())
            .zip(y.par_chunks(x.len()))
            .for_each(chunk);
    } else {
        let av = a.to_ndarray();
        let bv = b.to_ndarray();
        let dim = IxDyn(&out_shape);
        let (Some(av), Some(bv)) = (av.broadcast(dim.clone()), bv.broadcast(dim.clone())) else {
            return Err(Error::Broadcast {
                op,
                lhs: sa.to_vec(),
                rhs: sb.to_vec(),
            });
        };
        let mut o = ArrayD::<f32>::zeros(dim);
        Zip::from(&mut o)
            .and(&av)
            .and(&bv)
            .par_for_each(|o, &p, &q| *o = f(p, q));
        return Ok(Tensor::from_ndarray(o));
    }
    Tensor::from_vec(out, &out_shape)
}

impl Tensor {
    /// Elementwise `self + rhs` with broadcasting.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        binary("add", self, rhs, BinaryOp::Add, |a, b| a + b)
    }

    /// Elementwise `self - rhs` with broadcasting.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        binary("sub", self, rhs, BinaryOp::Sub, |a, b| a - b)
    }

    /// Elementwise `self * rhs` with broadcasting.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        binary("mul", self, rhs, BinaryOp::Mul, |a, b| a * b)
    }

    /// Elementwise `self / rhs` with broadcasting.
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        binary("div", self, rhs, BinaryOp::Div, |a, b| a / b)
    }

    /// Applies `f` to every element (rayon-parallel for large tensors). A closure cannot run on
    /// the GPU: a GPU tensor makes a round trip through host memory (prefer the named ops).
    ///
    /// Errors: [`Error::Gpu`] when that round trip fails.
    pub fn map(&self, f: impl Fn(f32) -> f32 + Sync + Send) -> Result<Tensor> {
        if let Some(ctx) = gpu_context("map", &[self])? {
            return via_host(&ctx, &[self], |h| h[0].map(f));
        }
        let x = self.data();
        let out: Vec<f32> = if x.len() >= PAR_MIN {
            x.par_iter().map(|&v| f(v)).collect()
        } else {
            x.iter().map(|&v| f(v)).collect()
        };
        Tensor::from_vec(out, self.shape())
    }

    /// `self * s`.
    pub fn scale(&self, s: f32) -> Result<Tensor> {
        self.affine(s, 0.0)
    }

    /// `self + s`.
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(1.0, s)
    }

    /// `a·self + b` elementwise: the affine map used by CFG mixing and `[-1,1] ↔ [0,1]`.
    pub fn affine(&self, a: f32, b: f32) -> Result<Tensor> {
        if let Some(ctx) = gpu_context("affine", &[self])? {
            return elementwise::unary(&ctx, self, UnaryOp::Affine, a, b);
        }
        self.map(|v| a * v + b)
    }
}
