//! Shared helpers for the arvis benches.
//!
//! Benchmark ids follow `<crate>/<op>/<device>/<shape>`, e.g.
//! `arvis-core/matmul/cpu/1024x1024x1024`. For compute-bound ops the criterion
//! throughput is `Throughput::Elements(flops)`: **"elements" means FLOPs** (one fused
//! multiply-add counts as two). For memory-bound ops it is `Throughput::Bytes(read + write)`.
//! `cargo xtask bench` reads these numbers back from `target/criterion` to compute GFLOP/s,
//! GB/s and the fraction of the machine's peak.

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
}
