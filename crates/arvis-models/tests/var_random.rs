//! Properties of the VAR implementation on tiny random models: the teacher-forced forward
//! equals the KV-cached loop, sampling is deterministic in the seed, guidance and progress
//! behave as documented, and bad requests and bad weights files give the right errors.

mod common;

use std::collections::BTreeMap;

use arvis_core::{Tolerance, Weights};
use arvis_models::ModelError;
use arvis_models::var::random::{random_weights_bytes, write_safetensors};
use arvis_models::var::{Progress, Var, VarRequest};
use common::{Errs, TestResult, tiny_configs, tiny_configs_ten_scales};

fn request(labels: Vec<u32>, seed: u64) -> VarRequest {
    VarRequest {
        labels,
        seed,
        cfg: 3.0,
        top_k: 20,
        top_p: 0.9,
    }
}

/// Teacher forcing over every scale at once (block-causal mask) gives the conditional half of
/// the KV-cached loop's logits, on the official ten scales, with and without shared AdaLN.
#[test]
fn teacher_forced_equals_cached_loop() -> TestResult {
    for shared in [false, true] {
        let (vc, ac) = tiny_configs_ten_scales(shared);
        let var = Var::random(vc, ac, 7)?;
        let labels = vec![3, 0, 9];
        let sample = var.sample(&request(labels.clone(), 11), &mut |_| {})?;
        let replay = var.generate_with_indices(&labels, 3.0, &sample.indices)?;
        let teacher = var.forward_teacher(&labels, &sample.indices)?;
        assert_eq!(teacher.shape(), &[3, 680, 64]);
        let b = labels.len();
        let (mut begin, mut errs) = (0, Errs::default());
        for (si, raw) in replay.raw_logits.iter().enumerate() {
            let l = raw.shape()[1];
            let cond = raw.narrow(0, 0, b)?;
            let t = teacher.narrow(1, begin, l)?;
            Tolerance::new(1e-4, 1e-5)
                .check(&t.to_vec(), &cond.to_vec())
                .map_err(|m| format!("shared_aln={shared}, scale {si}: {m}"))?;
            errs = errs.merge(Errs::of(&t, &cond)?);
            begin += l;
        }
        assert_eq!(begin, 680);
        eprintln!(
            "shared_aln={shared}: teacher vs cached loop max |Δ| {:.2e} (|logit| ≤ {:.2})",
            errs.max_abs, errs.max_ref
        );
        // The replay reproduces the sampled latent exactly (same indices, same ops).
        assert_eq!(replay.f_hat.to_vec(), sample.f_hat.to_vec());

        // Block causality: scale 3's tokens only enter the input of scale 4 onwards, so
        // changing one leaves the logits of scales 0..=3 bit-identical and changes later ones.
        let mut changed = sample.indices.clone();
        changed[3][0] = (changed[3][0] + 1) % 64;
        let teacher2 = var.forward_teacher(&labels, &changed)?;
        let first4 = 1 + 4 + 9 + 16;
        assert_eq!(
            teacher.narrow(1, 0, first4)?.to_vec(),
            teacher2.narrow(1, 0, first4)?.to_vec()
        );
        assert_ne!(
            teacher.narrow(1, first4, 25)?.to_vec(),
            teacher2.narrow(1, first4, 25)?.to_vec()
        );
    }
    Ok(())
}

/// Without L2-normalised attention (no `scale_mul_1H11`, softmax scale `0.25/√d`) the model
/// loads and the cached loop still equals teacher forcing.
#[test]
fn plain_attention_variant() -> TestResult {
    let (mut vc, ac) = tiny_configs(false);
    vc.attn_l2_norm = false;
    let var = Var::random(vc, ac, 4)?;
    let labels = vec![6u32];
    let s = var.sample(&request(labels.clone(), 8), &mut |_| {})?;
    let replay = var.generate_with_indices(&labels, 3.0, &s.indices)?;
    let teacher = var.forward_teacher(&labels, &s.indices)?;
    let cond: Vec<f32> = replay
        .raw_logits
        .iter()
        .map(|r| r.narrow(0, 0, 1).map(|t| t.to_vec()))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    Tolerance::new(1e-4, 1e-5).check(&teacher.to_vec(), &cond)?;
    Ok(())
}

/// A loaded model can be shared across threads (e.g. one request per thread).
#[test]
fn var_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Var>();
}

#[test]
fn same_seed_same_tokens_and_images() -> TestResult {
    let (vc, ac) = tiny_configs(false);
    let var = Var::random(vc, ac, 1)?;
    let req = request(vec![1, 2, 5], 1234);
    let a = var.generate(&req, &mut |_| {})?;
    let b = var.generate(&req, &mut |_| {})?;
    assert_eq!(a.indices, b.indices);
    assert_eq!(a.images.to_vec(), b.images.to_vec());
    assert_eq!(a.images.shape(), &[3, 3, 12, 12]);
    assert!(a.images.to_vec().iter().all(|v| (0.0..=1.0).contains(v)));
    let lens: Vec<usize> = a.indices.iter().map(Vec::len).collect();
    assert_eq!(lens, [3, 12, 27, 48, 108]);
    assert!(a.indices.iter().flatten().all(|&i| i < 64));

    let c = var.generate(&request(vec![1, 2, 5], 1235), &mut |_| {})?;
    assert_ne!(
        a.indices, c.indices,
        "another seed should draw other tokens"
    );

    // `sample` + `decode` is `generate`.
    let s = var.sample(&req, &mut |_| {})?;
    assert_eq!(s.indices, a.indices);
    assert_eq!(var.decode(&s.f_hat)?.to_vec(), a.images.to_vec());
    Ok(())
}

/// Image 0's logits do not depend on the rest of the batch: replaying its tokens alone or next
/// to a copy of itself gives the same logits (up to GEMM blocking).
#[test]
fn image_zero_does_not_depend_on_the_batch_size() -> TestResult {
    let (vc, ac) = tiny_configs(false);
    let var = Var::random(vc, ac, 3)?;
    let one = var.sample(&request(vec![4], 99), &mut |_| {})?;
    let replay_one = var.generate_with_indices(&[4], 3.0, &one.indices)?;
    let two_idx: Vec<Vec<u32>> = one
        .indices
        .iter()
        .map(|v| v.iter().chain(v.iter()).copied().collect())
        .collect();
    let replay_two = var.generate_with_indices(&[4, 4], 3.0, &two_idx)?;
    for (a, b) in replay_one.logits.iter().zip(&replay_two.logits) {
        let b0 = b.narrow(0, 0, 1)?;
        Tolerance::new(1e-4, 1e-5).check(&a.to_vec(), &b0.to_vec())?;
    }
    Ok(())
}

#[test]
fn guidance_strength_follows_the_scale_ratio() -> TestResult {
    let (vc, ac) = tiny_configs(true);
    let var = Var::random(vc, ac, 5)?;
    let labels = [2u32, 8];
    let s = var.sample(&request(labels.to_vec(), 3), &mut |_| {})?;
    let cfg = 2.5f32;
    let replay = var.generate_with_indices(&labels, cfg, &s.indices)?;
    let scales = replay.logits.len();
    for si in 0..scales {
        let raw = replay.raw_logits[si].to_vec();
        let (cond, uncond) = raw.split_at(raw.len() / 2);
        let t = f64::from(cfg) * si as f64 / (scales - 1) as f64;
        let want: Vec<f64> = cond
            .iter()
            .zip(uncond)
            .map(|(&c, &u)| (1.0 + t) * f64::from(c) - t * f64::from(u))
            .collect();
        Tolerance::new(1e-5, 1e-5).check(&replay.logits[si].to_vec(), &want)?;
        if si == 0 {
            assert_eq!(
                replay.logits[0].to_vec(),
                cond,
                "no guidance at the first scale"
            );
        }
    }
    // cfg = 0: guided logits are the conditional logits exactly.
    let plain = var.generate_with_indices(&labels, 0.0, &s.indices)?;
    for (raw, mixed) in plain.raw_logits.iter().zip(&plain.logits) {
        assert_eq!(raw.narrow(0, 0, 2)?.to_vec(), mixed.to_vec());
    }
    Ok(())
}

#[test]
fn progress_reports_every_scale_then_decoding() -> TestResult {
    let (vc, ac) = tiny_configs(false);
    let var = Var::random(vc, ac, 2)?;
    let mut events = Vec::new();
    var.generate(&request(vec![0], 5), &mut |p| events.push(p))?;
    assert_eq!(events.len(), 6);
    assert_eq!(
        events[4],
        Progress::Scale {
            scale: 4,
            num_scales: 5,
            patch_num: 6,
            tokens_done: 66,
            tokens_total: 66
        }
    );
    assert_eq!(events[5], Progress::Decoding);
    Ok(())
}

#[test]
fn invalid_requests_are_rejected() -> TestResult {
    let (vc, ac) = tiny_configs(false);
    let var = Var::random(vc, ac, 0)?;
    let gen_err = |req: VarRequest| var.generate(&req, &mut |_| {}).err();

    let e = gen_err(request(vec![1, 10], 0));
    assert!(
        matches!(
            e,
            Some(ModelError::Label {
                label: 10,
                position: 1,
                num_classes: 10
            })
        ),
        "{e:?}"
    );
    let e = gen_err(request(vec![], 0));
    assert!(matches!(e, Some(ModelError::Request { .. })), "{e:?}");
    for top_p in [0.0, -0.1, 1.5, f32::NAN] {
        let e = gen_err(VarRequest {
            top_p,
            ..request(vec![1], 0)
        });
        assert!(
            matches!(e, Some(ModelError::Request { .. })),
            "top_p {top_p}: {e:?}"
        );
    }
    for cfg in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = gen_err(VarRequest {
            cfg,
            ..request(vec![1], 0)
        });
        assert!(
            matches!(e, Some(ModelError::Request { .. })),
            "cfg {cfg}: {e:?}"
        );
    }
    // top_p = 1 (off) and top_k = 0 (off) are valid.
    let ok = VarRequest {
        top_p: 1.0,
        top_k: 0,
        ..request(vec![9], 0)
    };
    assert!(var.sample(&ok, &mut |_| {}).is_ok());

    // Replay: wrong number of scales, wrong count, index outside the codebook.
    let s = var.sample(&request(vec![1], 0), &mut |_| {})?;
    let e = var.generate_with_indices(&[1], 1.0, &s.indices[..4]).err();
    assert!(matches!(e, Some(ModelError::Indices { .. })), "{e:?}");
    let mut bad = s.indices.clone();
    bad[2].pop();
    let e = var.generate_with_indices(&[1], 1.0, &bad).err();
    assert!(
        matches!(e, Some(ModelError::Indices { scale: 2, .. })),
        "{e:?}"
    );
    let mut bad = s.indices.clone();
    bad[3][5] = 64;
    let e = var.forward_teacher(&[1], &bad).err();
    assert!(
        matches!(e, Some(ModelError::Indices { scale: 3, .. })),
        "{e:?}"
    );
    // The teacher-forced forward accepts the null class, not beyond.
    assert!(var.forward_teacher(&[10], &s.indices).is_ok());
    let e = var.forward_teacher(&[11], &s.indices).err();
    assert!(
        matches!(e, Some(ModelError::Label { label: 11, .. })),
        "{e:?}"
    );
    Ok(())
}

/// Rewrites a weights file: `edit(name, shape)` returns the new shape of a tensor, or `None` to
/// drop it; values are copied (or zero when the shape changed). `meta` replaces metadata keys.
fn rewrite(
    w: &Weights,
    edit: impl Fn(&str, &[usize]) -> Option<Vec<usize>>,
    meta: &[(&str, &str)],
) -> TestResult<Weights> {
    let mut specs = Vec::new();
    for name in w.names() {
        if let Some(shape) = edit(name, w.shape_of(name)?) {
            specs.push((name.to_owned(), shape));
        }
    }
    let mut metadata: BTreeMap<String, String> = w
        .metadata()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    for (k, v) in meta {
        metadata.insert((*k).to_owned(), (*v).to_owned());
    }
    let bytes = write_safetensors(&specs, &metadata, |_, name, out| {
        let t = w.get_any(name)?;
        if t.numel() == out.len() {
            out.copy_from_slice(&t.to_vec());
        }
        Ok(())
    })?;
    Ok(Weights::from_bytes("rewritten.safetensors", bytes)?)
}

#[test]
fn bad_weights_files_name_the_problem() -> TestResult {
    let (vc, ac) = tiny_configs(false);
    let w = Weights::from_bytes("tiny.safetensors", random_weights_bytes(&vc, &ac, 0)?)?;
    assert!(Var::load(&w).is_ok());
    let keep = |_: &str, s: &[usize]| Some(s.to_vec());

    // A missing transformer tensor.
    let missing = rewrite(
        &w,
        |n, s| (n != "blocks.1.attn.proj.weight").then(|| s.to_vec()),
        &[],
    )?;
    match Var::load(&missing) {
        Err(ModelError::Core(arvis_core::Error::MissingTensor { name, .. })) => {
            assert_eq!(name, "blocks.1.attn.proj.weight")
        }
        other => panic!("expected a missing-tensor error, got {other:?}"),
    }
    // A wrong-shaped one.
    let wrong = rewrite(
        &w,
        |n, s| {
            Some(if n == "head.weight" {
                vec![63, 128]
            } else {
                s.to_vec()
            })
        },
        &[],
    )?;
    match Var::load(&wrong) {
        Err(e @ ModelError::Core(arvis_core::Error::TensorShape { .. })) => {
            let msg = e.to_string();
            assert!(
                msg.contains("head.weight") && msg.contains("[64, 128]"),
                "{msg}"
            );
        }
        other => panic!("expected a tensor-shape error, got {other:?}"),
    }
    // A missing VQ-VAE tensor is reported through the tokenizer, by name.
    let no_vae = rewrite(
        &w,
        |n, s| (n != "vae.quantize.embedding.weight").then(|| s.to_vec()),
        &[],
    )?;
    let msg = Var::load(&no_vae)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("vae.quantize.embedding.weight"), "{msg}");
    // Another family.
    let other = rewrite(&w, keep, &[("arvis.family", "llamagen")])?;
    assert!(matches!(Var::load(&other), Err(ModelError::Family { .. })));
    // A configuration that does not fit the tensors (3 blocks, only 2 stored).
    let cfg = w
        .metadata_str("arvis.config")?
        .replace("\"depth\":2", "\"depth\":3");
    let deeper = rewrite(&w, keep, &[("arvis.config", &cfg)])?;
    match Var::load(&deeper) {
        Err(ModelError::Core(arvis_core::Error::MissingTensor { name, .. })) => {
            assert!(name.starts_with("blocks.2."), "{name}")
        }
        other => panic!("expected a missing blocks.2 tensor, got {other:?}"),
    }
    // A configuration that understates the depth (1 block, 2 stored): stray tensors.
    let cfg = w
        .metadata_str("arvis.config")?
        .replace("\"depth\":2", "\"depth\":1");
    let shallower = rewrite(&w, keep, &[("arvis.config", &cfg)])?;
    match Var::load(&shallower) {
        Err(ModelError::UnexpectedTensor { name, .. }) => {
            assert!(name.starts_with("blocks.1."), "{name}")
        }
        other => panic!("expected a stray blocks.1 tensor, got {other:?}"),
    }
    // Shared AdaLN configured but per-block `ada_lin` stored: the stray `ada_lin` is reported.
    let cfg = w
        .metadata_str("arvis.config")?
        .replace("\"shared_aln\":false", "\"shared_aln\":true");
    let shared = rewrite(&w, keep, &[("arvis.config", &cfg)])?;
    match Var::load(&shared) {
        Err(ModelError::UnexpectedTensor { name, .. }) => {
            assert!(name.contains("ada_lin"), "{name}")
        }
        other => panic!("expected a stray ada_lin tensor, got {other:?}"),
    }
    // Dropped buffers left in the file are tolerated.
    let with_buffers = {
        let mut specs: Vec<(String, Vec<usize>)> = w
            .names()
            .iter()
            .map(|n| Ok(((*n).to_owned(), w.shape_of(n)?.to_vec())))
            .collect::<TestResult<_>>()?;
        specs.push(("blocks.0.attn.zero_k_bias".to_owned(), vec![128]));
        specs.push(("lvl_1L".to_owned(), vec![1, 66]));
        let metadata = w
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let bytes = write_safetensors(&specs, &metadata, |_, name, out| {
            if w.contains(name) {
                out.copy_from_slice(&w.get_any(name)?.to_vec());
            }
            Ok(())
        })?;
        Weights::from_bytes("buffers.safetensors", bytes)?
    };
    assert!(Var::load(&with_buffers).is_ok());
    // Malformed configuration.
    let broken = rewrite(&w, keep, &[("arvis.config", "{\"var\": {}}")])?;
    assert!(matches!(Var::load(&broken), Err(ModelError::Config { .. })));
    Ok(())
}
