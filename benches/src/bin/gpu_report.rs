//! The arvis side of `cargo xtask gpu-report`: matmul, attention, VAR and LlamaGen generation on the GPU
//! (`GpuContext::shared`, i.e. the best adapter or `ARVIS_WGPU_ADAPTER`), timed with a device
//! sync inside every timed region, printed as one JSON object on stdout (same keys and FLOP
//! counts as `xtask/py/gpu_report_torch.py`).
//!
//! `gpu_report [--quick] [--runs N] [--profile]`: `--quick` shrinks every shape (a smoke test on
//! lavapipe); `--profile` prints the per-op GPU time table of one VAR generation to stderr when
//! the adapter has timestamp queries.

use std::collections::BTreeMap;
use std::time::Instant;

use arvis_attention::{AttentionMask, sdpa};
use arvis_core::gpu::GpuContext;
use arvis_core::sampling::SamplingConfig;
use arvis_core::{Device, SeededRng, Tensor, Weights};
use arvis_models::llamagen::{LlamaGen, LlamaGenConfig};
use arvis_models::var::random::random_weights_bytes;
use arvis_models::var::{Var, VarConfig, VarRequest};
use arvis_tokenizer::VqVaeConfig;
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const PATCH_NUMS: [usize; 10] = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];

/// Median seconds of `runs` calls of `f` after one untimed call; `f` must sync the device.
fn median_s(runs: usize, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    f()?;
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

/// LlamaGen GPT-B (seeded random weights, `--quick`: a 2-layer dim-128 GPT) generating its 256
/// tokens with CFG 4 and top-k 2000 at B = 1 and 64 (`--quick`: 1 and 2), as `llamagen/<size>/b<B>`
/// (same ids as `bench_llamagen_torch.py --device cuda`). Sampling reads the guided logits back
/// once per step; everything else stays on the device.
fn llamagen_rows(
    ctx: &GpuContext,
    quick: bool,
    runs: usize,
    results: &mut BTreeMap<String, Value>,
) -> Res<()> {
    let (cfg, size) = if quick {
        let mut c = LlamaGenConfig::gpt_b();
        c.n_layer = 2;
        c.dim = 128;
        c.n_head = 2;
        c.vocab_size = 4096;
        (c, "tiny")
    } else {
        (LlamaGenConfig::gpt_b(), "gpt_b")
    };
    let bytes = arvis_models::llamagen::random::random_weights_bytes(&cfg, None, 0)?;
    let weights = Weights::from_bytes("random LlamaGen", bytes)?;
    let model = LlamaGen::load_on(&weights, Device::Gpu)?;
    drop(weights);
    let sampling = SamplingConfig::llamagen(1.0, 2000, 1.0);
    let batches: &[usize] = if quick { &[1, 2] } else { &[1, 64] };
    for &bsz in batches {
        let labels: Vec<u32> = (0..bsz as u32).map(|i| i * 37 % 1000).collect();
        let fallbacks = ctx.host_fallbacks();
        let n = runs.min(3);
        let s = median_s(n, || {
            model.generate(&labels, 4.0, &sampling, 0)?;
            Ok(ctx.sync()?)
        })?;
        let per_run = (ctx.host_fallbacks() - fallbacks) / (n as u64 + 1);
        eprintln!(
            "LlamaGen {size} B={bsz}: {s:.3} s, {:.1} tokens/s, {per_run} host fallbacks per generation",
            (bsz * cfg.block_size) as f64 / s
        );
        results.insert(
            format!("llamagen/{size}/b{bsz}"),
            json!({"s": s, "images_per_s": bsz as f64 / s, "host_fallbacks": per_run}),
        );
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let profile = args.iter().any(|a| a == "--profile");
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(if quick { 2 } else { 10 });
    let ctx = GpuContext::shared()?;
    eprintln!("{}", ctx.info());
    let mut rng = SeededRng::new(0);
    let mut results = BTreeMap::<String, Value>::new();

    let n = if quick { 128 } else { 4096 };
    let a = Tensor::randn(&[n, n], &mut rng).to_device(Device::Gpu)?;
    let b = Tensor::randn(&[n, n], &mut rng).to_device(Device::Gpu)?;
    let s = median_s(runs, || {
        let _c = a.matmul(&b)?;
        Ok(ctx.sync()?)
    })?;
    let flops = 2 * (n as u64).pow(3);
    eprintln!(
        "matmul {n}³: {:.3} ms, {:.2} TFLOP/s",
        s * 1e3,
        flops as f64 / s / 1e12
    );
    results.insert(
        format!("matmul/{n}x{n}x{n}"),
        json!({"s": s, "flops": flops}),
    );

    let lens: &[usize] = if quick { &PATCH_NUMS[..4] } else { &PATCH_NUMS };
    let var_l: usize = lens.iter().map(|p| p * p).sum();
    let block_lens: Vec<usize> = lens.iter().map(|p| p * p).collect();
    let cases = [
        (
            "var_block_causal",
            if quick { 2 } else { 64 },
            16,
            var_l,
            64,
            AttentionMask::block_causal(&block_lens),
        ),
        (
            "causal",
            if quick { 1 } else { 4 },
            16,
            if quick { 256 } else { 4096 },
            64,
            AttentionMask::Causal,
        ),
    ];
    for (name, bsz, h, len, d, mask) in cases {
        let shape = [bsz, h, len, d];
        let q = Tensor::randn(&shape, &mut rng).to_device(Device::Gpu)?;
        let k = Tensor::randn(&shape, &mut rng).to_device(Device::Gpu)?;
        let v = Tensor::randn(&shape, &mut rng).to_device(Device::Gpu)?;
        let pairs: u64 = (0..len)
            .map(|i| (0..len).filter(|&j| mask.allows(i, j)).count() as u64)
            .sum();
        let flops = 4 * d as u64 * pairs * (bsz * h) as u64;
        let scale = 1.0 / (d as f32).sqrt();
        let s = median_s(runs, || {
            let _o = sdpa(&q, &k, &v, &mask, scale)?;
            Ok(ctx.sync()?)
        })?;
        eprintln!(
            "attention {name} {shape:?}: {:.3} ms, {:.2} TFLOP/s",
            s * 1e3,
            flops as f64 / s / 1e12
        );
        results.insert(
            format!("attention/{name}/{bsz}x{h}x{len}x{d}"),
            json!({"s": s, "flops": flops}),
        );
    }

    let (var_cfg, vae_cfg) = if quick {
        arvis_models::var::random::tiny_configs(&PATCH_NUMS[..4])
    } else {
        (VarConfig::official(16, false), VqVaeConfig::default())
    };
    let bytes = random_weights_bytes(&var_cfg, &vae_cfg, 0)?;
    let weights = Weights::from_bytes("random VAR", bytes)?;
    let var = Var::load_on(&weights, Device::Gpu)?;
    drop(weights);
    let batches: &[usize] = if quick { &[1, 2] } else { &[1, 64] };
    for &bsz in batches {
        let req = VarRequest {
            labels: vec![207 % var_cfg.num_classes as u32; bsz],
            seed: 0,
            cfg: 4.0,
            top_k: 900,
            top_p: 0.96,
        };
        let fallbacks = ctx.host_fallbacks();
        let s = median_s(runs.min(5), || {
            let out = var.generate(&req, &mut |_| {})?;
            out.images.try_to_vec()?;
            Ok(())
        })?;
        let per_run = (ctx.host_fallbacks() - fallbacks) / (runs.min(5) as u64 + 1);
        eprintln!(
            "VAR d{} B={bsz}: {:.3} s, {:.2} images/s, {per_run} host fallbacks per generation",
            var_cfg.depth,
            s,
            bsz as f64 / s
        );
        results.insert(
            format!("var/d{}/b{bsz}", var_cfg.depth),
            json!({"s": s, "images_per_s": bsz as f64 / s, "host_fallbacks": per_run}),
        );
    }
    llamagen_rows(ctx, quick, runs, &mut results)?;
    if profile && ctx.info().timestamps {
        ctx.set_profiling(true)?;
        let req = VarRequest::new(vec![0], 0);
        var.generate(&req, &mut |_| {})?.images.try_to_vec()?;
        let rows = ctx.profile()?;
        ctx.set_profiling(false)?;
        let total: f64 = rows.iter().map(|r| r.1.nanos).sum();
        eprintln!(
            "per-op GPU time of one B=1 generation (total {:.2} ms):",
            total / 1e6
        );
        for (name, t) in rows.iter().take(20) {
            eprintln!(
                "  {name:<20} {:>6} launches {:>10.3} ms {:>5.1}%",
                t.count,
                t.nanos / 1e6,
                100.0 * t.nanos / total
            );
        }
    }
    let info = ctx.info();
    println!(
        "{}",
        json!({"name": info.name, "backend": info.backend, "device_type": info.device_type,
               "driver": info.driver, "results": results})
    );
    Ok(())
}
