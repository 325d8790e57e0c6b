//! The micro-kernel: tiled `q·kᵀ`, online softmax, `p·v`, for micro-tiles of [`MR`] query rows.
//!
//! For each micro-tile the output rows are accumulated in an `[MR, dp]` buffer while the keys
//! are visited in steps of [`KB`]: scores for the step are computed one packed `kᵀ` tile at a
//! time into an `[MR, KB]` scratch (register-blocked outer products over `d`, vectorised over
//! keys), the running row maxima and sums are updated and the accumulator is rescaled when a
//! maximum grows (flash-attention's online softmax), then `p·v` is added (register-blocked,
//! vectorised over the head dim). Keys past a row's visible prefix get probability 0; key steps
//! past every row's prefix are skipped entirely, which is where causal and block-causal masks
//! save work.
//!
//! The two products run on explicit SIMD vectors (`pulp`: AVX-512, AVX2+FMA or scalar, picked
//! once per call by [`Arch::new`]), register-blocked as `MR` rows × `NV` vectors. Left to
//! itself, LLVM either kept these fixed-size loops scalar or vectorised them across rows with
//! gathers (7-20× slower). `NV` is 2 with 16 lanes (AVX-512: 16 of the 32 registers hold
//! accumulators) and 1 otherwise (AVX2 has 16 registers). The softmax's element-wise loops are
//! plain Rust that does vectorise, compiled per ISA by `multiversion`.

use arvis_core::ops::exp_f32;
use multiversion::multiversion;
use pulp::{Arch, Simd, WithSimd};

use super::{KB, NK};
use crate::mask::AttentionMask;

/// One head's packed operands.
pub(crate) struct HeadCtx<'a> {
    /// `kᵀ` tiles, see [`super::pack_kt`].
    pub kt: &'a [f32],
    /// Values, `[lk, dp]` row-major.
    pub v: &'a [f32],
    /// Head dim.
    pub d: usize,
    /// Row length of `v` and of the accumulator: `d` rounded up to [`super::DC`].
    pub dp: usize,
    /// Softmax scale, folded into the queries.
    pub scale: f32,
    /// The SIMD instruction set to run the products on.
    pub arch: Arch,
    /// A mask whose visible keys are not a prefix: tested pair by pair below each row's limit.
    pub mask: Option<&'a AttentionMask>,
}

/// Query rows per micro-tile.
const MR: usize = 8;

/// Attention for consecutive query rows of one head, the first at absolute position `q_pos0`:
/// `q [rows, d]`, `limits [rows]` (visible keys lie below), writes `out [rows, d]`.
pub(crate) fn attend_rows(
    ctx: &HeadCtx<'_>,
    q_pos0: usize,
    q: &[f32],
    limits: &[usize],
    out: &mut [f32],
) {
    let (d, dp) = (ctx.d, ctx.dp);
    let n_rows = limits.len();
    let mut qt = vec![[0.0f32; MR]; d];
    let mut acc = vec![0.0f32; MR * dp];
    let mut s = [[0.0f32; KB]; MR];
    for r0 in (0..n_rows).step_by(MR) {
        let nr = MR.min(n_rows - r0);
        // Queries of the micro-tile, scaled and transposed to [d][MR]; padding rows are zero.
        for (x, col) in qt.iter_mut().enumerate() {
            for (i, c) in col.iter_mut().enumerate() {
                *c = if i < nr {
                    q[(r0 + i) * d + x] * ctx.scale
                } else {
                    0.0
                };
            }
        }
        let mut lim = [0usize; MR];
        lim[..nr].copy_from_slice(&limits[r0..r0 + nr]);
        let lim_max = lim.iter().copied().max().unwrap_or(0);
        acc.fill(0.0);
        let mut state = RowState {
            m: [f32::NEG_INFINITY; MR],
            l: [0.0; MR],
        };
        let mut k0 = 0;
        while k0 < lim_max {
            let n = KB.min(lim_max - k0);
            let t0 = k0 / NK;
            for t in 0..n.div_ceil(NK) {
                let tile = &ctx.kt[(t0 + t) * d * NK..][..d * NK];
                ctx.arch.dispatch(QkTile {
                    qt: &qt,
                    tile,
                    s: &mut s,
                    s0: t * NK,
                });
            }
            let rule = ctx.mask.map(|m| (m, q_pos0 + r0));
            online_softmax(&mut s, n, k0, &lim, rule, &mut state, &mut acc, dp);
            ctx.arch.dispatch(Pv {
                p: &s,
                n,
                v: &ctx.v[k0 * dp..],
                acc: &mut acc,
                dp,
            });
            k0 += n;
        }
        for (i, dst) in out[r0 * d..].chunks_exact_mut(d).take(nr).enumerate() {
            // A row with no visible key (an explicit mask's empty row) is all zeros, not NaN.
            let l = state.l[i];
            let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
            for (o, &a) in dst.iter_mut().zip(&acc[i * dp..]) {
                *o = a * inv;
            }
        }
    }
}

/// Running maximum and sum of each row of a micro-tile.
struct RowState {
    m: [f32; MR],
    l: [f32; MR],
}

/// Vectors per register block for an ISA with `lanes` f32 lanes.
const fn vectors_per_block(lanes: usize) -> usize {
    if lanes >= 16 { 2 } else { 1 }
}

/// Scores `s[i][s0..s0+NK] = Σ_x qt[x][i] · tile[x][..]` for one `kᵀ` tile (run it with
/// [`Arch::dispatch`]).
pub(super) struct QkTile<'a> {
    pub qt: &'a [[f32; MR]],
    pub tile: &'a [f32],
    pub s: &'a mut [[f32; KB]; MR],
    pub s0: usize,
}

impl WithSimd for QkTile<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        if vectors_per_block(S::F32_LANES) == 2 {
            self.run::<S, 2>(simd);
        } else {
            self.run::<S, 1>(simd);
        }
    }
}

impl QkTile<'_> {
    #[inline(always)]
    fn run<S: Simd, const NV: usize>(self, simd: S) {
        let QkTile { qt, tile, s, s0 } = self;
        let w = NV * S::F32_LANES;
        let zero = simd.splat_f32s(0.0);
        for c in (0..NK).step_by(w) {
            let mut acc = [[zero; NV]; MR];
            for (qv, kr) in qt.iter().zip(tile.chunks_exact(NK)) {
                let (kv, _) = S::as_simd_f32s(&kr[c..c + w]);
                let kv: [S::f32s; NV] = std::array::from_fn(|u| kv[u]);
                for (a, &qi) in acc.iter_mut().zip(qv) {
                    let qb = simd.splat_f32s(qi);
                    for (x, &k) in a.iter_mut().zip(&kv) {
                        *x = simd.mul_add_e_f32s(qb, k, *x);
                    }
                }
            }
            for (row, a) in s.iter_mut().zip(&acc) {
                let (dst, _) = S::as_mut_simd_f32s(&mut row[s0 + c..s0 + c + w]);
                dst[..NV].copy_from_slice(a);
            }
        }
    }
}

/// `acc[i][..] += Σ_j p[i][j] · v[j][..]` for `j < n` (`v` rows of `dp` columns; run it with
/// [`Arch::dispatch`]).
pub(super) struct Pv<'a> {
    pub p: &'a [[f32; KB]; MR],
    pub n: usize,
    pub v: &'a [f32],
    pub acc: &'a mut [f32],
    pub dp: usize,
}

impl WithSimd for Pv<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        if vectors_per_block(S::F32_LANES) == 2 {
            self.run::<S, 2>(simd);
        } else {
            self.run::<S, 1>(simd);
        }
    }
}

impl Pv<'_> {
    #[inline(always)]
    fn run<S: Simd, const NV: usize>(self, simd: S) {
        let Pv { p, n, v, acc, dp } = self;
        // `dp` is a multiple of 32, hence of `w` on every ISA.
        let w = NV * S::F32_LANES;
        let zero = simd.splat_f32s(0.0);
        for c in (0..dp).step_by(w) {
            let mut a = [[zero; NV]; MR];
            for (ai, row) in a.iter_mut().zip(acc.chunks_exact(dp)) {
                let (src, _) = S::as_simd_f32s(&row[c..c + w]);
                ai.copy_from_slice(&src[..NV]);
            }
            // `j < n <= KB` drops the bounds checks on `p[i][j]`; gathering the column into an
            // array first is what lets LLVM unroll the rows and keep `a` in registers.
            for (j, vrow) in (0..n.min(KB)).zip(v.chunks_exact(dp)) {
                let (vv, _) = S::as_simd_f32s(&vrow[c..c + w]);
                let vv: [S::f32s; NV] = std::array::from_fn(|u| vv[u]);
                let pj: [f32; MR] = std::array::from_fn(|i| p[i][j]);
                for (ai, &pij) in a.iter_mut().zip(&pj) {
                    let pb = simd.splat_f32s(pij);
                    for (x, &vx) in ai.iter_mut().zip(&vv) {
                        *x = simd.mul_add_e_f32s(pb, vx, *x);
                    }
                }
            }
            for (ai, row) in a.iter().zip(acc.chunks_exact_mut(dp)) {
                let (dst, _) = S::as_mut_simd_f32s(&mut row[c..c + w]);
                dst[..NV].copy_from_slice(ai);
            }
        }
    }
}

/// One online-softmax step over keys `k0..k0+n`: turns the scores into unnormalised
/// probabilities `exp(s − m)`, 0 past each row's visible prefix (and, with `rule = (mask,
/// position of row 0)`, 0 where the mask hides the key), and rescales the running sums and
/// accumulator rows by `exp(m_old − m_new)` when a row maximum grows.
#[allow(clippy::too_many_arguments)]
fn online_softmax(
    s: &mut [[f32; KB]; MR],
    n: usize,
    k0: usize,
    lim: &[usize; MR],
    rule: Option<(&AttentionMask, usize)>,
    state: &mut RowState,
    acc: &mut [f32],
    dp: usize,
) {
    for (i, row) in s.iter_mut().enumerate() {
        let row = &mut row[..n];
        let valid = lim[i].saturating_sub(k0).min(n);
        if valid == 0 {
            // No visible key in this step (nor in later ones): contributes nothing.
            row.fill(0.0);
            continue;
        }
        let (vis, masked) = row.split_at_mut(valid);
        masked.fill(0.0);
        if let Some((mask, p0)) = rule {
            irregular_step(vis, k0, |j| mask.allows(p0 + i, j), state, i, acc, dp);
            continue;
        }
        let m_old = state.m[i];
        let m_new = m_old.max(row_max(vis));
        // m_old = −∞ on the first step: alpha = 0 (the accumulator is still zero anyway).
        let alpha = exp_f32(m_old - m_new);
        state.l[i] = state.l[i] * alpha + exp_shifted_sum(vis, m_new);
        state.m[i] = m_new;
        if alpha != 1.0 {
            scale_row(&mut acc[i * dp..][..dp], alpha);
        }
    }
}

/// [`online_softmax`] for one row whose visible keys `k0 + j` are those `allows` accepts.
fn irregular_step(
    vis: &mut [f32],
    k0: usize,
    allows: impl Fn(usize) -> bool,
    state: &mut RowState,
    i: usize,
    acc: &mut [f32],
    dp: usize,
) {
    let mut tile_max = f32::NEG_INFINITY;
    let mut any = false;
    for (j, &x) in vis.iter().enumerate() {
        if allows(k0 + j) {
            any = true;
            tile_max = if x > tile_max { x } else { tile_max };
        }
    }
    if !any {
        vis.fill(0.0);
        return;
    }
    let m_old = state.m[i];
    let m_new = m_old.max(tile_max);
    let alpha = exp_f32(m_old - m_new);
    let mut sum = 0.0;
    for (j, x) in vis.iter_mut().enumerate() {
        *x = if allows(k0 + j) {
            exp_f32(*x - m_new)
        } else {
            0.0
        };
        sum += *x;
    }
    state.l[i] = state.l[i] * alpha + sum;
    state.m[i] = m_new;
    if alpha != 1.0 {
        scale_row(&mut acc[i * dp..][..dp], alpha);
    }
}

/// `x ← exp(x − shift)` in place; returns `Σ x`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
    for v in x.iter_mut() {
        *v = exp_f32(*v - shift);
    }
    row_sum(x)
}

/// `x ← x · alpha`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn scale_row(x: &mut [f32], alpha: f32) {
    for v in x.iter_mut() {
        *v *= alpha;
    }
}

/// Maximum of a row (NaNs ignored), 16 lanes.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn row_max(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let (chunks, rem) = x.as_chunks::<16>();
    for c in chunks {
        for (a, &v) in lanes.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    rem.iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a })
}

/// Sum of a row, 16 lanes.
#[inline(always)]
fn row_sum(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (chunks, rem) = x.as_chunks::<16>();
    for c in chunks {
        for (a, &v) in lanes.iter_mut().zip(c) {
            *a += v;
        }
    }
    lanes.iter().sum::<f32>() + rem.iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    //! The SIMD products on every instruction set this machine has, against plain loops (the
    //! integration tests only reach the one `Arch::new` picks).

    use super::*;
    use arvis_core::SeededRng;

    fn run_all(qt: &[[f32; MR]], tile: &[f32], p: &[[f32; KB]; MR], v: &[f32], dp: usize) {
        let d = qt.len();
        let n = v.len() / dp;
        let mut want_s = [[0.0f32; KB]; MR];
        for (i, row) in want_s.iter_mut().enumerate() {
            for (j, sij) in row[..NK].iter_mut().enumerate() {
                *sij = (0..d).map(|x| qt[x][i] * tile[x * NK + j]).sum();
            }
        }
        let mut want_acc = vec![1.0f32; MR * dp];
        for (i, row) in want_acc.chunks_exact_mut(dp).enumerate() {
            for (c, a) in row.iter_mut().enumerate() {
                *a += (0..n).map(|j| p[i][j] * v[j * dp + c]).sum::<f32>();
            }
        }
        let check = |name: &str, got: &[f32], want: &[f32]| {
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{name}: {g} vs {w}"
                );
            }
        };
        let run = |name: &str, f: &dyn Fn(QkTile<'_>, Pv<'_>)| {
            let mut s = [[0.0f32; KB]; MR];
            let mut acc = vec![1.0f32; MR * dp];
            f(
                QkTile {
                    qt,
                    tile,
                    s: &mut s,
                    s0: 0,
                },
                Pv {
                    p,
                    n,
                    v,
                    acc: &mut acc,
                    dp,
                },
            );
            check(name, s.as_flattened(), want_s.as_flattened());
            check(name, &acc, &want_acc);
        };
        run("scalar", &|a, b| {
            Simd::vectorize(pulp::Scalar::new(), a);
            Simd::vectorize(pulp::Scalar::new(), b);
        });
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(simd) = pulp::x86::V3::try_new() {
                run("avx2", &|a, b| {
                    Simd::vectorize(simd, a);
                    Simd::vectorize(simd, b);
                });
            }
            if let Some(simd) = pulp::x86::V4::try_new() {
                run("avx512", &|a, b| {
                    Simd::vectorize(simd, a);
                    Simd::vectorize(simd, b);
                });
            }
        }
        run("dispatched", &|a, b| {
            Arch::new().dispatch(a);
            Arch::new().dispatch(b);
        });
    }

    #[test]
    fn products_agree_on_every_isa() {
        let mut rng = SeededRng::new(5);
        for (d, dp, n) in [(1, 32, 1), (7, 32, 5), (64, 64, KB), (70, 96, 77)] {
            let qt: Vec<[f32; MR]> = (0..d)
                .map(|_| std::array::from_fn(|_| rng.normal_f32()))
                .collect();
            let tile: Vec<f32> = (0..d * NK).map(|_| rng.normal_f32()).collect();
            let p: [[f32; KB]; MR] =
                std::array::from_fn(|_| std::array::from_fn(|_| rng.uniform_f32()));
            let v: Vec<f32> = (0..n * dp).map(|_| rng.normal_f32()).collect();
            run_all(&qt, &tile, &p, &v, dp);
        }
    }
}
