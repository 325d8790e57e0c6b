//! Shared helpers for the arvis benches.
//!
//! Benchmark ids follow `<crate>/<op>/<device>/<shape>`, e.g.
//! `arvis-core/matmul/cpu/1024x1024x1024`. For compute-bound ops the criterion
//! throughput is `Throughput::Elements(flops)`: **"elements" means FLOPs** (one fused
//! multiply-add counts as two). For memory-bound ops it is `Throughput::Bytes(read + write)`.
//! `cargo xtask bench` reads these numbers back from `target/criterion` to compute GFLOP/s,
//! GB/s and the fraction of the machine's peak.
//!
//! Two machine references are measured in the same run: [`stream_copy`] (memory bandwidth, for
//! the memory-bound ops) and [`fma_peak`] (f32 FMA throughput on all rayon threads, for the
//! compute-bound ops; it runs at whatever clock the cores boost to, unlike a peak computed
//! from the nominal clock).

use rayon::prelude::*;

/// Bytes in one f32.
pub const F32_BYTES: u64 = 4;

/// FLOPs of a `[m, k] · [k, n]` matrix product: `2·m·n·k`.
pub fn matmul_flops(m: usize, k: usize, n: usize) -> u64 {
    2 * (m as u64) * (n as u64) * (k as u64)
}

/// FLOPs of a stride-1 "same" 2-D convolution producing `out_ch` channels of `h × w` from
/// `in_ch` channels with a `kh × kw` kernel, for a batch of `n`: `2·N·O·I·kh·kw·H·W`.
///
/// The bias add (`N·O·H·W`) is negligible and not counted.
pub fn conv2d_flops(
    n: usize,
    in_ch: usize,
    out_ch: usize,
    (kh, kw): (usize, usize),
    (h, w): (usize, usize),
) -> u64 {
    2 * [n, out_ch, in_ch, kh, kw, h, w]
        .iter()
        .map(|&d| d as u64)
        .product::<u64>()
}

/// Bytes moved by a row-wise op that reads its f32 input once and writes an output of the
/// same size: `2·4·numel` (small per-row parameters such as a layer norm's weight are ignored).
pub fn read_write_bytes(numel: usize) -> u64 {
    2 * F32_BYTES * numel as u64
}

/// Approximate FLOPs per element of a layer norm: mean (1 add), variance (sub, mul, add = 3),
/// normalise and affine (sub, mul by 1/σ, mul by w, add b = 4): **8 FLOPs/element**.
pub const LAYER_NORM_FLOPS_PER_ELEM: u64 = 8;

/// Approximate FLOPs per element of a softmax: max (1), subtract (1), `exp` (counted as 1,
/// in reality ~10-20 instructions), sum (1), scale by 1/sum (1): **5 FLOPs/element**.
pub const SOFTMAX_FLOPS_PER_ELEM: u64 = 5;

/// Shape string used in bench ids: dimensions joined by `x` (`[680, 1024]` → `"680x1024"`).
pub fn shape_id(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// A dedicated thread pool for the memory-bandwidth reference.
///
/// `threads` should match what the tensor ops use (rayon's global pool: one thread per
/// available CPU) so the reference measures the bandwidth those ops can reach.
pub fn copy_pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build()
}

/// Copies `src` into `dst` in parallel on `pool`: the "STREAM copy" kernel.
///
/// Moves `2 · 4 · len` bytes as counted by STREAM (read + write). With write-allocate caches
/// the hardware may move up to `3 · 4 · len` (the destination line is read before it is
/// written), so the measured GB/s is the bandwidth *as seen by a read+write op*, which is
/// exactly how the memory-bound ops are counted too.
///
/// # Panics
/// If the slices have different lengths.
pub fn stream_copy(pool: &rayon::ThreadPool, src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "stream_copy: length mismatch");
    // Large chunks: one contiguous span per task keeps the prefetchers busy.
    let chunk = src.len().div_ceil(pool.current_num_threads() * 4).max(1);
    pool.install(|| {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
    });
}

/// Iterations per thread of the [`fma_peak`] kernel: at ~3.5 GHz about 5 ms per call on
/// AVX-512 (16 chains × 2²⁰ dependent FMAs), long enough to dwarf the rayon broadcast.
pub const FMA_PEAK_ITERS: u64 = 1 << 20;

/// The f32 FMA kernel [`fma_peak`] runs, chosen once at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FmaKernel {
    /// x86-64 with AVX-512F: 16 independent `__m512` chains of `_mm512_fmadd_ps`.
    Avx512,
    /// x86-64 with AVX2 + FMA: 12 independent `__m256` chains of `_mm256_fmadd_ps` (12 of the
    /// 16 ymm registers, leaving room for the two constants).
    Avx2Fma,
    /// Portable fallback: 16 independent `f32::mul_add` chains. Not a SIMD peak (without a
    /// hardware FMA `mul_add` is a libm call), so compute-bound ops can exceed it.
    Scalar,
}

impl FmaKernel {
    /// The widest kernel this CPU supports (runtime detection on x86-64, [`Self::Scalar`]
    /// elsewhere).
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Self::Avx2Fma;
            }
        }
        Self::Scalar
    }

    /// f32 lanes per FMA instruction.
    pub fn lanes(self) -> u64 {
        match self {
            Self::Avx512 => 16,
            Self::Avx2Fma => 8,
            Self::Scalar => 1,
        }
    }

    /// Independent accumulator chains per thread (enough to cover FMA latency × pipes).
    pub fn accumulators(self) -> u64 {
        match self {
            Self::Avx512 | Self::Scalar => 16,
            Self::Avx2Fma => 12,
        }
    }

    /// A short description, for logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Avx512 => "x86-64 AVX-512F: 16 chains of 512-bit _mm512_fmadd_ps",
            Self::Avx2Fma => "x86-64 AVX2+FMA: 12 chains of 256-bit _mm256_fmadd_ps",
            Self::Scalar => "portable scalar f32::mul_add fallback (not a SIMD peak)",
        }
    }

    /// FLOPs of one [`fma_peak`] call on `threads` threads with `iters` iterations each:
    /// `threads · iters · accumulators · lanes · 2` (an FMA is a multiply and an add).
    pub fn flops(self, threads: usize, iters: u64) -> u64 {
        threads as u64 * iters * self.accumulators() * self.lanes() * 2
    }

    /// Runs the kernel on the calling thread; returns the sum of all accumulator lanes.
    pub fn run(self, iters: u64) -> f32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx512` is only produced by `detect` after
            // `is_x86_feature_detected!("avx512f")` returned true on this machine.
            Self::Avx512 => unsafe { x86::fma_avx512(iters) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2Fma` is only produced by `detect` after
            // `is_x86_feature_detected!` confirmed both `avx2` and `fma` on this machine.
            Self::Avx2Fma => unsafe { x86::fma_avx2(iters) },
            _ => fma_scalar(iters),
        }
    }
}

/// Multiplier and addend of every FMA chain (`acc = acc · M + A`): the chains converge to
/// `A / (1 − M) ≈ 1`, so they never overflow nor reach subnormals.
const FMA_MUL: f32 = 0.999_999;
const FMA_ADD: f32 = 1e-6;

/// Distinct starting values, so the compiler cannot merge identical chains.
fn fma_start(i: usize) -> f32 {
    1.0 + 0.01 * i as f32
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    use super::{FMA_ADD, FMA_MUL, fma_start};

    /// 16 independent chains of `_mm512_fmadd_ps` (16 of the 32 zmm registers): on Zen 4
    /// (latency 4, one 512-bit FMA per cycle, double-pumped) and on Intel (2 × 512-bit pipes,
    /// latency 4) at least 8 are needed to keep the pipes busy.
    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    pub(super) fn fma_avx512(iters: u64) -> f32 {
        let m = _mm512_set1_ps(black_box(FMA_MUL));
        let a = _mm512_set1_ps(black_box(FMA_ADD));
        let mut acc: [__m512; 16] =
            std::array::from_fn(|i| _mm512_set1_ps(black_box(fma_start(i))));
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, m, a);
            }
        }
        let sum = acc
            .into_iter()
            .fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, x));
        _mm512_reduce_add_ps(sum)
    }

    /// 12 independent chains of `_mm256_fmadd_ps` (12 of the 16 ymm registers, the other two
    /// hold the constants): 2 pipes × latency 4 need at least 8.
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    pub(super) fn fma_avx2(iters: u64) -> f32 {
        let m = _mm256_set1_ps(black_box(FMA_MUL));
        let a = _mm256_set1_ps(black_box(FMA_ADD));
        let mut acc: [__m256; 12] =
            std::array::from_fn(|i| _mm256_set1_ps(black_box(fma_start(i))));
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, m, a);
            }
        }
        let sum = acc
            .into_iter()
            .fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, x));
        let q = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
        let q = _mm_hadd_ps(q, q);
        _mm_cvtss_f32(_mm_hadd_ps(q, q))
    }
}

/// The portable kernel: 16 independent scalar `mul_add` chains.
#[inline(never)]
fn fma_scalar(iters: u64) -> f32 {
    let m = std::hint::black_box(FMA_MUL);
    let a = std::hint::black_box(FMA_ADD);
    let mut acc: [f32; 16] = std::array::from_fn(|i| std::hint::black_box(fma_start(i)));
    for _ in 0..iters {
        for x in &mut acc {
            *x = x.mul_add(m, a);
        }
    }
    acc.iter().sum()
}

/// The f32 FMA throughput reference: runs `kernel` for `iters` iterations on **every thread of
/// rayon's global pool** (the pool the tensor ops use) and returns the sum of their results
/// (pass it to `black_box`). One call performs `kernel.flops(rayon::current_num_threads(),
/// iters)` FLOPs.
pub fn fma_peak(kernel: FmaKernel, iters: u64) -> f32 {
    rayon::broadcast(|_| kernel.run(std::hint::black_box(iters)))
        .into_iter()
        .sum()
}

/// The GPU the `gpu` bench ids time, or `None` (those ids are skipped, with a note on stderr):
/// no adapter, or a CPU implementation such as lavapipe, whose timings measure an LLVM-compiled
/// CPU rather than a GPU, unless `ARVIS_BENCH_CPU_ADAPTER=1`. Every timed GPU closure ends with
/// [`GpuContext::sync`](arvis_core::gpu::GpuContext::sync), so the clock stops when the device
/// is done, not when the work is recorded.
pub fn bench_gpu() -> Option<&'static arvis_core::gpu::GpuContext> {
    match arvis_core::gpu::GpuContext::shared() {
        Ok(ctx)
            if !ctx.info().is_cpu()
                || std::env::var("ARVIS_BENCH_CPU_ADAPTER").is_ok_and(|v| v == "1") =>
        {
            Some(ctx)
        }
        Ok(ctx) => {
            eprintln!(
                "gpu benches skipped: the adapter is a CPU implementation ({}); set \
                 ARVIS_BENCH_CPU_ADAPTER=1 to time it anyway",
                ctx.info().name
            );
            None
        }
        Err(e) => {
            eprintln!("gpu benches skipped: {e}");
            None
        }
    }
}

/// The value after `--name` in `args`, parsed, or `default` when the flag is absent (the
/// command-line parsing of the timing programs in `src/bin/`).
pub fn flag<T: std::str::FromStr>(
    args: &[String],
    name: &str,
    default: T,
) -> Result<T, Box<dyn std::error::Error>>
where
    T::Err: std::fmt::Display,
{
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => {
            let v = args
                .get(i + 1)
                .ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v}: {e}").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_formulas() {
        assert_eq!(matmul_flops(2, 3, 4), 48);
        assert_eq!(conv2d_flops(1, 2, 3, (3, 3), (4, 5)), 2 * 3 * 2 * 9 * 20);
        assert_eq!(read_write_bytes(10), 80);
        assert_eq!(shape_id(&[680, 1024]), "680x1024");
    }

    #[test]
    fn stream_copy_copies() -> Result<(), rayon::ThreadPoolBuildError> {
        let pool = copy_pool(2)?;
        let src: Vec<f32> = (0..1001).map(|i| i as f32).collect();
        let mut dst = vec![0.0; src.len()];
        stream_copy(&pool, &src, &mut dst);
        assert_eq!(src, dst);
        Ok(())
    }

    #[test]
    fn fma_kernels_compute_the_chains() {
        let iters = 1000;
        // f64 reference: every lane of chain `i` iterates `x = x·M + A` from `fma_start(i)`.
        let expected = |k: FmaKernel| -> f64 {
            let chains: f64 = (0..k.accumulators() as usize)
                .map(|i| {
                    let mut x = f64::from(fma_start(i));
                    for _ in 0..iters {
                        x = x * f64::from(FMA_MUL) + f64::from(FMA_ADD);
                    }
                    x
                })
                .sum();
            chains * k.lanes() as f64
        };
        for k in [FmaKernel::Scalar, FmaKernel::detect()] {
            let (got, want) = (f64::from(k.run(iters)), expected(k));
            assert!((got - want).abs() < 1e-4 * want, "{k:?}: {got} vs {want}");
        }
        assert_eq!(FmaKernel::Avx512.flops(2, 10), 2 * 10 * 16 * 16 * 2);
        assert_eq!(FmaKernel::Avx2Fma.flops(1, 1), 12 * 8 * 2);
        let threads = rayon::current_num_threads() as f32;
        let one = FmaKernel::Scalar.run(iters);
        let all = fma_peak(FmaKernel::Scalar, iters);
        assert!(
            (all - threads * one).abs() < 1e-3 * all,
            "{all} vs {threads} × {one}"
        );
    }
}
