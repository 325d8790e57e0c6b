//! f16 weight storage for LlamaGen (`LlamaGen::load_on_with` + `LoadOptions { weight_storage:
//! WeightStorage::F16 }`) on a tiny random GPT: the replayed logits stay within f16 rounding of
//! the f32 model's on the same device (and are not identical: the storage really changed), and
//! the CPU (rounded weights in f32) and the GPU (packed halves) agree at the usual logits
//! tolerance, since both compute with the same rounded numbers.

mod common;

use arvis_core::{Device, Tolerance, Weights};
use arvis_models::llamagen::random::random_weights_bytes;
use arvis_models::llamagen::{LlamaGen, LlamaGenConfig};
use arvis_models::var::{LoadOptions, WeightStorage};
use common::{Errs, TestResult};

/// CPU vs GPU guided logits: the golden tests' `Tolerance::new(1e-4, 1e-5)` on the operands,
/// whose absolute part guidance `u + (c − u)·4` amplifies by `2·4 − 1`.
const LOGITS_TOL: Tolerance = Tolerance::new(1e-4, 7e-5);

fn tiny() -> LlamaGenConfig {
    LlamaGenConfig {
        dim: 128,
        n_layer: 2,
        n_head: 2,
        vocab_size: 64,
        block_size: 16,
        num_classes: 10,
        ..LlamaGenConfig::gpt_b()
    }
}

/// Guided logits of every step, replaying fixed tokens, flattened.
fn logits(w: &Weights, device: Device, storage: WeightStorage) -> TestResult<Vec<f32>> {
    let options = LoadOptions {
        weight_storage: storage,
    };
    let gpt = LlamaGen::load_on_with(w, device, options)?;
    let tokens: Vec<Vec<u32>> = (0..2u32)
        .map(|r| (0..16u32).map(|i| (i * 7 + r * 5 + 3) % 64).collect())
        .collect();
    let run = gpt.generate_with_indices(&[1, 7], 4.0, &tokens)?;
    let mut out = Vec::new();
    for t in &run.logits {
        out.extend(t.try_to_vec()?);
    }
    Ok(out)
}

#[test]
fn f16_weights_stay_close_to_f32_and_devices_agree() -> TestResult {
    let w = Weights::from_bytes("tiny.safetensors", random_weights_bytes(&tiny(), None, 3)?)?;
    let mut f16_by_device = Vec::new();
    for device in [Device::Cpu, Device::Gpu] {
        if !arvis_core::gpu::ready_for_tests(device)? {
            continue;
        }
        let full = logits(&w, device, WeightStorage::F32)?;
        let half = logits(&w, device, WeightStorage::F16)?;
        let max_ref = full.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
        // rel 1e-2 with an absolute floor of 1e-2 of the largest logit (a logit near zero
        // carries the rounding error of its larger terms).
        Tolerance::new(1e-2, 1e-2 * max_ref)
            .check(&half, &full)
            .map_err(|m| format!("{device:?}: f16 vs f32 logits: {m}"))?;
        assert_ne!(half, full, "{device:?}: f16 storage changed nothing");
        let e = Errs::of_slices(&half, &full);
        eprintln!(
            "{device:?}: f16 vs f32 weights, guided logits max |Δ| {:.2e} (max |logit| {max_ref:.2})",
            e.max_abs
        );
        f16_by_device.push((device, half));
    }
    if let [(_, cpu), (_, gpu)] = &f16_by_device[..] {
        LOGITS_TOL
            .check(gpu, cpu)
            .map_err(|m| format!("f16 weights, GPU vs CPU logits: {m}"))?;
    }
    Ok(())
}
