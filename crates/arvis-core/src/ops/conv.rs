//! 2-D convolution (NCHW), lowered to GEMM through a bounded im2col buffer.

use rayon::prelude::*;

use super::gemm::{MatRef, sgemm};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

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

impl Tensor {
    /// 2-D cross-correlation of `[N, C, H, W]` with `weight` `[O, C, kh, kw]` (+ `bias` `[O]`),
    /// as `nn.Conv2d` (groups = 1, dilation = 1).
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d";
        let s = self.shape();
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
