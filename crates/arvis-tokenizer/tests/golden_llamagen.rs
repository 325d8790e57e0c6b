//! Golden parity of LlamaGen's VQ tokenizer with the official code:
//! `tests/golden/llamagen_vq_tiny.safetensors`, made by `xtask/py/golden_llamagen.py` (official
//! `VQModel` with seeded random weights, the real VQ-16 structure with few channels). Codes must
//! match exactly; latents and images within 1e-3 absolute (and 1e-4 relative for the latent).
//! Runs on the CPU and on the GPU (skipped without an adapter, except under `CI=true`), where
//! no op may fall back to the host.
//!
//! The fixture path can be overridden with `ARVIS_LLAMAGEN_VQ_GOLDEN`. A missing fixture fails
//! the test.

mod common;

use arvis_core::{Device, Tolerance, Weights};
use arvis_tokenizer::{LlamaGenVq, LlamaGenVqConfig};
use common::{TestResult, compare};

const LATENT_TOL: Tolerance = Tolerance::new(1e-4, 1e-3);
const IMAGE_TOL: Tolerance = Tolerance::new(0.0, 1e-3);

fn fixture() -> Result<Weights, Box<dyn std::error::Error>> {
    common::open_golden(
        "ARVIS_LLAMAGEN_VQ_GOLDEN",
        "llamagen_vq_tiny.safetensors",
        "/work/venv/bin/python xtask/py/golden_llamagen.py --llamagen-repo <FoundationVision/LlamaGen checkout>",
    )
}

fn golden_idx(w: &Weights) -> Result<(Vec<u32>, usize, usize), Box<dyn std::error::Error>> {
    let t = w.get_any("golden.idx")?;
    let (b, n) = (t.shape()[0], t.shape()[1]);
    let side = (n as f64).sqrt() as usize;
    if side * side != n {
        return Err(format!("golden.idx: {n} codes per image is not a square").into());
    }
    Ok((t.to_vec().iter().map(|&v| v as u32).collect(), b, side))
}

#[test]
fn golden_keys_are_exactly_what_load_reads() -> TestResult {
    let w = fixture()?;
    let cfg = LlamaGenVqConfig::from_weights(&w)?;
    common::assert_keys_are(&w, "vq", LlamaGenVq::tensor_shapes(&cfg)?)?;
    Ok(())
}

fn golden_round_trip(device: Device) -> TestResult {
    if !arvis_core::gpu::ready_for_tests(device)? {
        return Ok(());
    }
    let w = fixture()?;
    let cfg = LlamaGenVqConfig::from_weights(&w)?;
    let vq = LlamaGenVq::load(&w.scope_on("vq", device), &cfg)?;
    let img = w.get_any("golden.img")?.to_device(device)?;
    let (want_idx, b, side) = golden_idx(&w)?;

    let latent = vq.img_to_latent(&img)?;
    compare("latent", &latent, &w.get_any("golden.latent")?, LATENT_TOL)?;

    let idx = vq.encode(&img)?;
    let bad = idx.iter().zip(&want_idx).filter(|(a, b)| a != b).count();
    assert_eq!(idx.len(), want_idx.len(), "code count");
    assert_eq!(bad, 0, "{device:?}: {bad} of {} codes differ", idx.len());

    let quant = vq.indices_to_latent(&want_idx, b, side, side)?;
    compare("quant", &quant, &w.get_any("golden.quant")?, IMAGE_TOL)?;
    let rec = vq.decode_indices(&want_idx, b, side, side)?;
    compare("image", &rec, &w.get_any("golden.rec")?, IMAGE_TOL)?;

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
