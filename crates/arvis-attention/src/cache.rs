//! [`KvCache`]: keys and values of past positions, for step-by-step decoding, on the CPU or
//! the GPU.

use std::sync::Arc;

use arvis_core::gpu::{GpuBuffer, GpuContext};
use arvis_core::{Device, Tensor};

use crate::cpu::{self, KvSource};
use crate::error::{AttentionError, Result};
use crate::gpu::{self, GpuKernel};
use crate::mask::AttentionMask;
use crate::shape::{self, Dims};
use crate::tensor_data;

/// Keys and values of the positions seen so far, `[B, H, len, D]` each, with a fixed capacity.
///
/// Storage is `[B·H, capacity, D]` per tensor, allocated on the first [`append`](Self::append)
/// (so an unused cache costs nothing) on the device of the appended tensors: host vectors, or
/// two preallocated GPU buffers that `append` fills with a copy kernel (`kv_copy.wgsl`, recorded
/// in the device's command batch, so program order holds) and [`attend`](Self::attend) reads
/// in place. Every later call must use tensors on that device. [`truncate`](Self::truncate)
/// drops the newest positions (speculative-decoding rollback) in `O(1)` without freeing
/// memory. Cloning a GPU cache shares its buffers until one of the clones appends (which then
/// copies its valid prefix to fresh buffers first).
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
    /// The device buffers, once the first append brought GPU tensors.
    gpu: Option<GpuKv>,
}

/// A GPU cache's buffers, `[B·H, capacity, D]` each.
#[derive(Clone, Debug)]
struct GpuKv {
    ctx: GpuContext,
    k: Arc<GpuBuffer>,
    v: Arc<GpuBuffer>,
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
            gpu: None,
        }
    }

    /// Where the data lives: `None` before the first append, then the device of the appended
    /// tensors.
    pub fn device(&self) -> Option<Device> {
        if self.gpu.is_some() {
            Some(Device::Gpu)
        } else if !self.k.is_empty() {
            Some(Device::Cpu)
        } else {
            None
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
        match gpu::context_of(OP, &[k, v])? {
            Some(ctx) => self.append_gpu(&ctx, k, v, l)?,
            None => self.append_cpu(k, v, l)?,
        }
        self.len += l;
        Ok(())
    }

    fn append_cpu(&mut self, k: &Tensor, v: &Tensor, l: usize) -> Result<()> {
        const OP: &str = "KvCache::append";
        if self.gpu.is_some() {
            return Err(AttentionError::Device {
                op: OP,
                msg: "the cache holds its data on the GPU but was given CPU tensors".into(),
            });
        }
        let d = self.head_dim;
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
        Ok(())
    }

    fn append_gpu(&mut self, ctx: &GpuContext, k: &Tensor, v: &Tensor, l: usize) -> Result<()> {
        const OP: &str = "KvCache::append";
        if !self.k.is_empty() {
            return Err(AttentionError::Device {
                op: OP,
                msg: "the cache holds its data on the CPU but was given GPU tensors".into(),
            });
        }
        let (bh, d, cap) = (self.batch * self.heads, self.head_dim, self.capacity);
        let stride = cap * d;
        let g = match &mut self.gpu {
            Some(g) if !g.ctx.same_device(ctx) => {
                return Err(AttentionError::Device {
                    op: OP,
                    msg: "the cache's buffers are on another GPU context".into(),
                });
            }
            Some(g) => g,
            None => {
                let n = self.buffer_len()?;
                self.gpu.insert(GpuKv {
                    ctx: ctx.clone(),
                    k: Arc::new(GpuBuffer::uninit(ctx, n)?),
                    v: Arc::new(GpuBuffer::uninit(ctx, n)?),
                })
            }
        };
        for buf in [&mut g.k, &mut g.v] {
            if Arc::get_mut(buf).is_none() {
                // Shared with a clone: copy the valid prefix to a private buffer first.
                let fresh = GpuBuffer::uninit(ctx, buf.len())?;
                gpu::copy_rows(ctx, buf, stride, 0, &fresh, stride, 0, bh, self.len, d)?;
                *buf = Arc::new(fresh);
            }
        }
        let src_stride = l * d;
        gpu::copy_rows(
            ctx,
            gpu::buf(k),
            src_stride,
            0,
            &g.k,
            stride,
            self.len,
            bh,
            l,
            d,
        )?;
        gpu::copy_rows(
            ctx,
            gpu::buf(v),
            src_stride,
            0,
            &g.v,
            stride,
            self.len,
            bh,
            l,
            d,
        )?;
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

    /// The cached keys, `[B, H, len, D]` (a copy, on the cache's device).
    ///
    /// # Panics
    /// When the GPU copy cannot be recorded (device lost); see [`try_keys`](Self::try_keys).
    pub fn keys(&self) -> Tensor {
        self.try_keys().expect("KvCache::keys: GPU copy failed")
    }

    /// The cached values, `[B, H, len, D]` (a copy, on the cache's device).
    ///
    /// # Panics
    /// When the GPU copy cannot be recorded; see [`try_values`](Self::try_values).
    pub fn values(&self) -> Tensor {
        self.try_values().expect("KvCache::values: GPU copy failed")
    }

    /// [`keys`](Self::keys), with GPU errors returned.
    pub fn try_keys(&self) -> Result<Tensor> {
        match &self.gpu {
            Some(g) => self.gather_gpu(&g.ctx, &g.k),
            None => Ok(self.gather(&self.k)),
        }
    }

    /// [`values`](Self::values), with GPU errors returned.
    pub fn try_values(&self) -> Result<Tensor> {
        match &self.gpu {
            Some(g) => self.gather_gpu(&g.ctx, &g.v),
            None => Ok(self.gather(&self.v)),
        }
    }

    fn gather_gpu(&self, ctx: &GpuContext, buf: &Arc<GpuBuffer>) -> Result<Tensor> {
        let (bh, d, len) = (self.batch * self.heads, self.head_dim, self.len);
        let shape = [self.batch, self.heads, len, d];
        gpu::gather(ctx, buf, self.capacity * d, bh, len, d, &shape)
    }

    /// [`sdpa`](crate::sdpa) of `q [B, H, Lq, D]` against the cached keys and values, reading
    /// them in place (no copy). The queries are the last `Lq` of the `len` cached positions, as
    /// in `sdpa`; a mask with a fixed extent must cover exactly `len` positions. On the GPU
    /// (`q` must be on the cache's device) it runs the decode kernel for `Lq <= 16` and the
    /// flash kernel otherwise.
    pub fn attend(&self, q: &Tensor, mask: &AttentionMask, scale: f32) -> Result<Tensor> {
        self.attend_with_kernel(q, mask, scale, GpuKernel::Auto)
    }

    /// [`attend`](Self::attend) with an explicit GPU kernel (ignored on the CPU).
    pub fn attend_with_kernel(
        &self,
        q: &Tensor,
        mask: &AttentionMask,
        scale: f32,
        kernel: GpuKernel,
    ) -> Result<Tensor> {
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
        let q_ctx = gpu::context_of(OP, &[q])?;
        match (&self.gpu, q_ctx) {
            (Some(g), Some(ctx)) if g.ctx.same_device(&ctx) => {
                if d > gpu::MAX_GPU_HEAD_DIM {
                    let host = self.host_copy()?.attend(&q.to_cpu()?, mask, scale)?;
                    return Ok(host.to_gpu(&ctx)?);
                }
                let stride = self.capacity * d;
                return gpu::attend(OP, &ctx, q, &g.k, &g.v, stride, dims, mask, scale, kernel);
            }
            (None, None) => {}
            (None, Some(ctx)) if self.k.is_empty() => {
                // Nothing cached yet, so Lq = 0: an empty result on q's device.
                return Ok(Tensor::from_gpu(
                    &ctx,
                    GpuBuffer::uninit(&ctx, 0)?,
                    &dims.out_shape(),
                )?);
            }
            _ => {
                return Err(AttentionError::Device {
                    op: OP,
                    msg: "the queries are not on the device holding the cache".into(),
                });
            }
        }
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
            (!mask.is_prefix()).then_some(mask),
            scale,
        );
        Ok(Tensor::from_vec(out, &dims.out_shape())?)
    }

    /// A host copy of a GPU cache (downloads the valid prefix).
    fn host_copy(&self) -> Result<KvCache> {
        let mut c = KvCache::new(self.batch, self.heads, self.head_dim, self.capacity);
        c.append(&self.try_keys()?.to_cpu()?, &self.try_values()?.to_cpu()?)?;
        Ok(c)
    }

    /// `B·H·capacity·D`, checked.
    fn buffer_len(&self) -> Result<usize> {
        let too_large = || AttentionError::CacheTooLarge {
            batch: self.batch,
            heads: self.heads,
            capacity: self.capacity,
            head_dim: self.head_dim,
        };
        [self.heads, self.capacity, self.head_dim]
            .iter()
            .try_fold(self.batch, |acc, &x| acc.checked_mul(x))
            .filter(|&n| n <= isize::MAX as usize / std::mem::size_of::<f32>())
            .ok_or_else(too_large)
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
