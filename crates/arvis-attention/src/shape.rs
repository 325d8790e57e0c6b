//! Shape validation shared by the fused kernel, the reference and the KV cache.

use arvis_core::Tensor;

use crate::error::{AttentionError, Result};
use crate::mask::AttentionMask;

/// The sizes of one attention call: `q [B, H, Lq, D]`, `k, v [B, H, Lk, D]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub lq: usize,
    pub lk: usize,
    pub d: usize,
}

impl Dims {
    /// `B·H`.
    pub fn bh(&self) -> usize {
        self.batch * self.heads
    }

    /// Output shape `[B, H, Lq, D]`.
    pub fn out_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.lq, self.d]
    }
}

/// Checks that `t` is rank 4 and returns its dims.
pub(crate) fn rank4(op: &'static str, operand: &'static str, t: &Tensor) -> Result<[usize; 4]> {
    match *t.shape() {
        [b, h, l, d] => Ok([b, h, l, d]),
        _ => Err(AttentionError::Rank {
            op,
            operand,
            shape: t.shape().to_vec(),
        }),
    }
}

/// Validates `q`, `k`, `v` and the mask for one attention call.
pub(crate) fn check(
    op: &'static str,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
) -> Result<Dims> {
    let [b, h, lq, d] = rank4(op, "q", q)?;
    let [kb, kh, lk, kd] = rank4(op, "k", k)?;
    rank4(op, "v", v)?;
    let mismatch = |what: String| AttentionError::Mismatch {
        op,
        what,
        q: q.shape().to_vec(),
        k: k.shape().to_vec(),
        v: v.shape().to_vec(),
    };
    if k.shape() != v.shape() {
        return Err(mismatch("k and v must have the same shape".into()));
    }
    if (kb, kh) != (b, h) {
        return Err(mismatch(format!(
            "batch and heads differ: q has B={b}, H={h}, k and v have B={kb}, H={kh}"
        )));
    }
    if kd != d {
        return Err(mismatch(format!(
            "head dims differ: q has D={d}, k and v have D={kd}"
        )));
    }
    if lq > lk {
        return Err(AttentionError::QueriesExceedKeys {
            op,
            lq,
            lk,
            q: q.shape().to_vec(),
            k: k.shape().to_vec(),
        });
    }
    mask.validate(op, lk)?;
    Ok(Dims {
        batch: b,
        heads: h,
        lq,
        lk,
        d,
    })
}

/// Per query row, the number of visible keys (a prefix of the keys), queries being the last
/// `lq` of `lk` positions.
pub(crate) fn row_limits(mask: &AttentionMask, lq: usize, lk: usize) -> Vec<usize> {
    (0..lq)
        .map(|i| mask.visible_prefix(lk - lq + i, lk))
        .collect()
}
