//! The naive f64 oracle: materialises the full score matrix of every head.

use arvis_core::Tensor;

use crate::error::Result;
use crate::mask::AttentionMask;
use crate::shape;

/// Scaled dot-product attention computed naively in f64, for tests: same contract as
/// [`sdpa`](crate::sdpa) (queries are the last `Lq` of `Lk` positions).
///
/// For each head it builds the full `[Lq, Lk]` score matrix `scale · q·kᵀ` with masked entries
/// at `−∞` (using the pairwise rule [`AttentionMask::allows`], independently of the prefix
/// form the fused kernel uses), takes a row-wise softmax and multiplies by `v`, all in f64.
/// A row with no visible key yields zeros, like the fused kernel.
pub fn sdpa_reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    scale: f32,
) -> Result<Tensor> {
    let dims = shape::check("sdpa_reference", q, k, v, mask)?;
    let (lq, lk, d) = (dims.lq, dims.lk, dims.d);
    let to64 = |t: &Tensor| t.to_vec().into_iter().map(f64::from).collect::<Vec<_>>();
    let (q, k, v) = (to64(q), to64(k), to64(v));
    let scale = f64::from(scale);
    let mut out = vec![0.0f32; dims.bh() * lq * d];
    let mut scores = vec![0.0f64; lq * lk];
    for h in 0..dims.bh() {
        let (qh, kh, vh) = (
            &q[h * lq * d..][..lq * d],
            &k[h * lk * d..][..lk * d],
            &v[h * lk * d..][..lk * d],
        );
        for i in 0..lq {
            let q_pos = lk - lq + i;
            for j in 0..lk {
                scores[i * lk + j] = if mask.allows(q_pos, j) {
                    let dot: f64 = (0..d).map(|x| qh[i * d + x] * kh[j * d + x]).sum();
                    scale * dot
                } else {
                    f64::NEG_INFINITY
                };
            }
        }
        for i in 0..lq {
            let row = &mut scores[i * lk..][..lk];
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if max == f64::NEG_INFINITY {
                continue; // nothing visible: the output row stays zero
            }
            let mut sum = 0.0;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            let dst = &mut out[(h * lq + i) * d..][..d];
            for (x, o) in dst.iter_mut().enumerate() {
                let acc: f64 = row.iter().enumerate().map(|(j, p)| p * vh[j * d + x]).sum();
                *o = (acc / sum) as f32;
            }
        }
    }
    Ok(Tensor::from_vec(out, &dims.out_shape())?)
}
