//! Elementwise launchers: `unary.wgsl` (activations, clamp, affine), `binary.wgsl` (the four
//! arithmetic ops with numpy broadcasting) and `modulate.wgsl` (the fused AdaLN
//! `x·(1 + scale) + shift`, broadcasting likewise).

use super::{buf, kernel};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, Kernel, grid_1d};
use crate::tensor::{Tensor, numel};

const UNARY: Kernel = kernel!("unary.wgsl");
const BINARY: Kernel = kernel!("binary.wgsl");
const MODULATE: Kernel = kernel!("modulate.wgsl");
/// Highest rank `binary.wgsl` indexes.
const MAX_RANK: usize = 8;

/// The ops of `unary.wgsl` (the value is its `OP` override).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Silu = 0,
    GeluTanh = 1,
    GeluErf = 2,
    Sigmoid = 3,
    Exp = 4,
    Tanh = 5,
    /// `min(max(x, a), b)`.
    Clamp = 6,
    /// `a·x + b`.
    Affine = 7,
}

impl UnaryOp {
    fn label(self) -> &'static str {
        match self {
            UnaryOp::Silu => "silu",
            UnaryOp::GeluTanh => "gelu_tanh",
            UnaryOp::GeluErf => "gelu_erf",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Exp => "exp",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Clamp => "clamp",
            UnaryOp::Affine => "affine",
        }
    }
}

/// `f(x)` elementwise on the GPU.
pub(crate) fn unary(ctx: &GpuContext, x: &Tensor, op: UnaryOp, a: f32, b: f32) -> Result<Tensor> {
    let n = x.numel();
    let out = GpuBuffer::uninit(ctx, n)?;
    let (groups, gx) = grid_1d(n, 256, ctx.info().max_workgroups_per_dim)?;
    let params: [u32; 4] = [n as u32, gx, a.to_bits(), b.to_bits()];
    ctx.launch(&Dispatch {
        kernel: &UNARY,
        constants: &[("OP", op as u32 as f64)],
        buffers: &[buf(x), &out],
        params: bytemuck::cast_slice(&params),
        groups,
        label: op.label(),
    })?;
    Tensor::from_gpu(ctx, out, x.shape())
}

/// The ops of `binary.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
}

/// Row-major strides of `shape` aligned to the last `rank` dims of the output, 0 where the
/// operand is broadcast.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> [u32; MAX_RANK] {
    let mut s = [0u32; MAX_RANK];
    let off = out.len() - shape.len();
    let mut stride = 1usize;
    for d in (0..shape.len()).rev() {
        s[d + off] = if shape[d] == 1 { 0 } else { stride as u32 };
        stride *= shape[d];
    }
    s
}

/// `a ∘ b` with broadcasting to `out_shape` (already validated) on the GPU.
pub(crate) fn binary(
    ctx: &GpuContext,
    op_name: &'static str,
    a: &Tensor,
    b: &Tensor,
    op: BinaryOp,
    out_shape: &[usize],
) -> Result<Tensor> {
    if out_shape.len() > MAX_RANK {
        return Err(Error::Device {
            op: op_name,
            msg: format!("the GPU kernel broadcasts up to rank {MAX_RANK}, got {out_shape:?}"),
        });
    }
    let n = numel(out_shape);
    let out = GpuBuffer::uninit(ctx, n)?;
    let (groups, gx) = grid_1d(n, 256, ctx.info().max_workgroups_per_dim)?;
    let same = u32::from(a.shape() == out_shape && b.shape() == out_shape);
    let mut dims = [1u32; MAX_RANK];
    for (d, &v) in out_shape.iter().enumerate() {
        dims[d] = v as u32;
    }
    let mut params: Vec<u32> = vec![n as u32, gx, out_shape.len() as u32, same];
    params.extend_from_slice(&dims);
    params.extend_from_slice(&broadcast_strides(a.shape(), out_shape));
    params.extend_from_slice(&broadcast_strides(b.shape(), out_shape));
    ctx.launch(&Dispatch {
        kernel: &BINARY,
        constants: &[("OP", op as u32 as f64)],
        buffers: &[buf(a), buf(b), &out],
        params: bytemuck::cast_slice(&params),
        groups,
        label: op_name,
    })?;
    Tensor::from_gpu(ctx, out, out_shape)
}

/// `x·(1 + scale) + shift` with broadcasting to `out_shape` (already validated) on the GPU.
pub(crate) fn modulate(
    ctx: &GpuContext,
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    out_shape: &[usize],
) -> Result<Tensor> {
    if out_shape.len() > MAX_RANK {
        return Err(Error::Device {
            op: "modulate",
            msg: format!("the GPU kernel broadcasts up to rank {MAX_RANK}, got {out_shape:?}"),
        });
    }
    let n = numel(out_shape);
    let out = GpuBuffer::uninit(ctx, n)?;
    let (groups, gx) = grid_1d(n, 256, ctx.info().max_workgroups_per_dim)?;
    let same = u32::from([x, scale, shift].iter().all(|t| t.shape() == out_shape));
    let mut dims = [1u32; MAX_RANK];
    for (d, &v) in out_shape.iter().enumerate() {
        dims[d] = v as u32;
    }
    let mut params: Vec<u32> = vec![n as u32, gx, out_shape.len() as u32, same];
    params.extend_from_slice(&dims);
    for t in [x, scale, shift] {
        params.extend_from_slice(&broadcast_strides(t.shape(), out_shape));
    }
    ctx.launch(&Dispatch {
        kernel: &MODULATE,
        constants: &[],
        buffers: &[buf(x), buf(scale), buf(shift), &out],
        params: bytemuck::cast_slice(&params),
        groups,
        label: "modulate",
    })?;
    Tensor::from_gpu(ctx, out, out_shape)
}
