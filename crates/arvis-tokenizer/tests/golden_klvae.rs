//! Golden parity of MAR's KL-VAE with the official code: `tests/golden/klvae_tiny.safetensors`,
//! made by `xtask/py/golden_klvae.py` (official `AutoencoderKL` with seeded random weights, the
//! real KL-16 structure with 8 base channels). Posterior moments must match within 1e-4
//! relative, images within 1e-3 absolute. Runs on the CPU and on the GPU (skipped without an
//! adapter, except under `CI=true`), where no op may fall back to the host; the GPU decoder is
//! also compared with the CPU one.
//!
//! The fixture path can be overridden with `ARVIS_KLVAE_GOLDEN`. A missing fixture fails the
//! test.

mod common;

use arvis_core::{Device, Tolerance, Weights};
use arvis_tokenizer::{KlVae, KlVaeConfig};
use common::{TestResult, compare};

/// Moments and latents: 1e-4 relative (the abs floor only matters for values near 0).
const MOMENT_TOL: Tolerance = Tolerance::new(1e-4, 1e-5);
const IMAGE_TOL: Tolerance = Tolerance::new(0.0, 1e-3);

fn fixture() -> Result<Weights, Box<dyn std::error::Error>> {
    common::open_golden(
        "ARVIS_KLVAE_GOLDEN",
        "klvae_tiny.safetensors",
        "/work/venv/bin/python xtask/py/golden_klvae.py --mar-repo <LTH14/mar checkout>",
    )
}

#[test]
fn golden_keys_are_exactly_what_load_reads() -> TestResult {
    let w = fixture()?;
    let cfg = KlVaeConfig::from_weights(&w)?;
    let want = common::assert_keys_are(&w, "vae", KlVae::tensor_shapes(&cfg)?)?;
    // The fixture places the encoder's attention by resolution (16×16 of a 64² input: level 2
    // of 5), not at the lowest level.
    assert!(want.contains("vae.encoder.down.2.attn.1.q.weight"));
    Ok(())
}

fn golden_round_trip(device: Device) -> TestResult {
    if !arvis_core::gpu::ready_for_tests(device)? {
        return Ok(());
    }
    let w = fixture()?;
    let cfg = KlVaeConfig::from_weights(&w)?;
    let vae = KlVae::load(&w.scope_on("vae", device), &cfg)?;
    let img = w.get_any("golden.img")?.to_device(device)?;
    let noise = w.get_any("golden.noise")?.to_device(device)?;

    let posterior = vae.encode_moments(&img)?;
    compare(
        "mean",
        posterior.mean(),
        &w.get_any("golden.mean")?,
        MOMENT_TOL,
    )?;
    compare(
        "logvar",
        posterior.logvar(),
        &w.get_any("golden.logvar")?,
        MOMENT_TOL,
    )?;
    let sample = vae.encode(&img, Some(&noise))?;
    compare("sample", &sample, &w.get_any("golden.sample")?, MOMENT_TOL)?;
    let mode = vae.encode(&img, None)?;
    compare("mode", &mode, &w.get_any("golden.mean")?, MOMENT_TOL)?;
    let tokens = vae.encode_tokens(&img, Some(&noise))?;
    compare("tokens", &tokens, &w.get_any("golden.tokens")?, MOMENT_TOL)?;

    let want_rec = w.get_any("golden.rec")?;
    let golden_tokens = w.get_any("golden.tokens")?.to_device(device)?;
    compare(
        "rec",
        &vae.decode_tokens(&golden_tokens)?,
        &want_rec,
        IMAGE_TOL,
    )?;
    let golden_sample = w.get_any("golden.sample")?.to_device(device)?;
    compare("decode", &vae.decode(&golden_sample)?, &want_rec, IMAGE_TOL)?;

    if device == Device::Gpu {
        let fallbacks = arvis_core::gpu::GpuContext::shared()?.host_fallbacks();
        assert_eq!(fallbacks, 0, "ops that ran on the host");
    }
    Ok(())
}

#[test]
fn golden_round_trip_cpu() -> TestResult {
    golden_round_trip(Device::Cpu)
}

#[test]
fn golden_round_trip_gpu() -> TestResult {
    golden_round_trip(Device::Gpu)
}

/// The tiny decoder on the GPU against the same decoder on the CPU (same weights, same latent).
#[test]
fn gpu_decoder_matches_cpu() -> TestResult {
    if !arvis_core::gpu::ready_for_tests(Device::Gpu)? {
        return Ok(());
    }
    let w = fixture()?;
    let cfg = KlVaeConfig::from_weights(&w)?;
    let cpu = KlVae::load(&w.scope("vae"), &cfg)?;
    let gpu = KlVae::load(&w.scope_on("vae", Device::Gpu), &cfg)?;
    let latent = w.get_any("golden.sample")?;
    let on_cpu = cpu.decode(&latent)?;
    let on_gpu = gpu.decode(&latent.to_device(Device::Gpu)?)?;
    assert_eq!(
        on_gpu.device(),
        Device::Gpu,
        "the GPU decoder's output stays on the GPU"
    );
    compare("gpu-cpu", &on_gpu.to_cpu()?, &on_cpu, IMAGE_TOL)
}
