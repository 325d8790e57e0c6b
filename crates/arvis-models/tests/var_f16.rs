//! f16 weight storage (`LoadOptions { weight_storage: WeightStorage::F16 }`) on a tiny random
//! VAR: the replayed logits stay within f16 rounding of the f32 model's on the same device,
//! and the CPU (rounded weights in f32) and the GPU (packed halves) agree at the usual logits
//! tolerance, since both compute with the same rounded numbers.

mod common;

use arvis_core::{Device, Tolerance, Weights};
use arvis_models::var::random::{random_weights_bytes, tiny_configs};
use arvis_models::var::{LoadOptions, Var, WeightStorage};
use common::{Errs, TestResult};

/// CPU vs GPU logits of the same model (as `golden_var.rs`).
const LOGITS_TOL: Tolerance = Tolerance::new(1e-4, 1e-5);

fn load(w: &Weights, device: Device, storage: WeightStorage) -> TestResult<Var> {
    let options = LoadOptions {
        weight_storage: storage,
    };
    Ok(Var::load_on_with(w, device, options)?)
}

/// Raw (unguided) logits of every scale, replayed with fixed indices, as host vectors.
fn logits(var: &Var, labels: &[u32], indices: &[Vec<u32>]) -> TestResult<Vec<Vec<f32>>> {
    let replay = var.generate_with_indices(labels, 3.0, indices)?;
    Ok(replay
        .raw_logits
        .iter()
        .map(|t| t.try_to_vec())
        .collect::<arvis_core::Result<_>>()?)
}

#[test]
fn f16_weights_stay_close_to_f32_and_devices_agree() -> TestResult {
    let (vc, ac) = tiny_configs(&[1, 2, 3]);
    let w = Weights::from_bytes("tiny.safetensors", random_weights_bytes(&vc, &ac, 5)?)?;
    let labels = [1u32, 7];
    let vocab = ac.vocab_size as u32;
    let indices: Vec<Vec<u32>> = vc
        .patch_nums
        .iter()
        .map(|&pn| {
            (0..(labels.len() * pn * pn) as u32)
                .map(|i| (i * 7 + 3) % vocab)
                .collect()
        })
        .collect();
    let mut f16_by_device = Vec::new();
    for device in [Device::Cpu, Device::Gpu] {
        if !arvis_core::gpu::ready_for_tests(device)? {
            continue;
        }
        let f32_logits = logits(&load(&w, device, WeightStorage::F32)?, &labels, &indices)?;
        let f16_logits = logits(&load(&w, device, WeightStorage::F16)?, &labels, &indices)?;
        let mut errs = Errs::default();
        for (si, (h, f)) in f16_logits.iter().zip(&f32_logits).enumerate() {
            // rel 1e-2 with an absolute floor of 1e-2 of the scale's largest logit (a logit
            // near zero carries the rounding error of its larger terms).
            let max_ref = f.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
            Tolerance::new(1e-2, 1e-2 * max_ref.max(1e-3))
                .check(h, f)
                .map_err(|m| format!("{device:?}: f16 vs f32 logits, scale {si}: {m}"))?;
            errs = errs.merge(Errs::of_slices(h, f));
        }
        assert_ne!(
            f16_logits, f32_logits,
            "{device:?}: f16 storage changed nothing"
        );
        eprintln!(
            "{device:?}: f16 vs f32 weights, logits max |Δ| {:.2e} (max |logit| {:.2})",
            errs.max_abs, errs.max_ref
        );
        if device == Device::Gpu {
            let fallbacks = arvis_core::gpu::GpuContext::shared()?.host_fallbacks();
            assert_eq!(fallbacks, 0, "ops that ran on the host");
        }
        f16_by_device.push((device, f16_logits));
    }
    if let [(_, cpu), (_, gpu)] = &f16_by_device[..] {
        let mut errs = Errs::default();
        for (si, (g, c)) in gpu.iter().zip(cpu).enumerate() {
            LOGITS_TOL
                .check(g, c)
                .map_err(|m| format!("f16 weights, GPU vs CPU logits, scale {si}: {m}"))?;
            errs = errs.merge(Errs::of_slices(g, c));
        }
        eprintln!(
            "f16 weights, GPU vs CPU logits max |Δ| {:.2e} (max |logit| {:.2})",
            errs.max_abs, errs.max_ref
        );
    }
    Ok(())
}
