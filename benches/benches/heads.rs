//! Criterion benches of the `arvis-heads` per-token heads.
//!
//! `arvis-heads/diffusion_head/cpu/<rows>x<width>x<depth>`: one forward of MAR's diffusion head
//! (`SimpleMLPAdaLN`, token dim 16, condition dim 768) over a batch of `rows` tokens, as one
//! sampling step runs it (time embedding once, `cond_embed` precomputed). Throughput is FLOPs
//! ([`DiffusionHeadConfig::flops_per_forward`]). MAR-B's head is width 1024, depth 6; a MAR step
//! with CFG runs `2 × tokens per iteration` rows: 8 for one image in 64 iterations, 64 for a
//! batch of 8.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use arvis_benches::shape_id;
use arvis_core::{SeededRng, Tensor, Weights};
use arvis_heads::{DenoiseModel, DiffusionHead, DiffusionHeadConfig};
use arvis_models::var::random::write_safetensors;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// A MAR-B-shaped head with seeded N(0, 0.02²) weights (the values do not affect the timing).
fn random_head(cfg: &DiffusionHeadConfig) -> Weights {
    let specs = cfg.tensor_shapes();
    let bytes = write_safetensors(&specs, &BTreeMap::new(), |i, _, out| {
        let mut rng = SeededRng::new(i as u64);
        rng.fill_normal(out);
        out.iter_mut().for_each(|v| *v *= 0.02);
        Ok(())
    })
    .expect("an in-memory safetensors buffer");
    Weights::from_bytes("mar_head_bench", bytes).expect("a valid buffer")
}

fn bench_diffusion_head(c: &mut Criterion) {
    let cfg = DiffusionHeadConfig {
        token_channels: 16,
        z_channels: 768,
        width: 1024,
        depth: 6,
    };
    let weights = random_head(&cfg);
    let head = DiffusionHead::load(&weights.scope(""), &cfg).expect("the head loads");
    let mut rng = SeededRng::new(0);
    let mut group = c.benchmark_group("arvis-heads/diffusion_head");
    for rows in [8usize, 64] {
        let z = Tensor::randn(&[rows, cfg.z_channels], &mut rng);
        let x = Tensor::randn(&[rows, cfg.token_channels], &mut rng);
        let model = head.condition(&z).expect("conditions embed");
        group.throughput(Throughput::Elements(cfg.flops_per_forward(rows)));
        group.bench_function(
            BenchmarkId::new("cpu", shape_id(&[rows, cfg.width, cfg.depth])),
            |b| b.iter(|| black_box(model.predict(black_box(&x), 500))),
        );
    }
    group.finish();
}

criterion_group! {
    name = heads;
    config = config();
    targets = bench_diffusion_head
}
criterion_main!(heads);
