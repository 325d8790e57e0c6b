//! Spatial resampling of `[.., H, W]` tensors: nearest upsampling, bicubic and area resize with
//! PyTorch's exact index semantics (`F.interpolate(..., align_corners=False)`).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::gpu::ops::resize::{ResizeMode, resize};
use crate::tensor::gpu_context;
use crate::tensor::{Tensor, numel};

/// Keys' cubic convolution constant used by PyTorch.
const CUBIC_A: f32 = -0.75;

/// The four tap indices (clamped) and weights of one output coordinate.
#[derive(Clone, Copy, Debug)]
struct CubicTaps {
    idx: [usize; 4],
    w: [f32; 4],
}

/// PyTorch's `upsample_bicubic2d` taps for output index `i` (align_corners=False):
/// `src = (i + 0.5)·in/out − 0.5` (no clamp), `x0 = ⌊src⌋`, `t = src − x0`, weights
/// `[c2(t+1), c1(t), c1(1−t), c2(2−t)]` on `x0−1 … x0+2`, indices clamped to `[0, in−1]`.
fn cubic_taps(input: usize, output: usize) -> Vec<CubicTaps> {
    let scale = input as f32 / output as f32;
    let c1 = |x: f32| ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1.0;
    let c2 = |x: f32| ((CUBIC_A * x - 5.0 * CUBIC_A) * x + 8.0 * CUBIC_A) * x - 4.0 * CUBIC_A;
    (0..output)
        .map(|i| {
            let src = scale * (i as f32 + 0.5) - 0.5;
            let x0 = src.floor();
            let t = src - x0;
            let x0 = x0 as isize;
            let clamp = |j: isize| j.clamp(0, input as isize - 1) as usize;
            CubicTaps {
                idx: [clamp(x0 - 1), clamp(x0), clamp(x0 + 1), clamp(x0 + 2)],
                w: [c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t)],
            }
        })
        .collect()
}

/// `adaptive_avg_pool` windows: output `i` averages inputs `⌊i·in/out⌋ .. ⌈(i+1)·in/out⌉`
/// (exclusive end), computed in integers so no rounding can shift a window.
fn area_windows(input: usize, output: usize) -> Vec<(usize, usize)> {
    (0..output)
        .map(|i| ((i * input) / output, ((i + 1) * input).div_ceil(output)))
        .collect()
}

fn spatial(op: &'static str, t: &Tensor) -> Result<(usize, usize, usize)> {
    let s = t.shape();
    if s.len() < 2 {
        return Err(Error::shape(op, "[.., H, W]", s));
    }
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    Ok((numel(&s[..s.len() - 2]), h, w))
}

fn out_shape(t: &Tensor, oh: usize, ow: usize) -> Vec<usize> {
    let mut s = t.shape().to_vec();
    let r = s.len();
    s[r - 2] = oh;
    s[r - 1] = ow;
    s
}

/// Applies a separable resampler plane by plane: rows first (W → ow), then columns (H → oh).
fn separable(
    t: &Tensor,
    oh: usize,
    ow: usize,
    row: impl Fn(&[f32], &mut [f32]) + Sync,
    col: impl Fn(&[f32], usize, usize, &mut [f32]) + Sync,
) -> Result<Tensor> {
    let (planes, h, w) = spatial("resize", t)?;
    let x = t.data();
    let mut out = vec![0.0f32; planes * oh * ow];
    if !out.is_empty() {
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(p, dst)| {
                let src = &x[p * h * w..(p + 1) * h * w];
                let mut tmp = vec![0.0f32; h * ow];
                for y in 0..h {
                    row(&src[y * w..(y + 1) * w], &mut tmp[y * ow..(y + 1) * ow]);
                }
                col(&tmp, h, ow, dst);
            });
    }
    Tensor::from_vec(out, &out_shape(t, oh, ow))
}

impl Tensor {
    /// Nearest-neighbour upsampling of the last two dims by an integer `factor`
    /// (`F.interpolate(scale_factor=factor, mode='nearest')`).
    pub fn upsample_nearest(&self, factor: usize) -> Result<Tensor> {
        let ctx = gpu_context("upsample_nearest", &[self])?;
        let (planes, h, w) = spatial("upsample_nearest", self)?;
        if factor == 0 {
            return Err(Error::arg("upsample_nearest", "factor must be >= 1"));
        }
        let (oh, ow) = (h * factor, w * factor);
        if let Some(ctx) = ctx {
            return resize(&ctx, self, ResizeMode::Nearest, oh, ow, factor);
        }
        let x = self.data();
        let mut out = vec![0.0f32; planes * oh * ow];
        if !out.is_empty() {
            out.par_chunks_mut(ow).enumerate().for_each(|(r, line)| {
                let (p, y) = (r / oh, (r % oh) / factor);
                let src = &x[(p * h + y) * w..(p * h + y + 1) * w];
                for (ox, v) in line.iter_mut().enumerate() {
                    *v = src[ox / factor];
                }
            });
        }
        Tensor::from_vec(out, &out_shape(self, oh, ow))
    }

    /// Nearest ×2 upsampling, the VQ/VAE decoders' upsample.
    pub fn upsample_nearest2x(&self) -> Result<Tensor> {
        self.upsample_nearest(2)
    }

    /// Bicubic resize of the last two dims to `(oh, ow)`, equal to PyTorch
    /// `F.interpolate(x, size=(oh, ow), mode='bicubic', align_corners=False)` (Keys A = −0.75,
    /// clamped taps, no antialias). Works for both up- and downsampling.
    pub fn resize_bicubic(&self, oh: usize, ow: usize) -> Result<Tensor> {
        let ctx = gpu_context("resize_bicubic", &[self])?;
        let (_, h, w) = spatial("resize_bicubic", self)?;
        if h == 0 || w == 0 || oh == 0 || ow == 0 {
            return Err(Error::arg("resize_bicubic", "sizes must be non-zero"));
        }
        if let Some(ctx) = ctx {
            return resize(&ctx, self, ResizeMode::Bicubic, oh, ow, 0);
        }
        let tx = cubic_taps(w, ow);
        let ty = cubic_taps(h, oh);
        separable(
            self,
            oh,
            ow,
            |src, dst| {
                for (d, t) in dst.iter_mut().zip(&tx) {
                    *d = (0..4).map(|j| src[t.idx[j]] * t.w[j]).sum();
                }
            },
            |tmp, _h, ow, dst| {
                for (oy, t) in ty.iter().enumerate() {
                    let line = &mut dst[oy * ow..(oy + 1) * ow];
                    for (ox, d) in line.iter_mut().enumerate() {
                        *d = (0..4).map(|j| tmp[t.idx[j] * ow + ox] * t.w[j]).sum();
                    }
                }
            },
        )
    }

    /// Area resize of the last two dims to `(oh, ow)`: PyTorch `mode='area'`, i.e.
    /// `adaptive_avg_pool2d`, whose windows overlap when the size does not divide (16 → 13).
    pub fn resize_area(&self, oh: usize, ow: usize) -> Result<Tensor> {
        let ctx = gpu_context("resize_area", &[self])?;
        let (_, h, w) = spatial("resize_area", self)?;
        if h == 0 || w == 0 || oh == 0 || ow == 0 {
            return Err(Error::arg("resize_area", "sizes must be non-zero"));
        }
        if let Some(ctx) = ctx {
            return resize(&ctx, self, ResizeMode::Area, oh, ow, 0);
        }
        let wx = area_windows(w, ow);
        let wy = area_windows(h, oh);
        separable(
            self,
            oh,
            ow,
            |src, dst| {
                for (d, &(a, b)) in dst.iter_mut().zip(&wx) {
                    *d = src[a..b].iter().sum::<f32>() / (b - a) as f32;
                }
            },
            |tmp, _h, ow, dst| {
                for (oy, &(a, b)) in wy.iter().enumerate() {
                    for ox in 0..ow {
                        let s: f32 = (a..b).map(|y| tmp[y * ow + ox]).sum();
                        dst[oy * ow + ox] = s / (b - a) as f32;
                    }
                }
            },
        )
    }
}
