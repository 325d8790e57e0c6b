//! Normalisations: layer norm, RMS norm, group norm, L2 normalisation.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::tensor::{Tensor, numel, outer_n_inner};

fn check_param(op: &'static str, p: Option<&Tensor>, len: usize, what: &str) -> Result<()> {
    match p {
        Some(t) if t.shape() != [len] => {
            Err(Error::shape(op, format!("{what} [{len}]"), t.shape()))
        }
        _ => Ok(()),
    }
}

/// Mean and biased variance of a row, two-pass with f64 accumulation.
fn mean_var(row: &[f32]) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
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
        let Some(&c) = self.shape().last() else {
            return Err(Error::shape(OP, "rank >= 1", self.shape()));
        };
        check_param(OP, weight, c, "weight")?;
        check_param(OP, bias, c, "bias")?;
        let (w, b) = (weight.map(Tensor::data), bias.map(Tensor::data));
        let mut out = self.to_vec();
        if c > 0 {
            out.par_chunks_mut(c).for_each(|row| {
                let (mean, var) = mean_var(row);
                let inv = 1.0 / (var + eps as f64).sqrt();
                let (mean, inv) = (mean as f32, inv as f32);
                for (i, v) in row.iter_mut().enumerate() {
                    let mut y = (*v - mean) * inv;
                    if let Some(w) = w {
                        y *= w[i];
                    }
                    if let Some(b) = b {
                        y += b[i];
                    }
                    *v = y;
                }
            });
        }
        Tensor::from_vec(out, self.shape())
    }

    /// RMS norm over the last dim: `x / √(mean(x²) + eps) · w` (LlamaGen's `RMSNorm`).
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        const OP: &str = "rms_norm";
        let Some(&c) = self.shape().last() else {
            return Err(Error::shape(OP, "rank >= 1", self.shape()));
        };
        check_param(OP, weight, c, "weight")?;
        let w = weight.map(Tensor::data);
        let mut out = self.to_vec();
        if c > 0 {
            out.par_chunks_mut(c).for_each(|row| {
                let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / c as f64;
                let inv = (1.0 / (ms + eps as f64).sqrt()) as f32;
                for (i, v) in row.iter_mut().enumerate() {
                    *v *= inv;
                    if let Some(w) = w {
                        *v *= w[i];
                    }
                }
            });
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
        let (w, b) = (weight.map(Tensor::data), bias.map(Tensor::data));
        let spatial = numel(&s[2..]);
        let cpg = c / groups;
        let group_len = cpg * spatial;
        let mut out = self.to_vec();
        if group_len > 0 {
            out.par_chunks_mut(group_len)
                .enumerate()
                .for_each(|(gi, chunk)| {
                    let (mean, var) = mean_var(chunk);
                    let inv = 1.0 / (var + eps as f64).sqrt();
                    let c0 = (gi % groups) * cpg;
                    for (ci, plane) in chunk.chunks_mut(spatial.max(1)).enumerate() {
                        let ch = c0 + ci;
                        let scale = inv as f32 * w.map_or(1.0, |w| w[ch]);
                        let shift = b.map_or(0.0, |b| b[ch]);
                        let mean = mean as f32;
                        for v in plane {
                            *v = (*v - mean) * scale + shift;
                        }
                    }
                });
        }
        Tensor::from_vec(out, s)
    }

    /// L2-normalises along `dim`: `x / max(‖x‖₂, eps)` (PyTorch `F.normalize`).
    pub fn l2_normalize(&self, dim: isize, eps: f32) -> Result<Tensor> {
        let axis = self.axis("l2_normalize", dim)?;
        let (_, n, inner) = outer_n_inner(self.shape(), axis);
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
