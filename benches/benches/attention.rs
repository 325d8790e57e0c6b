//! Criterion benches of `arvis-attention`'s fused CPU attention.
//!
//! Group `arvis-attention/sdpa`; ids `cpu/<shape>` for the fused kernel and
//! `cpu_unfused/<shape>` for the baseline measured in the same run: `q·kᵀ` (batched sgemm),
//! scale, additive mask, `softmax`, `·v` (batched sgemm), i.e. what a model would do with the
//! `arvis-core` ops alone, materialising the `[B, H, Lq, Lk]` scores. Shape ids are
//! `B x H x Lq x Lk x D`, with `_blockcausal` when VAR's block-causal mask is applied.
//!
//! Throughput: `Throughput::Elements(4·B·H·Lq·Lk·D)` FLOPs (two products of `2·Lq·Lk·D` per
//! head), the **nominal** count with the mask ignored, so GFLOP/s compare directly between the
//! two paths. VAR's block-causal mask hides 38 % of the 680 × 680 scores; the fused kernel skips
//! the key tiles no query of a micro-tile sees and so computes about 65 % of them, while the
//! unfused baseline computes every score.
//!
//! `gpu/<shape>`: the WGSL flash kernel on the same inputs (when `arvis_benches::bench_gpu` gives
//! a device; the clock stops after a device sync).
//!
//! Flat sampling (10 samples of equal iteration counts): the unfused 680-token case takes
//! ~0.2 s an iteration on 2 cores, too slow for criterion's linear sampling in a short window.
//!
//! Shapes (VAR-d16: 16 heads of 64, batch 2 = one image with classifier-free guidance):
//! - `2x16x680x680x64_blockcausal`: teacher-forced forward over all 10 scales;
//! - `2x16x256x680x64`: the last-scale KV-cache step (256 new queries against 680 keys, no mask).

use std::hint::black_box;
use std::time::Duration;

use arvis_attention::{AttentionMask, BlockCausalMask, sdpa};
use arvis_benches::shape_id;
use arvis_core::{Device, SeededRng, Tensor};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

/// VAR's patch numbers for 256×256 images: 680 positions in all.
const VAR_PATCH_NUMS: [usize; 10] = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];

/// Same settings as `core_ops`: few samples, short windows.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// The unfused baseline: scores materialised, additive `0 / −∞` mask (if any), softmax, `·v`.
fn unfused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    scale: f32,
) -> arvis_core::Result<Tensor> {
    let scores = q.matmul_t(k, false, true)?.scale(scale)?;
    let scores = match bias {
        Some(b) => scores.add(b)?,
        None => scores,
    };
    scores.softmax(-1)?.matmul(v)
}

/// The additive form `[Lq, Lk]` of a mask (queries are the last `Lq` of `Lk` positions).
fn additive_bias(mask: &AttentionMask, lq: usize, lk: usize) -> arvis_core::Result<Tensor> {
    let data = (0..lq * lk)
        .map(|x| {
            let (i, j) = (x / lk, x % lk);
            if mask.allows(lk - lq + i, j) {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    Tensor::from_vec(data, &[lq, lk])
}

fn bench_sdpa(c: &mut Criterion) {
    let mut rng = SeededRng::new(0);
    let var = AttentionMask::BlockCausal(BlockCausalMask::from_patch_nums(&VAR_PATCH_NUMS));
    let (b, h, d) = (2, 16, 64);
    // (Lq, Lk, mask, id suffix)
    let cases = [
        (680, 680, var, "_blockcausal"),
        (256, 680, AttentionMask::None, ""),
    ];
    let scale = 1.0 / (d as f32).sqrt();
    let mut group = c.benchmark_group("arvis-attention/sdpa");
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(3));
    for (lq, lk, mask, suffix) in cases {
        let q = Tensor::randn(&[b, h, lq, d], &mut rng);
        let k = Tensor::randn(&[b, h, lk, d], &mut rng);
        let v = Tensor::randn(&[b, h, lk, d], &mut rng);
        let bias = match mask {
            AttentionMask::None => None,
            _ => Some(additive_bias(&mask, lq, lk).expect("bias shape is valid")),
        };
        sdpa(&q, &k, &v, &mask, scale).expect("sdpa must succeed on valid shapes");
        unfused(&q, &k, &v, bias.as_ref(), scale).expect("unfused attention must succeed");
        let flops = 4 * [b, h, lq, lk, d].iter().map(|&x| x as u64).product::<u64>();
        group.throughput(Throughput::Elements(flops));
        let id = format!("{}{suffix}", shape_id(&[b, h, lq, lk, d]));
        group.bench_function(BenchmarkId::new("cpu", &id), |bch| {
            bch.iter(|| {
                black_box(sdpa(
                    black_box(&q),
                    black_box(&k),
                    black_box(&v),
                    &mask,
                    scale,
                ))
            })
        });
        if let Some(ctx) = arvis_benches::bench_gpu() {
            let up = |t: &Tensor| t.to_device(Device::Gpu).expect("upload must succeed");
            let (gq, gk, gv) = (up(&q), up(&k), up(&v));
            group.bench_function(BenchmarkId::new("gpu", &id), |bch| {
                bch.iter(|| {
                    let o = sdpa(black_box(&gq), black_box(&gk), black_box(&gv), &mask, scale);
                    ctx.sync().expect("device must not fail");
                    o
                })
            });
        }
        group.bench_function(BenchmarkId::new("cpu_unfused", &id), |bch| {
            bch.iter(|| {
                black_box(unfused(
                    black_box(&q),
                    black_box(&k),
                    black_box(&v),
                    bias.as_ref(),
                    scale,
                ))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = attention;
    config = config();
    targets = bench_sdpa
}
criterion_main!(attention);
