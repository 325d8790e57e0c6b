//! [`KvCache`]: keys and values of past positions, for step-by-step decoding.

use arvis_core::Tensor;

use crate::cpu::{self, KvSource};
use crate::error::{AttentionError, Result};
use crate::mask::AttentionMask;
use crate::shape::{self, Dims};
use crate::tensor_data;

/// Keys and values of the positions seen so far, `[B, H, len, D]` each, with a fixed capacity.
///
/// Storage is `[B·H, capacity, D]` per tensor, allocated on the first [`append`](Self::append)
/// (so an unused cache costs nothing). [`truncate`](Self::truncate) drops the newest positions
/// (speculative-decoding rollback) without freeing memory.
///
/// A VAR step appends the current scale's keys and values, then attends its queries to the
/// whole cache with [`AttentionMask::None`] (every cached position is in an earlier or the same
/// scale), either through [`attend`](Self::attend) (no copy) or [`sdpa`](crate::sdpa) on
/// [`keys`](Self::keys) / [`values`](Self::values).
#[derive(Clone, Debug)]
pub struct KvCache {
    batch: usize,
    heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    /// An empty cache for `[batch, heads, *, head_dim]` keys and values, holding at most
    /// `capacity` positions.
    pub fn new(batch: usize, heads: usize, head_dim: usize, capacity: usize) -> Self {
        KvCache {
            batch,
            heads,
            head_dim,
            capacity,
            len: 0,
            k: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of heads `H`.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Head dimension `D`.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Maximum number of positions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions that can still be appended.
    pub fn remaining(&self) -> usize {
        self.capacity - self.len
    }

    /// Appends `k`, `v` (`[B, H, L, D]` each, same shape) after the cached positions.
    ///
    /// Errors if the shapes do not fit the cache or `len + L` exceeds the capacity; the cache is
    /// unchanged on error.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        const OP: &str = "KvCache::append";
        let shape_err = || AttentionError::CacheShape {
            op: OP,
            batch: self.batch,
            heads: self.heads,
            head_dim: self.head_dim,
            k: k.shape().to_vec(),
            v: v.shape().to_vec(),
        };
        let (Ok([b, h, l, d]), Ok(_)) = (shape::rank4(OP, "k", k), shape::rank4(OP, "v", v)) else {
            return Err(shape_err());
        };
        if k.shape() != v.shape() || (b, h, d) != (self.batch, self.heads, self.head_dim) {
            return Err(shape_err());
        }
        if l > self.remaining() {
            return Err(AttentionError::CacheFull {
                len: self.len,
                added: l,
                capacity: self.capacity,
            });
        }
        if l == 0 {
            return Ok(());
        }
        self.allocate()?;
        let (ka, va) = (k.to_ndarray(), v.to_ndarray());
        let (ks, vs) = (tensor_data(&ka), tensor_data(&va));
        let (stride, rows) = (self.capacity * d, l * d);
        let at = self.len * d;
        for (dst, src) in [(&mut self.k, &ks), (&mut self.v, &vs)] {
            for (head, chunk) in src.chunks_exact(rows).enumerate() {
                dst[head * stride + at..][..rows].copy_from_slice(chunk);
            }
        }
        self.len += l;
        Ok(())
    }

    /// Keeps only the first `len` positions (speculative rollback). Errors if `len` exceeds
    /// the cached length.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(AttentionError::Truncate {
                requested: len,
                len: self.len,
            });
        }
        self.len = len;
        Ok(())
    }

    /// Drops every position (the memory is kept for reuse).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The cached keys, `[B, H, len, D]` (a copy).
    pub fn keys(&self) -> Tensor {
        self.gather(&self.k)
    }

    /// The cached values, `[B, H, len, D]` (a copy).
    pub fn values(&self) -> Tensor {
        self.gather(&self.v)
    }

    /// [`sdpa`](crate::sdpa) of `q [B, H, Lq, D]` against the cached keys and values, reading
    /// them in place (no copy). The queries are the last `Lq` of the `len` cached positions, as
    /// in `sdpa`; a block-causal mask must cover exactly `len` positions.
    pub fn attend(&self, q: &Tensor, mask: &AttentionMask, scale: f32) -> Result<Tensor> {
        const OP: &str = "KvCache::attend";
        let [b, h, lq, d] = shape::rank4(OP, "q", q)?;
        if (b, h, d) != (self.batch, self.heads, self.head_dim) {
            return Err(AttentionError::CacheShape {
                op: OP,
                batch: self.batch,
                heads: self.heads,
                head_dim: self.head_dim,
                k: q.shape().to_vec(),
                v: q.shape().to_vec(),
            });
        }
        let cached = [b, h, self.len, d];
        if lq > self.len {
            return Err(AttentionError::QueriesExceedKeys {
                op: OP,
                lq,
                lk: self.len,
                q: q.shape().to_vec(),
                k: cached.to_vec(),
            });
        }
        mask.validate(OP, self.len)?;
        let dims = Dims {
            batch: b,
            heads: h,
            lq,
            lk: self.len,
            d,
        };
        let limits = shape::row_limits(mask, lq, self.len);
        let qa = q.to_ndarray();
        let qs = tensor_data(&qa);
        let stride = self.capacity * d;
        let out = cpu::attend(
            &qs,
            KvSource {
                data: &self.k,
                head_stride: stride,
            },
            KvSource {
                data: &self.v,
                head_stride: stride,
            },
            dims,
            &limits,
            scale,
        );
        Ok(Tensor::from_vec(out, &dims.out_shape())?)
    }

    /// Allocates the buffers on first use.
    fn allocate(&mut self) -> Result<()> {
        if !self.k.is_empty() {
            return Ok(());
        }
        let too_large = || AttentionError::CacheTooLarge {
            batch: self.batch,
            heads: self.heads,
            capacity: self.capacity,
            head_dim: self.head_dim,
        };
        let n = [self.heads, self.capacity, self.head_dim]
            .iter()
            .try_fold(self.batch, |acc, &x| acc.checked_mul(x))
            .filter(|&n| n <= isize::MAX as usize / std::mem::size_of::<f32>())
            .ok_or_else(too_large)?;
        self.k = vec![0.0; n];
        self.v = vec![0.0; n];
        Ok(())
    }

    /// Copies the first `len` rows of every head into a `[B, H, len, D]` tensor.
    fn gather(&self, buf: &[f32]) -> Tensor {
        let (d, len) = (self.head_dim, self.len);
        let shape = [self.batch, self.heads, len, d];
        let mut out = Vec::with_capacity(self.batch * self.heads * len * d);
        if len > 0 {
            for head in buf.chunks_exact(self.capacity * d) {
                out.extend_from_slice(&head[..len * d]);
            }
        }
        // The length is B·H·len·D by construction.
        Tensor::from_vec(out, &shape).expect("invariant: gathered B·H·len·D elements")
    }
}
