#![doc = include_str!("../README.md")]

mod cache;
mod cpu;
pub mod error;
mod gpu;
mod mask;
mod reference;
mod rope;
mod shape;

use std::borrow::Cow;

use arvis_core::Tensor;
use arvis_core::ndarray::{ArcArray, IxDyn};

pub use cache::KvCache;
pub use error::{AttentionError, Result};
pub use gpu::{DECODE_MAX_QUERIES, GpuKernel, MAX_GPU_HEAD_DIM};
pub use mask::{
    AttentionMask, AxialMask, Axis, BlockCausalMask, BlockCopy, Diagonal, ExplicitMask,
    NeighborMask, SkipCausalMask,
};
pub use reference::sdpa_reference;
pub use rope::{RopeTable, rope2d};

/// Scaled dot-product attention `softmax(scale · q·kᵀ + mask) · v`, fused, on the device of its
/// inputs (CPU, or the GPU kernels `attention_decode.wgsl` for `Lq <= 16` and
/// `attention_flash.wgsl` otherwise; see [`sdpa_with_kernel`]).
///
/// Shapes: `q [B, H, Lq, D]`, `k, v [B, H, Lk, D]` → `[B, H, Lq, D]`, with `Lq <= Lk`. The
/// queries are the **last** `Lq` of the `Lk` positions (query row `i` sits at absolute position
/// `Lk − Lq + i`), so one call serves both a full forward (`Lq = Lk`) and a KV-cache step (`Lq`
/// new queries against every cached key). A block-causal mask must cover exactly `Lk`
/// positions.
///
/// The kernel never materialises the `[Lq, Lk]` score matrix: keys are visited in tiles with a
/// running maximum and sum per row (online softmax), in parallel over heads and query blocks;
/// masked-out key tiles are skipped. Agrees with [`sdpa_reference`] within
/// [`Tolerance::MATMUL`](arvis_core::Tolerance::MATMUL).
///
/// A query row that sees no key at all (only an [`ExplicitMask`] with an empty row can do that
/// under the last-`Lq` convention) yields zeros rather than NaN, on every device.
///
/// On the GPU, head dims above [`MAX_GPU_HEAD_DIM`] run on the host (download, CPU kernel,
/// upload).
///
/// # Errors
/// [`AttentionError`] naming `sdpa` when an operand is not rank 4, `k` and `v` differ in shape,
/// the batch, head count or head dim differ, `Lq > Lk`, a mask with a fixed extent does not
/// cover `Lk` positions, or the operands are on different devices; GPU launch errors.
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    scale: f32,
) -> Result<Tensor> {
    sdpa_with_kernel(q, k, v, mask, scale, GpuKernel::Auto)
}

/// [`sdpa`] with an explicit choice of GPU kernel (ignored for CPU operands).
pub fn sdpa_with_kernel(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    scale: f32,
    kernel: GpuKernel,
) -> Result<Tensor> {
    let dims = shape::check("sdpa", q, k, v, mask)?;
    if let Some(ctx) = gpu::context_of("sdpa", &[q, k, v])? {
        if dims.d > MAX_GPU_HEAD_DIM {
            let host = sdpa_cpu(&q.to_cpu()?, &k.to_cpu()?, &v.to_cpu()?, mask, scale, dims)?;
            return Ok(host.to_gpu(&ctx)?);
        }
        let (kb, vb) = (gpu::buf(k), gpu::buf(v));
        return gpu::attend(
            "sdpa",
            &ctx,
            q,
            kb,
            vb,
            dims.lk * dims.d,
            dims,
            mask,
            scale,
            kernel,
        );
    }
    sdpa_cpu(q, k, v, mask, scale, dims)
}

/// The fused CPU kernel on validated CPU operands.
fn sdpa_cpu(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    scale: f32,
    dims: shape::Dims,
) -> Result<Tensor> {
    let limits = shape::row_limits(mask, dims.lq, dims.lk);
    let (qa, ka, va) = (q.to_ndarray(), k.to_ndarray(), v.to_ndarray());
    let (qs, ks, vs) = (tensor_data(&qa), tensor_data(&ka), tensor_data(&va));
    let head_stride = dims.lk * dims.d;
    let out = cpu::attend(
        &qs,
        cpu::KvSource {
            data: &ks,
            head_stride,
        },
        cpu::KvSource {
            data: &vs,
            head_stride,
        },
        dims,
        &limits,
        (!mask.is_prefix()).then_some(mask),
        scale,
    );
    Ok(Tensor::from_vec(out, &dims.out_shape())?)
}

/// The row-major data of a tensor's array: borrowed (CPU tensors are always contiguous), or
/// copied should an array ever not be.
pub(crate) fn tensor_data(a: &ArcArray<f32, IxDyn>) -> Cow<'_, [f32]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}
