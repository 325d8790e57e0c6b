//! The one GEMM entry point of the CPU backend.
//!
//! All matmuls, linears and convolutions funnel into [`sgemm`], a bounds-checked wrapper around
//! the `gemm` crate (cache-blocked, runtime-dispatched AVX2/AVX-512/NEON micro-kernels,
//! rayon-parallel). Transposes are free: operands are described by row and column strides.

use gemm::Parallelism;

/// A strided read-only matrix view: element `(r, c)` is `data[offset + r*rs + c*cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// Row-major `rows × cols` matrix at `offset`, optionally read transposed.
    pub fn row_major(data: &'a [f32], offset: usize, cols: usize, transposed: bool) -> Self {
        if transposed {
            MatRef {
                data,
                offset,
                rs: 1,
                cs: cols,
            }
        } else {
            MatRef {
                data,
                offset,
                rs: cols,
                cs: 1,
            }
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        if rows == 0 || cols == 0 {
            return true;
        }
        let last = self.offset + (rows - 1) * self.rs + (cols - 1) * self.cs;
        last < self.data.len()
    }
}

/// Work (m·n·k) above which one GEMM is split across the rayon pool.
const PARALLEL_THRESHOLD: usize = 1 << 18;

/// `dst[m×n] (row stride dst_rs) = (accumulate ? dst : 0) + lhs[m×k] · rhs[k×n]`.
///
/// `parallel` lets the kernel use every rayon thread; callers that already parallelise over a
/// batch pass `false`. Panics (a bug, not an input error) if a view does not fit its slice.
#[allow(clippy::too_many_arguments)] // mirrors BLAS sgemm; a struct would only rename them
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        lhs.fits(m, k) && rhs.fits(k, n),
        "sgemm: operand view out of bounds"
    );
    assert!(
        (m - 1) * dst_rs + n <= dst.len(),
        "sgemm: destination out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let par = if parallel && threads > 1 && m * n * k >= PARALLEL_THRESHOLD {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above prove every element the kernel addresses — lhs (m×k), rhs (k×n)
    // and dst (m×n with row stride dst_rs) — lies inside its slice; `dst` is uniquely borrowed.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}
