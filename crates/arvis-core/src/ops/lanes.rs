//! Portable lane-wise row kernels that LLVM auto-vectorises (AVX2/AVX-512/NEON).
//!
//! Floating-point reductions are not vectorised by the compiler on its own, because that would
//! reorder the additions. These helpers reorder explicitly — `LANES` independent partial sums —
//! which both vectorises and is *more* accurate than one running sum. Long rows are summed in
//! blocks whose partials are accumulated in f64, so a 300k-element group-norm group loses no more
//! precision than a 1k-element row.
//!
//! Everything here is `#[inline(always)]`: the row kernels that call these helpers are compiled
//! several times by `multiversion` (AVX-512, AVX2+FMA, baseline) and dispatched at run time, and
//! the helpers must be inlined into each copy to pick up its instruction set.

/// Independent accumulators per reduction (two AVX-512 registers' worth).
const LANES: usize = 32;
/// Elements summed in f32 before the partial is folded into an f64 total.
const BLOCK: usize = 1024;

#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rem = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    let mut tail = 0.0f32;
    for &v in rem {
        tail += f(v);
    }
    // Pairwise fold of the lanes.
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0] + tail
}

/// `Σ f(x)` over a row: f32 lanes within blocks, f64 across blocks.
#[inline(always)]
pub(crate) fn sum_map(x: &[f32], f: impl Fn(f32) -> f32 + Copy) -> f64 {
    if x.len() <= BLOCK {
        return lane_sum(x, f) as f64;
    }
    x.chunks(BLOCK).map(|b| lane_sum(b, f) as f64).sum()
}

/// `Σ x`.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f64 {
    sum_map(x, |v| v)
}

/// Mean and biased variance (two passes: the second sums squared deviations, which is stable
/// for rows with a large mean).
#[inline(always)]
pub(crate) fn mean_var(x: &[f32]) -> (f32, f32) {
    let n = x.len() as f64;
    let mean = (sum(x) / n) as f32;
    let var = sum_map(x, |v| (v - mean) * (v - mean)) / n;
    (mean, var as f32)
}

/// Maximum of a row (`-inf` for an empty row; NaN-propagation is not needed by callers, which
/// only use it as a shift).
#[inline(always)]
pub(crate) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rem = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    rem.iter()
        .chain(acc.iter())
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `eˣ` in f32, branch-free so loops over it vectorise. Cody–Waite range reduction
/// `x = n·ln2 + r`, a degree-6 polynomial for `eʳ` on `|r| ≤ ln2/2`, and `2ⁿ` built in the
/// exponent bits (as two factors, so `n = 128` near the overflow threshold stays finite). Max error about 2 ulp over the normal range (tested against f64 `exp`);
/// inputs below −87.3 (where `eˣ` leaves the normal range) give exactly 0, so masked `-inf`
/// logits get probability 0, and inputs above 88.7 give `+inf`.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.7);
    let t = xc * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // Taylor coefficients 1/k! (k = 2..6) in Horner form; exact enough on |r| ≤ 0.347.
    let p = 1.0f32 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let er = (p * r * r) + r + 1.0;
    let ni = t.to_bits() as i32 - SHIFTER.to_bits() as i32;
    // 2ⁿ as two normal halves: n reaches 128 just below the overflow threshold.
    let n1 = ni >> 1;
    let s1 = f32::from_bits(((n1 + 127) << 23) as u32);
    let s2 = f32::from_bits(((ni - n1 + 127) << 23) as u32);
    let y = er * s1 * s2;
    let y = if x < -87.3 { 0.0 } else { y };
    if x > 88.7 { f32::INFINITY } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64_within_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.5 {
            let got = exp_f32(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_37;
        }
        assert!(
            worst < 3.0 * f32::EPSILON as f64,
            "worst relative error {worst:e}"
        );
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn reductions_match_f64() {
        let x: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.01 + 1000.0)
            .collect();
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum(&x) - want).abs() / want < 1e-7);
        let (m, v) = mean_var(&x);
        let wm = want / 5000.0;
        let wv = x.iter().map(|&y| (y as f64 - wm).powi(2)).sum::<f64>() / 5000.0;
        assert!((m as f64 - wm).abs() / wm < 1e-6);
        assert!((v as f64 - wv).abs() / wv < 1e-4, "{v} vs {wv}");
        assert_eq!(
            max(&x[..37]),
            x[..37].iter().copied().fold(f32::MIN, f32::max)
        );
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }
}
