//! 2-D convolution (NCHW): 3×3 stride-1 convolutions large enough to pay for it through
//! Winograd F(4×4, 3×3) (`ops/winograd.rs`), everything else lowered to GEMM through a bounded
//! im2col buffer.

use rayon::prelude::*;

use super::gemm::{MatRef, sgemm};
use super::winograd::Conv3x3Winograd;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::gpu::ops::linalg;
use crate::tensor::Tensor;
use crate::tensor::{gpu_context, operands};

/// Zero padding on each side of the spatial dims.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Padding2d {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Padding2d {
    /// The same padding `p` on all four sides (`nn.Conv2d(padding=p)`).
    pub fn same(p: usize) -> Self {
        Padding2d {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }

    /// From PyTorch's `F.pad` order `(left, right, top, bottom)`. The stride-2 downsample of the
    /// VQ-VAEs pads `(0, 1, 0, 1)`: one column on the right and one row at the bottom.
    pub fn from_torch_pad([left, right, top, bottom]: [usize; 4]) -> Self {
        Padding2d {
            top,
            bottom,
            left,
            right,
        }
    }
}

/// Stride and padding of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// (vertical, horizontal) stride.
    pub stride: (usize, usize),
    /// Zero padding.
    pub padding: Padding2d,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: Padding2d::default(),
        }
    }
}

impl Conv2dParams {
    /// Stride `s` in both directions and padding `p` on all sides.
    pub fn new(s: usize, p: usize) -> Self {
        Conv2dParams {
            stride: (s, s),
            padding: Padding2d::same(p),
        }
    }
}

/// Upper bound on the im2col scratch buffer (floats) — 16 MiB keeps it in L3-ish territory and
/// bounds memory for large decoders (a 256×256 VAE level would otherwise need ~400 MB).
const COLS_BUDGET: usize = 4 << 20;

/// Whether a 3×3 stride-1 convolution (`n` images, `cin → cout` channels, `ho × wo` output)
/// takes the Winograd path of [`Tensor::conv2d`], which transforms the weight on every call.
///
/// Measured against im2col on the 2-core Zen 4 reference machine, per-call weight transform
/// included: Winograd wins 2–3× on the VAE decoder's convolutions (≥ 32×32 outputs, 160–640
/// channels) and loses where its fixed costs dominate — few output pixels (a 640-channel 16×16
/// conv spends more on transforming its 14.7 MB weight than it saves), a short GEMM depth
/// (`cin` < 16), or a transformed weight over 32 MiB (a fresh allocation each call, paid in page
/// faults: 25–37 ms for 640 → 640, against 4–7 ms for the convolution itself at 16×16; holding a
/// [`Conv3x3Winograd`] avoids it). The thresholds are in output pixels `n·ho·wo`.
///
/// Thin outputs (`cout` < 16, e.g. a decoder's final RGB conv) stay on im2col although Winograd
/// is faster there too (3× on 160 → 3 at 256×256): they are a small share of the work, and
/// im2col's rounding error is 4–10× smaller (Winograd's is within the conv tolerance for
/// weights of trained magnitude, but only just for unit-variance weights, whose outputs are
/// tens). A caller that wants it there uses [`Conv3x3Winograd`] directly.
fn winograd_pays(cin: usize, cout: usize, n: usize, ho: usize, wo: usize) -> bool {
    if cin < 16 || cout < 16 || ho < 4 || wo < 4 {
        return false;
    }
    let pixels = n * ho * wo;
    let u_bytes = 36 * cin * cout * std::mem::size_of::<f32>();
    let min_pixels = if u_bytes > 32 << 20 {
        2048
    } else if cin >= 128 && cout >= 128 {
        400
    } else if cin >= 32 {
        1024
    } else {
        4096
    };
    pixels >= min_pixels
}

/// Checked dimensions of a convolution.
struct ConvDims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
}

fn check_conv(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: Conv2dParams,
) -> Result<ConvDims> {
    const OP: &str = "conv2d";
    let s = x.shape();
    let ws = weight.shape();
    if s.len() != 4 {
        return Err(Error::shape(OP, "input [N, C, H, W]", s));
    }
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    if ws.len() != 4 || ws[1] != c {
        return Err(Error::shape(OP, format!("weight [O, {c}, kh, kw]"), ws));
    }
    let (o, kh, kw) = (ws[0], ws[2], ws[3]);
    if let Some(b) = bias
        && b.shape() != [o]
    {
        return Err(Error::shape(OP, format!("bias [{o}]"), b.shape()));
    }
    let (sh, sw) = p.stride;
    if sh == 0 || sw == 0 || kh == 0 || kw == 0 {
        return Err(Error::arg(OP, "stride and kernel size must be >= 1"));
    }
    let pad = p.padding;
    let (hp, wp) = (h + pad.top + pad.bottom, w + pad.left + pad.right);
    if hp < kh || wp < kw {
        return Err(Error::arg(
            OP,
            format!("kernel {kh}x{kw} larger than padded input {hp}x{wp}"),
        ));
    }
    let (ho, wo) = ((hp - kh) / sh + 1, (wp - kw) / sw + 1);
    Ok(ConvDims {
        n,
        c,
        h,
        w,
        o,
        kh,
        kw,
        ho,
        wo,
    })
}

/// [`Tensor::conv2d`] of GPU operands: one implicit-GEMM kernel (`shaders/conv2d.wgsl`) for
/// every kernel size, stride and padding.
pub(crate) fn conv2d_gpu(
    ctx: &GpuContext,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: Conv2dParams,
) -> Result<Tensor> {
    let d = check_conv(x, weight, bias, p)?;
    linalg::conv2d(
        ctx,
        &linalg::Conv {
            x,
            weight,
            bias,
            n: d.n,
            c: d.c,
            h: d.h,
            w: d.w,
            o: d.o,
            kh: d.kh,
            kw: d.kw,
            ho: d.ho,
            wo: d.wo,
            stride: p.stride,
            pad_top: p.padding.top,
            pad_left: p.padding.left,
        },
    )
}

impl Tensor {
    /// 2-D cross-correlation of `[N, C, H, W]` with `weight` `[O, C, kh, kw]` (+ `bias` `[O]`),
    /// as `nn.Conv2d` (groups = 1, dilation = 1).
    ///
    /// 3×3 stride-1 convolutions with enough channels and output pixels to pay for it run as
    /// Winograd F(4×4, 3×3) ([`Conv3x3Winograd`], transforming the weight on each call; results
    /// differ from im2col by rounding only); everything else through an im2col GEMM
    /// ([`Tensor::conv2d_im2col`]).
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor> {
        if let Some(ctx) = gpu_context("conv2d", &operands(&[Some(self), Some(weight), bias]))? {
            return conv2d_gpu(&ctx, self, weight, bias, p);
        }
        let d = check_conv(self, weight, bias, p)?;
        if (d.kh, d.kw) == (3, 3) && p.stride == (1, 1) && winograd_pays(d.c, d.o, d.n, d.ho, d.wo)
        {
            return Conv3x3Winograd::new(weight)?.apply(self, bias, p.padding);
        }
        self.conv2d_im2col(weight, bias, p)
    }

    /// [`Tensor::conv2d`] always lowered to GEMM through a bounded im2col buffer, never
    /// Winograd: the reference path for benchmarks and cross-checks.
    pub fn conv2d_im2col(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor> {
        if let Some(ctx) = gpu_context("conv2d", &operands(&[Some(self), Some(weight), bias]))? {
            return conv2d_gpu(&ctx, self, weight, bias, p);
        }
        let ConvDims {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            ho,
            wo,
        } = check_conv(self, weight, bias, p)?;
        let (sh, sw) = p.stride;
        let pad = p.padding;
        let plane = ho * wo;
        let kdim = c * kh * kw;
        let mut out = vec![0.0f32; n * o * plane];
        if let Some(b) = bias {
            let bd = b.data();
            out.par_chunks_mut(plane.max(1))
                .enumerate()
                .for_each(|(i, pl)| pl.fill(bd[i % o]));
        }
        let x = self.data();
        let wmat = MatRef::row_major(weight.data(), 0, kdim, false);
        let pointwise = kh == 1 && kw == 1 && (sh, sw) == (1, 1) && pad == Padding2d::default();
        let rows_per_block = (COLS_BUDGET / (kdim * wo).max(1)).clamp(1, ho.max(1));
        let mut cols = if pointwise {
            Vec::new()
        } else {
            vec![0.0f32; kdim * rows_per_block * wo]
        };
        for ni in 0..n {
            let xin = &x[ni * c * h * w..(ni + 1) * c * h * w];
            let dst = &mut out[ni * o * plane..(ni + 1) * o * plane];
            if pointwise {
                let rhs = MatRef::row_major(xin, 0, plane, false);
                sgemm(o, plane, kdim, dst, plane, wmat, rhs, bias.is_some(), true);
                continue;
            }
            let mut oy0 = 0;
            while oy0 < ho {
                let rows = rows_per_block.min(ho - oy0);
                let ncol = rows * wo;
                let cols = &mut cols[..kdim * ncol];
                // One im2col row per (channel, ky, kx), filled in parallel.
                cols.par_chunks_mut(ncol).enumerate().for_each(|(r, crow)| {
                    let (ci, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
                    let xc = &xin[ci * h * w..(ci + 1) * h * w];
                    for (dy, line) in crow.chunks_mut(wo).enumerate() {
                        let iy = ((oy0 + dy) * sh + ky) as isize - pad.top as isize;
                        if iy < 0 || iy >= h as isize {
                            line.fill(0.0);
                            continue;
                        }
                        let src = &xc[iy as usize * w..(iy as usize + 1) * w];
                        if sw == 1 {
                            // Unit stride: the row is a shifted copy of the input row with zero
                            // fill where the window hangs over the padding.
                            let shift = kx as isize - pad.left as isize;
                            let lo = (-shift).clamp(0, wo as isize) as usize;
                            let hi = (w as isize - shift).clamp(lo as isize, wo as isize) as usize;
                            line[..lo].fill(0.0);
                            if hi > lo {
                                // lo + shift >= 0 whenever the span is non-empty.
                                let start = (lo as isize + shift) as usize;
                                line[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
                            }
                            line[hi..].fill(0.0);
                            continue;
                        }
                        for (ox, v) in line.iter_mut().enumerate() {
                            let ix = (ox * sw + kx) as isize - pad.left as isize;
                            *v = if ix >= 0 && ix < w as isize {
                                src[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                });
                let rhs = MatRef::row_major(cols, 0, ncol, false);
                let d = &mut dst[oy0 * wo..];
                sgemm(o, ncol, kdim, d, plane, wmat, rhs, bias.is_some(), true);
                oy0 += rows;
            }
        }
        Tensor::from_vec(out, &[n, o, ho, wo])
    }
}
