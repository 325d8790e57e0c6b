#![doc = include_str!("../README.md")]

mod cache;
mod cpu;
pub mod error;
mod mask;
mod reference;
mod shape;

use std::borrow::Cow;

use arvis_core::Tensor;
use arvis_core::ndarray::{ArcArray, IxDyn};

pub use cache::KvCache;
pub use error::{AttentionError, Result};
pub use mask::{AttentionMask, BlockCausalMask};
pub use reference::sdpa_reference;

/// Scaled dot-product attention `softmax(scale · q·kᵀ + mask) · v`, fused on the CPU.
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
/// A query row that sees no key at all (which the masks here cannot produce under the
/// last-`Lq` convention) yields zeros rather than NaN.
///
/// # Errors
/// [`AttentionError`] naming `sdpa` when an operand is not rank 4, `k` and `v` differ in shape,
/// the batch, head count or head dim differ, `Lq > Lk`, or a block-causal mask does not cover
/// `Lk` positions.
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    scale: f32,
) -> Result<Tensor> {
    let dims = shape::check("sdpa", q, k, v, mask)?;
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
