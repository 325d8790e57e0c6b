//! Layout ops (reshape, permute, concat, split, narrow) and index ops (embedding gather,
//! argmax, top-k). CPU results are always freshly contiguous.

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::gpu::GpuBuffer;
use crate::gpu::ops::layout::{self, StridedCopy};
use crate::gpu::ops::{buf, reduce};
use crate::tensor::{Tensor, numel, outer_n_inner, resolve_axis};
use crate::tensor::{gpu_context, via_host};

/// Descending order with NaN first and ties broken by the lower index (so results are
/// deterministic whatever the sort algorithm).
fn desc(a: (f32, usize), b: (f32, usize)) -> Ordering {
    match (a.0.is_nan(), b.0.is_nan()) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => {
            b.0.partial_cmp(&a.0)
                .unwrap_or(Ordering::Equal)
                .then(a.1.cmp(&b.1))
        }
    }
}

impl Tensor {
    /// Same data, new shape (same element count). `O(1)`: the buffer is shared.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::ElementCount {
                op: "reshape",
                len: self.numel(),
                shape: shape.to_vec(),
                expected: numel(shape),
            });
        }
        self.with_shape(shape)
    }

    /// Inserts a size-1 dim at `dim` (`0..=rank`).
    pub fn unsqueeze(&self, dim: usize) -> Result<Tensor> {
        if dim > self.rank() {
            return Err(Error::Dim {
                op: "unsqueeze",
                dim: dim as isize,
                rank: self.rank(),
            });
        }
        let mut s = self.shape().to_vec();
        s.insert(dim, 1);
        self.reshape(&s)
    }

    /// Reorders dims: output dim `i` is input dim `perm[i]` (as `torch.permute`).
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        const OP: &str = "permute";
        let ctx = gpu_context(OP, &[self])?;
        let s = self.shape();
        let r = s.len();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::arg(
                OP,
                format!("{perm:?} is not a permutation of 0..{r}"),
            ));
        }
        if let Some(ctx) = ctx {
            return match layout::permute(&ctx, self, perm)? {
                Some(t) => Ok(t),
                // More than 8 dims that cannot be merged: no kernel indexes that many.
                None => via_host(&ctx, &[self], |h| h[0].permute(perm)),
            };
        }
        let out_shape: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
        let mut in_strides = vec![1usize; r];
        for i in (0..r.saturating_sub(1)).rev() {
            in_strides[i] = in_strides[i + 1] * s[i + 1];
        }
        let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
        let x = self.data();
        let n = numel(&out_shape);
        let last = out_shape.last().copied().unwrap_or(1);
        let mut out = vec![0.0f32; n];
        if n > 0 && r > 0 {
            let last_stride = strides[r - 1];
            out.par_chunks_mut(last)
                .enumerate()
                .for_each(|(row, line)| {
                    // Offset of this output row's first element in the input.
                    let (mut rem, mut off) = (row, 0);
                    for d in (0..r - 1).rev() {
                        off += (rem % out_shape[d]) * strides[d];
                        rem /= out_shape[d];
                    }
                    for (j, v) in line.iter_mut().enumerate() {
                        *v = x[off + j * last_stride];
                    }
                });
        } else if n > 0 {
            out.copy_from_slice(x);
        }
        Tensor::from_vec(out, &out_shape)
    }

    /// Swaps two dims.
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let a = self.axis("transpose", d0)?;
        let b = self.axis("transpose", d1)?;
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Concatenates tensors along `dim`; all other dims must agree.
    pub fn concat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        const OP: &str = "concat";
        let ctx = gpu_context(OP, tensors)?;
        let Some(first) = tensors.first() else {
            return Err(Error::arg(OP, "no tensors to concatenate"));
        };
        let axis = first.axis(OP, dim)?;
        let base = first.shape();
        let mut total = 0;
        for t in tensors {
            let s = t.shape();
            let same_rest = s.len() == base.len()
                && s.iter()
                    .zip(base)
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if !same_rest {
                return Err(Error::shape(
                    OP,
                    format!("{base:?} except along dim {axis}"),
                    s,
                ));
            }
            total += s[axis];
        }
        let mut out_shape = base.to_vec();
        out_shape[axis] = total;
        let (outer, _, inner) = outer_n_inner(&out_shape, axis);
        if let Some(ctx) = ctx {
            // One strided copy per input into its slab of every outer row.
            let out = GpuBuffer::uninit(&ctx, numel(&out_shape))?;
            let mut before = 0;
            for t in tensors {
                let len = t.shape()[axis] * inner;
                layout::strided_copy(
                    &ctx,
                    OP,
                    buf(t),
                    &out,
                    &StridedCopy {
                        dims: &[outer, len],
                        src_strides: &[len, 1],
                        src_off: 0,
                        dst_strides: &[total * inner, 1],
                        dst_off: before,
                    },
                )?;
                before += len;
            }
            return Tensor::from_gpu(&ctx, out, &out_shape);
        }
        let mut out = Vec::with_capacity(numel(&out_shape));
        for o in 0..outer {
            for t in tensors {
                let len = t.shape()[axis] * inner;
                out.extend_from_slice(&t.data()[o * len..(o + 1) * len]);
            }
        }
        Tensor::from_vec(out, &out_shape)
    }

    /// The slice `start..start+len` along `dim`.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let ctx = gpu_context("narrow", &[self])?;
        let axis = self.axis("narrow", dim)?;
        let (outer, n, inner) = outer_n_inner(self.shape(), axis);
        if start.checked_add(len).is_none_or(|end| end > n) {
            return Err(Error::arg(
                "narrow",
                format!(
                    "range {start}..{} exceeds dim {axis} of size {n}",
                    start.saturating_add(len)
                ),
            ));
        }
        let mut s = self.shape().to_vec();
        s[axis] = len;
        if let Some(ctx) = ctx {
            if len == n {
                // The whole dim: GPU buffers are never written after their op, so share it.
                return Ok(self.clone());
            }
            let out = GpuBuffer::uninit(&ctx, outer * len * inner)?;
            layout::strided_copy(
                &ctx,
                "narrow",
                buf(self),
                &out,
                &StridedCopy {
                    dims: &[outer, len * inner],
                    src_strides: &[n * inner, 1],
                    src_off: start * inner,
                    dst_strides: &[len * inner, 1],
                    dst_off: 0,
                },
            )?;
            return Tensor::from_gpu(&ctx, out, &s);
        }
        let x = self.data();
        let mut out = Vec::with_capacity(outer * len * inner);
        for o in 0..outer {
            let base = o * n * inner;
            out.extend_from_slice(&x[base + start * inner..base + (start + len) * inner]);
        }
        Tensor::from_vec(out, &s)
    }

    /// Splits along `dim` into pieces of the given sizes (which must sum to the dim's size).
    pub fn split(&self, sizes: &[usize], dim: isize) -> Result<Vec<Tensor>> {
        let n = self.dim(dim)?;
        if sizes.iter().sum::<usize>() != n {
            return Err(Error::arg(
                "split",
                format!("sizes {sizes:?} do not sum to {n}"),
            ));
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let t = self.narrow(dim, start, len);
                start += len;
                t
            })
            .collect()
    }

    /// Splits along `dim` into `chunks` equal pieces (`torch.chunk` with an exact division).
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        let n = self.dim(dim)?;
        if chunks == 0 || !n.is_multiple_of(chunks) {
            return Err(Error::arg(
                "chunk",
                format!("dim of size {n} is not divisible by {chunks}"),
            ));
        }
        self.split(&vec![n / chunks; chunks], dim)
    }

    /// Embedding lookup: rows of this `[V, D]` table for each id → `[ids.len(), D]`.
    pub fn embedding(&self, ids: &[u32]) -> Result<Tensor> {
        let ctx = gpu_context("embedding", &[self])?;
        let s = self.shape();
        if s.len() != 2 {
            return Err(Error::shape("embedding", "table [V, D]", s));
        }
        let (v, d) = (s[0], s[1]);
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= v) {
            return Err(Error::arg(
                "embedding",
                format!("id {bad} out of range for {v} rows"),
            ));
        }
        if let Some(ctx) = ctx {
            return layout::embedding(&ctx, self, ids, d);
        }
        let table = self.data();
        let mut out = vec![0.0f32; ids.len() * d];
        if d > 0 {
            out.par_chunks_mut(d)
                .zip(ids.par_iter())
                .for_each(|(row, &i)| {
                    row.copy_from_slice(&table[i as usize * d..(i as usize + 1) * d]);
                });
        }
        Tensor::from_vec(out, &[ids.len(), d])
    }

    /// Index of the maximum along `dim` (first on ties, NaN counts as the maximum, as in
    /// PyTorch); the result is laid out row-major over the remaining dims.
    pub fn argmax(&self, dim: isize) -> Result<Vec<u32>> {
        let ctx = gpu_context("argmax", &[self])?;
        let axis = self.axis("argmax", dim)?;
        let (outer, n, inner) = outer_n_inner(self.shape(), axis);
        if n == 0 {
            return Err(Error::arg("argmax", "argmax of an empty dimension"));
        }
        if let Some(ctx) = ctx {
            if outer * inner == 0 {
                return Ok(Vec::new());
            }
            return reduce::argmax(&ctx, self, (outer, n, inner));
        }
        let x = self.data();
        Ok((0..outer * inner)
            .into_par_iter()
            .map(|r| {
                let (o, j) = (r / inner, r % inner);
                let at = |i: usize| x[(o * n + i) * inner + j];
                let mut best = 0;
                for i in 1..n {
                    if desc((at(i), i), (at(best), best)) == Ordering::Less {
                        best = i;
                    }
                }
                best as u32
            })
            .collect())
    }

    /// The `k` largest values along the last dim, sorted descending (ties: lower index first),
    /// with their indices: `([.., k], indices row-major)`.
    pub fn topk(&self, k: usize) -> Result<(Tensor, Vec<u32>)> {
        let ctx = gpu_context("topk", &[self])?;
        let s = self.shape();
        let Some(&n) = s.last() else {
            return Err(Error::shape("topk", "rank >= 1", s));
        };
        if k > n {
            return Err(Error::arg(
                "topk",
                format!("k = {k} exceeds the last dim ({n})"),
            ));
        }
        let rows = numel(&s[..s.len() - 1]);
        if let Some(ctx) = ctx {
            let mut out_shape = s.to_vec();
            *out_shape.last_mut().expect("rank >= 1") = k;
            if rows * k == 0 {
                let values = GpuBuffer::uninit(&ctx, 0)?;
                return Ok((Tensor::from_gpu(&ctx, values, &out_shape)?, Vec::new()));
            }
            if n <= reduce::TOPK_MAX_ROW
                && let Some((values, ids)) = reduce::topk(&ctx, self, rows, n, k)?
            {
                return Ok((Tensor::from_gpu(&ctx, values, &out_shape)?, ids));
            }
            // Rows too long for the device sort: a counted host round trip.
            ctx.count_host_fallback();
            let (values, ids) = self.to_cpu()?.topk(k)?;
            return Ok((values.to_gpu(&ctx)?, ids));
        }
        let x = self.data();
        let per_row: Vec<(Vec<f32>, Vec<u32>)> = (0..rows)
            .into_par_iter()
            .map(|r| {
                let row = &x[r * n..(r + 1) * n];
                let mut idx: Vec<usize> = (0..n).collect();
                let cmp = |&a: &usize, &b: &usize| desc((row[a], a), (row[b], b));
                if k > 0 && k < n {
                    idx.select_nth_unstable_by(k - 1, cmp);
                }
                idx.truncate(k);
                idx.sort_unstable_by(cmp);
                (
                    idx.iter().map(|&i| row[i]).collect(),
                    idx.iter().map(|&i| i as u32).collect(),
                )
            })
            .collect();
        let mut vals = Vec::with_capacity(rows * k);
        let mut ids = Vec::with_capacity(rows * k);
        for (v, i) in per_row {
            vals.extend(v);
            ids.extend(i);
        }
        let mut out_shape = s.to_vec();
        *out_shape.last_mut().expect("rank >= 1") = k;
        Ok((Tensor::from_vec(vals, &out_shape)?, ids))
    }
}

/// Resolves `dim` against `rank` (exposed for crates that build their own ops).
pub fn axis_index(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    resolve_axis(op, dim, rank)
}
