//! Criterion benches of VAR generation on the CPU, VAR-d16-shaped with random weights.
//!
//! Ids (`<crate>/<op>/<device>/<shape>`):
//! - `arvis-models/var_generate/cpu/d16_b1_cfg`: the transformer loop of one image with
//!   classifier-free guidance (batch 2: cond + null class), CFG 4, top-k 900, top-p 0.96, ten
//!   scales with the KV cache, sampling included — everything up to the latent `f̂`;
//! - `arvis-models/var_decode/cpu/d16_b1`: the VQ-VAE decode of that `f̂` to a 256×256 image.
//!
//! Throughput is `Elements(FLOPs)` (a multiply-add counts as 2; see `arvis_benches`): the
//! transformer's linear layers, attention and head over all 680 tokens × 2 rows, and the
//! decoder's convolutions and attention.
//!
//! The model is `Var::random` (about 1.7 GB of f32 for VAR-d16 + its VQ-VAE). If
//! `ARVIS_VAR_D16_WEIGHTS` names a converted weights file (e.g. the one
//! `xtask/py/bench_var_torch.py --save-weights` writes), it is loaded instead, so the PyTorch
//! and arvis timings use identical weights.
//!
//! Each iteration takes seconds (about 4 s and 3 s on the 2-core dev VM): `sample_size(10)` with
//! flat sampling, one iteration per sample; the whole file runs in about two minutes. The model
//! is built on first use, so a criterion filter that matches neither id costs nothing.
//!
//! `cargo xtask bench` runs this file with `RAYON_NUM_THREADS=2` and the weights file shared
//! with its PyTorch baseline (`xtask/py/bench_var_torch.py --load-weights`), see
//! `docs/benchmarks.md`.

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Duration;

use arvis_core::{Device, Weights};
use arvis_models::var::{Var, VarConfig, VarFileConfig, VarRequest, VarSample, VqVaeConfig};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

/// Device label of every bench in this file.
const CPU: &str = "cpu";

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(30))
}

/// FLOPs of the guided transformer loop for `b` images (`2b` rows): per scale of `l` tokens
/// after `lk` cached ones, each block does `24·C²` per token in its linears (qkv 3C², proj C²,
/// FFN 8C², times 2) and `4·lk·C` in attention; the head `2·C·V` per token; the per-request
/// AdaLN linears `2·C·6C` per block and `2·C·2C` for the head, per row.
fn transformer_flops(cfg: &VarConfig, vocab: usize, cvae: usize, b: usize) -> u64 {
    let (c, n) = (cfg.embed_dim as u64, 2 * b as u64);
    let depth = cfg.depth as u64;
    let mut total = n * depth * 12 * c * c + n * 4 * c * c;
    let mut lk = 0u64;
    for si in 0..cfg.num_scales() {
        let l = cfg.scale_len(si) as u64;
        lk += l;
        total += depth * n * l * (24 * c * c + 4 * lk * c);
        total += n * l * 2 * c * vocab as u64;
        total += b as u64 * l * 2 * cvae as u64 * c;
    }
    total
}

/// FLOPs of `fhat_to_img` for `b` latents: every convolution (`2·O·I·k²·H·W`) and the
/// single-head spatial attention (`4·(HW)²·C`) of `post_quant_conv` and the decoder.
fn decoder_flops(cfg: &VqVaeConfig, b: usize) -> u64 {
    let conv = |i: usize, o: usize, k: usize, s: usize| 2 * (o * i * k * k * s * s) as u64;
    let attn = |ch: usize, s: usize| {
        conv(ch, 3 * ch, 1, s) + conv(ch, ch, 1, s) + 4 * ((s * s) * (s * s) * ch) as u64
    };
    let resnet = |i: usize, o: usize, s: usize| {
        conv(i, o, 3, s) + conv(o, o, 3, s) + if i != o { conv(i, o, 1, s) } else { 0 }
    };
    let (z, ch) = (cfg.z_channels, cfg.ch);
    let mut s = cfg.latent_size();
    let mut block_in = ch * cfg.ch_mult.last().copied().unwrap_or(1);
    let mut f = conv(z, z, cfg.quant_conv_ks, s) + conv(z, block_in, 3, s);
    f += 2 * resnet(block_in, block_in, s)
        + if cfg.using_mid_sa {
            attn(block_in, s)
        } else {
            0
        };
    let levels = cfg.ch_mult.len();
    for i in (0..levels).rev() {
        let out = ch * cfg.ch_mult[i];
        for _ in 0..=cfg.num_res_blocks {
            f += resnet(block_in, out, s);
            block_in = out;
            if i == levels - 1 && cfg.using_sa {
                f += attn(block_in, s);
            }
        }
        if i != 0 {
            s *= 2;
            f += conv(block_in, block_in, 3, s);
        }
    }
    f += conv(block_in, cfg.in_channels, 3, s);
    b as u64 * f
}

/// The configurations of the benched model: those of `ARVIS_VAR_D16_WEIGHTS` (its
/// `arvis.config`; the file is memory-mapped, not read) or the official VAR-d16 ones.
fn model_configs() -> (VarConfig, VqVaeConfig) {
    if let Ok(path) = std::env::var("ARVIS_VAR_D16_WEIGHTS") {
        let weights =
            Weights::open(&path).expect("ARVIS_VAR_D16_WEIGHTS must be a VAR weights file");
        let json = weights
            .metadata_json("arvis.config")
            .expect("ARVIS_VAR_D16_WEIGHTS must have `arvis.config` metadata");
        let cfg: VarFileConfig =
            serde_json::from_value(json).expect("`arvis.config` must describe a VAR model");
        return (cfg.var, cfg.vae);
    }
    (VarConfig::official(16, false), VqVaeConfig::default())
}

fn load_model() -> Var {
    load_model_on(Device::Cpu)
}

/// The benched model on `device`: the `ARVIS_VAR_D16_WEIGHTS` file, or seeded random weights.
fn load_model_on(device: Device) -> Var {
    if let Ok(path) = std::env::var("ARVIS_VAR_D16_WEIGHTS") {
        let weights =
            Weights::open(&path).expect("ARVIS_VAR_D16_WEIGHTS must be a VAR weights file");
        return Var::load_on(&weights, device)
            .expect("ARVIS_VAR_D16_WEIGHTS must hold a loadable VAR");
    }
    if device == Device::Cpu {
        return Var::random(VarConfig::official(16, false), VqVaeConfig::default(), 0)
            .expect("random VAR-d16 must build");
    }
    let bytes = arvis_models::var::random::random_weights_bytes(
        &VarConfig::official(16, false),
        &VqVaeConfig::default(),
        0,
    )
    .expect("random VAR-d16 must build");
    let weights = Weights::from_bytes("random VAR-d16", bytes).expect("valid weights");
    Var::load_on(&weights, device).expect("random VAR-d16 must load on the GPU")
}

/// The request every iteration serves: one image of class 207, CFG 4, top-k 900, top-p 0.96.
fn request() -> VarRequest {
    VarRequest {
        labels: vec![207],
        seed: 0,
        cfg: 4.0,
        top_k: 900,
        top_p: 0.96,
    }
}

/// The model and one sampled latent (the decode bench's input).
struct Setup {
    var: Var,
    sample: VarSample,
}

fn setup() -> Setup {
    let var = load_model();
    let sample = var
        .sample(&request(), &mut |_| {})
        .expect("sampling must succeed");
    Setup { var, sample }
}

fn bench_var(c: &mut Criterion) {
    // Built inside the first routine that criterion runs (not timed): nothing when filtered out.
    let state = OnceCell::new();
    let req = request();
    // FLOPs from the configs alone, without building the model.
    let (var_cfg, vae_cfg) = model_configs();
    let vocab = vae_cfg.vocab_size;
    let cvae = vae_cfg.z_channels;

    let mut group = c.benchmark_group("arvis-models/var_generate");
    group.sampling_mode(SamplingMode::Flat);
    // ~4 s an iteration on the 2-core dev VM: 10 samples of one iteration.
    group.measurement_time(Duration::from_secs(45));
    group.throughput(Throughput::Elements(transformer_flops(
        &var_cfg, vocab, cvae, 1,
    )));
    group.bench_function(BenchmarkId::new(CPU, "d16_b1_cfg"), |bch| {
        let var = &state.get_or_init(setup).var;
        bch.iter(|| black_box(var.sample(black_box(&req), &mut |_| {})))
    });
    if let Some(ctx) = arvis_benches::bench_gpu() {
        let gpu = OnceCell::new();
        group.bench_function(BenchmarkId::new("gpu", "d16_b1_cfg"), |bch| {
            let var = gpu.get_or_init(|| load_model_on(Device::Gpu));
            bch.iter(|| {
                let s = var.sample(black_box(&req), &mut |_| {});
                ctx.sync().expect("device must not fail");
                black_box(s)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("arvis-models/var_decode");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(decoder_flops(&vae_cfg, 1)));
    group.bench_function(BenchmarkId::new(CPU, "d16_b1"), |bch| {
        let s = state.get_or_init(setup);
        bch.iter(|| black_box(s.var.decode(black_box(&s.sample.f_hat))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_var
}
criterion_main!(benches);
