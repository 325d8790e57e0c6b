//! Row-reduction launchers: `softmax.wgsl` (softmax, log-softmax), `norm.wgsl` (layer, RMS,
//! group and L2 norms), `argmax.wgsl` and `topk.wgsl`. Each views its input as
//! `(outer, n, inner)` and runs one workgroup per row of `n` values (the grid folds into 2-D
//! past the per-dimension limit), of [`row_threads`] invocations.

use super::{buf, kernel};
use crate::error::Result;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, Kernel, grid_1d};
use crate::tensor::Tensor;

const SOFTMAX: Kernel = kernel!("softmax.wgsl");
const NORM: Kernel = kernel!("norm.wgsl");
const ARGMAX: Kernel = kernel!("argmax.wgsl");

/// Invocations per row (the kernels' `WG` override): `n` rounded up to a power of two within
/// 32..=256, so short rows do not leave most of a 256-wide workgroup idle.
fn row_threads(n: usize) -> f64 {
    n.next_power_of_two().clamp(32, 256) as f64
}

/// One workgroup per row: the grid and its groups along x.
fn row_grid(ctx: &GpuContext, rows: usize) -> Result<([u32; 3], u32)> {
    grid_1d(rows, 1, ctx.info().max_workgroups_per_dim)
}

/// Softmax (`log = false`) or log-softmax of `x` viewed as `(outer, n, inner)`.
pub(crate) fn softmax(
    ctx: &GpuContext,
    x: &Tensor,
    (outer, n, inner): (usize, usize, usize),
    log: bool,
) -> Result<Tensor> {
    let out = GpuBuffer::uninit(ctx, x.numel())?;
    let rows = outer * inner;
    let (groups, gx) = row_grid(ctx, rows)?;
    let params: [u32; 4] = [rows as u32, n as u32, inner as u32, gx];
    ctx.launch(&Dispatch {
        kernel: &SOFTMAX,
        constants: &[("OP", f64::from(u32::from(log))), ("WG", row_threads(n))],
        buffers: &[buf(x), &out],
        params: bytemuck::cast_slice(&params),
        groups,
        label: if log { "log_softmax" } else { "softmax" },
    })?;
    Tensor::from_gpu(ctx, out, x.shape())
}

/// The normalisations of `norm.wgsl` (the value is its `OP` override).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NormOp {
    /// Mean and biased variance (layer norm, group norm).
    Standardize = 0,
    /// Root mean square.
    Rms = 1,
    /// `x / max(‖x‖₂, eps)`.
    L2 = 2,
}

/// How a [`norm`] launch sees its input: rows of `n` values `inner` apart, and which affine
/// channel value `i` of row `r` uses: `(r % groups)·cpg + i / spatial`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NormLayout {
    pub outer: usize,
    pub n: usize,
    pub inner: usize,
    pub groups: usize,
    pub cpg: usize,
    pub spatial: usize,
}

impl NormLayout {
    /// Contiguous rows of `n` with the affine indexed by position (layer and RMS norm).
    pub(crate) fn rows(outer: usize, n: usize) -> Self {
        NormLayout {
            outer,
            n,
            inner: 1,
            groups: 1,
            cpg: 0,
            spatial: 1,
        }
    }
}

/// A normalisation of every row of `x`, then the optional per-channel `weight`/`bias`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm(
    ctx: &GpuContext,
    label: &'static str,
    op: NormOp,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    l: NormLayout,
    eps: f32,
) -> Result<Tensor> {
    let out = GpuBuffer::uninit(ctx, x.numel())?;
    let rows = l.outer * l.inner;
    let (groups, gx) = row_grid(ctx, rows)?;
    let params: [u32; 8] = [
        rows as u32,
        l.n as u32,
        l.inner as u32,
        gx,
        l.spatial.max(1) as u32,
        l.groups.max(1) as u32,
        l.cpg as u32,
        eps.to_bits(),
    ];
    // An absent weight/bias binds `x` (never read: `HAS_W`/`HAS_B` are off).
    let w = weight.map_or(buf(x), buf);
    let b = bias.map_or(buf(x), buf);
    ctx.launch(&Dispatch {
        kernel: &NORM,
        constants: &[
            ("OP", op as u32 as f64),
            ("HAS_W", f64::from(u8::from(weight.is_some()))),
            ("HAS_B", f64::from(u8::from(bias.is_some()))),
            ("WG", row_threads(l.n)),
        ],
        buffers: &[buf(x), w, b, &out],
        params: bytemuck::cast_slice(&params),
        groups,
        label,
    })?;
    Tensor::from_gpu(ctx, out, x.shape())
}

/// Index of the maximum of every row of `x` viewed as `(outer, n, inner)` (`n ≥ 1`), computed
/// on the device; only the `outer · inner` indices are downloaded.
pub(crate) fn argmax(
    ctx: &GpuContext,
    x: &Tensor,
    (outer, n, inner): (usize, usize, usize),
) -> Result<Vec<u32>> {
    let rows = outer * inner;
    let out = GpuBuffer::uninit(ctx, rows)?;
    let (groups, gx) = row_grid(ctx, rows)?;
    let params: [u32; 4] = [rows as u32, n as u32, inner as u32, gx];
    ctx.launch(&Dispatch {
        kernel: &ARGMAX,
        constants: &[("WG", row_threads(n))],
        buffers: &[buf(x), &out],
        params: bytemuck::cast_slice(&params),
        groups,
        label: "argmax",
    })?;
    // The shader wrote u32 indices into the f32-typed buffer: reinterpret the bits.
    Ok(out.download(ctx)?.into_iter().map(f32::to_bits).collect())
}

const TOPK: Kernel = kernel!("topk.wgsl");
/// Longest row [`topk`] sorts on the device.
pub(crate) const TOPK_MAX_ROW: usize = 16384;

/// The `k` (`1 ≤ k ≤ n`) largest of every length-`n` row of `x` (`n ≤` [`TOPK_MAX_ROW`]),
/// sorted as the CPU's top-k: values `[rows, k]` on the device, indices downloaded. `None`
/// when the sort's scratch buffer (`rows · n` rounded up to a power of two) exceeds the
/// storage-binding limit.
pub(crate) fn topk(
    ctx: &GpuContext,
    x: &Tensor,
    rows: usize,
    n: usize,
    k: usize,
) -> Result<Option<(GpuBuffer, Vec<u32>)>> {
    debug_assert!(n <= TOPK_MAX_ROW && (1..=n).contains(&k));
    let np = n.next_power_of_two();
    if (rows * np) as u64 * 4 > ctx.info().max_storage_binding {
        return Ok(None);
    }
    let order = GpuBuffer::uninit(ctx, rows * np)?;
    let values = GpuBuffer::uninit(ctx, rows * k)?;
    let indices = GpuBuffer::uninit(ctx, rows * k)?;
    let (groups, gx) = row_grid(ctx, rows)?;
    let params: [u32; 5] = [rows as u32, n as u32, k as u32, gx, np as u32];
    ctx.launch(&Dispatch {
        kernel: &TOPK,
        // Each step compares np / 2 pairs.
        constants: &[("WG", row_threads(np / 2))],
        buffers: &[buf(x), &order, &values, &indices],
        params: bytemuck::cast_slice(&params),
        groups,
        label: "topk",
    })?;
    // The shader wrote u32 indices into the f32-typed buffer: reinterpret the bits.
    let ids = indices
        .download(ctx)?
        .into_iter()
        .map(f32::to_bits)
        .collect();
    Ok(Some((values, ids)))
}
