//! Matrix products: batched matmul with transposes, and linear layers.

use rayon::prelude::*;

use super::broadcast::broadcast_shapes;
use super::gemm::{MatRef, sgemm};
use super::unary::Activation;
use crate::error::{Error, Result};
use crate::gpu::ops::linalg::{self, Gemm, batch_strides};
use crate::tensor::{Tensor, numel};
use crate::tensor::{gpu_context, operands};

/// Up to this many rows, [`Tensor::linear`] multiplies in the transposed orientation.
const SKINNY_ROWS: usize = 96;

impl Tensor {
    /// Batched matrix product `[.., m, k] · [.., k, n] → [.., m, n]`; batch dims broadcast
    /// (numpy rules), so `[B, m, k] · [k, n]` shares the right operand.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.matmul_t(rhs, false, false)
    }

    /// Batched matrix product with optional transposes of the last two dims of either operand:
    /// `op(a) · op(b)` where `op(x) = xᵀ` when its flag is set. No transposed copy is made.
    pub fn matmul_t(&self, rhs: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        let ctx = gpu_context("matmul", &[self, rhs])?;
        let (sa, sb) = (self.shape(), rhs.shape());
        let MatmulDims {
            m,
            n,
            k,
            batch_shape,
            out_shape,
        } = matmul_dims(sa, sb, trans_a, trans_b)?;
        let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
        let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
        let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
        if let Some(ctx) = ctx {
            // Shared rhs and plain lhs: fold the batch into m (one tall product), as below.
            let fold = numel(bb) == 1 && !trans_a && numel(ba) == numel(&batch_shape);
            let (rows, batch, a_strides, b_strides) = if fold {
                (numel(&batch_shape) * m, Vec::new(), Vec::new(), Vec::new())
            } else {
                (
                    m,
                    batch_shape.clone(),
                    batch_strides(ba, &batch_shape, ra * ca),
                    batch_strides(bb, &batch_shape, rb * cb),
                )
            };
            let g = Gemm {
                a: self,
                b: rhs,
                b_f16: false,
                bias: None,
                m: rows,
                n,
                k,
                trans_a,
                trans_b,
                a_strides: &a_strides,
                b_strides: &b_strides,
                batch: &batch,
                act: Activation::None,
            };
            return linalg::matmul(&ctx, "matmul", &g, &out_shape);
        }
        let batch = numel(&batch_shape);
        let (a, b) = (self.data(), rhs.data());
        let mut out = vec![0.0f32; numel(&out_shape)];
        if out.is_empty() {
            return Tensor::from_vec(out, &out_shape);
        }

        // Shared rhs and plain lhs: fold the batch into m — one large GEMM.
        if numel(bb) == 1 && !trans_a && numel(ba) == batch {
            let lhs = MatRef::row_major(a, 0, ca, false);
            let rhs_v = MatRef::row_major(b, 0, cb, trans_b);
            sgemm(batch * m, n, k, &mut out, n, lhs, rhs_v, false, true);
            return Tensor::from_vec(out, &out_shape);
        }

        let a_off = batch_offsets(ba, &batch_shape, ra * ca);
        let b_off = batch_offsets(bb, &batch_shape, rb * cb);
        let work = m * n * k;
        let per_batch = |(i, dst): (usize, &mut [f32]), parallel: bool| {
            let lhs = MatRef::row_major(a, a_off[i], ca, trans_a);
            let rhs_v = MatRef::row_major(b, b_off[i], cb, trans_b);
            sgemm(m, n, k, dst, n, lhs, rhs_v, false, parallel);
        };
        // Many small products (attention heads): parallel over the batch; few large ones:
        // parallel inside each GEMM.
        if batch > 1 && work < (1 << 20) {
            out.par_chunks_mut(m * n)
                .enumerate()
                .for_each(|p| per_batch(p, false));
        } else {
            out.chunks_mut(m * n)
                .enumerate()
                .for_each(|p| per_batch(p, true));
        }
        Tensor::from_vec(out, &out_shape)
    }

    /// Linear layer `x · Wᵀ + b`: `x` is `[.., in]`, `weight` is `[out, in]` (PyTorch layout),
    /// `bias` is `[out]`; the result is `[.., out]`. All leading dims form one GEMM.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.linear_act(weight, bias, Activation::None)
    }

    /// `act(x · Wᵀ + b)`: [`Tensor::linear`] followed by an activation. On the GPU the
    /// activation runs in the product's epilogue (one kernel, no intermediate tensor); on the
    /// CPU it is the activation's tensor op applied to the linear's output.
    pub fn linear_act(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        act: Activation,
    ) -> Result<Tensor> {
        const OP: &str = "linear";
        let ctx = gpu_context(OP, &operands(&[Some(self), Some(weight), bias]))?;
        let sx = self.shape();
        let sw = weight.shape();
        let Some(&d_in) = sx.last() else {
            return Err(Error::shape(OP, "input of rank >= 1", sx));
        };
        if sw.len() != 2 || sw[1] != d_in {
            return Err(Error::shape(OP, format!("weight [out, {d_in}]"), sw));
        }
        let d_out = sw[0];
        if let Some(b) = bias
            && b.shape() != [d_out]
        {
            return Err(Error::shape(OP, format!("bias [{d_out}]"), b.shape()));
        }
        if let Some(ctx) = ctx {
            let mut out_shape = sx.to_vec();
            *out_shape.last_mut().expect("rank >= 1") = d_out;
            let g = Gemm {
                a: self,
                b: weight,
                b_f16: false,
                bias,
                m: numel(&sx[..sx.len() - 1]),
                n: d_out,
                k: d_in,
                trans_a: false,
                trans_b: true,
                batch: &[],
                a_strides: &[],
                b_strides: &[],
                act,
            };
            return linalg::matmul(&ctx, OP, &g, &out_shape);
        }
        let out = self.linear_cpu(weight, bias, d_in, d_out)?;
        act.apply(&out)
    }

    /// The CPU linear of checked operands.
    fn linear_cpu(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        d_in: usize,
        d_out: usize,
    ) -> Result<Tensor> {
        let sx = self.shape();
        let rows = numel(&sx[..sx.len() - 1]);
        let mut out_shape = sx.to_vec();
        *out_shape.last_mut().expect("rank >= 1") = d_out;
        let mut out = vec![0.0f32; rows * d_out];
        if let Some(b) = bias {
            let bd = b.data();
            out.par_chunks_mut(d_out.max(1))
                .for_each(|row| row.copy_from_slice(bd));
        }
        if rows <= SKINNY_ROWS {
            // Few rows (autoregressive decoding): compute outᵀ = W · xᵀ into a scratch buffer and
            // transpose it. With the PyTorch weight layout this keeps `W` a row-major left
            // operand that the GEMM streams without repacking; the direct x·Wᵀ form repacks all
            // of `W` on every call: measured 7× slower at 2 rows, 1.3× at 72, even at ~100.
            let mut out_t = vec![0.0f32; d_out * rows];
            let lhs = MatRef::row_major(weight.data(), 0, d_in, false);
            let rhs = MatRef::row_major(self.data(), 0, d_in, true);
            sgemm(d_out, rows, d_in, &mut out_t, rows, lhs, rhs, false, true);
            // Tiled transpose (16 rows × 64 features): reads of `out_t` stay in a few cache
            // lines, writes are contiguous runs, and no set of streams is a multiple of 4 KiB
            // apart (which made a row-blocked version thrash L1 and cost as much as the GEMM).
            const ROWS: usize = 16;
            const COLS: usize = 64;
            let d = d_out.max(1);
            out.par_chunks_mut(d * ROWS)
                .enumerate()
                .for_each(|(bi, block)| {
                    let r0 = bi * ROWS;
                    let nr = block.len() / d;
                    for o0 in (0..d_out).step_by(COLS) {
                        let o1 = (o0 + COLS).min(d_out);
                        for j in 0..nr {
                            let dst = &mut block[j * d_out + o0..j * d_out + o1];
                            for (o, v) in (o0..o1).zip(dst.iter_mut()) {
                                *v += out_t[o * rows + r0 + j];
                            }
                        }
                    }
                });
        } else {
            let lhs = MatRef::row_major(self.data(), 0, d_in, false);
            let rhs = MatRef::row_major(weight.data(), 0, d_in, true);
            sgemm(
                rows,
                d_out,
                d_in,
                &mut out,
                d_out,
                lhs,
                rhs,
                bias.is_some(),
                true,
            );
        }
        Tensor::from_vec(out, &out_shape)
    }
}

/// Checked dimensions of `op(a) · op(b)`.
struct MatmulDims {
    m: usize,
    n: usize,
    k: usize,
    batch_shape: Vec<usize>,
    out_shape: Vec<usize>,
}

fn matmul_dims(sa: &[usize], sb: &[usize], trans_a: bool, trans_b: bool) -> Result<MatmulDims> {
    const OP: &str = "matmul";
    if sa.len() < 2 {
        return Err(Error::shape(OP, "lhs of rank >= 2", sa));
    }
    if sb.len() < 2 {
        return Err(Error::shape(OP, "rhs of rank >= 2", sb));
    }
    let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
    let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
    if k != kb {
        return Err(Error::shape(
            OP,
            format!("rhs with inner dim {k} (lhs is {sa:?})"),
            sb,
        ));
    }
    let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
    let batch_shape = broadcast_shapes(ba, bb).ok_or_else(|| Error::Broadcast {
        op: OP,
        lhs: sa.to_vec(),
        rhs: sb.to_vec(),
    })?;
    let mut out_shape = batch_shape.clone();
    out_shape.extend([m, n]);
    Ok(MatmulDims {
        m,
        n,
        k,
        batch_shape,
        out_shape,
    })
}

/// For each flat index of `out_batch`, the element offset of the matching matrix in an operand
/// whose batch shape `batch` broadcasts to it (`mat` elements per matrix).
fn batch_offsets(batch: &[usize], out_batch: &[usize], mat: usize) -> Vec<usize> {
    let total = numel(out_batch);
    let pad = out_batch.len() - batch.len();
    // Row-major strides of the operand's own batch dims, 0 where it broadcasts.
    let mut strides = vec![0usize; out_batch.len()];
    let mut acc = mat;
    for i in (0..batch.len()).rev() {
        strides[pad + i] = if batch[i] == 1 { 0 } else { acc };
        acc *= batch[i];
    }
    (0..total)
        .map(|mut flat| {
            let mut off = 0;
            for d in (0..out_batch.len()).rev() {
                off += (flat % out_batch[d]) * strides[d];
                flat /= out_batch[d];
            }
            off
        })
        .collect()
}
