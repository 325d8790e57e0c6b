//! The GPU path: launchers of `shaders/attention_flash.wgsl`, `attention_decode.wgsl`,
//! `kv_copy.wgsl` and `rope2d.wgsl` through `arvis_core`'s public kernel API, and the encoding
//! of an [`AttentionMask`] for the attention kernels.
//!
//! Mask encoding (the `mmeta` buffer, u32): first one `[lo, hi)` key range per block of
//! `range_rows` query rows (the keys the kernel visits; exact per row for the decode kernel,
//! the union over 64 rows for the flash kernel), then the mask table at `table_off`:
//! `None`/`Causal` need none (override `MASK` 0/1, the rule is arithmetic); block-causal and NAR
//! store a group id per key position (`MASK` 2: `g[k] <= g[q]`; 3: `g[k] < g[q] || k == q`),
//! skip-causal `(block, noisy)` per position (4), axial `(line, index)` per position (5, causal
//! flag in `flags`), an explicit mask one bit per (query row, key) (6).

use std::sync::Arc;

use arvis_core::gpu::{Dispatch, GpuBuffer, GpuContext, Kernel, grid_1d};
use arvis_core::{Storage, Tensor};

use crate::error::{AttentionError, Result};
use crate::mask::{AttentionMask, BlockCopy, Diagonal};
use crate::shape::Dims;

macro_rules! kernel {
    ($file:literal) => {
        Kernel {
            name: $file,
            source: include_str!(concat!("../../../shaders/", $file)),
        }
    };
}

const FLASH: Kernel = kernel!("attention_flash.wgsl");
const DECODE: Kernel = kernel!("attention_decode.wgsl");
const KV_COPY: Kernel = kernel!("kv_copy.wgsl");
pub(crate) const ROPE2D: Kernel = kernel!("rope2d.wgsl");

/// Largest head dim the attention kernels take (larger heads run on the host).
pub const MAX_GPU_HEAD_DIM: usize = 128;
/// Query rows per flash workgroup (`BQ` in the shader).
const FLASH_ROWS: usize = 64;
/// The automatic choice takes the decode kernel up to this many queries.
pub const DECODE_MAX_QUERIES: usize = 16;

/// Which GPU attention kernel [`sdpa_with_kernel`](crate::sdpa_with_kernel) and
/// [`KvCache::attend_with_kernel`](crate::KvCache::attend_with_kernel) run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuKernel {
    /// `attention_decode.wgsl` for `Lq <= 16`, `attention_flash.wgsl` otherwise.
    #[default]
    Auto,
    /// The flash kernel (one thread per query row, 64 rows per workgroup).
    Flash,
    /// The decode kernel (one workgroup per query row, keys split across its threads).
    Decode,
}

/// The GPU context all of `tensors` live on, `None` when all are on the CPU.
pub(crate) fn context_of(op: &'static str, tensors: &[&Tensor]) -> Result<Option<GpuContext>> {
    let mut ctx: Option<&GpuContext> = None;
    let mut cpu = false;
    for t in tensors {
        match t.storage() {
            Storage::Gpu(g) => match ctx {
                Some(c) if !c.same_device(g.context()) => {
                    return Err(AttentionError::Device {
                        op,
                        msg: "operands on two different GPU contexts".into(),
                    });
                }
                _ => ctx = Some(g.context()),
            },
            _ => cpu = true,
        }
    }
    match (ctx, cpu) {
        (Some(_), true) => Err(AttentionError::Device {
            op,
            msg: "operands on CPU and GPU: move them with `to_device` first".into(),
        }),
        (c, _) => Ok(c.cloned()),
    }
}

/// The buffer of a tensor known to be on the GPU.
pub(crate) fn buf(t: &Tensor) -> &GpuBuffer {
    t.as_gpu()
        .expect("internal: GPU launcher given a CPU tensor")
        .buffer()
}

/// u32 words as the f32 bit patterns a [`GpuBuffer`] holds (the shaders bind them as u32).
fn upload_u32(ctx: &GpuContext, words: &[u32]) -> Result<GpuBuffer> {
    let bits: Vec<f32> = words.iter().map(|&w| f32::from_bits(w)).collect();
    Ok(GpuBuffer::upload(ctx, &bits)?)
}

fn bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn to_u32(op: &'static str, what: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| AttentionError::Device {
        op,
        msg: format!("{what} = {n} exceeds the GPU kernels' 32-bit indexing"),
    })
}

/// A mask encoded for the attention kernels.
struct EncodedMask {
    mode: u32,
    flags: u32,
    table_off: u32,
    words: u32,
    meta: Vec<u32>,
}

/// Encodes `mask` for `lq` queries (the last of `lk` positions), key ranges per block of
/// `range_rows` query rows.
fn encode_mask(mask: &AttentionMask, lq: usize, lk: usize, range_rows: usize) -> EncodedMask {
    let q_off = lk - lq;
    let blocks = lq.div_ceil(range_rows).max(1);
    let mut meta = Vec::with_capacity(2 * blocks);
    for b in 0..blocks {
        let rows = b * range_rows..((b + 1) * range_rows).min(lq);
        let (mut lo, mut hi) = (usize::MAX, 0);
        for i in rows {
            let r = mask.key_range(q_off + i, lk);
            if !r.is_empty() {
                lo = lo.min(r.start);
                hi = hi.max(r.end);
            }
        }
        if hi == 0 {
            lo = 0;
        }
        meta.extend([lo as u32, hi as u32]);
    }
    let table_off = meta.len() as u32;
    let pairs = |f: &dyn Fn(usize) -> (u32, u32)| -> Vec<u32> {
        (0..lk)
            .flat_map(|p| {
                let (a, b) = f(p);
                [a, b]
            })
            .collect()
    };
    let (mode, flags, words, table) = match mask {
        AttentionMask::None => (0, 0, 0, Vec::new()),
        AttentionMask::Causal => (1, 0, 0, Vec::new()),
        AttentionMask::BlockCausal(m) => (
            2,
            0,
            0,
            pairs(&|p| (m.block_of(p).map_or(u32::MAX, |b| b as u32), 0)),
        ),
        AttentionMask::Neighbor(m) => (
            if m.diagonal == Diagonal::SelfOnly {
                3
            } else {
                2
            },
            0,
            0,
            pairs(&|p| (m.group(p).map_or(u32::MAX, |g| g as u32), 0)),
        ),
        AttentionMask::SkipCausal(m) => (
            4,
            0,
            0,
            pairs(&|p| match m.position(p) {
                Some((b, c)) => (b as u32, u32::from(c == BlockCopy::Noisy)),
                None => (u32::MAX, 2),
            }),
        ),
        AttentionMask::Axial(m) => (
            5,
            u32::from(m.causal),
            0,
            pairs(&|p| {
                m.line_of(p)
                    .map_or((u32::MAX, 0), |(l, i)| (l as u32, i as u32))
            }),
        ),
        AttentionMask::Explicit(m) => {
            let words = lk.div_ceil(32).max(1);
            let mut t = vec![0u32; lq * words];
            for i in 0..lq {
                for kp in 0..lk {
                    if m.allows(q_off + i, kp) {
                        t[i * words + kp / 32] |= 1 << (kp % 32);
                    }
                }
            }
            (6, 0, words as u32, t)
        }
    };
    meta.extend(table);
    EncodedMask {
        mode,
        flags,
        table_off,
        words,
        meta,
    }
}

/// Attention on the GPU: `q [B·H, Lq, D]` (contiguous), k and v with head `h`'s rows at
/// `h·kv_head_stride` (`Lk` valid rows each). Returns `[B, H, Lq, D]` on `ctx`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    op: &'static str,
    ctx: &GpuContext,
    q: &Tensor,
    k: &GpuBuffer,
    v: &GpuBuffer,
    kv_head_stride: usize,
    dims: Dims,
    mask: &AttentionMask,
    scale: f32,
    kernel: GpuKernel,
) -> Result<Tensor> {
    let Dims { lq, lk, d, .. } = dims;
    let out_shape = dims.out_shape();
    let n_out = dims.bh() * lq * d;
    let out = GpuBuffer::uninit(ctx, n_out)?;
    if n_out == 0 {
        return Ok(Tensor::from_gpu(ctx, out, &out_shape)?);
    }
    debug_assert!(d <= MAX_GPU_HEAD_DIM);
    let decode = match kernel {
        GpuKernel::Auto => lq <= DECODE_MAX_QUERIES,
        GpuKernel::Flash => false,
        GpuKernel::Decode => true,
    };
    let range_rows = if decode { 1 } else { FLASH_ROWS };
    let enc = encode_mask(mask, lq, lk, range_rows);
    let meta = upload_u32(ctx, &enc.meta)?;
    let bh = to_u32(op, "B·H", dims.bh())?;
    to_u32(op, "KV elements", dims.bh().saturating_mul(kv_head_stride))?;
    let params = [
        lq as u32,
        lk as u32,
        (lk - lq) as u32,
        kv_head_stride as u32,
        scale.to_bits(),
        enc.flags,
        enc.table_off,
        enc.words,
        range_rows as u32,
    ];
    let d4 = d.div_ceil(4);
    let bk = (1024 / d4).min(64);
    let (shader, constants, groups, label): (&Kernel, Vec<(&'static str, f64)>, _, _) = if decode {
        (
            &DECODE,
            vec![("D", d as f64), ("MASK", f64::from(enc.mode))],
            [lq as u32, bh, 1],
            "attention_decode",
        )
    } else {
        (
            &FLASH,
            vec![
                ("D", d as f64),
                ("D4", d4 as f64),
                ("BK", bk as f64),
                ("MASK", f64::from(enc.mode)),
            ],
            [lq.div_ceil(FLASH_ROWS) as u32, bh, 1],
            "attention_flash",
        )
    };
    ctx.launch(&Dispatch {
        kernel: shader,
        constants: &constants,
        buffers: &[buf(q), k, v, &meta, &out],
        params: &bytes(&params),
        groups,
        label,
    })?;
    Ok(Tensor::from_gpu(ctx, out, &out_shape)?)
}

/// Records `dst[h·dst_stride + (dst_row0 + r)·d + x] = src[h·src_stride + (src_row0 + r)·d + x]`
/// for `h < heads`, `r < rows`, `x < d`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_rows(
    ctx: &GpuContext,
    src: &GpuBuffer,
    src_stride: usize,
    src_row0: usize,
    dst: &GpuBuffer,
    dst_stride: usize,
    dst_row0: usize,
    heads: usize,
    rows: usize,
    d: usize,
) -> Result<()> {
    const OP: &str = "kv_copy";
    let n = heads * rows * d;
    if n == 0 {
        return Ok(());
    }
    to_u32(
        OP,
        "elements",
        heads.saturating_mul(dst_stride.max(src_stride)),
    )?;
    let (groups, gx) = grid_1d(n, 256, ctx.info().max_workgroups_per_dim)?;
    let params = [
        to_u32(OP, "elements", n)?,
        gx,
        rows as u32,
        d as u32,
        src_stride as u32,
        src_row0 as u32,
        dst_stride as u32,
        dst_row0 as u32,
    ];
    ctx.launch(&Dispatch {
        kernel: &KV_COPY,
        constants: &[],
        buffers: &[src, dst],
        params: &bytes(&params),
        groups,
        label: "kv_copy",
    })?;
    Ok(())
}

/// `[heads, rows, d]` rows `0..rows` of a head-strided buffer, as a new tensor of `shape`.
pub(crate) fn gather(
    ctx: &GpuContext,
    src: &Arc<GpuBuffer>,
    stride: usize,
    heads: usize,
    rows: usize,
    d: usize,
    shape: &[usize],
) -> Result<Tensor> {
    let out = GpuBuffer::uninit(ctx, heads * rows * d)?;
    copy_rows(ctx, src, stride, 0, &out, rows * d, 0, heads, rows, d)?;
    Ok(Tensor::from_gpu(ctx, out, shape)?)
}

/// The params bytes of a u32 list (for the rope launcher).
pub(crate) fn param_bytes(words: &[u32]) -> Vec<u8> {
    bytes(words)
}
