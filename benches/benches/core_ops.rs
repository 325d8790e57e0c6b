//! Criterion benches of the `arvis-core` CPU ops.
//!
//! Ids are `<crate>/<op>/<device>/<shape>` (criterion group `arvis-core/<op>`, function
//! `<device>`, parameter `<shape>`). Throughput convention (see `arvis_benches`):
//! - compute-bound ops (matmul, linear, conv2d): `Throughput::Elements(flops)`, i.e.
//!   **"elements" are FLOPs** (a multiply-add counts as 2), so criterion's "elem/s" is FLOP/s;
//! - memory-bound ops (layer norm, softmax, stream copy): `Throughput::Bytes(read + write)`.
//!
//! Two machine references are measured in the same run:
//! - `arvis-core/stream_copy/cpu/<bytes>`: memory bandwidth, so the memory-bound ops can be
//!   stated as a fraction of what the memory delivers;
//! - `arvis-core/fma_peak/cpu/<threads>`: f32 FMA throughput on every rayon thread, so the
//!   compute-bound ops can be stated as a fraction of what the cores deliver at the clock they
//!   actually run at (boost included), not of a peak computed from the nominal clock.
//!
//! CPU ops are synchronous: when a call returns, the result is computed, so no device sync is
//! needed. A future GPU path must synchronise (wait for the queue) inside the timed closure, or
//! criterion would only time the kernel launch.
//!
//! Runtime: `sample_size(10)` with short warm-up/measurement windows keeps the whole suite at
//! roughly a minute on 2 cores. Run it through `cargo xtask bench`, which also writes
//! `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::Duration;

use arvis_benches::{
    FMA_PEAK_ITERS, FmaKernel, conv2d_flops, copy_pool, fma_peak, matmul_flops, read_write_bytes,
    shape_id, stream_copy,
};
use arvis_core::ops::{Conv2dParams, Conv3x3Winograd, PackedMatrix, Padding2d};
use arvis_core::{Device, SeededRng, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Device label of every bench in this file.
const CPU: &str = "cpu";

/// The criterion settings of this suite: few samples, short windows (the machine is noisy
/// anyway; the report quotes medians).
fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// sgemm `[m, k] · [k, n]` for square sizes, and a linear layer over a batch of tokens.
fn bench_matmul(c: &mut Criterion) {
    let mut rng = SeededRng::new(0);
    let mut group = c.benchmark_group("arvis-core/matmul");
    for n in [256, 512, 1024] {
        let a = Tensor::randn(&[n, n], &mut rng);
        let b = Tensor::randn(&[n, n], &mut rng);
        a.matmul(&b).expect("matmul must succeed on valid shapes");
        group.throughput(Throughput::Elements(matmul_flops(n, n, n)));
        group.bench_with_input(
            BenchmarkId::new(CPU, shape_id(&[n, n, n])),
            &(a, b),
            |bch, (a, b)| bch.iter(|| black_box(black_box(a).matmul(black_box(b)))),
        );
    }
    group.finish();

    // VAR-d16 FFN-shaped: 680 tokens (all scales of a 256² image), 1024 → 4096.
    // Id shape is `m x k x n` like matmul's.
    let (m, k, n) = (680, 1024, 4096);
    let x = Tensor::randn(&[m, k], &mut rng);
    let w = Tensor::randn(&[n, k], &mut rng);
    let bias = Tensor::randn(&[n], &mut rng);
    x.linear(&w, Some(&bias))
        .expect("linear must succeed on valid shapes");
    let mut group = c.benchmark_group("arvis-core/linear");
    // ~35 ms an iteration: 10 linearly growing samples need ~2 s, give them 3.
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(matmul_flops(m, k, n)));
    group.bench_function(BenchmarkId::new(CPU, shape_id(&[m, k, n])), |bch| {
        bch.iter(|| black_box(black_box(&x).linear(black_box(&w), Some(black_box(&bias)))))
    });
    // Decoding-shaped: a CFG pair of tokens (LlamaGen step, VAR's first scales). Bound by
    // streaming the 16 MiB weight, not by FLOPs.
    let m = 2;
    let x = Tensor::randn(&[m, k], &mut rng);
    group.throughput(Throughput::Elements(matmul_flops(m, k, n)));
    group.bench_function(BenchmarkId::new(CPU, shape_id(&[m, k, n])), |bch| {
        bch.iter(|| black_box(black_box(&x).linear(black_box(&w), Some(black_box(&bias)))))
    });
    group.finish();
}

/// `matmul_packed` (weights packed once, as the VAR layers hold them) against the general
/// GEMM on the same pre-transposed weight (`cpu_unpacked`, what VAR ran before), at the row
/// counts of VAR-d16's scales with CFG (2 = 1×1 scale … 512 = 16×16). Id shape `m x k x n`.
/// The same products on the GPU (`gpu` ids, when [`arvis_benches::bench_gpu`] gives a device),
/// plus 4096³, the size a large GPU needs to approach its peak.
fn bench_matmul_gpu(c: &mut Criterion) {
    let Some(ctx) = arvis_benches::bench_gpu() else {
        return;
    };
    let mut rng = SeededRng::new(0);
    let mut group = c.benchmark_group("arvis-core/matmul");
    for n in [256, 512, 1024, 4096] {
        let up = |t: Tensor| t.to_device(Device::Gpu).expect("upload must succeed");
        let a = up(Tensor::randn(&[n, n], &mut rng));
        let b = up(Tensor::randn(&[n, n], &mut rng));
        a.matmul(&b).expect("matmul must succeed on valid shapes");
        group.throughput(Throughput::Elements(matmul_flops(n, n, n)));
        group.bench_with_input(
            BenchmarkId::new("gpu", shape_id(&[n, n, n])),
            &(a, b),
            |bch, (a, b)| {
                bch.iter(|| {
                    let c = black_box(a).matmul(black_box(b));
                    ctx.sync().expect("device must not fail");
                    c
                })
            },
        );
    }
    group.finish();
}

fn bench_linear_packed(c: &mut Criterion) {
    let mut rng = SeededRng::new(7);
    let (k, n) = (1024, 4096);
    let w = Tensor::randn(&[n, k], &mut rng);
    let bias = Tensor::randn(&[n], &mut rng);
    let packed = PackedMatrix::from_linear(&w, Some(&bias)).expect("packing must succeed");
    let w_t = w.transpose(0, 1).expect("transpose must succeed");
    let mut group = c.benchmark_group("arvis-core/linear_packed");
    group.measurement_time(Duration::from_secs(2));
    for m in [2usize, 18, 72, 200, 512] {
        let x = Tensor::randn(&[m, k], &mut rng);
        group.throughput(Throughput::Elements(matmul_flops(m, k, n)));
        group.bench_function(BenchmarkId::new(CPU, shape_id(&[m, k, n])), |bch| {
            bch.iter(|| black_box(black_box(&x).matmul_packed(black_box(&packed))))
        });
        group.bench_function(
            BenchmarkId::new("cpu_unpacked", shape_id(&[m, k, n])),
            |bch| {
                bch.iter(|| {
                    black_box(
                        black_box(&x)
                            .matmul(black_box(&w_t))
                            .and_then(|y| y.add(&bias)),
                    )
                })
            },
        );
    }
    group.finish();
}

/// 3×3, stride 1, pad 1 convolutions shaped like a VAE decoder's. Id shape:
/// `N x C x H x W _o<out channels>`. Three variants per shape, all rated in direct-convolution
/// FLOPs (`2·O·C·9·H·W`, so Winograd's "FLOP/s" is effective, not executed):
/// - `cpu`: `Tensor::conv2d` as a model calls it (Winograd F(4×4, 3×3) at these shapes, the
///   weight transformed on each call);
/// - `cpu_im2col`: `Tensor::conv2d_im2col`, the im2col + GEMM lowering (what `cpu` was before
///   the Winograd path), so the ratio shows in one run;
/// - `cpu_winograd_prepared`: `Conv3x3Winograd::apply` with the weight transformed once, as a
///   layer holding its transformed weight runs.
fn bench_conv2d(c: &mut Criterion) {
    let mut rng = SeededRng::new(1);
    let mut group = c.benchmark_group("arvis-core/conv2d");
    for (ch, hw) in [(128, 64), (64, 128)] {
        let x = Tensor::randn(&[1, ch, hw, hw], &mut rng);
        let w = Tensor::randn(&[ch, ch, 3, 3], &mut rng);
        let b = Tensor::randn(&[ch], &mut rng);
        let params = Conv2dParams {
            stride: (1, 1),
            padding: Padding2d::same(1),
        };
        x.conv2d(&w, Some(&b), params)
            .expect("conv2d must succeed on valid shapes");
        let prepared = Conv3x3Winograd::new(&w).expect("a 3x3 weight must transform");
        group.throughput(Throughput::Elements(conv2d_flops(
            1,
            ch,
            ch,
            (3, 3),
            (hw, hw),
        )));
        let id = format!("{}_o{ch}", shape_id(&[1, ch, hw, hw]));
        group.bench_function(BenchmarkId::new(CPU, &id), |bch| {
            bch.iter(|| black_box(black_box(&x).conv2d(black_box(&w), Some(black_box(&b)), params)))
        });
        group.bench_function(BenchmarkId::new("cpu_im2col", &id), |bch| {
            bch.iter(|| {
                black_box(black_box(&x).conv2d_im2col(black_box(&w), Some(black_box(&b)), params))
            })
        });
        group.bench_function(BenchmarkId::new("cpu_winograd_prepared", &id), |bch| {
            bch.iter(|| {
                black_box(black_box(&prepared).apply(
                    black_box(&x),
                    Some(black_box(&b)),
                    params.padding,
                ))
            })
        });
    }
    group.finish();
}

/// Row-wise memory-bound ops. Throughput is bytes read + written (`2·4·numel`); FLOPs are
/// about `8·numel` for layer norm and `5·numel` for softmax
/// ([`arvis_benches::LAYER_NORM_FLOPS_PER_ELEM`], [`arvis_benches::SOFTMAX_FLOPS_PER_ELEM`]),
/// i.e. ~1 and ~0.6 FLOP/byte: far below the machine balance, so these are
/// compared against the `stream_copy` bandwidth, not the FLOP peak.
fn bench_rowwise(c: &mut Criterion) {
    let mut rng = SeededRng::new(2);
    let mut group = c.benchmark_group("arvis-core/layer_norm");
    for rows in [680, 4096] {
        let shape = [rows, 1024];
        let x = Tensor::randn(&shape, &mut rng);
        let w = Tensor::randn(&[1024], &mut rng);
        let b = Tensor::randn(&[1024], &mut rng);
        x.layer_norm(Some(&w), Some(&b), 1e-6)
            .expect("layer_norm must succeed");
        group.throughput(Throughput::Bytes(read_write_bytes(x.numel())));
        group.bench_function(BenchmarkId::new(CPU, shape_id(&shape)), |bch| {
            bch.iter(|| black_box(black_box(&x).layer_norm(Some(black_box(&w)), Some(&b), 1e-6)))
        });
    }
    group.finish();

    // Attention-row-like: 16 heads × 680 queries, each a row of 680 keys.
    let shape = [16 * 680, 680];
    let x = Tensor::randn(&shape, &mut rng);
    x.softmax(-1).expect("softmax must succeed");
    let mut group = c.benchmark_group("arvis-core/softmax");
    group.throughput(Throughput::Bytes(read_write_bytes(x.numel())));
    group.bench_function(BenchmarkId::new(CPU, shape_id(&shape)), |bch| {
        bch.iter(|| black_box(black_box(&x).softmax(-1)))
    });
    group.finish();
}

/// Memory-bandwidth reference: copy a 64 MiB f32 slice with rayon on as many threads as the
/// ops use (rayon's global pool size, 2 on the reference machine). Far larger than any cache,
/// so it measures DRAM bandwidth. Throughput: read + write bytes (STREAM convention).
fn bench_stream_copy(c: &mut Criterion) {
    const BYTES: usize = 64 << 20;
    let len = BYTES / std::mem::size_of::<f32>();
    let threads = rayon::current_num_threads();
    let pool = copy_pool(threads).expect("cannot build the stream-copy thread pool");
    let src: Vec<f32> = (0..len).map(|i| i as f32).collect();
    let mut dst = vec![0.0f32; len];
    let mut group = c.benchmark_group("arvis-core/stream_copy");
    group.throughput(Throughput::Bytes(2 * BYTES as u64));
    group.bench_function(BenchmarkId::new(CPU, BYTES.to_string()), |bch| {
        bch.iter(|| {
            stream_copy(&pool, black_box(&src), black_box(&mut dst));
            black_box(dst.as_ptr());
        })
    });
    group.finish();
}

/// Compute reference: independent f32 FMA chains ([`FmaKernel::detect`]: AVX-512, else
/// AVX2 + FMA, else a labelled scalar fallback) on every thread of rayon's global pool, the
/// pool the ops use. Throughput: FLOPs (`threads · iters · accumulators · lanes · 2`). The id's
/// last part is the thread count.
fn bench_fma_peak(c: &mut Criterion) {
    let kernel = FmaKernel::detect();
    let threads = rayon::current_num_threads();
    eprintln!(
        "arvis-core/fma_peak: {} on {threads} rayon threads",
        kernel.label()
    );
    black_box(fma_peak(kernel, FMA_PEAK_ITERS));
    let mut group = c.benchmark_group("arvis-core/fma_peak");
    // ~5 ms an iteration: about 1 s of measurement in all.
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(kernel.flops(threads, FMA_PEAK_ITERS)));
    group.bench_function(BenchmarkId::new(CPU, threads), |bch| {
        bch.iter(|| black_box(fma_peak(kernel, black_box(FMA_PEAK_ITERS))))
    });
    group.finish();
}

criterion_group! {
    name = core_ops;
    config = config();
    targets = bench_stream_copy, bench_fma_peak, bench_matmul, bench_matmul_gpu, bench_linear_packed, bench_conv2d, bench_rowwise
}
criterion_main!(core_ops);
