//! `evaluate` with a token sampler on a tiny random LlamaGen (10 classes, 32×32 images): the
//! report carries the sampler's cost and the samples' NLL; at temperature 0 the exact samplers
//! (plain, SJD) make the same samples — same fidelity, Fréchet distance and NLL — with SJD
//! spending no more target forwards than plain decoding's one per token; the NLL equals the
//! teacher-forced likelihood of the same tokens; `arvis eval --sampler` prints the cost, and
//! bad combinations exit 2.

use std::process::Command;

use arvis::classifier::MnistClassifier;
use arvis::core::Weights;
use arvis::eval::{EvalSettings, evaluate_with};
use arvis::models::llamagen::random::random_weights_bytes;
use arvis::models::llamagen::{LlamaGenConfig, LlamaGenVqConfig};
use arvis::{Pipeline, SamplerKind, SamplerOptions};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const TOKENS: usize = 16;

/// A GPT of 4×4 tokens and a VQ with three downsamplings: 32×32 images, as the classifier
/// takes.
fn model_bytes() -> TestResult<Vec<u8>> {
    let gpt = LlamaGenConfig {
        dim: 64,
        n_layer: 2,
        n_head: 2,
        vocab_size: 32,
        block_size: TOKENS,
        num_classes: 10,
        ..LlamaGenConfig::gpt_b()
    };
    let vq = LlamaGenVqConfig {
        ch: 8,
        norm_groups: 4,
        codebook_size: 32,
        encoder_ch_mult: vec![1, 1, 1, 1],
        decoder_ch_mult: vec![1, 1, 1, 1],
        z_channels: 8,
        ..LlamaGenVqConfig::vq16()
    };
    Ok(random_weights_bytes(&gpt, Some(&vq), 7)?)
}

fn settings(sampler: SamplerKind, temperature: f32) -> EvalSettings {
    EvalSettings {
        batch_size: 5,
        temperature,
        sampler: Some(SamplerOptions {
            kind: sampler,
            window: 6,
        }),
        top_k: 0,
        top_p: 1.0,
        ..EvalSettings::new(1, 3, 2.0)
    }
}

#[test]
fn greedy_plain_and_sjd_make_the_same_samples_and_sjd_saves_forwards() -> TestResult {
    let w = Weights::from_bytes("tiny_llamagen", model_bytes()?)?;
    let pipeline = Pipeline::from_weights(&w, arvis::core::Device::Cpu)?;
    let clf = MnistClassifier::builtin()?;
    let plain = evaluate_with(
        &pipeline,
        &clf,
        &settings(SamplerKind::Plain, 0.0),
        &mut |_| {},
    )?;
    let sjd = evaluate_with(
        &pipeline,
        &clf,
        &settings(SamplerKind::Sjd, 0.0),
        &mut |_| {},
    )?;
    let (pc, sc) = (
        plain
            .sampler_cost
            .as_ref()
            .ok_or("plain: no sampler cost")?,
        sjd.sampler_cost.as_ref().ok_or("sjd: no sampler cost")?,
    );
    for c in [pc, sc] {
        assert_eq!((c.calls, c.images, c.tokens_per_image), (2, 10, TOKENS));
        assert!(c.nll_per_token().is_finite() && c.nll_per_token() > 0.0);
    }
    // Plain decoding: one target forward per token and call.
    assert_eq!(pc.target_forwards, 2 * TOKENS);
    assert!(sc.target_forwards <= pc.target_forwards, "{sc:?}");
    // Greedy: identical tokens, hence identical images and likelihoods.
    assert_eq!(plain.fidelity, sjd.fidelity);
    assert_eq!(plain.fd_generated_test, sjd.fd_generated_test);
    assert!((pc.nll_sum - sc.nll_sum).abs() <= 1e-6 * pc.nll_sum.abs());
    // The NLL is the teacher-forced likelihood of the sampled tokens, recomputed here.
    let req = arvis::Request {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        cfg: 2.0,
        ..arvis::Request::new(vec![0, 1, 2, 3, 4], 0)
    };
    let opts = SamplerOptions {
        kind: SamplerKind::Plain,
        window: 6,
    };
    let s = pipeline.sample_tokens(&req, &opts, None)?;
    let nll = pipeline.token_nll(&req, &s.tokens)?;
    assert_eq!(s.stats.target_forwards, TOKENS);
    assert!(nll.iter().all(|v| v.is_finite() && *v > 0.0), "{nll:?}");
    // A sampled (T = 1) run reports its cost too, and its JSON carries it.
    let lantern = evaluate_with(
        &pipeline,
        &clf,
        &settings(SamplerKind::Lantern, 1.0),
        &mut |_| {},
    )?;
    let json = lantern.to_json();
    assert_eq!(json["sampler_cost"]["sampler"], "lantern");
    assert_eq!(json["sampler_cost"]["exact"], false);
    assert_eq!(json["sampler_cost"]["images"], 10);
    Ok(())
}

#[test]
fn eval_cli_reports_the_sampler_and_refuses_bad_requests() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = dir.path().join("tiny_llamagen.safetensors");
    std::fs::write(&model, model_bytes()?)?;
    let m = model.to_str().ok_or("path")?;
    let run = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--model",
            m,
            "--samples",
            "1",
            "--batch",
            "10",
            "-q",
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_arvis"))
            .args(&args)
            .output()
    };
    let o = run(&["--sampler", "sjd", "--window", "4", "--json"])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let c = &v["sampler_cost"];
    assert_eq!(
        (c["sampler"].as_str(), c["window"].as_u64()),
        (Some("sjd"), Some(4))
    );
    let f = c["target_forwards_per_call"].as_f64().ok_or("forwards")?;
    assert!((1.0..=TOKENS as f64).contains(&f), "{c}");
    // Without --sampler: the model's own sampler, no cost section.
    let o = run(&["--json"])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert!(v["sampler_cost"].is_null());
    for (extra, needle) in [
        (&["--sampler", "spec"][..], "--draft"),
        (&["--sampler", "sjd", "--window", "1"][..], "window"),
        (&["--temperature=-1"][..], "temperature"),
    ] {
        let o = run(extra)?;
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    Ok(())
}
