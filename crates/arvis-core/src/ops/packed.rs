//! Products with a constant right operand packed once: `x · B + bias` for the weights of a
//! linear layer, the shape of every transformer GEMM.
//!
//! Why: a general GEMM packs its right operand on every call. For a weight matrix that is
//! 16 MB of reads and writes per product, which costs as much as the arithmetic when `x` has a
//! few dozen rows (a VAR scale has 2…512). [`PackedMatrix`] stores `B` once as column panels of
//! [`NR`] floats per row, in the order the kernel reads them, so a product streams `B` exactly
//! once (bandwidth-bound for few rows) and keeps each panel in L2 while every row strip of `x`
//! passes over it (compute-bound for many rows). Columns past `n` in the last panel are zero.
//!
//! Kernel: `MR × 32` output tiles held in registers (24 of the 32 AVX-512 registers for
//! `MR = 12`), the full depth `k` per tile, `x` repacked per call into `k × MR` strips (one
//! broadcast per row and step, read sequentially),
//! bias added on store. Without AVX-512 a portable kernel over the same layout runs instead.
//!
//! Storage ([`WeightStorage`]): f32, or f16 (`*_with(.., WeightStorage::F16)`), which rounds
//! every matrix element to the nearest IEEE half (ties to even, the `half` crate) once at
//! packing. On the GPU the halves are what is stored — two per 32-bit word, decoded by
//! `matmul.wgsl` (`B_F16`) with integer bit operations, so every adapter runs it: no
//! `SHADER_F16`, and not the `unpack2x16float` builtin either, which wgpu gates behind the
//! downlevel `SHADER_F16_IN_F32` (absent on Mesa's Vulkan drivers without `SHADER_F16`) — which
//! halves the weight bytes a product reads. On the CPU the rounded values are kept as f32 in
//! the same panels (same numbers as the GPU, no speed-up). Inputs, bias, accumulation and
//! outputs stay f32 on both devices.

use rayon::prelude::*;

use super::unary::Activation;
use crate::error::{Error, Result};
use crate::gpu::GpuBuffer;
use crate::gpu::ops::linalg::{self, Gemm};
use crate::tensor::{Device, Tensor};
use crate::tensor::{gpu_context, operands};

/// Columns per panel (two AVX-512 vectors).
pub const NR: usize = 32;
/// Rows per register tile.
const MR: usize = 12;

/// How a [`PackedMatrix`] stores its matrix (the bias is always f32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightStorage {
    /// f32, as given.
    #[default]
    F32,
    /// Rounded once to IEEE half precision (round to nearest, ties to even). The GPU stores
    /// the halves (half the bytes per product; no `SHADER_F16` needed); the CPU computes with
    /// the rounded values in f32 (same results as the GPU, same speed as [`WeightStorage::F32`]).
    /// Products still accumulate in f32: expect ~1e-3 relative error from the rounding.
    F16,
}

/// `v` rounded to the nearest IEEE half (ties to even), as f32.
pub fn round_to_f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

/// `values` as IEEE halves packed two per word, element `2i` in the low 16 bits of word `i`
/// (an odd count ends with a zero half): the layout `matmul.wgsl` reads with `B_F16`.
pub(crate) fn pack_halves(values: &[f32]) -> Vec<u32> {
    values
        .chunks(2)
        .map(|p| {
            let lo = half::f16::from_f32(p[0]).to_bits();
            let hi = p.get(1).map_or(0, |&v| half::f16::from_f32(v).to_bits());
            u32::from(lo) | (u32::from(hi) << 16)
        })
        .collect()
}

/// A `[k, n]` matrix packed for repeated products [`Tensor::matmul_packed`], with an optional
/// bias `[n]` added to every output row.
///
/// Packed from GPU tensors it stays on the GPU ([`PackedMatrix::device`]): the matrix is kept
/// as given (`[k, n]`, or the `[out, in]` linear weight read transposed by the kernel, no copy;
/// packed halves in that layout with [`WeightStorage::F16`]) with its bias, and products run
/// `shaders/matmul.wgsl` with the bias fused. The input of a product must be on the matrix's
/// device ([`Error::Device`] otherwise).
///
/// With [`WeightStorage::F16`] (`from_kn_with`, `from_linear_with`) the matrix is rounded to
/// half precision once; on the GPU it is stored as packed halves (see the module docs).
#[derive(Clone, Debug)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    storage: WeightStorage,
    data: Packed,
}

/// The packed data on its device.
#[derive(Clone, Debug)]
enum Packed {
    Cpu {
        /// `ceil(n / NR)` panels, each `k × NR` row-major.
        panels: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    Gpu {
        /// `[k, n]`, or `[n, k]` when `transposed` (a linear weight). With
        /// [`WeightStorage::F16`], the same elements as packed halves in a 1-D tensor of
        /// `ceil(k·n / 2)` words (bit patterns, not f32 values: only `matmul.wgsl` reads it).
        matrix: Tensor,
        transposed: bool,
        bias: Option<Tensor>,
    },
}

impl PackedMatrix {
    /// Packs `b` `[k, n]` (row-major) and the optional `bias` `[n]`.
    pub fn from_kn(b: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        Self::from_kn_with(b, bias, WeightStorage::F32)
    }

    /// [`PackedMatrix::from_kn`] with the matrix stored as `storage`.
    pub fn from_kn_with(b: &Tensor, bias: Option<&Tensor>, storage: WeightStorage) -> Result<Self> {
        const OP: &str = "PackedMatrix::from_kn";
        let &[k, n] = b.shape() else {
            return Err(Error::shape(OP, "[k, n]", b.shape()));
        };
        Self::pack(OP, b, k, n, false, bias, storage)
    }

    /// Packs the transpose of a PyTorch linear weight `w` `[out, in]`, so that
    /// `x.matmul_packed(&p)` is `x · wᵀ + bias` (`nn.Linear`), with `bias` `[out]`.
    pub fn from_linear(w: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        Self::from_linear_with(w, bias, WeightStorage::F32)
    }

    /// [`PackedMatrix::from_linear`] with the weight stored as `storage`.
    ///
    /// A GPU weight with [`WeightStorage::F16`] is read back once to be rounded on the host
    /// (the same rounding as the CPU's, bit for bit) and uploaded as halves: a sync point, at
    /// load time only.
    pub fn from_linear_with(
        w: &Tensor,
        bias: Option<&Tensor>,
        storage: WeightStorage,
    ) -> Result<Self> {
        const OP: &str = "PackedMatrix::from_linear";
        let &[n, k] = w.shape() else {
            return Err(Error::shape(OP, "[out, in]", w.shape()));
        };
        Self::pack(OP, w, k, n, true, bias, storage)
    }

    fn pack(
        op: &'static str,
        matrix: &Tensor,
        k: usize,
        n: usize,
        transposed: bool,
        bias: Option<&Tensor>,
        storage: WeightStorage,
    ) -> Result<Self> {
        let ctx = gpu_context(op, &operands(&[Some(matrix), bias]))?;
        if k == 0 || n == 0 {
            return Err(Error::shape(op, "a non-empty matrix", &[k, n]));
        }
        if let Some(b) = bias
            && b.shape() != [n]
        {
            return Err(Error::shape(op, format!("bias [{n}]"), b.shape()));
        }
        if let Some(ctx) = ctx {
            let matrix = match storage {
                WeightStorage::F32 => matrix.clone(),
                WeightStorage::F16 => {
                    let words = pack_halves(&matrix.try_to_vec()?);
                    let len = words.len();
                    let buffer = GpuBuffer::upload(&ctx, bytemuck::cast_slice(&words))?;
                    Tensor::from_gpu(&ctx, buffer, &[len])?
                }
            };
            return Ok(PackedMatrix {
                k,
                n,
                storage,
                data: Packed::Gpu {
                    matrix,
                    transposed,
                    bias: bias.cloned(),
                },
            });
        }
        let rounded;
        let src = match storage {
            WeightStorage::F32 => matrix.data(),
            WeightStorage::F16 => {
                rounded = matrix
                    .data()
                    .iter()
                    .map(|&v| round_to_f16(v))
                    .collect::<Vec<_>>();
                &rounded[..]
            }
        };
        let bias = bias.map(|b| b.data().to_vec());
        let np = n.div_ceil(NR);
        let mut panels = vec![0.0f32; np * k * NR];
        panels
            .par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(p, panel)| {
                let (c0, width) = (p * NR, NR.min(n - p * NR));
                if transposed {
                    // src is [n, k]: column c of B is row c of src.
                    for j in 0..width {
                        let row = &src[(c0 + j) * k..(c0 + j + 1) * k];
                        for (kk, v) in row.iter().enumerate() {
                            panel[kk * NR + j] = *v;
                        }
                    }
                } else {
                    for kk in 0..k {
                        panel[kk * NR..kk * NR + width]
                            .copy_from_slice(&src[kk * n + c0..kk * n + c0 + width]);
                    }
                }
            });
        Ok(PackedMatrix {
            k,
            n,
            storage,
            data: Packed::Cpu { panels, bias },
        })
    }

    /// Inner dimension (rows of `B`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// How the matrix is stored.
    pub fn storage(&self) -> WeightStorage {
        self.storage
    }

    /// Whether a bias is added.
    pub fn has_bias(&self) -> bool {
        match &self.data {
            Packed::Cpu { bias, .. } => bias.is_some(),
            Packed::Gpu { bias, .. } => bias.is_some(),
        }
    }

    /// The device holding the packed matrix (products take inputs on this device).
    pub fn device(&self) -> Device {
        match &self.data {
            Packed::Cpu { .. } => Device::Cpu,
            Packed::Gpu { .. } => Device::Gpu,
        }
    }

    /// The CPU panels and bias (`None` on the GPU).
    fn cpu_parts(&self) -> Option<(&[f32], Option<&[f32]>)> {
        match &self.data {
            Packed::Cpu { panels, bias } => Some((panels, bias.as_deref())),
            Packed::Gpu { .. } => None,
        }
    }
}

impl Tensor {
    /// `self · B + bias` over the last dim: `[.., k] → [.., n]` with `b` packed by
    /// [`PackedMatrix`]. Same sums as [`Tensor::matmul`] up to f32 rounding order.
    pub fn matmul_packed(&self, b: &PackedMatrix) -> Result<Tensor> {
        self.matmul_packed_act(b, Activation::None)
    }

    /// `act(self · B + bias)`: [`Tensor::matmul_packed`] followed by an activation, fused into
    /// the product's epilogue on the GPU (the activation's tensor op on the CPU).
    pub fn matmul_packed_act(&self, b: &PackedMatrix, act: Activation) -> Result<Tensor> {
        const OP: &str = "matmul_packed";
        let ctx = gpu_context(OP, &[self])?;
        if ctx.is_some() != (b.device() == Device::Gpu) {
            return Err(Error::Device {
                op: OP,
                msg: format!(
                    "input on the {} and packed matrix on the {}: pack the matrix from tensors \
                     on the input's device",
                    self.device().name(),
                    b.device().name()
                ),
            });
        }
        let s = self.shape();
        if s.last() != Some(&b.k) {
            return Err(Error::shape(OP, format!("[.., {}]", b.k), s));
        }
        let m = s[..s.len() - 1].iter().product::<usize>();
        let mut out_shape = s.to_vec();
        *out_shape.last_mut().unwrap_or(&mut 0) = b.n;
        if let (
            Some(_),
            Packed::Gpu {
                matrix,
                transposed,
                bias,
            },
        ) = (ctx, &b.data)
        {
            // Same device, and the same context as the matrix.
            let ctx = gpu_context(OP, &[self, matrix])?.expect("both on the GPU");
            let g = Gemm {
                a: self,
                b: matrix,
                b_f16: b.storage == WeightStorage::F16,
                bias: bias.as_ref(),
                m,
                n: b.n,
                k: b.k,
                trans_a: false,
                trans_b: *transposed,
                batch: &[],
                a_strides: &[],
                b_strides: &[],
                act,
            };
            return linalg::matmul(&ctx, OP, &g, &out_shape);
        }
        let len = m * b.n;
        let mut out: Vec<f32> = Vec::with_capacity(len);
        if m > 0 {
            // No zero-fill: the product writes every element (the panels cover all n
            // columns, the strips all m rows), and the memset would cost a third as much as a
            // few-row product itself.
            // SAFETY: `out` has capacity m·n and is not shared yet.
            unsafe { packed_product(self.data(), m, b, out.as_mut_ptr(), avx512_available()) };
        }
        // SAFETY: all `len` elements were written above (none when m = 0).
        unsafe { out.set_len(len) };
        act.apply(&Tensor::from_vec(out, &out_shape)?)
    }
}

/// One register-tile job: `rows` (≤ MR) rows of one packed strip `xs` (`k × MR`) times one
/// panel, written as `width` columns at `dst` (row stride `ldc`) with the panel's bias.
#[derive(Clone, Copy)]
struct Tile<'a> {
    xs: &'a [f32],
    rows: usize,
    k: usize,
    panel: &'a [f32],
    dst: *mut f32,
    ldc: usize,
    width: usize,
    bias: Option<&'a [f32]>,
}

/// Raw output pointer shared by the panel tasks; each task writes only its own columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges of the output (one panel each), see below.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Through a method, so closures capture the whole (`Send`) wrapper, not the raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Writes `x · B + bias` (`[m, n]`) to `out`.
///
/// # Safety
/// `out` must be valid for `m · n` writes of `f32` and not aliased during the call.
unsafe fn packed_product(x: &[f32], m: usize, b: &PackedMatrix, out: *mut f32, avx512: bool) {
    let (k, n) = (b.k, b.n);
    let (panels, bias_all) = b
        .cpu_parts()
        .expect("internal: CPU product of a GPU matrix");
    assert!(x.len() >= m * k);
    let np = n.div_ceil(NR);
    let strips = m.div_ceil(MR);
    // x repacked as strips of MR rows, k-major (`a[s][kk][r]`), so the kernel reads it
    // sequentially like the panel; rows past m in the last strip are never read.
    let mut a = vec![0.0f32; strips * k * MR];
    a.par_chunks_mut(k * MR).enumerate().for_each(|(s, strip)| {
        let rows = MR.min(m - s * MR);
        for r in 0..rows {
            let src = &x[(s * MR + r) * k..(s * MR + r + 1) * k];
            for (kk, v) in src.iter().enumerate() {
                strip[kk * MR + r] = *v;
            }
        }
    });
    let ptr = OutPtr(out);
    // One task per panel: a panel (k·NR floats, ≤ 512 KB for k = 4096) stays in L2 while
    // every strip of x passes over it.
    (0..np).into_par_iter().for_each(|p| {
        let panel = &panels[p * k * NR..(p + 1) * k * NR];
        let (c0, width) = (p * NR, NR.min(n - p * NR));
        let bias = bias_all.map(|bv| &bv[c0..c0 + width]);
        for s in 0..strips {
            let rows = MR.min(m - s * MR);
            let strip = &a[s * k * MR..(s + 1) * k * MR];
            // SAFETY: rows s·MR.., columns c0..c0+width of `out` belong to this task alone
            // (panels partition the columns); `out` holds m·n floats (the caller's contract).
            let dst = unsafe { ptr.get().add(s * MR * n + c0) };
            let tile = Tile {
                xs: strip,
                rows,
                k,
                panel,
                dst,
                ldc: n,
                width,
                bias,
            };
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: AVX-512F is present (checked at run time); `dst` as above.
                unsafe { avx512::tile_dispatch(tile) };
                continue;
            }
            let _ = avx512;
            // SAFETY: as above.
            unsafe { portable_tile(tile) };
        }
    });
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The portable tile kernel.
///
/// # Safety
/// `t.dst` must be valid for writes of `t.rows` rows of `t.width` floats at stride `t.ldc`.
unsafe fn portable_tile(t: Tile<'_>) {
    let Tile {
        xs,
        rows,
        k,
        panel,
        dst,
        ldc,
        width,
        bias,
    } = t;
    for r in 0..rows {
        let mut acc = [0.0f32; NR];
        for kk in 0..k {
            let xv = xs[kk * MR + r];
            let bp = &panel[kk * NR..(kk + 1) * NR];
            for j in 0..NR {
                acc[j] += xv * bp[j];
            }
        }
        for j in 0..width {
            let v = acc[j] + bias.map_or(0.0, |b| b[j]);
            // SAFETY: within the tile the caller owns.
            unsafe { *dst.add(r * ldc + j) = v };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR, Tile};
    use std::arch::x86_64::*;

    /// Picks the `R`-row kernel for `t.rows` (1 ..= MR).
    ///
    /// # Safety
    /// AVX-512F must be available; `t.dst` valid for the tile (see `portable_tile`).
    pub(super) unsafe fn tile_dispatch(t: Tile<'_>) {
        let Tile {
            xs,
            rows,
            k,
            panel,
            dst,
            ldc,
            width,
            bias,
        } = t;
        debug_assert!(xs.len() >= k * MR && rows <= MR && panel.len() >= k * NR);
        macro_rules! go {
            ($r:literal) => {
                // SAFETY: forwarded from the caller.
                unsafe { tile::<$r>(xs.as_ptr(), k, panel.as_ptr(), dst, ldc, width, bias) }
            };
        }
        match rows {
            12 => go!(12),
            11 => go!(11),
            10 => go!(10),
            9 => go!(9),
            8 => go!(8),
            7 => go!(7),
            6 => go!(6),
            5 => go!(5),
            4 => go!(4),
            3 => go!(3),
            2 => go!(2),
            _ => go!(1),
        }
        const _: () = assert!(MR == 12);
    }

    /// `R × 32` outputs: `acc[r] += strip[kk, r] · panel[kk, 0..32]` over the whole depth.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const R: usize>(
        x: *const f32,
        k: usize,
        panel: *const f32,
        dst: *mut f32,
        ldc: usize,
        width: usize,
        bias: Option<&[f32]>,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let (mut bp, mut ap) = (panel, x);
        for _ in 0..k {
            // SAFETY (whole loop): k steps over a panel of k·NR floats and a strip of k·MR.
            unsafe {
                let b0 = _mm512_loadu_ps(bp);
                let b1 = _mm512_loadu_ps(bp.add(16));
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*ap.add(r));
                    a[0] = _mm512_fmadd_ps(xv, b0, a[0]);
                    a[1] = _mm512_fmadd_ps(xv, b1, a[1]);
                }
                bp = bp.add(NR);
                ap = ap.add(MR);
            }
        }
        let (m0, m1) = masks(width);
        let (bias0, bias1) = match bias {
            // SAFETY: bias has `width` entries; masked loads read only those.
            Some(b) => unsafe {
                (
                    _mm512_maskz_loadu_ps(m0, b.as_ptr()),
                    _mm512_maskz_loadu_ps(m1, b.as_ptr().add(16.min(width))),
                )
            },
            None => (_mm512_setzero_ps(), _mm512_setzero_ps()),
        };
        for (r, a) in acc.iter().enumerate() {
            // SAFETY: row r of the tile, `width` floats, masked.
            unsafe {
                let row = dst.add(r * ldc);
                _mm512_mask_storeu_ps(row, m0, _mm512_add_ps(a[0], bias0));
                _mm512_mask_storeu_ps(row.add(16.min(width)), m1, _mm512_add_ps(a[1], bias1));
            }
        }
    }

    /// Store masks of the two vectors for a tile `width` columns wide.
    fn masks(width: usize) -> (__mmask16, __mmask16) {
        let lo = width.min(16);
        let hi = width.saturating_sub(16).min(16);
        let m = |c: usize| {
            if c == 16 {
                0xFFFF
            } else {
                ((1u32 << c) - 1) as u16
            }
        };
        (m(lo), m(hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable kernel (what machines without AVX-512 run) agrees with the dispatching one
    /// and with a plain f64 product.
    #[test]
    fn portable_kernel_matches_f64_product() -> Result<()> {
        let (m, k, n) = (14, 23, 41);
        let x = Tensor::randn(&[m, k], &mut crate::SeededRng::new(1));
        let w = Tensor::randn(&[n, k], &mut crate::SeededRng::new(2));
        let bias = Tensor::randn(&[n], &mut crate::SeededRng::new(3));
        let p = PackedMatrix::from_linear(&w, Some(&bias))?;
        let mut portable = vec![0.0f32; m * n];
        // SAFETY: `portable` holds m·n floats.
        unsafe { packed_product(x.data(), m, &p, portable.as_mut_ptr(), false) };
        let fast = x.matmul_packed(&p)?.to_vec();
        let (xd, wd, bd) = (x.data(), w.data(), bias.data());
        for r in 0..m {
            for c in 0..n {
                let want = f64::from(bd[c])
                    + (0..k)
                        .map(|i| f64::from(xd[r * k + i]) * f64::from(wd[c * k + i]))
                        .sum::<f64>();
                for got in [portable[r * n + c], fast[r * n + c]] {
                    assert!((f64::from(got) - want).abs() < 1e-4 * (1.0 + want.abs()));
                }
            }
        }
        Ok(())
    }
}
