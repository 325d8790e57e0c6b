//! Winograd F(4×4, 3×3) convolution: 3×3, stride 1, dilation 1, any zero padding.
//!
//! Each 4×4 block of outputs ("tile") reads a 6×6 window of the padded input. With the
//! Toom–Cook matrices `Bᵀ` (6×6), `G` (6×3) and `Aᵀ` (4×6) of the points 0, 1, −1, ½, −2, ∞,
//!
//! ```text
//! Y[o] = Aᵀ · ( Σ_c (G·g[o,c]·Gᵀ) ⊙ (Bᵀ·d[c]·B) ) · A
//! ```
//!
//! so, with `U[ξ] = (G g Gᵀ)[ξ]` (`Cout × Cin`) and `V[ξ] = (Bᵀ d B)[ξ]` (`Cin × tiles`) for
//! each of the 36 positions `ξ` of the 6×6 transformed tile, the channel sum is 36 independent
//! GEMMs `M[ξ] = U[ξ]·V[ξ]`: 36 multiply-adds per tile and channel pair instead of 16·9 = 144,
//! a 4× cut of the GEMM work. The transforms are O(channels·tiles), not O(channels²·tiles): on
//! the VQ-VAE decoder's shapes the whole convolution runs 2.6–3× faster than im2col + GEMM.
//!
//! The tiles are processed in blocks of whole tile rows of one image, sized so `V` and `M` stay
//! in the last-level cache. Per block: the input transform (parallel over input channels), the
//! 36 GEMMs through [`sgemm`] (parallel over `ξ`), the output transform with the bias (parallel
//! over output channels). The transforms work on whole tile rows at a time, vectorised across
//! tiles: every loop is unit-stride (the stride-4 tile phases are split out once per input row,
//! and interleaved back once per output row).
//!
//! Numerics: the error is dominated by the f32 GEMMs accumulating transformed values that are
//! larger than the outputs they cancel down to. The points ½ and −2 (instead of the textbook
//! ±2, entries up to 8 in `Aᵀ`; Barabasz et al., "Error analysis and improving the accuracy of
//! Winograd convolution for deep neural networks", 2020) cut the worst error about 3× in our
//! measurements. The weight transform is done in f64 and rounded once. Against a naive f64
//! convolution with weights of trained magnitude (std 1/√(9·Cin)), the worst element is about
//! 3·10⁻⁶ of the largest output at Cin = 640 (im2col: 3·10⁻⁷), an eighth of the `rel 1e-3`
//! conv tolerance; with unit-variance weights (outputs in the tens) it comes close to the
//! tolerance's absolute floor.

use multiversion::multiversion;
use rayon::prelude::*;

use super::conv::{Conv2dParams, Padding2d, conv2d_gpu};
use super::gemm::{MatRef, sgemm};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::tensor::{Device, gpu_context, operands};

/// Positions of a transformed 6×6 tile.
const XI: usize = 36;

/// `G` (6×3): the kernel transform.
const G: [[f64; 3]; 6] = [
    [1.0, 0.0, 0.0],
    [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
    [-1.0 / 3.0, 1.0 / 3.0, -1.0 / 3.0],
    [-16.0 / 15.0, -8.0 / 15.0, -4.0 / 15.0],
    [1.0 / 15.0, -2.0 / 15.0, 4.0 / 15.0],
    [0.0, 0.0, 1.0],
];

/// `Bᵀ·b` (6×6): the data transform along one axis.
#[inline(always)]
fn bt([b0, b1, b2, b3, b4, b5]: [f32; 6]) -> [f32; 6] {
    [
        b0 - 1.5 * b1 - 2.0 * b2 + 1.5 * b3 + b4,
        -b1 + 0.5 * b2 + 2.5 * b3 + b4,
        b1 - 2.5 * b2 + 0.5 * b3 + b4,
        -2.0 * b1 - b2 + 2.0 * b3 + b4,
        0.5 * b1 - b2 - 0.5 * b3 + b4,
        b1 - 1.5 * b2 - 2.0 * b3 + 1.5 * b4 + b5,
    ]
}

/// `Aᵀ·a` (4×6): the output transform along one axis.
#[inline(always)]
fn at([a0, a1, a2, a3, a4, a5]: [f32; 6]) -> [f32; 4] {
    let (p12, d12) = (a1 + a2, a1 - a2);
    [
        a0 + p12 + a3 + a4,
        d12 + 0.5 * a3 - 2.0 * a4,
        p12 + 0.25 * a3 + 4.0 * a4,
        d12 + 0.125 * a3 - 8.0 * a4 + a5,
    ]
}

/// Bytes of `V` + `M` scratch a block of tiles may use: a share of the last-level cache.
const BLOCK_BYTES: usize = 8 << 20;

/// A 3×3 convolution weight in the Winograd domain, for repeated stride-1 convolutions with the
/// same weight (a decoder's): [`Conv3x3Winograd::new`] transforms once, [`apply`] convolves.
///
/// The transformed weight is 36/9 = 4× the size of the original (`36 · Cout · Cin` floats).
/// [`Tensor::conv2d`] builds one per call when it takes the Winograd path; holding one avoids
/// that per-call transform.
///
/// Built from a GPU weight, it keeps that weight untransformed on the device and [`apply`] runs
/// the direct convolution kernel of [`Tensor::conv2d`] (same result up to rounding); its input
/// must then be on the GPU too, and a CPU-built one takes only CPU inputs ([`Error::Device`]).
///
/// [`apply`]: Conv3x3Winograd::apply
#[derive(Clone)]
pub struct Conv3x3Winograd {
    cin: usize,
    cout: usize,
    form: Form,
}

/// Where the weight lives and in which form.
#[derive(Clone)]
enum Form {
    /// `U` as `[Cout][36][Cin]`: `U[ξ]` is the `Cout × Cin` matrix at offset `ξ·Cin` with row
    /// stride `36·Cin`.
    Cpu(Vec<f32>),
    /// The original `[Cout, Cin, 3, 3]` weight on the GPU, for the direct convolution kernel
    /// (`shaders/conv2d.wgsl`); no transform.
    Gpu(Tensor),
}

impl std::fmt::Debug for Conv3x3Winograd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the transformed weight: millions of floats.
        f.debug_struct("Conv3x3Winograd")
            .field("in_channels", &self.cin)
            .field("out_channels", &self.cout)
            .field("device", &self.device())
            .finish_non_exhaustive()
    }
}

impl Conv3x3Winograd {
    /// Transforms a `[Cout, Cin, 3, 3]` weight.
    pub fn new(weight: &Tensor) -> Result<Self> {
        let ws = weight.shape();
        if ws.len() != 4 || ws[2] != 3 || ws[3] != 3 {
            return Err(Error::shape("conv3x3_winograd", "weight [O, C, 3, 3]", ws));
        }
        let (cout, cin) = (ws[0], ws[1]);
        if weight.device() == Device::Gpu {
            return Ok(Conv3x3Winograd {
                cin,
                cout,
                form: Form::Gpu(weight.clone()),
            });
        }
        let wd = weight.data();
        let mut u = vec![0.0f32; cout * XI * cin];
        if cin > 0 && cout > 0 {
            // A few chunks of output channels per thread, each with one scratch allocation.
            let per = cout.div_ceil(4 * rayon::current_num_threads()).max(1);
            u.par_chunks_mut(per * XI * cin)
                .zip(wd.par_chunks(per * cin * 9))
                .for_each(|(us, ws)| {
                    let mut scratch = vec![0.0f64; 27 * cin];
                    for (uo, wo) in us.chunks_exact_mut(XI * cin).zip(ws.chunks_exact(cin * 9)) {
                        transform_weight(uo, wo, cin, &mut scratch);
                    }
                });
        }
        Ok(Conv3x3Winograd {
            cin,
            cout,
            form: Form::Cpu(u),
        })
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.cin
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.cout
    }

    /// The device holding the weight (the device [`apply`](Conv3x3Winograd::apply) runs on).
    pub fn device(&self) -> Device {
        match &self.form {
            Form::Cpu(_) => Device::Cpu,
            Form::Gpu(_) => Device::Gpu,
        }
    }

    /// `nn.Conv2d(kernel_size=3, stride=1, padding=…)` of `x` `[N, Cin, H, W]` (+ `bias`
    /// `[Cout]`), the same result as [`Tensor::conv2d`] with the original weight.
    pub fn apply(&self, x: &Tensor, bias: Option<&Tensor>, pad: Padding2d) -> Result<Tensor> {
        let gpu_weight = match &self.form {
            Form::Gpu(w) => Some(w),
            Form::Cpu(_) => None,
        };
        if let Some(ctx) = gpu_context("conv2d", &operands(&[Some(x), gpu_weight, bias]))? {
            let Some(w) = gpu_weight else {
                return Err(Error::Device {
                    op: "conv3x3_winograd",
                    msg: "a GPU input with a weight transformed on the CPU: build the \
                          Conv3x3Winograd from a GPU weight"
                        .into(),
                });
            };
            let p = Conv2dParams {
                stride: (1, 1),
                padding: pad,
            };
            return conv2d_gpu(&ctx, x, w, bias, p);
        }
        let Form::Cpu(u) = &self.form else {
            return Err(Error::Device {
                op: "conv3x3_winograd",
                msg: "a CPU input with a weight on the GPU: move the input with `to_device`".into(),
            });
        };
        const OP: &str = "conv3x3_winograd";
        let s = x.shape();
        if s.len() != 4 || s[1] != self.cin {
            return Err(Error::shape(
                OP,
                format!("input [N, {}, H, W]", self.cin),
                s,
            ));
        }
        if let Some(b) = bias
            && b.shape() != [self.cout]
        {
            return Err(Error::shape(OP, format!("bias [{}]", self.cout), b.shape()));
        }
        let (n, h, w) = (s[0], s[2], s[3]);
        let (hp, wp) = (h + pad.top + pad.bottom, w + pad.left + pad.right);
        if hp < 3 || wp < 3 {
            return Err(Error::arg(
                OP,
                format!("kernel 3x3 larger than padded input {hp}x{wp}"),
            ));
        }
        let (ho, wo) = (hp - 2, wp - 2);
        let mut out = vec![0.0f32; n * self.cout * ho * wo];
        if self.cin == 0 || h == 0 || w == 0 {
            // Nothing to convolve (no channels, or an input that is all padding): the bias.
            if let Some(b) = bias {
                let bd = b.data();
                out.par_chunks_mut(ho * wo)
                    .enumerate()
                    .for_each(|(i, pl)| pl.fill(bd[i % self.cout]));
            }
        } else if !out.is_empty() {
            let g = Geom {
                h,
                w,
                ho,
                wo,
                th: ho.div_ceil(4),
                tw: wo.div_ceil(4),
                top: pad.top,
                left: pad.left,
            };
            self.run(u, x.data(), bias.map(Tensor::data), &g, n, &mut out);
        }
        Tensor::from_vec(out, &[n, self.cout, ho, wo])
    }

    fn run(&self, u: &[f32], x: &[f32], bias: Option<&[f32]>, g: &Geom, n: usize, out: &mut [f32]) {
        let (cin, cout) = (self.cin, self.cout);
        let row_bytes = XI * (cin + cout) * g.tw * std::mem::size_of::<f32>();
        let rows_per_block = (BLOCK_BYTES / row_bytes).clamp(1, g.th);
        let max_t = rows_per_block * g.tw;
        let mut v = vec![0.0f32; cin * XI * max_t];
        let mut m = vec![0.0f32; XI * cout * max_t];
        let in_scratch = InputScratch::len(g.tw);
        for ni in 0..n {
            let xin = &x[ni * cin * g.h * g.w..(ni + 1) * cin * g.h * g.w];
            let dst = &mut out[ni * cout * g.ho * g.wo..(ni + 1) * cout * g.ho * g.wo];
            let mut ty0 = 0;
            while ty0 < g.th {
                let ty1 = (ty0 + rows_per_block).min(g.th);
                let t = (ty1 - ty0) * g.tw;
                let v = &mut v[..cin * XI * t];
                let m = &mut m[..XI * cout * t];
                // V as [Cin][36][T]: one contiguous chunk per input channel.
                v.par_chunks_mut(XI * t)
                    .zip(xin.par_chunks(g.h * g.w))
                    .for_each_init(
                        || vec![0.0f32; in_scratch],
                        |scratch, (vc, xc)| input_channel(vc, xc, g, ty0, ty1, scratch),
                    );
                // M[ξ] (Cout × T) = U[ξ] (Cout × Cin) · V[ξ] (Cin × T).
                let v = &*v;
                m.par_chunks_mut(cout * t).enumerate().for_each(|(xi, mx)| {
                    let lhs = MatRef {
                        data: u,
                        offset: xi * cin,
                        rs: XI * cin,
                        cs: 1,
                    };
                    let rhs = MatRef {
                        data: v,
                        offset: xi * t,
                        rs: XI * t,
                        cs: 1,
                    };
                    sgemm(cout, t, cin, mx, t, lhs, rhs, false, false);
                });
                let m = &*m;
                dst.par_chunks_mut(g.ho * g.wo).enumerate().for_each_init(
                    || vec![0.0f32; OutputScratch::len(g.tw)],
                    |scratch, (co, plane)| {
                        let b = bias.map_or(0.0, |b| b[co]);
                        output_channel(plane, m, co, cout, t, b, g, ty0, ty1, scratch);
                    },
                );
                ty0 = ty1;
            }
        }
    }
}

/// Spatial geometry of one convolution: input, output, tile grid, top/left padding.
struct Geom {
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    /// Tile rows and columns.
    th: usize,
    tw: usize,
    top: usize,
    left: usize,
}

/// `U[ξ][co][·]` of one output channel from its `Cin` 3×3 filters: `uo` is `[36][Cin]`, `wo`
/// is `[Cin][3][3]`, `scratch` holds `27·Cin` f64 (the filters transposed to `[9][Cin]`, then
/// `G·g` as `[6][3][Cin]`).
fn transform_weight(uo: &mut [f32], wo: &[f32], cin: usize, scratch: &mut [f64]) {
    let (wt, gg) = scratch.split_at_mut(9 * cin);
    for (ci, f) in wo.chunks_exact(9).enumerate() {
        for (ab, &v) in f.iter().enumerate() {
            wt[ab * cin + ci] = v as f64;
        }
    }
    // (G·g)[i][b] = Σ_a G[i][a]·g[a][b].
    for (i, gi) in G.iter().enumerate() {
        for b in 0..3 {
            let dst = &mut gg[(i * 3 + b) * cin..(i * 3 + b + 1) * cin];
            let (r0, r1, r2) = (
                &wt[b * cin..(b + 1) * cin],
                &wt[(3 + b) * cin..(4 + b) * cin],
                &wt[(6 + b) * cin..(7 + b) * cin],
            );
            for (((d, &x0), &x1), &x2) in dst.iter_mut().zip(r0).zip(r1).zip(r2) {
                *d = gi[0] * x0 + gi[1] * x1 + gi[2] * x2;
            }
        }
    }
    // U[i][j] = Σ_b (G·g)[i][b]·G[j][b].
    for i in 0..6 {
        let (r0, r1, r2) = (
            &gg[(i * 3) * cin..(i * 3 + 1) * cin],
            &gg[(i * 3 + 1) * cin..(i * 3 + 2) * cin],
            &gg[(i * 3 + 2) * cin..(i * 3 + 3) * cin],
        );
        for (j, gj) in G.iter().enumerate() {
            let dst = &mut uo[(i * 6 + j) * cin..(i * 6 + j + 1) * cin];
            for (((d, &x0), &x1), &x2) in dst.iter_mut().zip(r0).zip(r1).zip(r2) {
                *d = (gj[0] * x0 + gj[1] * x1 + gj[2] * x2) as f32;
            }
        }
    }
}

/// Scratch layout of [`input_channel`] for a tile grid `tw` wide, with `n = tw + 1` (the last
/// tile reads two columns of the next phase group): one padded input row (`4n`), the six rows
/// split into their four column phases (`6 · 4n`), and the column-transformed rows (`6 · 4n`).
struct InputScratch;

impl InputScratch {
    fn len(tw: usize) -> usize {
        4 * (tw + 1) * 13
    }
}

/// Input transform of one channel for tile rows `ty0..ty1`: `vc` is this channel's `[36][T]`
/// block of `V`, `xc` its `H × W` plane.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn input_channel(
    vc: &mut [f32],
    xc: &[f32],
    g: &Geom,
    ty0: usize,
    ty1: usize,
    scratch: &mut [f32],
) {
    let (tw, pn) = (g.tw, g.tw + 1);
    let rw = 4 * pn;
    let t = (ty1 - ty0) * tw;
    let (buf, rest) = scratch.split_at_mut(rw);
    let (ph, cols) = rest.split_at_mut(6 * rw);
    let cols = &mut cols[..6 * rw];
    for ty in ty0..ty1 {
        let t0 = (ty - ty0) * tw;
        // The six input rows of this tile row, zero-padded, split into column phases:
        // ph[r][k][x] = padded row r at column 4x + k.
        for (r, phr) in ph.chunks_exact_mut(rw).enumerate() {
            let iy = (4 * ty + r) as isize - g.top as isize;
            if iy < 0 || iy >= g.h as isize {
                phr.fill(0.0);
                continue;
            }
            let src = &xc[iy as usize * g.w..(iy as usize + 1) * g.w];
            let lo = g.left.min(rw);
            let hi = (g.left + g.w).min(rw);
            buf[..lo].fill(0.0);
            buf[lo..hi].copy_from_slice(&src[..hi - lo]);
            buf[hi..].fill(0.0);
            let (p0, p123) = phr.split_at_mut(pn);
            let (p1, p23) = p123.split_at_mut(pn);
            let (p2, p3) = p23.split_at_mut(pn);
            for ((((q, a), b), c), d) in buf
                .chunks_exact(4)
                .zip(p0.iter_mut())
                .zip(p1.iter_mut())
                .zip(p2.iter_mut())
                .zip(p3.iter_mut())
            {
                *a = q[0];
                *b = q[1];
                *c = q[2];
                *d = q[3];
            }
        }
        // Column transform (Bᵀ along the rows), elementwise over the phase-split rows.
        {
            let (d0, d1, d2, d3, d4, d5) = (
                &ph[..rw],
                &ph[rw..2 * rw],
                &ph[2 * rw..3 * rw],
                &ph[3 * rw..4 * rw],
                &ph[4 * rw..5 * rw],
                &ph[5 * rw..6 * rw],
            );
            let (c0, rest) = cols.split_at_mut(rw);
            let (c1, rest) = rest.split_at_mut(rw);
            let (c2, rest) = rest.split_at_mut(rw);
            let (c3, rest) = rest.split_at_mut(rw);
            let (c4, c5) = rest.split_at_mut(rw);
            for x in 0..rw {
                let (b0, b1, b2, b3, b4, b5) = (d0[x], d1[x], d2[x], d3[x], d4[x], d5[x]);
                [c0[x], c1[x], c2[x], c3[x], c4[x], c5[x]] = bt([b0, b1, b2, b3, b4, b5]);
            }
        }
        // Row transform (B on the right), across the tiles of the row.
        for (i, ci) in cols.chunks_exact(rw).enumerate() {
            let (p0, p1, p2, p3) = (
                &ci[..pn],
                &ci[pn..2 * pn],
                &ci[2 * pn..3 * pn],
                &ci[3 * pn..4 * pn],
            );
            let (p4, p5) = (&p0[1..], &p1[1..]);
            let base = &mut vc[i * 6 * t..(i + 1) * 6 * t];
            let (v0, rest) = base.split_at_mut(t);
            let (v1, rest) = rest.split_at_mut(t);
            let (v2, rest) = rest.split_at_mut(t);
            let (v3, rest) = rest.split_at_mut(t);
            let (v4, v5) = rest.split_at_mut(t);
            let (v0, v1, v2, v3, v4, v5) = (
                &mut v0[t0..t0 + tw],
                &mut v1[t0..t0 + tw],
                &mut v2[t0..t0 + tw],
                &mut v3[t0..t0 + tw],
                &mut v4[t0..t0 + tw],
                &mut v5[t0..t0 + tw],
            );
            let (p0, p1, p2, p3, p4, p5) = (
                &p0[..tw],
                &p1[..tw],
                &p2[..tw],
                &p3[..tw],
                &p4[..tw],
                &p5[..tw],
            );
            for x in 0..tw {
                let (b0, b1, b2, b3, b4, b5) = (p0[x], p1[x], p2[x], p3[x], p4[x], p5[x]);
                [v0[x], v1[x], v2[x], v3[x], v4[x], v5[x]] = bt([b0, b1, b2, b3, b4, b5]);
            }
        }
    }
}

/// Scratch layout of [`output_channel`]: `Aᵀ·M` of one tile row as `[4][6][tw]`, one
/// interleaved output row (`4·tw`) and its four column phases (`4·tw`).
struct OutputScratch;

impl OutputScratch {
    fn len(tw: usize) -> usize {
        32 * tw
    }
}

/// Output transform of channel `co` for tile rows `ty0..ty1`, plus the bias: `m` is the block's
/// `M` as `[36][Cout][T]`, `plane` the channel's `Ho × Wo` output.
#[allow(clippy::too_many_arguments)] // the block's coordinates; a struct would only rename them
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn output_channel(
    plane: &mut [f32],
    m: &[f32],
    co: usize,
    cout: usize,
    t: usize,
    bias: f32,
    g: &Geom,
    ty0: usize,
    ty1: usize,
    scratch: &mut [f32],
) {
    let tw = g.tw;
    let (s, rest) = scratch.split_at_mut(24 * tw);
    let (row, ys) = rest.split_at_mut(4 * tw);
    let ys = &mut ys[..4 * tw];
    let mrow = |xi: usize, t0: usize| {
        let o = (xi * cout + co) * t + t0;
        &m[o..o + tw]
    };
    for ty in ty0..ty1 {
        let t0 = (ty - ty0) * tw;
        // s[i][j] = Σ_k Aᵀ[i][k]·M[k][j] (Aᵀ on the left), for each of the 6 columns j.
        for j in 0..6 {
            let (m0, m1, m2, m3, m4, m5) = (
                mrow(j, t0),
                mrow(6 + j, t0),
                mrow(12 + j, t0),
                mrow(18 + j, t0),
                mrow(24 + j, t0),
                mrow(30 + j, t0),
            );
            let (s0, rest) = s.split_at_mut(6 * tw);
            let (s1, rest) = rest.split_at_mut(6 * tw);
            let (s2, s3) = rest.split_at_mut(6 * tw);
            let (s0, s1, s2, s3) = (
                &mut s0[j * tw..(j + 1) * tw],
                &mut s1[j * tw..(j + 1) * tw],
                &mut s2[j * tw..(j + 1) * tw],
                &mut s3[j * tw..(j + 1) * tw],
            );
            for x in 0..tw {
                let (a0, a1, a2, a3, a4, a5) = (m0[x], m1[x], m2[x], m3[x], m4[x], m5[x]);
                [s0[x], s1[x], s2[x], s3[x]] = at([a0, a1, a2, a3, a4, a5]);
            }
        }
        // Y[i][l] = Σ_j s[i][j]·A[j][l] (A on the right), interleaved into output columns.
        for (i, si) in s.chunks_exact(6 * tw).enumerate() {
            let oy = 4 * ty + i;
            if oy >= g.ho {
                break;
            }
            let (a0, a1, a2, a3, a4, a5) = (
                &si[..tw],
                &si[tw..2 * tw],
                &si[2 * tw..3 * tw],
                &si[3 * tw..4 * tw],
                &si[4 * tw..5 * tw],
                &si[5 * tw..6 * tw],
            );
            let (y0, rest) = ys.split_at_mut(tw);
            let (y1, rest) = rest.split_at_mut(tw);
            let (y2, y3) = rest.split_at_mut(tw);
            let y3 = &mut y3[..tw];
            for x in 0..tw {
                let y = at([a0[x], a1[x], a2[x], a3[x], a4[x], a5[x]]);
                [y0[x], y1[x], y2[x], y3[x]] = y.map(|v| v + bias);
            }
            interleave4(row, y0, y1, y2, y3);
            plane[oy * g.wo..(oy + 1) * g.wo].copy_from_slice(&row[..g.wo]);
        }
    }
}

/// `out[4x + l] = y_l[x]`: a pure copy loop in its own function (its arguments are then known
/// not to alias), which LLVM vectorises with shuffles; inlined or fused into the arithmetic loop
/// it stayed scalar.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn interleave4(out: &mut [f32], y0: &[f32], y1: &[f32], y2: &[f32], y3: &[f32]) {
    for ((((o, &a), &b), &c), &d) in out.chunks_exact_mut(4).zip(y0).zip(y1).zip(y2).zip(y3) {
        o[0] = a;
        o[1] = b;
        o[2] = c;
        o[3] = d;
    }
}
