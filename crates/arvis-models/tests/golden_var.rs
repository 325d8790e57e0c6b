//! Golden tests against the official FoundationVision/VAR code (random tiny weights), made by
//! `xtask/py/golden_var.py`: replaying the recorded indices must reproduce the reference's
//! per-scale logits, `f̂`, image and teacher-forced logits.
//!
//! Tolerances:
//! - raw and teacher-forced logits: `|Δ| ≤ 1e-5 + 1e-4·|ref|` (`Tolerance::new(1e-4, 1e-5)`);
//! - guided logits `(1+t)·c − t·u`: the same bound on the operands, which guidance amplifies and
//!   which may cancel: `|Δ| ≤ 1e-5 + 1e-4·((1+t)·|c_ref| + t·|u_ref|)`;
//! - `f̂` and the final image: `|Δ| ≤ 1e-3` (`Tolerance::new(0.0, 1e-3)`).

mod common;

use arvis_core::sampling::{SamplingConfig, filter_row};
use arvis_core::{Device, Tolerance};
use arvis_models::var::Var;
use common::{Errs, TestResult, as_indices, check, open_golden};

const LOGITS_TOL: Tolerance = Tolerance::new(1e-4, 1e-5);
const IMAGE_TOL: Tolerance = Tolerance::new(0.0, 1e-3);

/// Guided logits against the reference, with the bound scaled by the operands' magnitude.
fn check_guided(
    si: usize,
    got: &arvis_core::Tensor,
    want: &arvis_core::Tensor,
    raw_ref: &arvis_core::Tensor,
    t: f64,
) -> TestResult<Errs> {
    if got.shape() != want.shape() {
        return Err(format!(
            "guided logits, scale {si}: shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        )
        .into());
    }
    let raw = raw_ref.to_vec();
    let (cond, uncond) = raw.split_at(raw.len() / 2);
    let (got_v, want_v) = (got.to_vec(), want.to_vec());
    for i in 0..got_v.len() {
        let scale = (1.0 + t) * f64::from(cond[i]).abs() + t * f64::from(uncond[i]).abs();
        let bound = LOGITS_TOL.abs + LOGITS_TOL.rel * scale;
        let d = (f64::from(got_v[i]) - f64::from(want_v[i])).abs();
        if d > bound || d.is_nan() {
            return Err(format!(
                "guided logits, scale {si}, element {i}: got {}, expected {} (|Δ| {d:.3e} > {bound:.3e})",
                got_v[i], want_v[i]
            )
            .into());
        }
    }
    Errs::of(got, want)
}

fn golden_case(file: &str, device: Device) -> TestResult {
    if !arvis_core::gpu::ready_for_tests(device)? {
        return Ok(());
    }
    let w = open_golden(file)?;
    let var = Var::load_on(&w, device)?;
    let labels = as_indices(&w.get_any("golden.labels")?)?;
    let cfg = w.get_any("golden.cfg")?.to_vec()[0];
    let top_k = w.get_any("golden.top_k")?.to_vec()[0] as usize;
    let top_p = w.get_any("golden.top_p")?.to_vec()[0];
    let scales = var.config().num_scales();
    let indices = (0..scales)
        .map(|si| as_indices(&w.get_any(&format!("golden.idx.{si}"))?))
        .collect::<TestResult<Vec<_>>>()?;

    let replay = var.generate_with_indices(&labels, cfg, &indices)?;
    let (mut raw_e, mut mixed_e) = (Errs::default(), Errs::default());
    let sampling = SamplingConfig::var(top_k, top_p);
    let vocab = var.vocab_size();
    for (si, drawn_idx) in indices.iter().enumerate() {
        let raw_ref = w.get_any(&format!("golden.logits_raw.{si}"))?;
        let mixed_ref = w.get_any(&format!("golden.logits.{si}"))?;
        raw_e = raw_e.merge(check(
            &format!("raw logits, scale {si}"),
            &replay.raw_logits[si],
            &raw_ref,
            LOGITS_TOL,
        )?);
        let t = var.config().cfg_strength(cfg, si);
        mixed_e = mixed_e.merge(check_guided(
            si,
            &replay.logits[si],
            &mixed_ref,
            &raw_ref,
            t,
        )?);

        // Our VAR top-k/top-p filter on our logits keeps as many tokens as the reference's did,
        // and keeps the token the reference drew.
        let kept_ref = as_indices(&w.get_any(&format!("golden.kept.{si}"))?)?;
        let logits = replay.logits[si].to_vec();
        for (r, row) in logits.chunks_exact(vocab).enumerate() {
            let mut row = row.to_vec();
            filter_row(&mut row, &sampling)?;
            let kept = row.iter().filter(|x| x.is_finite()).count();
            assert_eq!(
                kept as u32, kept_ref[r],
                "{file}: scale {si} row {r}: kept tokens"
            );
            let drawn = drawn_idx[r] as usize;
            assert!(
                row[drawn].is_finite(),
                "{file}: scale {si} row {r}: drawn token {drawn} filtered out"
            );
        }
    }
    let fhat_e = check(
        "f_hat",
        &replay.f_hat,
        &w.get_any("golden.fhat")?,
        IMAGE_TOL,
    )?;
    let img = var.decode(&replay.f_hat)?;
    let img_e = check("image", &img, &w.get_any("golden.img")?, IMAGE_TOL)?;

    let teacher = var.forward_teacher(&labels, &indices)?;
    let teacher_e = check(
        "teacher logits",
        &teacher,
        &w.get_any("golden.teacher_logits")?,
        LOGITS_TOL,
    )?;

    if device == Device::Gpu {
        // Every op of the model, the tokenizer and the attention ran as a WGSL kernel.
        let fallbacks = arvis_core::gpu::GpuContext::shared()?.host_fallbacks();
        assert_eq!(fallbacks, 0, "{file}: ops that ran on the host");
    }
    let line = |what: &str, e: Errs| {
        format!(
            "{what} max |Δ| {:.2e} (max |ref| {:.2}, ratio {:.1e})",
            e.max_abs,
            e.max_ref,
            e.max_abs / e.max_ref.max(f64::MIN_POSITIVE)
        )
    };
    eprintln!(
        "{file} on {}:\n  {}\n  {}\n  {}\n  {}\n  {}",
        device.name(),
        line("raw logits    ", raw_e),
        line("guided logits ", mixed_e),
        line("teacher logits", teacher_e),
        line("f_hat         ", fhat_e),
        line("image         ", img_e),
    );
    Ok(())
}

#[test]
fn replay_matches_reference_per_block_adaln() -> TestResult {
    golden_case("var_tiny_shared0.safetensors", Device::Cpu)
}

#[test]
fn replay_matches_reference_shared_adaln() -> TestResult {
    golden_case("var_tiny_shared1.safetensors", Device::Cpu)
}

/// The same fixtures with every tensor on the GPU (lavapipe in CI): the WGSL kernels reproduce
/// the official code within the same tolerances.
#[test]
fn replay_matches_reference_per_block_adaln_gpu() -> TestResult {
    golden_case("var_tiny_shared0.safetensors", Device::Gpu)
}

#[test]
fn replay_matches_reference_shared_adaln_gpu() -> TestResult {
    golden_case("var_tiny_shared1.safetensors", Device::Gpu)
}
