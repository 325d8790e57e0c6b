//! Layout launchers: `copy.wgsl` (the strided copy behind permute, narrow and concat) and
//! `embedding.wgsl` (row gather).

use super::{buf, kernel};
use crate::error::Result;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, Kernel, grid_1d};
use crate::tensor::{Tensor, numel};

const COPY: Kernel = kernel!("copy.wgsl");
const EMBEDDING: Kernel = kernel!("embedding.wgsl");
/// Highest rank `copy.wgsl` indexes.
pub(crate) const MAX_RANK: usize = 8;

/// One strided copy: the elements of the logical shape `dims` (row-major), read from `src` at
/// `src_off + Σ idx·src_strides`, written to `dst` at `dst_off + Σ idx·dst_strides`.
#[derive(Clone, Debug)]
pub(crate) struct StridedCopy<'a> {
    pub dims: &'a [usize],
    pub src_strides: &'a [usize],
    pub src_off: usize,
    pub dst_strides: &'a [usize],
    pub dst_off: usize,
}

/// Packs up to [`MAX_RANK`] values into the shader's `array<vec4<u32>, 2>`.
fn pack(v: &[usize]) -> [u32; MAX_RANK] {
    let mut p = [0u32; MAX_RANK];
    for (d, &x) in v.iter().enumerate() {
        p[d] = x as u32;
    }
    p
}

/// Records one strided copy from `src` into `dst` (which other copies may also write).
pub(crate) fn strided_copy(
    ctx: &GpuContext,
    label: &'static str,
    src: &GpuBuffer,
    dst: &GpuBuffer,
    c: &StridedCopy<'_>,
) -> Result<()> {
    debug_assert!(c.dims.len() <= MAX_RANK);
    debug_assert!(c.src_strides.len() == c.dims.len() && c.dst_strides.len() == c.dims.len());
    let n = numel(c.dims);
    if n == 0 {
        return Ok(());
    }
    let (groups, gx) = grid_1d(n, 256, ctx.info().max_workgroups_per_dim)?;
    let mut params: Vec<u32> = vec![
        n as u32,
        gx,
        c.dims.len() as u32,
        c.src_off as u32,
        c.dst_off as u32,
        0,
        0,
        0,
    ];
    params.extend_from_slice(&pack(c.dims));
    params.extend_from_slice(&pack(c.src_strides));
    params.extend_from_slice(&pack(c.dst_strides));
    ctx.launch(&Dispatch {
        kernel: &COPY,
        constants: &[],
        buffers: &[src, dst],
        params: bytemuck::cast_slice(&params),
        groups,
        label,
    })
}

/// Row-major strides of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// `x` permuted (`perm` already validated) into a new contiguous tensor, or `None` when the
/// permutation still has more than [`MAX_RANK`] dims after merging the ones that stay adjacent.
pub(crate) fn permute(ctx: &GpuContext, x: &Tensor, perm: &[usize]) -> Result<Option<Tensor>> {
    let s = x.shape();
    let out_shape: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let in_strides = contiguous_strides(s);
    // Drop size-1 dims and merge consecutive output dims that are also contiguous in the
    // input: fewer dims, less index arithmetic per element.
    let mut dims: Vec<usize> = Vec::new();
    let mut strides: Vec<usize> = Vec::new();
    for &p in perm {
        if s[p] == 1 {
            continue;
        }
        match (dims.last_mut(), strides.last_mut()) {
            (Some(d), Some(st)) if *st == in_strides[p] * s[p] => {
                *d *= s[p];
                *st = in_strides[p];
            }
            _ => {
                dims.push(s[p]);
                strides.push(in_strides[p]);
            }
        }
    }
    if dims.len() > MAX_RANK {
        return Ok(None);
    }
    let out = GpuBuffer::uninit(ctx, x.numel())?;
    strided_copy(
        ctx,
        "permute",
        buf(x),
        &out,
        &StridedCopy {
            dims: &dims,
            src_strides: &strides,
            src_off: 0,
            dst_strides: &contiguous_strides(&dims),
            dst_off: 0,
        },
    )?;
    Tensor::from_gpu(ctx, out, &out_shape).map(Some)
}

/// Rows `ids` (already checked against the table's `V`) of the `[V, d]` table `t`.
pub(crate) fn embedding(ctx: &GpuContext, t: &Tensor, ids: &[u32], d: usize) -> Result<Tensor> {
    let n = ids.len() * d;
    let out = GpuBuffer::uninit(ctx, n)?;
    if n > 0 {
        // The buffer type is f32: the ids travel as their bit patterns (read as u32 there).
        let idb = GpuBuffer::upload(ctx, bytemuck::cast_slice(ids))?;
        let (groups, gx) = grid_1d(n, 256, ctx.info().max_workgroups_per_dim)?;
        let params: [u32; 4] = [n as u32, gx, d as u32, 0];
        ctx.launch(&Dispatch {
            kernel: &EMBEDDING,
            constants: &[],
            buffers: &[buf(t), &idb, &out],
            params: bytemuck::cast_slice(&params),
            groups,
            label: "embedding",
        })?;
    }
    Tensor::from_gpu(ctx, out, &[ids.len(), d])
}
