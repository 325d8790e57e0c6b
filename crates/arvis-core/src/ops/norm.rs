//! Normalisations: layer norm, RMS norm, group norm, L2 normalisation.

use rayon::prelude::*;

use super::lanes;
use multiversion::multiversion;

use crate::error::{Error, Result};
use crate::gpu::ops::reduce::{self, NormLayout, NormOp};
use crate::tensor::{Tensor, numel, outer_n_inner};
use crate::tensor::{gpu_context, operands};

fn check_param(op: &'static str, p: Option<&Tensor>, len: usize, what: &str) -> Result<()> {
    match p {
        Some(t) if t.shape() != [len] => {
            Err(Error::shape(op, format!("{what} [{len}]"), t.shape()))
        }
        _ => Ok(()),
    }
}

impl Tensor {
    /// Layer norm over the last dim: `(x − mean)/√(var + eps) · w + b`, biased variance as in
    /// PyTorch; `weight`/`bias` are optional (`elementwise_affine=False` passes `None`).
    pub fn layer_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        const OP: &str = "layer_norm";
        let ctx = gpu_context(OP, &operands(&[Some(self), weight, bias]))?;
        let Some(&c) = self.shape().last() else {
            return Err(Error::shape(OP, "rank >= 1", self.shape()));
        };
        check_param(OP, weight, c, "weight")?;
        check_param(OP, bias, c, "bias")?;
        if let Some(ctx) = ctx {
            let layout = NormLayout::rows(numel(&self.shape()[..self.rank() - 1]), c);
            return gpu_norm(
                &ctx,
                OP,
                NormOp::Standardize,
                self,
                weight,
                bias,
                layout,
                eps,
            );
        }
        let (w, b) = (weight.map(Tensor::data), bias.map(Tensor::data));
        let x = self.data();
        let mut out = vec![0.0f32; x.len()];
        if c > 0 {
            out.par_chunks_mut(c)
                .zip(x.par_chunks(c))
                .for_each(|(dst, row)| layer_norm_row(dst, row, w, b, eps));
        }
        Tensor::from_vec(out, self.shape())
    }

    /// RMS norm over the last dim: `x / √(mean(x²) + eps) · w` (LlamaGen's `RMSNorm`).
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        const OP: &str = "rms_norm";
        let ctx = gpu_context(OP, &operands(&[Some(self), weight]))?;
        let Some(&c) = self.shape().last() else {
            return Err(Error::shape(OP, "rank >= 1", self.shape()));
        };
        check_param(OP, weight, c, "weight")?;
        if let Some(ctx) = ctx {
            let layout = NormLayout::rows(numel(&self.shape()[..self.rank() - 1]), c);
            return gpu_norm(&ctx, OP, NormOp::Rms, self, weight, None, layout, eps);
        }
        let w = weight.map(Tensor::data);
        let x = self.data();
        let mut out = vec![0.0f32; x.len()];
        if c > 0 {
            out.par_chunks_mut(c)
                .zip(x.par_chunks(c))
                .for_each(|(dst, row)| rms_norm_row(dst, row, w, eps));
        }
        Tensor::from_vec(out, self.shape())
    }

    /// Group norm of an `[N, C, *]` tensor: channels split into `groups`, each (sample, group)
    /// normalised over its channels and spatial positions, then a per-channel affine.
    pub fn group_norm(
        &self,
        groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        const OP: &str = "group_norm";
        let ctx = gpu_context(OP, &operands(&[Some(self), weight, bias]))?;
        let s = self.shape();
        if s.len() < 2 {
            return Err(Error::shape(OP, "[N, C, *]", s));
        }
        let c = s[1];
        if groups == 0 || !c.is_multiple_of(groups) {
            return Err(Error::arg(
                OP,
                format!("{c} channels cannot form {groups} groups"),
            ));
        }
        check_param(OP, weight, c, "weight")?;
        check_param(OP, bias, c, "bias")?;
        let spatial = numel(&s[2..]);
        let cpg = c / groups;
        let group_len = cpg * spatial;
        if let Some(ctx) = ctx {
            // One row per (sample, group): its channels' planes are contiguous.
            let layout = NormLayout {
                outer: s[0] * groups,
                n: group_len,
                inner: 1,
                groups,
                cpg,
                spatial,
            };
            return gpu_norm(
                &ctx,
                OP,
                NormOp::Standardize,
                self,
                weight,
                bias,
                layout,
                eps,
            );
        }
        let (w, b) = (weight.map(Tensor::data), bias.map(Tensor::data));
        let x = self.data();
        let mut out = vec![0.0f32; x.len()];
        if group_len > 0 {
            out.par_chunks_mut(group_len)
                .zip(x.par_chunks(group_len))
                .enumerate()
                .for_each(|(gi, (dst, src))| {
                    let c0 = (gi % groups) * cpg;
                    let w = w.map(|w| &w[c0..c0 + cpg]);
                    let b = b.map(|b| &b[c0..c0 + cpg]);
                    group_norm_group(dst, src, spatial, w, b, eps);
                });
        }
        Tensor::from_vec(out, s)
    }

    /// L2-normalises along `dim`: `x / max(‖x‖₂, eps)` (PyTorch `F.normalize`).
    pub fn l2_normalize(&self, dim: isize, eps: f32) -> Result<Tensor> {
        const OP: &str = "l2_normalize";
        let ctx = gpu_context(OP, &[self])?;
        let axis = self.axis(OP, dim)?;
        let (outer, n, inner) = outer_n_inner(self.shape(), axis);
        if let Some(ctx) = ctx {
            let layout = NormLayout {
                outer,
                n,
                inner,
                ..NormLayout::rows(outer, n)
            };
            return gpu_norm(&ctx, OP, NormOp::L2, self, None, None, layout, eps);
        }
        let mut out = self.to_vec();
        if n > 0 && inner > 0 {
            out.par_chunks_mut(n * inner).for_each(|block| {
                for j in 0..inner {
                    let ss: f64 = (0..n).map(|i| (block[i * inner + j] as f64).powi(2)).sum();
                    let denom = (ss.sqrt() as f32).max(eps);
                    for i in 0..n {
                        block[i * inner + j] /= denom;
                    }
                }
            });
        }
        Tensor::from_vec(out, self.shape())
    }
}

/// A normalisation on the GPU (`norm.wgsl`); an empty tensor needs no launch.
#[allow(clippy::too_many_arguments)]
fn gpu_norm(
    ctx: &crate::gpu::GpuContext,
    op: &'static str,
    kind: NormOp,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    layout: NormLayout,
    eps: f32,
) -> Result<Tensor> {
    if x.numel() == 0 {
        return Ok(x.clone());
    }
    reduce::norm(ctx, op, kind, x, weight, bias, layout, eps)
}

/// One layer-norm row: `(x − mean)·inv·w + b`, with a loop per affine variant so each vectorises
/// without per-element branches.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn layer_norm_row(dst: &mut [f32], row: &[f32], w: Option<&[f32]>, b: Option<&[f32]>, eps: f32) {
    let (mean, var) = lanes::mean_var(row);
    let inv = 1.0 / (var + eps).sqrt();
    match (w, b) {
        (Some(w), Some(b)) => {
            for (((d, &v), &w), &b) in dst.iter_mut().zip(row).zip(w).zip(b) {
                *d = (v - mean) * inv * w + b;
            }
        }
        (Some(w), None) => {
            for ((d, &v), &w) in dst.iter_mut().zip(row).zip(w) {
                *d = (v - mean) * inv * w;
            }
        }
        (None, Some(b)) => {
            for ((d, &v), &b) in dst.iter_mut().zip(row).zip(b) {
                *d = (v - mean) * inv + b;
            }
        }
        (None, None) => {
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = (v - mean) * inv;
            }
        }
    }
}

/// One RMS-norm row: `x / √(mean(x²) + eps) · w`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn rms_norm_row(dst: &mut [f32], row: &[f32], w: Option<&[f32]>, eps: f32) {
    let ms = lanes::sum_map(row, |v| v * v) / row.len() as f64;
    let inv = (1.0 / (ms + eps as f64).sqrt()) as f32;
    match w {
        Some(w) => {
            for ((d, &v), &w) in dst.iter_mut().zip(row).zip(w) {
                *d = v * inv * w;
            }
        }
        None => {
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = v * inv;
            }
        }
    }
}

/// One (sample, group) of a group norm: statistics over all its channels' planes, then the
/// per-channel affine (`w`, `b` already sliced to this group's channels).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn group_norm_group(
    dst: &mut [f32],
    src: &[f32],
    spatial: usize,
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    eps: f32,
) {
    let (mean, var) = lanes::mean_var(src);
    let inv = 1.0 / (var + eps).sqrt();
    let planes = dst
        .chunks_mut(spatial.max(1))
        .zip(src.chunks(spatial.max(1)));
    for (ci, (d, x)) in planes.enumerate() {
        let scale = inv * w.map_or(1.0, |w| w[ci]);
        let shift = b.map_or(0.0, |b| b[ci]);
        for (d, &v) in d.iter_mut().zip(x) {
            *d = (v - mean) * scale + shift;
        }
    }
}
