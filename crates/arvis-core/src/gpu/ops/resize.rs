//! Resampling launcher: `resize.wgsl` (nearest upsampling, bicubic and area resize of the last
//! two dims; `Tensor::{upsample_nearest, resize_bicubic, resize_area}` in `ops/resize.rs`).

use super::{buf, kernel};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, Kernel, grid_1d};
use crate::tensor::{Tensor, numel};

const RESIZE: Kernel = kernel!("resize.wgsl");

/// The modes of `resize.wgsl` (the value is its `MODE` override).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResizeMode {
    /// Nearest upsampling by an integer factor.
    Nearest = 0,
    /// PyTorch bicubic, align_corners=False.
    Bicubic = 1,
    /// Adaptive average pooling.
    Area = 2,
}

impl ResizeMode {
    fn label(self) -> &'static str {
        match self {
            ResizeMode::Nearest => "upsample_nearest",
            ResizeMode::Bicubic => "resize_bicubic",
            ResizeMode::Area => "resize_area",
        }
    }
}

/// Resamples the last two dims of `x` (`[.., h, w]`, validated by the caller) to `(oh, ow)`;
/// `factor` is the nearest mode's (`oh = h·factor`), ignored by the others.
pub(crate) fn resize(
    ctx: &GpuContext,
    x: &Tensor,
    mode: ResizeMode,
    oh: usize,
    ow: usize,
    factor: usize,
) -> Result<Tensor> {
    let s = x.shape();
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    let mut out_shape = s.to_vec();
    let r = out_shape.len();
    out_shape[r - 2] = oh;
    out_shape[r - 1] = ow;
    let n = numel(&out_shape);
    let out = GpuBuffer::uninit(ctx, n)?;
    let (groups, gx) = grid_1d(n, 256, ctx.info().max_workgroups_per_dim)?;
    let params: Vec<u32> = [n, gx as usize, h, w, oh, ow, factor]
        .into_iter()
        .map(|v| {
            u32::try_from(v).map_err(|_| {
                Error::gpu(
                    mode.label(),
                    format!("{v} does not fit the kernel's u32 indices"),
                )
            })
        })
        .collect::<Result<_>>()?;
    ctx.launch(&Dispatch {
        kernel: &RESIZE,
        constants: &[("MODE", f64::from(mode as u32))],
        buffers: &[buf(x), &out],
        params: bytemuck::cast_slice(&params),
        groups,
        label: mode.label(),
    })?;
    Tensor::from_gpu(ctx, out, &out_shape)
}
