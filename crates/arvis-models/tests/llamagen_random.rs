//! Properties of the LlamaGen GPT on tiny random models: the teacher-forced forward equals the
//! KV-cached loop, sampling is deterministic in the seed, guidance behaves as documented, the
//! presets have the official sizes, and bad requests and files give the right errors.

mod common;

use arvis_core::SeededRng;
use arvis_core::sampling::SamplingConfig;
use arvis_core::sampling::sample_row;
use arvis_core::{Tolerance, Weights};
use arvis_models::ModelError;
use arvis_models::llamagen::random::{gpt_tensor_specs, random_weights_bytes};
use arvis_models::llamagen::{
    LLAMAGEN_SAMPLING_STREAM, LlamaGen, LlamaGenConfig, LlamaGenGuidance, LlamaGenVqConfig,
};
use common::TestResult;

fn tiny() -> LlamaGenConfig {
    LlamaGenConfig {
        dim: 64,
        n_layer: 2,
        n_head: 2,
        vocab_size: 48,
        block_size: 16,
        num_classes: 10,
        ..LlamaGenConfig::gpt_b()
    }
}

#[test]
fn presets_have_the_official_sizes() {
    let hidden: Vec<usize> = [
        LlamaGenConfig::gpt_b(),
        LlamaGenConfig::gpt_l(),
        LlamaGenConfig::gpt_xl(),
        LlamaGenConfig::gpt_xxl(),
    ]
    .iter()
    .map(|c| {
        assert_eq!(c.head_dim(), 64);
        assert!(c.validate().is_ok());
        c.ffn_hidden()
    })
    .collect();
    assert_eq!(hidden, vec![2048, 2816, 3584, 4096]);
    let params: usize = gpt_tensor_specs(&LlamaGenConfig::gpt_b())
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    // GPT-B: 111M parameters (official comment), class table and output included.
    assert!((110_000_000..113_000_000).contains(&params), "{params}");
}

#[test]
fn teacher_forced_equals_cached_loop() -> TestResult {
    let gpt = LlamaGen::random(&tiny(), 5)?;
    let labels = [3, 0, 9];
    let sampling = SamplingConfig::llamagen(1.0, 0, 1.0);
    let run = gpt.generate_with_logits(&labels, 2.5, &sampling, 1)?;
    let teacher = gpt.forward_teacher(&labels, &run.tokens)?;
    assert_eq!(teacher.shape(), &[3, 16, 48]);
    for (t, cond) in run.cond_logits.iter().enumerate() {
        let got = teacher.narrow(1, t, 1)?.reshape(&[3, 48])?;
        Tolerance::new(1e-4, 1e-5)
            .check(&got.to_vec(), &cond.to_vec())
            .map_err(|m| format!("step {t}: {m}"))?;
    }
    Ok(())
}

#[test]
fn sampling_is_seeded_and_guidance_is_optional() -> TestResult {
    let gpt = LlamaGen::random(&tiny(), 5)?;
    let sampling = SamplingConfig::llamagen(1.0, 10, 0.95);
    let a = gpt.generate_with_logits(&[1, 2], 3.0, &sampling, 7)?;
    assert_eq!(a.tokens, gpt.generate(&[1, 2], 3.0, &sampling, 7)?.tokens);
    assert_ne!(a.tokens, gpt.generate(&[1, 2], 3.0, &sampling, 8)?.tokens);
    assert!(
        a.tokens
            .iter()
            .all(|r| r.len() == 16 && r.iter().all(|&t| t < 48))
    );
    // cfg ≤ 1 runs the conditional batch alone: the sampler sees the conditional logits.
    let plain = gpt.generate_with_logits(&[1, 2], 1.0, &sampling, 7)?;
    for (m, c) in plain.logits.iter().zip(&plain.cond_logits) {
        assert_eq!(m.to_vec(), c.to_vec());
    }
    // With guidance, mixed = u + (c − u)·s differs from the conditional logits.
    assert_ne!(a.logits[0].to_vec(), a.cond_logits[0].to_vec());
    Ok(())
}

#[test]
fn bad_requests_and_files_are_rejected() -> TestResult {
    let gpt = LlamaGen::random(&tiny(), 5)?;
    let s = SamplingConfig::llamagen(1.0, 0, 1.0);
    assert!(matches!(
        gpt.generate(&[10], 2.0, &s, 0),
        Err(ModelError::Label { label: 10, .. })
    ));
    assert!(gpt.generate(&[], 2.0, &s, 0).is_err());
    assert!(gpt.generate(&[1], f32::NAN, &s, 0).is_err());
    assert!(
        gpt.generate_with_indices(&[1], 2.0, &[vec![0; 15]])
            .is_err()
    );
    assert!(
        gpt.generate_with_indices(&[1], 2.0, &[vec![48; 16]])
            .is_err()
    );
    assert!(gpt.forward_teacher(&[1, 2], &[vec![0; 16]]).is_err());

    // A complete file with the VQ loads; a file of another family does not.
    let vq = LlamaGenVqConfig {
        ch: 8,
        norm_groups: 4,
        codebook_size: 48,
        encoder_ch_mult: vec![1, 2],
        decoder_ch_mult: vec![1, 2],
        z_channels: 16,
        ..LlamaGenVqConfig::vq16()
    };
    let bytes = random_weights_bytes(&tiny(), Some(&vq), 3)?;
    let w = Weights::from_bytes("tiny.safetensors", bytes)?;
    LlamaGen::load_on(&w, arvis_core::Device::Cpu)?;
    let vq_model = arvis_models::llamagen::LlamaGenVq::load(
        &w.scope("vq"),
        &LlamaGenVqConfig::from_weights(&w)?,
    )?;
    let img = vq_model.decode_indices(&[1, 2, 3, 4], 1, 2, 2)?;
    assert_eq!(img.shape(), &[1, 3, 4, 4]);
    assert_eq!(vq_model.encode(&img.tanh()?)?.len(), 4);
    let var_file = arvis_models::var::random::random_weights_bytes(
        &common::tiny_configs(false).0,
        &common::tiny_configs(false).1,
        1,
    )?;
    let w = Weights::from_bytes("var.safetensors", var_file)?;
    assert!(matches!(
        LlamaGen::load_on(&w, arvis_core::Device::Cpu),
        Err(ModelError::Family { .. })
    ));
    Ok(())
}

/// `cfg_interval` (the official `generate`'s): the sampler sees the guided logits up to decode
/// step `k` (generation step `k + 1`) and the conditional logits after it. Checked by redrawing
/// every token from the replayed run's two kinds of logits with the documented uniform stream.
#[test]
fn cfg_interval_switches_to_conditional_logits() -> TestResult {
    let gpt = LlamaGen::random(&tiny(), 5)?;
    let sampling = SamplingConfig::llamagen(1.0, 50, 0.95);
    let labels = [3, 9];
    let (seed, k) = (21, 4);
    let guidance = LlamaGenGuidance {
        scale: 4.0,
        interval: Some(k),
    };
    let run = gpt.generate_guided(&labels, guidance, &sampling, seed, &mut |_| {})?;
    let replay = gpt.generate_with_indices(&labels, 4.0, &run.tokens)?;
    let mut rng = SeededRng::new(seed).fork(LLAMAGEN_SAMPLING_STREAM);
    let n = gpt.config().block_size;
    let mut switched = 0;
    for step in 0..n {
        let source = if step <= k + 1 {
            &replay.logits[step]
        } else {
            &replay.cond_logits[step]
        };
        let rows = source.to_vec();
        let v = rows.len() / labels.len();
        for (r, row) in rows.chunks_exact(v).enumerate() {
            let u = rng.uniform_f64();
            let want = sample_row(row, &sampling, u)?;
            assert_eq!(run.tokens[r][step] as usize, want, "step {step} row {r}");
            if step > k + 1 {
                let mixed = &replay.logits[step].to_vec()[r * v..(r + 1) * v];
                switched += usize::from(sample_row(mixed, &sampling, u)? != want);
            }
        }
    }
    assert!(
        switched > 0,
        "guided and conditional logits never disagreed"
    );
    // No interval (or one past the end) is plain guided generation.
    let all = gpt.generate(&labels, 4.0, &sampling, seed)?;
    let late = LlamaGenGuidance {
        scale: 4.0,
        interval: Some(n),
    };
    let late = gpt.generate_guided(&labels, late, &sampling, seed, &mut |_| {})?;
    assert_eq!(all.tokens, late.tokens);
    assert_ne!(all.tokens, run.tokens, "the interval changed nothing");
    Ok(())
}
