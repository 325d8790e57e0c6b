//! The fused CPU path: K packing and the parallel split over heads and query blocks.
//!
//! Work is split with rayon over `B·H` heads and, inside each head, over blocks of [`QB`] query
//! rows, so a single head (a KV-cache step with `B·H = 1`) still uses every core once
//! `Lq > QB`. Per head, the keys are packed once into transposed tiles ([`pack_kt`]) so that the
//! `q·kᵀ` micro-kernel streams contiguous memory and vectorises over keys; the micro-kernel and
//! the online softmax live in [`kernel`].

mod kernel;

use rayon::prelude::*;

use crate::mask::AttentionMask;
use crate::shape::Dims;
use kernel::HeadCtx;

/// Keys per packed `kᵀ` tile (the `q·kᵀ` micro-kernel's width).
const NK: usize = 32;
/// `v` rows and the output accumulator are padded to a multiple of this many columns.
const DC: usize = 32;
/// Keys per online-softmax step (a multiple of [`NK`]): scores for this many keys are computed,
/// then one max / rescale / `p·v` update follows.
const KB: usize = 128;
/// Query rows per parallel task (a multiple of every micro-tile height).
const QB: usize = 32;

/// Keys or values of every head: head `h`'s row `j` is `data[h·head_stride + j·D ..][..D]`.
#[derive(Clone, Copy)]
pub(crate) struct KvSource<'a> {
    pub data: &'a [f32],
    pub head_stride: usize,
}

/// Fused attention over contiguous `q [B·H, Lq, D]` and strided `k`, `v`. `limits[i]` bounds
/// the keys query row `i` sees (they lie in `0..limits[i]`); with `irregular`, the mask is also
/// tested pair by pair below the limit (masks that are not prefixes). Returns `[B·H, Lq, D]`.
pub(crate) fn attend(
    q: &[f32],
    k: KvSource<'_>,
    v: KvSource<'_>,
    dims: Dims,
    limits: &[usize],
    irregular: Option<&AttentionMask>,
    scale: f32,
) -> Vec<f32> {
    let Dims { lq, lk, d, .. } = dims;
    let mut out = vec![0.0f32; dims.bh() * lq * d];
    if out.is_empty() {
        return out;
    }
    // From here on B·H, Lq, D >= 1 and Lk >= Lq.
    let arch = pulp::Arch::new();
    out.par_chunks_mut(lq * d)
        .enumerate()
        .for_each(|(h, out_h)| {
            let kt = pack_kt(&k.data[h * k.head_stride..][..lk * d], lk, d);
            let v_head = &v.data[h * v.head_stride..][..lk * d];
            let padded;
            let (v_rows, dp) = if d % DC == 0 {
                (v_head, d)
            } else {
                padded = pad_rows(v_head, lk, d);
                (&padded[..], d.next_multiple_of(DC))
            };
            let ctx = HeadCtx {
                kt: &kt,
                v: v_rows,
                d,
                dp,
                scale,
                arch,
                mask: irregular,
            };
            let q_h = &q[h * lq * d..][..lq * d];
            out_h
                .par_chunks_mut(QB * d)
                .enumerate()
                .for_each(|(blk, out_b)| {
                    let i0 = blk * QB;
                    let rows = out_b.len() / d;
                    kernel::attend_rows(
                        &ctx,
                        lk - lq + i0,
                        &q_h[i0 * d..][..rows * d],
                        &limits[i0..i0 + rows],
                        out_b,
                    );
                });
        });
    out
}

/// Packs one head's keys `[lk, d]` into `⌈lk/NK⌉` tiles of `kᵀ`, each `[d][NK]` (key index
/// fastest), zero-padded past `lk`.
fn pack_kt(k: &[f32], lk: usize, d: usize) -> Vec<f32> {
    let mut kt = vec![0.0f32; lk.div_ceil(NK) * d * NK];
    for (j, row) in k.chunks_exact(d).take(lk).enumerate() {
        let tile = &mut kt[(j / NK) * d * NK..][..d * NK];
        let col = j % NK;
        for (x, &val) in row.iter().enumerate() {
            tile[x * NK + col] = val;
        }
    }
    kt
}

/// Copies `[rows, d]` into `[rows, d rounded up to DC]`, zero-padded.
fn pad_rows(src: &[f32], rows: usize, d: usize) -> Vec<f32> {
    let dp = d.next_multiple_of(DC);
    let mut out = vec![0.0f32; rows * dp];
    for (dst, row) in out.chunks_exact_mut(dp).zip(src.chunks_exact(d)) {
        dst[..d].copy_from_slice(row);
    }
    out
}
