//! Linear-algebra launchers: `matmul.wgsl` (batched, transposed, broadcast products with a fused
//! bias + activation epilogue; `Tensor::{matmul_t, linear, linear_act, matmul_packed}`) and
//! `conv2d.wgsl` (NCHW convolution as an implicit GEMM; `Tensor::{conv2d, conv2d_im2col}`,
//! `Conv3x3Winograd::apply`).

use super::{buf, kernel};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, Kernel};
use crate::ops::Activation;
use crate::tensor::{Tensor, numel};

const MATMUL: Kernel = kernel!("matmul.wgsl");
const CONV2D: Kernel = kernel!("conv2d.wgsl");
/// Highest batch rank `matmul.wgsl` indexes.
const MAX_BATCH_RANK: usize = 8;

/// Threads (x, y) and outputs per thread (rows, columns) of one workgroup's tile.
#[derive(Clone, Copy, Debug)]
struct Tile {
    wg_x: u32,
    wg_y: u32,
    tm: u32,
    tn: u32,
    bk: u32,
}

impl Tile {
    /// 16 × 16 threads with a 4 × 4 register tile (64 × 64 outputs), or 16 × 1 rows when the
    /// product has few rows (decoding, per-head attention with short queries).
    fn for_rows(m: usize) -> Tile {
        Tile {
            wg_x: 16,
            wg_y: 16,
            tm: if m <= 16 { 1 } else { 4 },
            tn: 4,
            bk: 16,
        }
    }

    fn rows(self) -> usize {
        (self.wg_y * self.tm) as usize
    }

    fn cols(self) -> usize {
        (self.wg_x * self.tn) as usize
    }

    fn constants(self) -> [(&'static str, f64); 5] {
        [
            ("WG_X", f64::from(self.wg_x)),
            ("WG_Y", f64::from(self.wg_y)),
            ("TM", f64::from(self.tm)),
            ("TN", f64::from(self.tn)),
            ("BK", f64::from(self.bk)),
        ]
    }
}

/// One batched product for [`matmul`]: `out[z] = act(op(a[z]) · op(b[z]) + bias)`.
pub(crate) struct Gemm<'a> {
    /// Left operand: `[.., m, k]` (`[.., k, m]` when `trans_a`), contiguous.
    pub a: &'a Tensor,
    /// Right operand: `[.., k, n]` (`[.., n, k]` when `trans_b`), contiguous; with `b_f16`, the
    /// same elements as IEEE halves packed two per 32-bit word (the low half first; an odd
    /// count ends with a zero half), held in a tensor of `ceil(elements / 2)` words.
    pub b: &'a Tensor,
    /// `b` holds packed halves (`B_F16` in `matmul.wgsl`; storage only, f32 arithmetic).
    pub b_f16: bool,
    /// One value per output column.
    pub bias: Option<&'a Tensor>,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    /// The output's batch shape (empty: one product).
    pub batch: &'a [usize],
    /// Element offset step of `a` and `b` per index of each batch dim (0 where broadcast).
    pub a_strides: &'a [usize],
    pub b_strides: &'a [usize],
    pub act: Activation,
}

/// Element strides, per dim of `out_batch`, of an operand whose batch shape `batch` broadcasts
/// to it (right-aligned, `mat` elements per matrix; 0 along broadcast dims).
pub(crate) fn batch_strides(batch: &[usize], out_batch: &[usize], mat: usize) -> Vec<usize> {
    let pad = out_batch.len() - batch.len();
    let mut strides = vec![0usize; out_batch.len()];
    let mut acc = mat;
    for i in (0..batch.len()).rev() {
        strides[pad + i] = if batch[i] == 1 { 0 } else { acc };
        acc *= batch[i];
    }
    strides
}

fn u32_of(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::gpu(op, format!("{v} does not fit the kernel's u32 indices")))
}

/// Runs `g` on the GPU; the result has shape `out_shape` (`[batch.., m, n]`, validated by the
/// caller).
pub(crate) fn matmul(
    ctx: &GpuContext,
    label: &'static str,
    g: &Gemm<'_>,
    out_shape: &[usize],
) -> Result<Tensor> {
    let max_z = ctx.info().max_workgroups_per_dim;
    matmul_tiled(ctx, label, g, out_shape, Tile::for_rows(g.m), max_z)
}

/// [`matmul`] with an explicit tile shape, launched in chunks of at most `max_z` batch
/// indices (one per workgroup z).
fn matmul_tiled(
    ctx: &GpuContext,
    label: &'static str,
    g: &Gemm<'_>,
    out_shape: &[usize],
    tile: Tile,
    max_z: u32,
) -> Result<Tensor> {
    if g.batch.len() > MAX_BATCH_RANK {
        return Err(Error::Device {
            op: label,
            msg: format!(
                "the GPU kernel batches up to rank {MAX_BATCH_RANK}, got batch {:?}",
                g.batch
            ),
        });
    }
    let total = numel(out_shape);
    let out = GpuBuffer::uninit(ctx, total)?;
    if total == 0 {
        return Tensor::from_gpu(ctx, out, out_shape);
    }
    let batch = u32_of(label, numel(g.batch))?;
    let (gx, gy) = (
        u32_of(label, g.n.div_ceil(tile.cols()))?,
        u32_of(label, g.m.div_ceil(tile.rows()))?,
    );
    let mut params = vec![
        u32_of(label, g.m)?,
        u32_of(label, g.n)?,
        u32_of(label, g.k)?,
        g.batch.len() as u32,
    ];
    for list in [g.batch, g.a_strides, g.b_strides] {
        let mut packed = [0u32; MAX_BATCH_RANK];
        for (d, &v) in list.iter().enumerate() {
            packed[d] = u32_of(label, v)?;
        }
        params.extend_from_slice(&packed);
    }
    let bias = g.bias.map(buf);
    let mut constants = vec![
        ("TRANS_A", f64::from(u8::from(g.trans_a))),
        ("TRANS_B", f64::from(u8::from(g.trans_b))),
        ("HAS_BIAS", f64::from(u8::from(bias.is_some()))),
        ("ACT", f64::from(g.act.shader_code())),
        ("B_F16", f64::from(u8::from(g.b_f16))),
    ];
    constants.extend(tile.constants());
    // The first batch index of the launch (`z0`, padded to 16 bytes), set per chunk.
    params.extend_from_slice(&[0; 4]);
    let z0_at = params.len() - 4;
    let mut z0 = 0u32;
    while z0 < batch {
        let nz = (batch - z0).min(max_z.max(1));
        params[z0_at] = z0;
        ctx.launch(&Dispatch {
            kernel: &MATMUL,
            constants: &constants,
            // Without a bias, `a` fills its (unread) binding.
            buffers: &[buf(g.a), buf(g.b), bias.unwrap_or(buf(g.a)), &out],
            params: bytemuck::cast_slice(&params),
            groups: [gx, gy, nz],
            label,
        })?;
        z0 += nz;
    }
    Tensor::from_gpu(ctx, out, out_shape)
}

/// A checked NCHW convolution for [`conv2d`].
pub(crate) struct Conv<'a> {
    /// `[n, c, h, w]`.
    pub x: &'a Tensor,
    /// `[o, c, kh, kw]`.
    pub weight: &'a Tensor,
    /// `[o]`.
    pub bias: Option<&'a Tensor>,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub stride: (usize, usize),
    /// Rows above and columns left of the input (bottom/right padding only sets `ho`, `wo`).
    pub pad_top: usize,
    pub pad_left: usize,
}

/// `conv2d.wgsl`: an implicit GEMM `[o, c·kh·kw] · im2col(x)` per image, the im2col operand
/// gathered into shared memory tile by tile (zero outside the input); result `[n, o, ho, wo]`.
pub(crate) fn conv2d(ctx: &GpuContext, cv: &Conv<'_>) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let out_shape = [cv.n, cv.o, cv.ho, cv.wo];
    let total = numel(&out_shape);
    let out = GpuBuffer::uninit(ctx, total)?;
    if total == 0 {
        return Tensor::from_gpu(ctx, out, &out_shape);
    }
    let tile = Tile::for_rows(cv.o);
    let plane = cv.ho * cv.wo;
    let groups = [
        u32_of(OP, plane.div_ceil(tile.cols()))?,
        u32_of(OP, cv.o.div_ceil(tile.rows()))?,
        u32_of(OP, cv.n)?,
    ];
    let params: Vec<u32> = [
        cv.c,
        cv.h,
        cv.w,
        cv.o,
        cv.kh,
        cv.kw,
        cv.ho,
        cv.wo,
        cv.stride.0,
        cv.stride.1,
        cv.pad_top,
        cv.pad_left,
    ]
    .into_iter()
    .map(|v| u32_of(OP, v))
    .collect::<Result<_>>()?;
    let bias = cv.bias.map(buf);
    let mut constants = vec![("HAS_BIAS", f64::from(u8::from(bias.is_some())))];
    constants.extend(tile.constants());
    ctx.launch(&Dispatch {
        kernel: &CONV2D,
        constants: &constants,
        buffers: &[buf(cv.x), buf(cv.weight), bias.unwrap_or(buf(cv.x)), &out],
        params: bytemuck::cast_slice(&params),
        groups,
        label: OP,
    })?;
    Tensor::from_gpu(ctx, out, &out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    /// Other tile shapes (8 × 8 threads, 1–4 outputs per thread, other depths) give the CPU's
    /// product, with B as f32 or as packed halves: a device may pick them through the override
    /// constants alone.
    #[test]
    fn every_tile_shape_matches_the_cpu() -> Result<()> {
        let Ok(ctx) = GpuContext::shared() else {
            eprintln!("SKIPPED: no GPU adapter");
            return Ok(());
        };
        let (m, n, k) = (19, 23, 37);
        let mut rng = SeededRng::new(5);
        let a = Tensor::randn(&[2, k, m], &mut rng);
        let b = Tensor::randn(&[n, k], &mut rng);
        let bias = Tensor::randn(&[n], &mut rng);
        let want = a.matmul_t(&b, true, true)?.add(&bias)?.silu()?.to_vec();
        let (ad, bd, biasd) = (a.to_gpu(ctx)?, b.to_gpu(ctx)?, bias.to_gpu(ctx)?);
        let g = Gemm {
            a: &ad,
            b: &bd,
            b_f16: false,
            bias: Some(&biasd),
            m,
            n,
            k,
            trans_a: true,
            trans_b: true,
            batch: &[2],
            a_strides: &[k * m],
            b_strides: &[0],
            act: Activation::Silu,
        };
        let b16 = b.map(crate::ops::round_to_f16)?;
        let want16 = a.matmul_t(&b16, true, true)?.add(&bias)?.silu()?.to_vec();
        let words = crate::ops::packed::pack_halves(&b.to_vec());
        let b16d = Tensor::from_gpu(
            ctx,
            GpuBuffer::upload(ctx, bytemuck::cast_slice(&words))?,
            &[words.len()],
        )?;
        let g16 = Gemm {
            b: &b16d,
            b_f16: true,
            ..g
        };
        for (wg_x, wg_y, tm, tn, bk) in [
            (8, 8, 4, 4, 8),
            (8, 8, 1, 2, 16),
            (16, 4, 3, 1, 4),
            (4, 16, 2, 4, 32),
            (16, 16, 4, 4, 16),
        ] {
            let tile = Tile {
                wg_x,
                wg_y,
                tm,
                tn,
                bk,
            };
            // max_z 1: each batch index in its own launch (the path of batches over the
            // device's workgroup limit).
            for max_z in [1, 65535] {
                let got = matmul_tiled(ctx, "matmul", &g, &[2, m, n], tile, max_z)?.try_to_vec()?;
                for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (x - y).abs() <= 1e-4 + 1e-3 * y.abs(),
                        "{tile:?} max_z {max_z}: element {i}: {x} vs {y}"
                    );
                }
            }
            // The same product with B as packed halves (`B_F16`; k·n odd: a pad half) equals
            // the product of the rounded B.
            let got = matmul_tiled(ctx, "matmul", &g16, &[2, m, n], tile, 65535)?.try_to_vec()?;
            for (i, (x, y)) in got.iter().zip(&want16).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-4 + 1e-3 * y.abs(),
                    "{tile:?} B_F16: element {i}: {x} vs {y}"
                );
            }
        }
        Ok(())
    }
}
